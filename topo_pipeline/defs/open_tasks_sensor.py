"""``open_tasks_sensor``: re-fetch recent days that still hold open tasks.

Days whose tasks are still PENDING or IN_PROGRESS will change, so the sensor re-requests
them (``topo/tasks`` and everything downstream, one run per day) while they are at most
``TOPO_OPEN_TASKS_MAX_AGE_DAYS`` old, at most ``TOPO_OPEN_TASKS_MAX_PARTITIONS_PER_TICK``
days per tick, and no day more often than every ``TOPO_OPEN_TASKS_MIN_INTERVAL_MINUTES``
(counted from the later of its last request, kept in the cursor, and its last load, read
from the data). The stalest days go first, so a long backlog is worked through in turn.
It reads the analyst copy, read-only and briefly, never the pipeline's file, so it cannot
block a run's writes; a missing, locked or unreadable copy skips the tick instead of
failing. On by default (``default_status=RUNNING``).

The decision is a pure function, :func:`plan_open_task_refresh` (stored open-task counts,
the cursor and the time in; run requests and the next cursor out); the sensor body only
gathers those inputs and turns the plan into run requests.
"""

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.jobs import REFRESH_JOB
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.open_tasks import (
    READ_LOCK_TIMEOUT_SECONDS,
    OpenTaskPartition,
    OpenTasksUnavailableError,
    read_open_task_partitions,
)

OPEN_TASKS_SENSOR_NAME = "open_tasks_sensor"
"""Sensor: re-requests recent days that still hold PENDING or IN_PROGRESS tasks."""

OPEN_TASKS_TAG = "topo/open_tasks"
"""Run tag of an open-task refresh: how many open tasks the day held when requested."""

log = logging.getLogger(__name__)


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
    *,
    clock: Clock = utc_now,
    read_lock_timeout: float = READ_LOCK_TIMEOUT_SECONDS,
) -> dg.SensorDefinition:
    """The :data:`OPEN_TASKS_SENSOR_NAME` sensor, on by default, launching the refresh job.

    It reads the analyst copy of the ``warehouse`` resource (``analyst_database``).

    Args:
        settings: the limits.
        clock: the current time; tests pass a fixed one.
        read_lock_timeout: seconds to wait for a lock on the analyst copy before skipping.
    """
    policy = OpenTaskPolicy.from_settings(settings)

    @dg.sensor(
        name=OPEN_TASKS_SENSOR_NAME,
        job=REFRESH_JOB,
        minimum_interval_seconds=settings.open_tasks_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Re-fetches days that still hold PENDING or IN_PROGRESS tasks (and rebuilds "
            f"everything downstream): days at most {policy.max_age_days} days old, at most "
            f"{policy.max_partitions_per_tick} per tick, each at most every "
            f"{policy.min_interval}. Reads the analyst copy, never the pipeline's file."
        ),
    )
    def open_tasks_sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SensorResult:
        now = clock()
        cursor = load_open_tasks_cursor(context.cursor)
        first, _last = policy.window(now)
        try:
            stored = read_open_task_partitions(
                warehouse.analyst_database, first, lock_timeout=read_lock_timeout
            )
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
