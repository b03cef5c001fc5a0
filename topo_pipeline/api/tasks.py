"""Topo's list-tasks endpoint (``GET /v1/tasks``): :func:`fetch_windows` reads created-at
windows completely, concurrently, handing each page to a :class:`PageHandler`.

How a window is queried (strict bounds, paging, re-reads) is in ``api/README.md``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

from topo_pipeline.api.config import ClientConfig
from topo_pipeline.api.models import TaskPage, format_timestamp
from topo_pipeline.api.pagination import WindowRead
from topo_pipeline.api.stats import FetchStats
from topo_pipeline.api.transport import TopoSession
from topo_pipeline.api.windows import PageHandler, Window, WindowResult

PAGE_SIZE = 100  # Topo's hard maximum: fewest requests per window
BOUND_MARGIN = timedelta(seconds=1)  # widens the exclusive lower bound so `start` itself lands
PAGES_AHEAD_PER_WORKER = 4
"""Requests handed to the thread pool per worker, and so fetched pages not yet handed over."""

log = logging.getLogger(__name__)


def fetch_windows(
    session: TopoSession,
    tasks_url: str,
    windows: Sequence[Window],
    on_page: PageHandler,
    *,
    config: ClientConfig,
    stats: FetchStats,
) -> list[WindowResult]:
    """Fetch every task created in each of ``windows``, handing each page to ``on_page``.

    Page 1 of every window is requested first, then the remaining pages, at most
    ``config.concurrency`` at once. ``on_page`` is called on this thread, one page at a
    time, with the page's tasks inside its window; ``on_page.discard(window)`` before a
    window whose task set changed is read afresh; ``on_page.window_done(result)`` once a
    window reconciled with ``total_count``.

    Args:
        session: sends the requests.
        tasks_url: the endpoint's URL (the base URL and ``/tasks``).
        windows: distinct windows, in the order results are returned.
        on_page: receives the tasks.
        config: concurrency and the limits of reconciliation.
        stats: counters to add re-reads to.

    Returns:
        One :class:`WindowResult` per window, in the order given.

    Raises:
        TopoReconciliationError: a window's ids still disagreed with ``total_count``
            after every re-read. No further pages are handed over once raised.
        TopoError: any other failure of a request (see :meth:`TopoSession.get`).
        ValueError: a window is given twice.
    """
    if len(set(windows)) != len(windows):
        raise ValueError("each window may be fetched only once per call")
    reads = [
        WindowRead(
            window,
            after=_query_after(window),
            page_size=PAGE_SIZE,
            max_tasks=config.max_tasks_per_window,
        )
        for window in windows
    ]
    most_ahead = PAGES_AHEAD_PER_WORKER * config.concurrency
    with ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="topo-page") as pool:
        pending: dict[Future[TaskPage], tuple[WindowRead, int]] = {}
        queued: deque[tuple[WindowRead, int]] = deque()

        def start_queued() -> None:
            # A page fetched waits, parsed, until this thread hands it over; behind a slow
            # handler (the stage's writes) such pages would pile up by the thousand. So
            # only a few more than the workers' own are requested ahead.
            while queued and len(pending) < most_ahead:
                read, number = queued.popleft()
                future = pool.submit(_get_page, session, tasks_url, read.window, number)
                pending[future] = (read, number)

        queued.extend((read, 1) for read in reads)
        start_queued()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    start_queued()  # the workers keep going while pages are handed over
                    read, number = pending.pop(future)
                    page = future.result()
                    on_page(read.window, read.accept(number, page))
                    if number == 1 and not read.partial:
                        queued.extend((read, n) for n in range(2, read.page_count + 1))
                    if read.complete:
                        queued.extend((read, n) for n in _next_pages(read, on_page, config, stats))
                start_queued()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [read.result() for read in reads]


def _next_pages(
    read: WindowRead, on_page: PageHandler, config: ClientConfig, stats: FetchStats
) -> list[int]:
    """The pages to request once a read of a window is complete (none: it reconciled).

    Raises:
        TopoReconciliationError: the window may not be read again.
    """
    if read.reconciled():
        on_page.window_done(read.finish())
        return []
    tie_pages = read.tie_pages(config.max_tie_rereads)
    if tie_pages:
        stats.add(tie_rereads=1)
        return tie_pages
    if read.reads > config.max_rereads:
        raise read.gap()
    log.warning(
        "window %s..%s: %d unique ids for total_count %d; reading it again",
        read.window.start.isoformat(),
        read.window.end.isoformat(),
        len(read.ids),
        read.total,
    )
    if read.restart():
        on_page.discard(read.window)
    stats.add(rereads=1)
    return [1]


def _query_after(window: Window) -> datetime:
    """The query's exclusive lower bound: a second before the window, so ``start`` lands."""
    return window.start.astimezone(UTC) - BOUND_MARGIN


def _get_page(session: TopoSession, tasks_url: str, window: Window, page: int) -> TaskPage:
    params = {
        "page": page,
        "size": PAGE_SIZE,
        "sort_by": "created_at",
        "sort_order": "asc",
        "created_at_after": format_timestamp(_query_after(window)),
        "created_at_before": format_timestamp(window.end),
    }
    return session.get(tasks_url, params, TaskPage.from_api)
