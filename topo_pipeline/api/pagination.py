"""Reading one window page by page and reconciling it with ``total_count``: :class:`WindowRead`.

It decides which pages a window still needs (all of them, only those around ties that
straddle a page boundary, or a fresh read) and when the ids fetched add up;
:mod:`topo_pipeline.api.tasks` requests the pages. The rules are in ``api/README.md``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from topo_pipeline.api.errors import TopoDataError, TopoReconciliationError
from topo_pipeline.api.models import Task, TaskPage
from topo_pipeline.api.windows import Window, WindowResult

log = logging.getLogger(__name__)


class WindowRead:
    """Progress of reading one window: pages seen, ids accumulated, totals observed.

    Args:
        window: the window read.
        after: the query's exclusive lower bound, before ``window.start`` (tasks between
            the two are counted as :attr:`WindowResult.before_window`).
        page_size: items per page requested.
        max_tasks: the largest ``total_count`` believed.
    """

    def __init__(self, window: Window, *, after: datetime, page_size: int, max_tasks: int) -> None:
        self.window = window
        self._start = window.start.astimezone(UTC)
        self._end = window.end.astimezone(UTC)
        self._after = after.astimezone(UTC)
        self._page_size = page_size
        self._max_tasks = max_tasks
        self.ids: set[str] = set()
        self._in_window_ids: set[str] = set()
        self._before_window_ids: set[str] = set()
        self._out_of_bounds_ids: set[str] = set()
        self.reads = 0
        self._pages_requested = 0
        self.total = 0
        self._totals_seen: set[int] = set()
        # The one total_count every read since the ids were last cleared has seen.
        self._steady_total: int | None = None
        # created_at of the first and last task of each page, as last received.
        self._page_edges: dict[int, tuple[datetime, datetime]] = {}
        self._tie_rounds = 0
        self.partial = False
        """Whether the current read requests only the pages around ties."""
        self.page_count = 1
        self._pending_pages = {1}
        self._finished: WindowResult | None = None
        self.restart()

    def restart(self) -> bool:
        """Prepare the next read; return whether the ids of earlier reads were dropped.

        Ids are kept across reads while every read sees one and the same total: with an
        unchanged set each read can only add ids (healing ties ordered differently between
        requests). If the total moved, within a read or between reads, the set changed
        under us and earlier ids may be stale (a deleted task among them, or counted in
        place of one missed), so start afresh.
        """
        dropped = False
        if self._totals_seen:  # a read has finished
            if self._steady():
                self._steady_total = self.total
            else:
                self.ids.clear()
                self._in_window_ids.clear()
                self._before_window_ids.clear()
                self._out_of_bounds_ids.clear()
                self._steady_total = None
                dropped = True
        self.reads += 1
        self._totals_seen = set()
        self.page_count = 1
        self._pending_pages = {1}
        self._page_edges = {}
        self.partial = False
        return dropped

    def tie_pages(self, max_rounds: int) -> list[int]:
        """Start a round of re-reading the pages around straddling ties; return them.

        Only when the finished read saw one steady total (the task set did not change)
        and fewer than ``max_rounds`` rounds ran: then the missing ids can only be tasks
        whose position within a tie moved between requests. Returns ``[]`` otherwise, or
        when no tie straddles a page boundary.
        """
        if not self._steady() or self._tie_rounds >= max_rounds:
            return []
        pages: set[int] = set()
        for number in range(1, self.page_count):
            before, after = self._page_edges.get(number), self._page_edges.get(number + 1)
            if before and after and before[1] == after[0]:
                pages.update((number, number + 1))
        if not pages:
            return []
        self._tie_rounds += 1
        self.partial = True
        self._pending_pages = set(pages)
        return sorted(pages)

    def accept(self, number: int, page: TaskPage) -> list[Task]:
        """Record page ``number``; return its tasks inside the window, in page order.

        Raises:
            TopoDataError: a ``total_count`` beyond ``max_tasks`` or an oversized page, or
                an item that is not a valid task.
        """
        if page.total_count > self._max_tasks or len(page.items) > self._page_size:
            raise TopoDataError(
                f"Topo reported total_count {page.total_count:,} with {len(page.items)} items "
                f"on page {number} for tasks created in {self._describe()}: more than the "
                f"{self._max_tasks:,} tasks a window may hold (TOPO_API_MAX_TASKS_PER_WINDOW) "
                f"or more than {self._page_size} items on a page. Refusing to request its "
                "pages; if a day really holds that many tasks, raise "
                "TOPO_API_MAX_TASKS_PER_WINDOW."
            )
        self._pages_requested += 1
        self._totals_seen.add(page.total_count)
        self.total = page.total_count
        if number == 1 and not self.partial:
            self.page_count = page.page_count_for(self._page_size)
            self._pending_pages = set(range(2, self.page_count + 1))
        else:
            self._pending_pages.discard(number)
        tasks = []
        created = []
        for item in page.items:
            task = Task.from_api(item)
            created.append(task.created_at)
            self.ids.add(task.id)
            if self._start <= task.created_at < self._end:
                self._in_window_ids.add(task.id)
                tasks.append(task)
            elif self._after < task.created_at < self._start:
                self._before_window_ids.add(task.id)
            elif task.id not in self._out_of_bounds_ids:
                self._out_of_bounds_ids.add(task.id)
                if len(self._out_of_bounds_ids) == 1:
                    log.warning(
                        "Topo sent task %s created at %s for the window %s .. %s, outside the "
                        "bounds requested; such tasks are counted, not landed, and the "
                        "count_matches_api_total check will flag the day",
                        task.id,
                        task.created_at.isoformat(),
                        self.window.start.isoformat(),
                        self.window.end.isoformat(),
                    )
        if created:
            self._page_edges[number] = (created[0], created[-1])
        return tasks

    @property
    def complete(self) -> bool:
        """Whether every page of the current read was received."""
        return not self._pending_pages

    def reconciled(self) -> bool:
        """Whether the ids fetched equal the one ``total_count`` every page reported."""
        return self._steady() and len(self.ids) == self.total

    def gap(self) -> TopoReconciliationError:
        """The error that reports this window's ids disagreeing with ``total_count``."""
        return TopoReconciliationError(
            f"tasks created in {self._describe()}: fetched {len(self.ids)} unique ids but "
            f"Topo reports total_count {self.total} (read {self.reads} times; page totals "
            f"seen {sorted(self._totals_seen)}). The window was not landed; retry the "
            "partition later.",
            expected=self.total,
            fetched=len(self.ids),
        )

    def finish(self) -> WindowResult:
        """The result of the reconciled window; its ids are let go.

        A range run reads hundreds of windows before it returns, and each window's id sets
        hold a day of ids (about 150 bytes per task); a finished window needs only counts.
        """
        self._finished = self.result()
        self.ids, self._in_window_ids = set(), set()
        self._before_window_ids, self._out_of_bounds_ids = set(), set()
        return self._finished

    def result(self) -> WindowResult:
        """The window's counts so far (final once :meth:`finish` was called)."""
        if self._finished is not None:
            return self._finished
        return WindowResult(
            window=self.window,
            api_total=self.total,
            in_window=len(self._in_window_ids),
            before_window=len(self._before_window_ids),
            out_of_bounds=len(self._out_of_bounds_ids),
            reads=self.reads,
            pages=self._pages_requested,
        )

    def _steady(self) -> bool:
        """Whether the current read saw one total, the same as the reads before it."""
        return len(self._totals_seen) == 1 and self._steady_total in (None, self.total)

    def _describe(self) -> str:
        return f"{self.window.start.isoformat()} .. {self.window.end.isoformat()}"
