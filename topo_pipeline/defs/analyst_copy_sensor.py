"""``analyst_copy_sensor``: publish the analyst copy after runs that changed tables.

Runs publish the copy themselves when they end (:mod:`topo_pipeline.defs.publishing_executor`),
except while other runs that change tables are queued or running under the daemon: then
they leave it to the last of them, and this sensor is the safety net. It starts from the
newest change the latest publish covered (whoever published), so what a run published is
not published again.

After runs that materialized ``topo/*`` or ``analytics/*`` assets (from any job, a
schedule, a sensor, automation, a UI or CLI launch, and also runs that failed after
writing some tables) it launches ``publish_analyst_copy_job``. It waits until every run
that wrote since the last publish has finished and no run targeting those assets is
queued or in progress, so analysts never get a copy with new tasks but stale analytics of
the same run, and a burst of runs leads to one publish; but once the oldest unpublished
change is an hour old it publishes anyway, so a stuck run or an endless queue cannot hold
the copy back. A run whose process died (:mod:`topo_pipeline.recovery`) counts as
finished, even before it is marked failed. The cursor is the event-log storage
id published through; the run key carries it, so a publish is requested once per change.
On by default.

The decision is a pure function, :func:`plan_analyst_copy_publish`.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from topo_pipeline.defs.assets.analyst_copy import published_through
from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.recovery import dead_run_reason

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster does not export the name.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ANALYST_COPY_SENSOR_NAME = "analyst_copy_sensor"
"""Sensor: publishes the analyst copy after runs that changed topo/analytics tables."""

ANALYST_COPY_SENSOR_INTERVAL_SECONDS = 30

PUBLISH_MAX_WAIT = timedelta(hours=1)
"""The most an unpublished change waits for runs still changing tables."""

# --- analyst copy: the decision -----------------------------------------------------


@dataclass(frozen=True)
class Materialization:
    """One materialization of a watched asset, as the event log stores it."""

    storage_id: int
    run_id: str
    timestamp: float
    """When it was recorded (seconds since the epoch)."""


@dataclass(frozen=True)
class PublishPlan:
    """Whether to publish the analyst copy this tick."""

    publish: bool
    cursor: int | None
    """Next cursor: the storage id published through (unchanged when not publishing)."""
    run_key: str | None
    reason: str


def plan_analyst_copy_publish(
    cursor: int | None,
    seen: Sequence[Materialization],
    unfinished_run_ids: Collection[str],
    now: datetime,
    max_wait: timedelta = PUBLISH_MAX_WAIT,
    coming_run_ids: Collection[str] = (),
) -> PublishPlan:
    """Decide whether to publish the analyst copy. Pure: no I/O, no clock.

    Args:
        cursor: the storage id the last requested publish covered (``None``: never).
        seen: watched materializations after ``cursor`` (with no cursor: the latest one
            of each watched asset).
        unfinished_run_ids: the runs among ``seen`` that have not finished yet.
        now: the tick's time.
        max_wait: how long to wait for unfinished runs before publishing anyway.
        coming_run_ids: queued or running runs that target watched assets (they will
            change tables soon), whether or not they wrote yet.

    Returns:
        Publish when something was materialized after ``cursor``, every run that did so
        has finished and no run that will change tables is queued or running (so a burst
        of runs gives one publish, not one per run), or when the oldest unpublished change
        is more than ``max_wait`` old (a stuck or endless stream of runs must not hold the
        copy back forever; what they write later is after the new cursor, so it is
        published again). The next cursor is then the newest storage id seen.
    """
    new = [m for m in seen if cursor is None or m.storage_id > cursor]
    if not new:
        since = "yet" if cursor is None else f"since event {cursor}"
        return PublishPlan(False, cursor, None, f"no topo/analytics materialization {since}")
    waiting = [m for m in new if m.run_id in unfinished_run_ids]
    waiting_runs = sorted({m.run_id for m in waiting} | set(coming_run_ids))
    through = max(m.storage_id for m in new)
    run_key = f"analyst_copy:{through}"
    if waiting_runs:
        # Measured from the oldest change not yet published, so the copy lags by at most
        # max_wait however long the queue stays busy.
        oldest = min(m.timestamp for m in new)
        if now.timestamp() - oldest < max_wait.total_seconds():
            return PublishPlan(
                False,
                cursor,
                None,
                f"waiting for {len(waiting_runs)} run(s) that change tables to finish: "
                + ", ".join(waiting_runs[:5]),
            )
        return PublishPlan(
            True,
            through,
            run_key,
            f"publishing although run(s) {', '.join(waiting_runs[:5])} have not finished: "
            f"the oldest unpublished change is more than {max_wait} old",
        )
    runs = len({m.run_id for m in new})
    return PublishPlan(
        True, through, run_key, f"{len(new)} materialization(s) from {runs} finished run(s)"
    )


# --- analyst copy: the sensor -------------------------------------------------------

_PAGE = 1000
_FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


def build_analyst_copy_sensor(
    publish_job: "UnresolvedAssetJobDefinition",
    watched: Sequence[dg.AssetKey],
    *,
    clock: Clock = utc_now,
) -> dg.SensorDefinition:
    """The :data:`ANALYST_COPY_SENSOR_NAME` sensor, on by default, launching ``publish_job``.

    Args:
        publish_job: the job that materializes ``publish/analyst_copy``.
        watched: the assets whose materializations change published tables
            (``topo/tasks`` and everything downstream of it, ``reference/assignees``).
        clock: the current time; tests pass a fixed one.
    """
    watched = tuple(watched)

    @dg.sensor(
        name=ANALYST_COPY_SENSOR_NAME,
        job=publish_job,
        minimum_interval_seconds=ANALYST_COPY_SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Publishes the analyst copy (TOPO_ANALYST_DUCKDB_PATH) once the runs that "
            "materialized topo/*, reference/* or analytics/* assets since the last publish have "
            "finished."
        ),
    )
    def analyst_copy_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = int(context.cursor) if context.cursor and context.cursor.isdigit() else None
        covered = published_through(context.instance)
        if covered is not None and (cursor is None or covered > cursor):
            cursor = covered  # a run's own publish (or a manual one) got this far
        seen = _materializations_after(context.instance, watched, cursor)
        unfinished = _unfinished_runs(context.instance, {m.run_id for m in seen})
        coming = runs_changing_tables(context.instance, watched)
        plan = plan_analyst_copy_publish(cursor, seen, unfinished, clock(), coming_run_ids=coming)
        if not plan.publish:
            return dg.SensorResult(
                skip_reason=plan.reason, cursor=None if cursor is None else str(cursor)
            )
        context.log.info("publishing the analyst copy: %s", plan.reason)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=plan.run_key)], cursor=str(plan.cursor)
        )

    return analyst_copy_sensor


def _materializations_after(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey], after: int | None
) -> list[Materialization]:
    seen: list[Materialization] = []
    for key in keys:
        if after is None:
            # First tick: the latest state of each asset is what needs publishing.
            result = instance.fetch_materializations(key, limit=1)
            seen.extend(_materialization(r) for r in result.records)
            continue
        records_filter = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after)
        page_cursor = None
        while True:
            result = instance.fetch_materializations(
                records_filter, limit=_PAGE, cursor=page_cursor, ascending=True
            )
            seen.extend(_materialization(r) for r in result.records)
            if not result.has_more:
                break
            page_cursor = result.cursor
    return seen


def _materialization(record: dg.EventLogRecord) -> Materialization:
    return Materialization(record.storage_id, record.run_id, record.timestamp)


def _unfinished_runs(instance: dg.DagsterInstance, run_ids: set[str]) -> set[str]:
    run_ids.discard("")  # events reported outside a run
    if not run_ids:
        return set()
    runs = instance.get_runs(filters=dg.RunsFilter(run_ids=sorted(run_ids)))
    # A run missing from storage (deleted) counts as finished, as does a dead one.
    return {
        run.run_id
        for run in runs
        if run.status not in _FINISHED and dead_run_reason(instance, run) is None
    }


_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def runs_changing_tables(instance: dg.DagsterInstance, watched: Sequence[dg.AssetKey]) -> set[str]:
    """Queued or running runs that materialize any of ``watched``."""
    keys = set(watched)
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=_ACTIVE), limit=_PAGE)
    return {
        run.run_id
        for run in runs
        if run.asset_selection
        and run.asset_selection & keys
        and dead_run_reason(instance, run) is None
    }
