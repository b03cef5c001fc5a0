"""``live_refresh_sensor``: today's partition refreshed every few minutes, with its analytics.

Every ``TOPO_LIVE_REFRESH_MINUTES`` (default 10; ``0`` turns it off: every tick is skipped,
saying so) the sensor launches one run of ``topo_refresh_job`` for **today's** partition in
``TOPO_TIMEZONE``: ``topo/tasks`` of the day so far, every analytics table rebuilt, the SLA
notifications (``analytics/sla_alerts_sent``) and the analyst copy, in one run. In the first
minutes of a day (the longest SLA target of the alerted priorities plus one interval) the
run covers yesterday too, so that yesterday's last tasks are judged on a fresh status until
their deadline has passed; the daily schedule still finalizes yesterday after midnight.

It shares the ``duckdb`` pool with the daily and backfill runs and never piles up: a tick
is skipped while a live refresh is queued or in progress (each run is tagged
:data:`LIVE_REFRESH_TAG`, which ``dagster.yaml`` also limits to one run at a time). Each
tick's run key carries the tick's time, so no refresh is deduplicated away. On by default.

The decision is a pure function, :func:`plan_live_refresh` (the time, the partitions and
the runs in flight in; a run request or a reason out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg

from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.jobs import REFRESH_JOB, partition_range_tags
from topo_pipeline.defs.partitions import current_partition_key
from topo_pipeline.settings import Settings

LIVE_REFRESH_SENSOR_NAME = "live_refresh_sensor"
"""Sensor: refreshes today's partition (and everything downstream) every few minutes."""

LIVE_REFRESH_TAG = "topo/live_refresh"
"""Run tag of a live refresh (value ``"true"``); ``dagster.yaml`` runs one at a time."""

OFF_INTERVAL_SECONDS = 300
"""How often the sensor ticks (to say it is off) when ``TOPO_LIVE_REFRESH_MINUTES`` is 0."""

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class LiveRefresh:
    """What one tick requests: the partitions ``first..last`` (``last`` is today)."""

    first: str
    last: str
    run_key: str

    @property
    def tags(self) -> Mapping[str, str]:
        tags = {LIVE_REFRESH_TAG: "true"}
        if self.first != self.last:
            tags.update(partition_range_tags(self.first, self.last))
        return tags

    @property
    def partition_key(self) -> str | None:
        """The one partition, or ``None`` for a range (run by the range tags)."""
        return self.last if self.first == self.last else None


def live_lookback(settings: Settings) -> timedelta:
    """How long into a day yesterday is refreshed with it: while an alerted task created at
    yesterday's end can still be open and not past its deadline, plus one interval."""
    targets = [settings.sla_target_minutes[p] for p in settings.sla_alert_priorities]
    return timedelta(minutes=max(targets, default=0) + settings.live_refresh_minutes)


def plan_live_refresh(
    partitions_def: dg.TimeWindowPartitionsDefinition,
    now: datetime,
    *,
    lookback: timedelta,
    in_flight: Sequence[str] = (),
) -> LiveRefresh | str:
    """The refresh a tick at ``now`` requests, or why it requests none. Pure.

    Args:
        partitions_def: the daily partitions of ``topo/tasks`` (today's included).
        now: the tick's time (timezone-aware).
        lookback: while ``now`` is less than this into today, yesterday is refreshed too.
        in_flight: ids of live refreshes queued or in progress.
    """
    if in_flight:
        return (
            f"a live refresh is still queued or running ({', '.join(in_flight)}): "
            "skipping this tick"
        )
    today = current_partition_key(partitions_def, now)
    if today is None:
        return f"no partition for today yet: partitions start {partitions_def.start.date()}"
    first = today
    day_start = partitions_def.time_window_for_partition_key(today).start
    if now - day_start < lookback:
        keys = partitions_def.get_partition_keys(current_time=now)
        if len(keys) >= 2:
            first = keys[-2]
    return LiveRefresh(
        first=first, last=today, run_key=f"{LIVE_REFRESH_SENSOR_NAME}:{today}:{now.isoformat()}"
    )


def live_refreshes_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Run ids of live refreshes that are queued or in progress."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={LIVE_REFRESH_TAG: "true"}, statuses=_IN_FLIGHT), limit=10
    )
    return [run.run_id for run in runs]


def build_live_refresh_sensor(
    settings: Settings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    *,
    clock: Clock = utc_now,
) -> dg.SensorDefinition:
    """The :data:`LIVE_REFRESH_SENSOR_NAME` sensor, on by default (the refresh job)."""
    minutes = settings.live_refresh_minutes
    lookback = live_lookback(settings)
    if minutes:
        description = (
            f"Every {minutes} minutes: refresh today's partition ({settings.timezone}) of "
            "topo/tasks and everything downstream (analytics, SLA notifications, analyst copy) "
            "in one run; yesterday too in the first "
            f"{int(lookback.total_seconds() // 60)} minutes of a day. Skips a tick while a "
            "live refresh is queued or running."
        )
    else:
        description = "Off (TOPO_LIVE_REFRESH_MINUTES is 0): every tick is skipped."

    @dg.sensor(
        name=LIVE_REFRESH_SENSOR_NAME,
        job=REFRESH_JOB,
        minimum_interval_seconds=minutes * 60 if minutes else OFF_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def live_refresh_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if not minutes:
            return dg.SkipReason("TOPO_LIVE_REFRESH_MINUTES is 0: the live refresh is off")
        now = clock()
        plan = plan_live_refresh(
            partitions_def,
            now,
            lookback=lookback,
            in_flight=live_refreshes_in_flight(context.instance),
        )
        if isinstance(plan, str):
            return dg.SkipReason(plan)
        days = plan.last if plan.first == plan.last else f"{plan.first}..{plan.last}"
        context.log.info("refreshing %s (today: %s)", days, plan.last)
        return dg.RunRequest(
            run_key=plan.run_key, partition_key=plan.partition_key, tags=dict(plan.tags)
        )

    return live_refresh_sensor
