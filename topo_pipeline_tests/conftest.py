"""Shared fixtures: the real pipeline wired to a simulated Topo API and a test instance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    FaultPlan,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline_tests.api_harness import Serve
from topo_pipeline_tests.harness import (
    SimulatedPipeline,
    fresh_instance,
    read_migration_scripts_once,
)
from topo_pipeline_tests.warehouse_seed import current_file
from topo_pipeline_tests.webserver_stack import Stack, running_stack

P = TypeVar("P", bound=SimulatedPipeline)

PipelineFactory = Callable[..., Any]


@pytest.fixture
def pipeline_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PipelineFactory]:
    """Builds pipelines over data sets: ``factory(spec, cls, file_name=, instance_settings=)``.

    Partitions start a few days before the data set, in its zone; request pacing is off
    (the simulator has no rate limit unless a test sets one); ``TOPO_API_KEY`` is the
    simulator's demo key. Servers and instances are closed when the test ends.

    The pipeline's file starts as an empty file of the current schema (``current_file``,
    a copy instead of 70 ms of DDL per test); ``new_file=True`` leaves it to the first run
    to create, as a new deployment's does.
    """
    monkeypatch.setenv(API_KEY_ENV, DEMO_API_KEY)
    with ExitStack() as stack:

        def make(
            spec: DatasetSpec,
            cls: type[P],
            *,
            file_name: str = "pipeline.duckdb",
            instance_settings: Mapping[str, Any] | None = None,
            new_file: bool = False,
        ) -> P:
            data = generate_dataset(spec)
            api = stack.enter_context(
                SimulatedTopoApi(TaskStore(data.tasks, data.sequence_templates))
            )
            settings = Settings(
                api_base_url=api.base_url,
                duckdb_path=tmp_path / file_name,
                analyst_duckdb_path=tmp_path / "published" / "topo_analytics.duckdb",
                start_date=spec.start_date - timedelta(days=5),
                timezone=spec.timezone,
                requests_per_minute=None,
            )
            if not new_file:
                current_file(settings.duckdb_path)
            instance = fresh_instance(instance_settings)
            return cls(api, settings, stack.enter_context(instance))

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A webserver and daemon on a temporary instance (``webserver_stack.py``).

    Module-scoped: each UI test module has a stack of its own, so the modules run side by
    side on separate workers.
    """
    with running_stack(tmp_path_factory) as running:
        yield running


def pytest_configure(config: pytest.Config) -> None:
    read_migration_scripts_once()


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
