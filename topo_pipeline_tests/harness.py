"""What the pipeline tests share: a simulated Topo API with the settings and instance to run on."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import yaml

from topo_pipeline.instance import INSTANCE_YAML
from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline.warehouse.duckdb import wal_files
from topo_pipeline_tests.warehouse_seed import current_file

_COMMITTED = yaml.safe_load(INSTANCE_YAML.read_text())
INSTANCE_SETTINGS: dict[str, Any] = {"python_logs": _COMMITTED["python_logs"]}
"""The repository's ``python_logs`` settings, for ``instance_for_test``: test runs log as
deployed runs do."""

_blank_instance: Path | None = None


@contextmanager
def fresh_instance(settings: Mapping[str, Any] | None = None) -> Iterator[dg.DagsterInstance]:
    """A fresh ``dg.instance_for_test`` on :data:`INSTANCE_SETTINGS` (and ``settings``).

    Creating an instance's SQLite databases (tables, migration stamps, index) takes about
    0.3 s; each test gets a copy of a blank instance's files made once per process
    instead, a few milliseconds, and its own instance all the same.
    """
    global _blank_instance
    if _blank_instance is None:
        blank = Path(tempfile.mkdtemp(prefix="topo-blank-instance-"))
        atexit.register(shutil.rmtree, blank, ignore_errors=True)
        with dg.instance_for_test(overrides=INSTANCE_SETTINGS, temp_dir=str(blank)):
            pass
        _blank_instance = blank
    with tempfile.TemporaryDirectory(prefix="topo-instance-") as folder:
        home = Path(folder) / "home"
        shutil.copytree(_blank_instance, home)
        overrides = {**INSTANCE_SETTINGS, **(settings or {})}
        with dg.instance_for_test(overrides=overrides, temp_dir=str(home)) as instance:
            yield instance


@dataclass
class SimulatedPipeline:
    """A simulator serving a data set, the settings that point at it, and a test instance.

    Test modules subclass it with the runs and reads they need.
    """

    api: SimulatedTopoApi
    settings: Settings
    instance: dg.DagsterInstance

    @property
    def store(self) -> TaskStore:
        return self.api.store


P = TypeVar("P", bound=SimulatedPipeline)

PipelineFactory = Callable[..., Any]
"""``make(spec, cls, *, file_name=, instance_settings=, new_file=)``; see simulated_pipelines."""


@contextmanager
def simulated_pipelines(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PipelineFactory]:
    """Builds pipelines over data sets, their files in ``folder``: ``make(spec, cls, ...)``.

    Partitions start a few days before the data set, in its zone; request pacing is off
    (the simulator has no rate limit unless a test sets one); ``TOPO_API_KEY`` is the
    simulator's demo key, set through ``monkeypatch``. Servers and instances close with
    the block. A test gets it as ``conftest.pipeline_factory``; a module fixture that
    builds a state once uses it with ``pytest.MonkeyPatch.context()``.

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
                base_url=api.base_url,
                duckdb_path=folder / file_name,
                analyst_duckdb_path=folder / "published" / "topo_analytics.duckdb",
                start_date=spec.start_date - timedelta(days=5),
                timezone=spec.timezone,
                requests_per_minute=None,
            )
            if not new_file:
                current_file(settings.duckdb_path)
            instance = fresh_instance(instance_settings)
            return cls(api, settings, stack.enter_context(instance))

        yield make


def file_after_run(
    folder: Path, spec: DatasetSpec, cls: type[P], run: Callable[[P], object]
) -> Path:
    """The pipeline's file after ``run`` on a pipeline of ``cls`` over ``spec``, in ``folder``.

    For a module fixture: the state several tests start from is built once, and each test
    copies the file to its own pipeline's ``duckdb_path`` instead of running it again.
    """
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        simulated_pipelines(folder, monkeypatch) as make,
    ):
        pipeline = make(spec, cls)
        run(pipeline)
    path = pipeline.settings.duckdb_path
    # Copies of the file are the state only if nothing of it is left in a write-ahead log.
    assert not wal_files(path), f"{path} has a write-ahead log: its copies would miss rows"
    return path
