"""Errors a user causes: one paragraph naming the cause and the fix, the traceback behind it.

Real runs against the simulated API and real DuckDB files; the console is Dagster's
colored console logger as a run sets it up. The command-line versions (the whole output
of ``dagster asset materialize``) are in ``test_cli_errors.py``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from functools import partial

import dagster as dg
import pytest

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.analytics import ANALYTICS_KEYS
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.console import TRACEBACK_ENV
from topo_pipeline.defs.jobs import partition_range_tags
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.simulator import DatasetSpec
from topo_pipeline_tests.duckdb_holder import hold_duckdb
from topo_pipeline_tests.harness import PipelineFactory, SimulatedPipeline

DAY = date(2025, 4, 7)
CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
DIRECT_CONSOLE = {
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
}
"""No capture of the step's output: Dagster's capture echoes it to the console from a tail
process of its own, which on a busy machine may not have caught up when the run ends."""


class Pipeline(SimulatedPipeline):
    def materialize(self, *keys: dg.AssetKey) -> dg.ExecuteInProcessResult:
        defs = build_defs(self.settings)
        return dg.materialize(
            [defs.get_assets_def(key) for key in keys],
            resources=defs.resources,
            instance=self.instance,
            tags=partition_range_tags(DAY.isoformat(), DAY.isoformat()),
            run_config=CONSOLE,
            raise_on_error=False,
        )


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Pipeline:
    return make_pipeline(DatasetSpec(seed=3, start_date=DAY, days=1, tasks_per_day=[20]), Pipeline)


@pytest.fixture
def make_pipeline(pipeline_factory: PipelineFactory) -> PipelineFactory:
    return partial(pipeline_factory, instance_settings=DIRECT_CONSOLE)


def console(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.err + captured.out


def step_failure_output(err: str) -> str:
    """What the console printed for the step's failure (up to the run's own failure line)."""
    start = err.index("STEP_FAILURE")
    return err[start : err.index("RUN_FAILURE", start)]


@pytest.mark.parametrize("traceback", [False, True])
def test_a_rejected_key_prints_one_paragraph_and_the_traceback_only_when_asked(
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    traceback: bool,
) -> None:
    monkeypatch.setenv(API_KEY_ENV, "not-the-key-0123456789")
    if traceback:
        monkeypatch.setenv(TRACEBACK_ENV, "1")

    result = pipeline.materialize(TASKS_KEY)

    assert not result.success
    printed = step_failure_output(console(capfd))
    assert "topo/tasks failed: The Topo API key was rejected" in printed
    assert printed.lower().count("the topo api key was rejected") == 1 + traceback  # + cause
    assert ("Stack Trace" in printed) is traceback
    assert ("TOPO_TRACEBACK=1 prints it here" in printed) is not traceback
    assert "not-the-key-0123456789" not in printed


def test_a_locked_warehouse_fails_the_step_with_a_paragraph_saying_so(
    pipeline: Pipeline, capfd: pytest.CaptureFixture[str]
) -> None:
    assert pipeline.materialize(TASKS_KEY).success
    locked = replace(pipeline, settings=replace(pipeline.settings, lock_timeout_seconds=0.5))
    capfd.readouterr()

    with hold_duckdb(pipeline.settings.duckdb_path, read_only=True):
        result = locked.materialize(ANALYTICS_KEYS["task_sla"])

    assert not result.success
    data = result.get_step_failure_events()[0].step_failure_data
    assert data.user_failure_data is not None
    description = data.user_failure_data.description
    assert description.startswith("the analytics tables failed: ")
    assert "stayed locked by another process" in description
    assert "retried by its retry policy" in description
    assert data.user_failure_data.metadata["cause"].value == "WarehouseLockedError"
    printed = step_failure_output(console(capfd))
    assert "stayed locked by another process" in printed
    assert "Stack Trace" not in printed
