"""What the API-client tests share: simulated APIs over task lists, clients at the defaults,
windows as the pipeline passes them, and page handlers that collect what a fetch hands over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from topo_pipeline.api.client import TopoClient
from topo_pipeline.api.config import ClientConfig
from topo_pipeline.api.models import Task
from topo_pipeline.api.windows import Window, WindowResult
from topo_pipeline.simulator import DEMO_API_KEY, SimulatedTopoApi
from topo_pipeline.warehouse.tasks import PartitionWindow

SECRET_KEY = "test-key-Sup3rS3cret-Value-0123456789"
"""A long, distinctive key, so a leak would be easy to spot in any text."""

Serve = Callable[..., SimulatedTopoApi]
"""The ``serve`` fixture (conftest.py): ``serve(tasks_or_store, faults=None, api_keys=None)``."""


def default_client(api: SimulatedTopoApi, key: str = DEMO_API_KEY, **overrides: Any) -> TopoClient:
    """A client at the production defaults (adaptive rate, no cap), with test-sized backoff."""
    config = ClientConfig(
        base_url=api.base_url, backoff_base_seconds=0.005, backoff_cap_seconds=0.02, **overrides
    )
    return TopoClient(key, config)


def make_window(start: datetime, end: datetime) -> PartitionWindow:
    """The window ``[start, end)`` as the pipeline hands windows to the client."""
    return PartitionWindow(start.date(), start, end)


class WindowCollector:
    """A page handler that keeps the latest version of each task per window, in memory.

    Of two copies of a task, the one with the later ``updated_at`` is kept (it changed while
    the window was read), the one handed over last among equals: the rule the warehouse
    lands by (:mod:`topo_pipeline.warehouse.duplicates`).
    """

    def __init__(self) -> None:
        self._tasks: dict[Window, dict[str, Task]] = {}
        self.done: list[WindowResult] = []

    def __call__(self, window: Window, tasks: list[Task]) -> None:
        by_id = self._tasks.setdefault(window, {})
        for task in tasks:
            kept = by_id.get(task.id)
            if kept is None or not _older(task, kept):
                by_id[task.id] = task

    def discard(self, window: Window) -> None:
        """Forget the window's tasks (it is about to be read afresh)."""
        self._tasks.pop(window, None)

    def window_done(self, result: WindowResult) -> None:
        self.done.append(result)

    def tasks(self, window: Window) -> list[Task]:
        """The window's tasks, ordered by ``created_at`` then ``id``."""
        return sorted(self._tasks.get(window, {}).values(), key=lambda t: (t.created_at, t.id))


class OnEachPage:
    """A page handler that calls ``on_page(window, tasks)`` for each page and keeps nothing."""

    def __init__(self, on_page: Callable[[Window, list[Task]], object]) -> None:
        self._on_page = on_page

    def __call__(self, window: Window, tasks: list[Task]) -> None:
        self._on_page(window, tasks)

    def discard(self, window: Window) -> None:
        pass

    def window_done(self, result: WindowResult) -> None:
        pass


def fetch_window(client: TopoClient, window: Window) -> tuple[list[Task], WindowResult]:
    """Every task created in ``window``, once each (ordered by ``created_at``), and its result."""
    collector = WindowCollector()
    (result,) = client.fetch_windows([window], collector)
    return collector.tasks(window), result


def _older(task: Task, than: Task) -> bool:
    """Whether ``task`` was updated before ``than`` (a missing ``updated_at`` is oldest)."""
    if task.updated_at is None:
        return than.updated_at is not None
    return than.updated_at is not None and task.updated_at < than.updated_at
