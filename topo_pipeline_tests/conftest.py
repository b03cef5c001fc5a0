"""Shared fixtures: the real pipeline wired to a simulated Topo API and a test instance.

pytest-xdist's controller process imports this file too, before it starts the workers,
and runs no test: the fixtures import the modules that bring Dagster in (about 2 s)
where they are used, so the workers start that much sooner.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from topo_pipeline.simulator import FaultPlan, SimulatedTopoApi, TaskStore

if TYPE_CHECKING:
    from topo_pipeline_tests.api_harness import Serve
    from topo_pipeline_tests.harness import PipelineFactory
    from topo_pipeline_tests.postgres_server import PostgresServer
    from topo_pipeline_tests.webserver_stack import Stack


@pytest.fixture
def pipeline_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PipelineFactory]:
    """:func:`~topo_pipeline_tests.harness.simulated_pipelines` for one test, closed after it."""
    from topo_pipeline_tests.harness import simulated_pipelines

    with simulated_pipelines(tmp_path, monkeypatch) as make:
        yield make


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start simulated APIs over a list of tasks (or a store); stop them afterwards."""
    with ExitStack() as stack:

        def start(
            tasks: list[dict[str, Any]] | TaskStore,
            faults: FaultPlan | None = None,
            api_keys: dict[str, frozenset[str]] | None = None,
        ) -> SimulatedTopoApi:
            store = tasks if isinstance(tasks, TaskStore) else TaskStore(tasks)
            return stack.enter_context(SimulatedTopoApi(store, api_keys, faults))

        yield start


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's ``chromium`` for the browser tests, installed with apt-get where missing (as
    root); without it the test is skipped, saying so."""
    from topo_pipeline_tests.browser import find_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed: apt-get install chromium (as root)")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A webserver and daemon on a temporary instance (``webserver_stack.py``).

    Module-scoped: each UI test module has a stack of its own, so the modules run side by
    side on separate workers.
    """
    from topo_pipeline_tests.webserver_stack import running_stack

    with running_stack(tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on loopback for the session (``postgres_server.py``).

    Started as an unprivileged user when the tests run as root; a test creates a database
    of its own on it. Skips where PostgreSQL's binaries are not installed.
    """
    from topo_pipeline_tests.postgres_server import postgres_binaries, throwaway_postgres

    if postgres_binaries() is None:
        pytest.skip(
            "PostgreSQL is not installed: no initdb and postgres under "
            "/usr/lib/postgresql/*/bin or on PATH (Debian: apt-get install postgresql)"
        )
    with throwaway_postgres() as server:
        yield server


def pytest_collection_finish(session: pytest.Session) -> None:
    """Take what collection made (Dagster's modules, the test items) out of the collector.

    It lives as long as the process anyway, and every full collection would walk it again:
    the workers of ``make test-fast`` spent 1.8-2.1 s of CPU each in the garbage collector,
    1.1-1.3 s with this.
    """
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the process-starting (``slow``) tests first, then those that ``wait`` on clocks.

    Under ``make test`` and ``make test-fast`` (``--dist loadfile --no-loadscope-reorder``)
    a worker takes whole files in the order of their first test. Both kinds spend most of
    their time waiting (daemon ticks, rate limits, ``Retry-After``), so started first they
    overlap with the CPU-bound rest of the suite instead of running alone at its end. Then
    files with more tests go first (xdist's own heuristic), so that no long file starts
    last. The order within a file is kept.
    """
    per_file = Counter(item.path for item in items)
    items.sort(
        key=lambda item: (
            item.get_closest_marker("slow") is None,
            item.get_closest_marker("waits") is None,
            -per_file[item.path],
            str(item.path),
        )
    )
