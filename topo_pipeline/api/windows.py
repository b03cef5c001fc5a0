"""What a caller gives and gets when fetching created-at windows: the :class:`Window` it
asks for, the :class:`PageHandler` that receives the tasks, the :class:`WindowResult` per
window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from topo_pipeline.api.models import Task


class Window(Protocol):
    """A created-at window ``[start, end)``: the tasks created from ``start`` to before ``end``.

    Both ends are aware datetimes, in any zone (the client compares instants). A window
    must be hashable: windows key the results. The pipeline's daily partitions
    (:class:`topo_pipeline.warehouse.tasks.PartitionWindow`) are windows.
    """

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The outcome of fetching one window.

    Attributes:
        window: the window fetched.
        api_total: Topo's ``total_count`` for the query, which starts 1 s before the window.
        in_window: unique tasks fetched whose ``created_at`` is inside the window.
        reads: how many times the window was read (1 unless it had to be re-read).
        pages: pages requested for the window over every read.
        before_window: unique tasks fetched from the second before the window, which the
            query includes so that a task at the window's start lands (they belong to the
            day before).
        out_of_bounds: unique tasks fetched that the query's bounds exclude: Topo should
            not have sent them. They are not landed.
    """

    window: Window
    api_total: int
    in_window: int
    reads: int
    pages: int
    before_window: int = 0
    out_of_bounds: int = 0

    @property
    def expected_in_window(self) -> int:
        """Tasks Topo reports for the window itself: ``total_count`` less the second before.

        Equal to :attr:`in_window` unless Topo sent tasks outside the bounds it counted.
        """
        return self.api_total - self.before_window


class PageHandler(Protocol):
    """Receives what a fetch reads, always on the thread that called the fetch.

    The same task may be handed over more than once (ties that move between pages,
    re-reads): a handler keeps the latest copy per id (the later ``updated_at``).
    """

    def __call__(self, window: Window, tasks: list[Task]) -> None:
        """Take the tasks of one page that lie inside ``window``, as the page arrives."""

    def discard(self, window: Window) -> None:
        """Drop every task of ``window`` handed over so far; it is about to be read afresh.

        Called when the window's set of tasks changed while it was read (its
        ``total_count`` moved): a task handed over earlier may be one Topo no longer has.
        """

    def window_done(self, result: WindowResult) -> None:
        """Learn that a window was fetched completely and reconciled (for progress)."""
