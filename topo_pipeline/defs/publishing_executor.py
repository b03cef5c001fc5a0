"""The executor every job runs under: in-process steps, then the analyst copy.

Every run, however it was launched (the UI, a schedule or sensor under the daemon, or
``dagster asset materialize`` / ``dg launch`` from a shell, cron or CI with no daemon),
runs its steps in one process with the in-process executor of
:mod:`topo_pipeline.defs.executor` (Dagster's, telling who holds a pool). When the steps are done
and the run materialized a table-changing asset (``topo/tasks`` or anything downstream),
or a step failed (it may have committed some tables before failing), the run publishes the
analyst copy before it ends, so a CLI command exits with the copy current.

The exception keeps bursts cheap: while other runs that change tables are queued or running
and the daemon is alive, the run leaves the publish to them (the last one to end publishes)
and to ``analyst_copy_sensor``, the safety net for runs that end at the same moment or are
killed. The decision is the pure function :func:`plan_run_end_publish`.

The publish takes the ``duckdb`` pool's slot like a step does (under the pseudo step key
:data:`PUBLISH_STEP_KEY`) and records a materialization of ``publish/analyst_copy``. If it
fails, the run fails with the reason (its tables are landed; the copy is stale until the
next publish).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

# Dagster's own executor building blocks (not exported at the top level): the in-process
# executor claims pool slots for its steps through this context, and the publish claims
# the same pool the same way.
from dagster._core.events import EngineEventData
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

from topo_pipeline.defs.analyst_copy_sensor import PUBLISH_MAX_WAIT, runs_changing_tables
from topo_pipeline.defs.assets.analyst_copy import (
    ANALYST_COPY_KEY,
    latest_change_event,
    publish_metadata,
)
from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.executor import in_process_executor
from topo_pipeline.warehouse.analyst_copy import (
    PublishResult,
    describe_copy_method,
    publish_analyst_copy,
)
from topo_pipeline.warehouse.pipeline_info import PipelineInfo

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode

PUBLISH_STEP_KEY = "publish_analyst_copy"
"""The step key the run-end publish holds the ``duckdb`` pool slot under."""

_PUBLISH_OP = ANALYST_COPY_KEY.to_python_identifier()
_POOL_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RunEndPlan:
    """Whether a run publishes the analyst copy when its steps are done."""

    publish: bool
    reason: str


def plan_run_end_publish(
    *, changed: bool, other_runs: Collection[str], daemon_alive: bool
) -> RunEndPlan:
    """Decide the run-end publish. Pure: no I/O.

    Args:
        changed: the run materialized a table-changing asset, or a step failed.
        other_runs: other runs, queued or in progress, that change tables.
        daemon_alive: the daemon's sensor loop is heartbeating (``analyst_copy_sensor``
            and the queue run), so queued runs will run and a missed publish is caught.

    Returns:
        Publish when the run changed tables, unless other runs that change tables are on
        their way under a live daemon (one of them, or the sensor, publishes after them).
        Without a daemon a queued run may never start, so the run publishes regardless.
    """
    if not changed:
        return RunEndPlan(False, "the run changed no tables; the analyst copy stays as it is")
    if other_runs and daemon_alive:
        shown = ", ".join(sorted(other_runs)[:5])
        return RunEndPlan(
            False,
            f"not publishing the analyst copy yet: {len(other_runs)} other run(s) that change "
            f"tables are queued or running ({shown}); the last of them, or "
            "analyst_copy_sensor, publishes",
        )
    return RunEndPlan(True, "the run changed tables: publishing the analyst copy")


@dataclass(frozen=True)
class _Publisher:
    watched: tuple[dg.AssetKey, ...]
    warehouse_path: Path
    analyst_path: Path
    lock_timeout: float
    info: PipelineInfo


class _PublishingExecutor(dg.Executor):
    """Delegates the steps to the in-process executor, then publishes (module docstring)."""

    def __init__(self, inner: dg.Executor, publisher: _Publisher) -> None:
        self._inner = inner
        self._publisher = publisher

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self):  # Dagster's private StepDependencyConfig
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        watched = set(self._publisher.watched)
        changed = False
        for event in self._inner.execute(plan_context, execution_plan):
            # A failed step may have committed some of its tables before failing.
            if (event.is_step_materialization and event.asset_key in watched) or (
                event.is_step_failure and event.step_key != _PUBLISH_OP
            ):
                changed = True
            yield event
        yield from self._publish_at_run_end(plan_context, changed)

    def _publish_at_run_end(
        self, plan_context: PlanOrchestrationContext, changed: bool
    ) -> Iterator[dg.DagsterEvent]:
        if not changed:
            return
        instance = plan_context.instance
        run = plan_context.dagster_run
        others = runs_changing_tables(instance, self._publisher.watched) - {run.run_id}
        plan = plan_run_end_publish(
            changed=changed, other_runs=others, daemon_alive=_daemon_alive(instance)
        )
        yield _note(plan_context, plan.reason)
        if not plan.publish:
            return
        if not self._publisher.warehouse_path.exists():
            yield _note(
                plan_context, "nothing to publish: the pipeline's DuckDB file does not exist yet"
            )
            return
        with _pool_slot(instance, run):
            covers_through = latest_change_event(instance, self._publisher.watched)
            try:
                result = publish_analyst_copy(
                    self._publisher.warehouse_path,
                    self._publisher.analyst_path,
                    lock_timeout=self._publisher.lock_timeout,
                    info=self._publisher.info,
                )
            except Exception as error:
                raise dg.Failure(
                    description=(
                        f"the run's tables are landed, but publishing the analyst copy "
                        f"{self._publisher.analyst_path} failed ({type(error).__name__}: "
                        f"{error}); it is stale until the next publish (materialize "
                        "publish/analyst_copy to publish now)"
                    )
                ) from error
        _record_publish(instance, result, covers_through)
        yield _note(
            plan_context,
            f"published {len(result.tables)} tables to the analyst copy {result.path} "
            f"({describe_copy_method(result.copy_method)})",
        )


def _note(plan_context: PlanOrchestrationContext, message: str) -> dg.DagsterEvent:
    """An engine event in the run's log (the UI's run page shows it)."""
    return dg.DagsterEvent.engine_event(plan_context, message, EngineEventData())


def _record_publish(instance: dg.DagsterInstance, result: PublishResult, covers: int) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=ANALYST_COPY_KEY,
            description="Published when a run that changed tables ended.",
            metadata=dict(publish_metadata(result, covers)),
        )
    )


def _daemon_alive(instance: dg.DagsterInstance) -> bool:
    if instance.is_ephemeral:
        return False
    try:
        status = instance.get_daemon_statuses(["SENSOR"]).get("SENSOR")
    except Exception:  # noqa: BLE001 - no heartbeat storage: treat as no daemon
        return False
    return bool(status and status.healthy)


@contextmanager
def _pool_slot(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Iterator[None]:
    """Hold the ``duckdb`` pool's slot, as a step of ``run`` would, while publishing."""
    deadline = time.monotonic() + PUBLISH_MAX_WAIT.total_seconds()
    with InstanceConcurrencyContext(instance, run) as concurrency:
        while not concurrency.claim(POOL, PUBLISH_STEP_KEY):
            if time.monotonic() > deadline:
                raise dg.Failure(
                    description=(
                        f"the run's tables are landed, but pool {POOL!r} stayed busy for "
                        f"{PUBLISH_MAX_WAIT}, so the analyst copy was not published"
                    )
                )
            time.sleep(_POOL_POLL_SECONDS)
        try:
            yield
        finally:
            concurrency.free_step(PUBLISH_STEP_KEY)


