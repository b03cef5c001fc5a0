"""Errors a user causes: one paragraph naming the cause and the fix, the traceback behind it.

``user_errors`` on its own, then real runs whose jobs carry the code location's console
logger (selected by run config, as a run must), against small assets and against the
pipeline on the simulated API and real DuckDB files. The command-line versions (the
whole output of ``dagster asset materialize``) are in ``test_cli_errors.py``.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

import dagster as dg
import pytest

from topo_pipeline.api.errors import (
    TopoAuthError,
    TopoConfigError,
    TopoDataError,
    TopoReconciliationError,
    TopoTransportError,
)
from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.analytics import ANALYTICS_KEYS
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.console import TRACEBACK_ENV, console_logger
from topo_pipeline.defs.failures import USER_ERRORS, user_errors
from topo_pipeline.defs.jobs import partition_range_tags
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.simulator import DatasetSpec
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.history import HistoryOrderError
from topo_pipeline_tests.duckdb_holder import hold_duckdb
from topo_pipeline_tests.harness import PipelineFactory, SimulatedPipeline

DAY = date(2025, 4, 7)
CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
"""Run config that selects the job's ``console`` logger."""

AUTH_ERROR = TopoAuthError(
    "the Topo API key was rejected (missing, malformed or revoked): check TOPO_API_KEY",
    status_code=401,
    error_type="UnauthorizedIssue",
    request_id="req_test",
)


# -- user_errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "after", "retries"),
    [
        (TopoConfigError("TOPO_API_KEY is not set"), "Fix the cause, then run it again.", False),
        (AUTH_ERROR, "Fix the cause, then run it again.", False),
        (TopoTransportError("could not reach Topo"), "Fix the cause, then run it again.", False),
        (TopoDataError("task t1: created_at has no UTC offset"), "report it to Topo", False),
        (TopoReconciliationError("counts differ", expected=2, fetched=1), "Run it again", False),
        (WarehouseLockedError("x.duckdb stayed locked"), "once that session is closed", True),
        (HistoryOrderError("loaded_at is earlier"), "Fix the cause, then run it again.", False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_a_user_error_becomes_a_failure_with_its_paragraph_chained_to_it(
    error: Exception, after: str, retries: bool
) -> None:
    assert isinstance(error, USER_ERRORS)

    with pytest.raises(dg.Failure) as caught, user_errors("some/asset"):
        raise error

    failure = caught.value
    assert failure.description is not None
    assert failure.description.startswith("some/asset failed: ")
    first = str(error)[0].upper() + str(error)[1:]
    assert first.rstrip(".") in failure.description
    assert after in failure.description
    assert "\n" not in failure.description  # one paragraph
    assert failure.allow_retries is retries
    assert failure.metadata["cause"] == dg.MetadataValue.text(type(error).__name__)
    assert chained_to(failure, error)  # the traceback stays behind it


def chained_to(failure: dg.Failure, error: Exception) -> bool:
    """Whether ``failure`` was raised from ``error``, as its printed traceback tells."""
    printed = "".join(traceback.format_exception(failure))
    return f"{type(error).__name__}: {error}" in printed and (
        "The above exception was the direct cause of the following exception" in printed
    )


def test_a_topo_answer_names_its_status_and_request_id_in_the_metadata() -> None:
    with pytest.raises(dg.Failure) as caught, user_errors("topo/tasks"):
        raise AUTH_ERROR

    metadata = caught.value.metadata
    assert metadata["http_status"] == dg.MetadataValue.text("401")
    assert metadata["request_id"] == dg.MetadataValue.text("req_test")


def test_other_errors_and_success_pass_through_unchanged() -> None:
    with pytest.raises(KeyError), user_errors("some/asset"):
        raise KeyError("a bug")
    with user_errors("some/asset"):
        value = 1
    assert value == 1


# -- the console logger, in real runs ----------------------------------------------------


def run(assets: Sequence[dg.AssetsDefinition], **run_config: Any) -> dg.ExecuteInProcessResult:
    """Materialize ``assets`` in a job whose ``console`` logger is the code location's."""
    defs = dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("under_test")],
        loggers={"console": console_logger},
    )
    return defs.resolve_job_def("under_test").execute_in_process(
        run_config={**CONSOLE, **run_config}, raise_on_error=False
    )


@dg.asset
def rejected_key() -> None:
    with user_errors("demo/rejected_key"):
        raise AUTH_ERROR


@dg.asset
def rejected_key_from_a_generator() -> Iterator[dg.Output[None]]:
    with user_errors("demo/rejected_key"):
        yield from ()
        raise AUTH_ERROR


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
def locked_then_retried() -> None:
    with user_errors("demo/locked"):
        raise WarehouseLockedError("x.duckdb stayed locked by another process for 1s")


@dg.asset
def a_bug() -> None:
    raise KeyError("not a user error")


@dg.asset(check_specs=[dg.AssetCheckSpec("no_conflicts", asset="bad_data", blocking=True)])
def bad_data() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(check_name="no_conflicts", passed=False)]
    )


