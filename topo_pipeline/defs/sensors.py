"""Sensors: re-fetch days that still hold open tasks; publish the analyst copy after runs.

Both are on by default (``default_status=RUNNING``). Each keeps its decision in a pure
function (:func:`plan_open_task_refresh`, :func:`plan_analyst_copy_publish`) that takes the
stored state, the cursor and the time and returns what to request plus the next cursor;
the sensor bodies only gather those inputs and turn the plan into run requests.

``open_tasks_sensor``
    Days whose tasks are still PENDING or IN_PROGRESS will change, so the sensor
    re-requests them (``topo/tasks`` and everything downstream, one run per day) while
    they are at most ``TOPO_OPEN_TASKS_MAX_AGE_DAYS`` old, at most
    ``TOPO_OPEN_TASKS_MAX_PARTITIONS_PER_TICK`` days per tick, and no day more often than
    every ``TOPO_OPEN_TASKS_MIN_INTERVAL_MINUTES`` (counted from the later of its last
    request, kept in the cursor, and its last load, read from the data). The stalest
    days go first, so a long backlog is worked through in turn. It reads the analyst
    copy, read-only and briefly, never the pipeline's file, so it cannot block a run's
    writes; a missing, locked or unreadable copy skips the tick instead of failing.

``analyst_copy_sensor``
    After runs that materialized ``topo/*`` or ``analytics/*`` assets (from any job, a
    schedule, a sensor, automation, a UI or CLI launch, and also runs that failed after
    writing some tables) it launches ``publish_analyst_copy_job``. It waits until every
    run that wrote since the last publish has finished, so analysts never get a copy
    with new tasks but stale analytics of the same run, and many runs ending close
    together lead to one publish. A run still unfinished an hour after it wrote (a stuck
    run) no longer holds the copy back. The cursor is the event-log storage id published
    through; the run key carries it, so a publish is requested once per change.
"""

import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.open_tasks import (
    READ_LOCK_TIMEOUT_SECONDS,
    OpenTaskPartition,
    OpenTasksUnavailableError,
    read_open_task_partitions,
)

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster does not export the name.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

OPEN_TASKS_SENSOR_NAME = "open_tasks_sensor"
"""Sensor: re-requests recent days that still hold PENDING or IN_PROGRESS tasks."""

ANALYST_COPY_SENSOR_NAME = "analyst_copy_sensor"
"""Sensor: publishes the analyst copy after runs that changed topo/analytics tables."""

ANALYST_COPY_SENSOR_INTERVAL_SECONDS = 30

PUBLISH_MAX_WAIT = timedelta(hours=1)
"""How long ``analyst_copy_sensor`` waits for a run that wrote tables to finish."""

OPEN_TASKS_TAG = "topo/open_tasks"
"""Run tag of an open-task refresh: how many open tasks the day held when requested."""

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- open tasks: the decision -------------------------------------------------------


@dataclass(frozen=True)
class OpenTaskPolicy:
    """The open-task sensor's limits (from :class:`~topo_pipeline.settings.Settings`)."""

    timezone: str
    first_day: date
    max_age_days: int
    max_partitions_per_tick: int
    min_interval: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> "OpenTaskPolicy":
        return cls(
            timezone=settings.timezone,
            first_day=settings.start_date,
            max_age_days=settings.open_tasks_max_age_days,
            max_partitions_per_tick=settings.open_tasks_max_partitions_per_tick,
            min_interval=timedelta(minutes=settings.open_tasks_min_interval_minutes),
        )

    def window(self, now: datetime) -> tuple[date, date]:
        """The days eligible at ``now``: from ``max_age_days`` ago to the last complete day.

        The window may be empty (first > last) before the first partition has ended.
        """
        today = now.astimezone(ZoneInfo(self.timezone)).date()
        first = max(today - timedelta(days=self.max_age_days), self.first_day)
        return first, today - timedelta(days=1)


@dataclass(frozen=True)
class OpenTaskPlan:
    """What one tick of the open-task sensor requests."""

    requests: tuple[OpenTaskPartition, ...]
    """Days to re-fetch, in request order (stalest first)."""
    cursor: Mapping[date, datetime]
    """Next cursor: when each day in the window was last requested."""
    reason: str
    """Why nothing (more) was requested; for the tick's skip message."""


def plan_open_task_refresh(
    stored: Iterable[OpenTaskPartition],
    cursor: Mapping[date, datetime],
    now: datetime,
    policy: OpenTaskPolicy,
) -> OpenTaskPlan:
    """Decide which days to re-request this tick. Pure: no I/O, no clock.

    A day is due when it lies in :meth:`OpenTaskPolicy.window`, holds open tasks, and
    both its last request (``cursor``) and its last load (``loaded_at``) are at least
    ``min_interval`` before ``now``. Due days are requested stalest first (oldest of the
    later of those two times; never-touched first; ties: the newer day first), at most
    ``max_partitions_per_tick``. The next cursor keeps only days inside the window, plus
    the requested days at ``now``.

    Args:
        stored: days with open tasks and when each was last loaded.
        cursor: when each day was last requested by this sensor.
        now: the tick's time (timezone-aware).
        policy: the limits.
    """
    first, last = policy.window(now)
    in_window = {day: at for day, at in cursor.items() if first <= day <= last}
    due: list[tuple[datetime | None, OpenTaskPartition]] = []
    waiting = 0
    for partition in stored:
        if not (first <= partition.partition_date <= last) or partition.open_tasks <= 0:
            continue
        touched = _latest(in_window.get(partition.partition_date), partition.loaded_at)
        if touched is not None and now - touched < policy.min_interval:
            waiting += 1
            continue
        due.append((touched, partition))
    due.sort(key=lambda item: (_sort_time(item[0]), -item[1].partition_date.toordinal()))
    chosen = tuple(partition for _, partition in due[: policy.max_partitions_per_tick])
    next_cursor = dict(in_window)
    next_cursor.update({partition.partition_date: now for partition in chosen})

    if first > last:
        reason = "no complete day inside the open-task window yet"
    elif not due and not waiting:
        reason = f"no open tasks in the days {first}..{last}"
    elif not due:
        reason = (
            f"{waiting} day(s) with open tasks were refreshed less than {policy.min_interval} ago"
        )
    else:
        deferred = len(due) - len(chosen)
        reason = f"{deferred} more due day(s) deferred to later ticks" if deferred else ""
    return OpenTaskPlan(requests=chosen, cursor=next_cursor, reason=reason)


