"""The code location's executor: Dagster's in-process executor, telling who holds a pool.

Every step that opens the DuckDB file takes the one slot of pool ``duckdb``, so steps
gain nothing from a process each; in-process, a step holds the slot for its work only,
not for a worker process's start-up. Three additions to Dagster's ``in_process_executor``
(same name, same config):

* When a run starts executing, it tags itself with its host and process
  (:data:`~topo_pipeline.recovery.HOST_TAG`, :data:`~topo_pipeline.recovery.PROCESS_TAG`),
  so a run whose process died can be told from a slow one (:mod:`topo_pipeline.recovery`).
* A failure the pipeline explains (a ``dg.Failure``) prints on the console as its
  paragraph, without a traceback wall (:mod:`topo_pipeline.defs.console`).
* When a step waits for a pool slot, Dagster says so at DEBUG only ("Step blocked by
  limit for pool duckdb", then every 5 minutes). This executor adds an INFO line naming
  the run and step that hold the slot, and what to do if that run is dead.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig

from topo_pipeline.defs.console import show_failures_as_paragraphs
from topo_pipeline.liveness import current_owner
from topo_pipeline.recovery import HOST_TAG, PROCESS_TAG, dead_run_reason, this_host


class _PoolReportingExecutor(dg.Executor):
    """Runs ``inner`` (Dagster's in-process executor), adding the tags and INFO lines."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        show_failures_as_paragraphs(plan_context.log)
        instance = plan_context.instance
        instance.add_run_tags(
            plan_context.run_id, {HOST_TAG: this_host(), PROCESS_TAG: current_owner().token()}
        )
        for event in self._inner.execute(plan_context, execution_plan):
            yield event
            pool = _blocked_pool(event)
            if pool is not None:
                plan_context.log.info(
                    describe_pool_wait(instance, pool, event.step_key or "a step")
                )


def _blocked_pool(event: DagsterEvent) -> str | None:
    """The pool of Dagster's "Step blocked by limit for pool ..." event, else ``None``."""
    if event.event_type != DagsterEventType.ENGINE_EVENT or event.engine_event_data is None:
        return None
    pool = event.engine_event_data.metadata.get("pool")
    return str(pool.value) if pool is not None else None


def describe_pool_wait(instance: dg.DagsterInstance, pool: str, step_key: str) -> str:
    """One line: ``step_key`` waits for pool ``pool``, held by which runs and steps."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    holders = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        if run is None:
            holders.append(f"run {slot.run_id} (step {slot.step_key}; the run no longer exists)")
            continue
        state = run.status.value
        reason = dead_run_reason(instance, run)
        if reason is not None:
            state = f"{state}, but {reason}"
        holders.append(f"run {run.run_id} (job {run.job_name}, step {slot.step_key}, {state})")
    limit = info.limit if info.limit is not None else info.slot_count
    text = f"step {step_key} is waiting for a slot of pool {pool!r} (limit {limit})"
    if not holders:
        return f"{text}; no run holds one right now, it takes the next free slot"
    return (
        f"{text}, held by {'; '.join(holders)}. If that run's process died, the daemon's "
        "run monitoring fails it and frees the slot within about a minute; with no daemon "
        "running, run `make recover` (python -m topo_pipeline.recovery)."
    )


def _create(init_context: dg.InitExecutorContext) -> dg.Executor:
    create = dg.in_process_executor.executor_creation_fn
    assert create is not None  # noqa: S101 - Dagster's own executor always has one
    return _PoolReportingExecutor(create(init_context))


in_process_executor = dg.ExecutorDefinition(
    name=dg.in_process_executor.name,
    config_schema=dg.in_process_executor.config_schema,
    executor_creation_fn=_create,
    description=(
        "Dagster's in-process executor; also tags each run with its process and names the "
        "runs holding a pool slot a step waits for."
    ),
)
"""The executor of every job in the code location."""