def step_failure_output(printed: str) -> str:
    """What the console printed for the step's failure (up to the run's own failure line)."""
    start = printed.index("STEP_FAILURE")
    return printed[start : printed.index("RUN_FAILURE", start)]


def run_failure_output(printed: str) -> str:
    return printed[printed.index("RUN_FAILURE") :]


@pytest.mark.parametrize("asset", [rejected_key, rejected_key_from_a_generator])
@pytest.mark.parametrize("show_traceback", [False, True])
def test_a_failure_prints_as_its_paragraph_and_the_traceback_only_when_asked(
    asset: dg.AssetsDefinition,
    show_traceback: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if show_traceback:
        monkeypatch.setenv(TRACEBACK_ENV, "1")

    result = run([asset])

    assert not result.success
    printed = capsys.readouterr().err
    step = step_failure_output(printed)
    assert "demo/rejected_key failed: The Topo API key was rejected" in step
    assert step.lower().count("the topo api key was rejected") == 1 + show_traceback  # + cause
    assert ("Stack Trace" in step) is show_traceback
    assert ("TOPO_TRACEBACK=1 prints it here" in step) is not show_traceback
    run_line = run_failure_output(printed)
    assert ("key was rejected" in run_line) is show_traceback  # else the run's failure: one line
    # The event log keeps the whole error, the cause's traceback included.
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "TopoAuthError" in error.to_string()
    assert "Stack Trace" in error.to_string()


def test_a_retried_failure_prints_as_its_paragraph_each_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    debug = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}

    result = run([locked_then_retried], **debug)

    assert not result.success
    printed = capsys.readouterr().err
    retry = printed[printed.index("STEP_UP_FOR_RETRY") : printed.index("STEP_FAILURE")]
    assert "demo/locked failed: X.duckdb stayed locked" in retry
    # Used up its retries: Dagster's error is "Exceeded max_retries", caused by the Failure.
    assert "demo/locked failed: X.duckdb stayed locked" in step_failure_output(printed)
    assert "stayed locked" not in run_failure_output(printed)  # the run's failure: one line
    assert "Stack Trace" not in printed


def test_a_failed_blocking_check_prints_as_a_paragraph_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run([bad_data])

    assert not result.success
    step = step_failure_output(capsys.readouterr().err)
    assert "bad_data: no_conflicts" in step
    assert "Stack Trace" not in step


def test_a_bug_keeps_dagsters_traceback_on_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    result = run([a_bug])

    assert not result.success
    step = step_failure_output(capsys.readouterr().err)
    assert "KeyError" in step
    assert "Stack Trace" in step


def test_the_level_is_configured_like_dagsters_console_logger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    run([rejected_key], **quiet)

    assert "STEP_FAILURE" not in capsys.readouterr().err


# -- the pipeline's own steps ------------------------------------------------------------


class Pipeline(SimulatedPipeline):
    def materialize(self, *keys: dg.AssetKey) -> dg.ExecuteInProcessResult:
        built = build_defs(self.settings)
        defs = dg.Definitions(
            assets=[built.get_assets_def(key) for key in keys],
            resources=built.resources,
            jobs=[dg.define_asset_job("under_test")],
            loggers=built.loggers,
        )
        return defs.resolve_job_def("under_test").execute_in_process(
            instance=self.instance,
            tags=partition_range_tags(DAY.isoformat(), DAY.isoformat()),
            run_config=CONSOLE,
            raise_on_error=False,
        )


@pytest.fixture
def pipeline(pipeline_factory: PipelineFactory) -> Pipeline:
    return pipeline_factory(
        DatasetSpec(seed=3, start_date=DAY, days=1, tasks_per_day=[20]), Pipeline
    )


def test_a_rejected_key_prints_one_paragraph_without_the_key(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(API_KEY_ENV, "not-the-key-0123456789")

    result = pipeline.materialize(TASKS_KEY)

    assert not result.success
    printed = capsys.readouterr().err
    step = step_failure_output(printed)
    assert "topo/tasks failed: The Topo API key was rejected" in step
    assert "Stack Trace" not in step
    assert "not-the-key-0123456789" not in printed


def test_a_locked_warehouse_fails_the_step_with_a_paragraph_saying_so(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pipeline.materialize(TASKS_KEY).success
    locked = replace(
        pipeline, settings=pipeline.settings.model_copy(update={"lock_timeout_seconds": 0.5})
    )
    capsys.readouterr()

    with hold_duckdb(pipeline.settings.duckdb_path, read_only=True):
        result = locked.materialize(ANALYTICS_KEYS["task_sla"])

    assert not result.success
    data = result.get_step_failure_events()[0].step_failure_data
    assert data.user_failure_data is not None
    description = data.user_failure_data.description
    assert description.startswith("the analytics tables failed: ")
    assert "stayed locked by another process" in description
    assert "run it again once that session is closed" in description
    assert data.user_failure_data.metadata["cause"].value == "WarehouseLockedError"
    step = step_failure_output(capsys.readouterr().err)
    assert "stayed locked by another process" in step
    assert "Stack Trace" not in step