def build_publishing_executor(
    watched: Sequence[dg.AssetKey],
    *,
    warehouse_path: Path,
    analyst_path: Path,
    lock_timeout: float,
    info: PipelineInfo,
) -> dg.ExecutorDefinition:
    """The code location's in-process executor (same name, same config), then the
    run-end publish of ``analyst_path`` from ``warehouse_path``.

    Args:
        watched: the assets whose materializations change published tables.
        warehouse_path: the pipeline's DuckDB file.
        analyst_path: the analyst copy.
        lock_timeout: seconds to wait while another process holds the pipeline's file.
        info: what the copy says about itself (``topo.pipeline_info``).
    """
    inner = in_process_executor
    publisher = _Publisher(
        tuple(watched), Path(warehouse_path), Path(analyst_path), lock_timeout, info
    )
    create_inner = inner.executor_creation_fn
    if create_inner is None:  # pragma: no cover - Dagster's own executor always has one
        raise TypeError("the in-process executor has no creation function")

    def create(init_context: dg.InitExecutorContext) -> dg.Executor:
        return _PublishingExecutor(create_inner(init_context), publisher)

    return dg.ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        executor_creation_fn=create,
        description=(
            f"{inner.description} Then, when the run changed tables, publishes the analyst "
            "copy before the run ends."
        ),
    )