def load_open_tasks_cursor(text: str | None) -> dict[date, datetime]:
    """Parse the cursor ``{"YYYY-MM-DD": "<ISO time of last request>", ...}``.

    An unreadable cursor (hand-edited, an older format) counts as empty: the worst case
    is one early re-request per day, never a failed tick.
    """
    if not text:
        return {}
    try:
        raw = json.loads(text)
        cursor = {
            date.fromisoformat(day): datetime.fromisoformat(at).astimezone(UTC)
            for day, at in raw.items()
        }
    except (ValueError, TypeError, AttributeError):
        log.warning("ignoring an unreadable open-task sensor cursor: %r", text[:200])
        return {}
    return cursor


def dump_open_tasks_cursor(cursor: Mapping[date, datetime]) -> str:
    """The cursor as compact JSON, days in order, times in UTC."""
    return json.dumps(
        {day.isoformat(): cursor[day].astimezone(UTC).isoformat() for day in sorted(cursor)},
        separators=(",", ":"),
    )


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _sort_time(value: datetime | None) -> float:
    return float("-inf") if value is None else value.timestamp()


# --- open tasks: the sensor ---------------------------------------------------------


def build_open_tasks_sensor(
    settings: Settings,
    job: "UnresolvedAssetJobDefinition",
    *,
    clock: Clock = utc_now,
    read_lock_timeout: float = READ_LOCK_TIMEOUT_SECONDS,
) -> dg.SensorDefinition:
    """The :data:`OPEN_TASKS_SENSOR_NAME` sensor, on by default, launching ``job``.

    Args:
        settings: the limits and the analyst copy's path.
        job: the refresh job (``topo/tasks`` and everything downstream).
        clock: the current time; tests pass a fixed one.
        read_lock_timeout: seconds to wait for a lock on the analyst copy before skipping.
    """
    policy = OpenTaskPolicy.from_settings(settings)
    copy_path = settings.analyst_duckdb_path

    @dg.sensor(
        name=OPEN_TASKS_SENSOR_NAME,
        job=job,
        minimum_interval_seconds=settings.open_tasks_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Re-fetches days that still hold PENDING or IN_PROGRESS tasks (and rebuilds "
            f"everything downstream): days at most {policy.max_age_days} days old, at most "
            f"{policy.max_partitions_per_tick} per tick, each at most every "
            f"{policy.min_interval}. Reads the analyst copy, never the pipeline's file."
        ),
    )
    def open_tasks_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = clock()
        cursor = load_open_tasks_cursor(context.cursor)
        first, _last = policy.window(now)
        try:
            stored = read_open_task_partitions(copy_path, first, lock_timeout=read_lock_timeout)
        except (OpenTasksUnavailableError, WarehouseLockedError, duckdb.Error) as error:
            # Never fail the tick: the next one reads again.
            return dg.SensorResult(skip_reason=f"cannot read open tasks this tick: {error}")
        plan = plan_open_task_refresh(stored, cursor, now, policy)
        requests = [
            dg.RunRequest(
                run_key=f"{OPEN_TASKS_SENSOR_NAME}:{p.partition_date}:{now.isoformat()}",
                partition_key=p.partition_date.isoformat(),
                tags={OPEN_TASKS_TAG: str(p.open_tasks)},
            )
            for p in plan.requests
        ]
        if plan.reason:
            context.log.info(plan.reason)
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None if requests else plan.reason,
            cursor=dump_open_tasks_cursor(plan.cursor),
        )

    return open_tasks_sensor


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
            (``topo/tasks`` and everything downstream of it).
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
            "materialized topo/* or analytics/* assets since the last publish have finished."
        ),
    )
    def analyst_copy_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = int(context.cursor) if context.cursor and context.cursor.isdigit() else None
        seen = _materializations_after(context.instance, watched, cursor)
        unfinished = _unfinished_runs(context.instance, {m.run_id for m in seen})
        coming = _coming_runs(context.instance, watched)
        plan = plan_analyst_copy_publish(cursor, seen, unfinished, clock(), coming_run_ids=coming)
        if not plan.publish:
            return dg.SensorResult(skip_reason=plan.reason)
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
    # A run missing from storage (deleted) counts as finished.
    return {run.run_id for run in runs if run.status not in _FINISHED}


_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _coming_runs(instance: dg.DagsterInstance, watched: Sequence[dg.AssetKey]) -> set[str]:
    """Queued or running runs that materialize any of ``watched``."""
    keys = set(watched)
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=_ACTIVE), limit=_PAGE)
    return {run.run_id for run in runs if run.asset_selection and run.asset_selection & keys}
