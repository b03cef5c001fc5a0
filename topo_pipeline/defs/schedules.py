"""The daily refresh schedule: the day that just ended plus a trailing window, in one run.

Tasks keep changing status after the day they were created (open tasks get completed or
skipped), so every day the schedule re-fetches the last ``TOPO_REFRESH_WINDOW_DAYS`` days,
ending with the day that just ended, and rebuilds everything downstream of them. It ticks
``TOPO_SCHEDULE_SETTLE_MINUTES`` after local midnight of ``TOPO_TIMEZONE`` (the settle
delay lets the source finish writing the day). The range is derived from the tick's
scheduled time, not from the wall clock, so a late or retried tick still covers the
same days, and Dagster's own partition arithmetic makes DST days (23 or 25 hours) right.

The run covers the whole range at once through the partition-range run tags (every
partitioned asset has a single-run backfill policy). Its run key carries the tick, so
each day's run is launched exactly once and later days are never deduplicated away.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from topo_pipeline.defs.jobs import REFRESH_JOB, partition_range_tags
from topo_pipeline.defs.partitions import complete_partition_keys
from topo_pipeline.settings import Settings

DAILY_REFRESH_SCHEDULE_NAME = "daily_refresh_schedule"
"""Schedule: once a day, the day that just ended plus the trailing refresh window."""


@dataclass(frozen=True)
class DailyRefresh:
    """The partitions one tick refreshes: ``first..last`` inclusive, ``last`` just ended."""

    first: str
    last: str
    run_key: str

    @property
    def tags(self) -> dict[str, str]:
        return dict(partition_range_tags(self.first, self.last))


def settle_cron(settle_minutes: int) -> str:
    """The cron string that ticks ``settle_minutes`` (0..1439) after midnight every day."""
    return f"{settle_minutes % 60} {settle_minutes // 60} * * *"


def plan_daily_refresh(
    partitions_def: dg.TimeWindowPartitionsDefinition, tick: datetime, window_days: int
) -> DailyRefresh | None:
    """The range a tick at ``tick`` refreshes, or ``None`` before the first day has ended.

    Args:
        partitions_def: the daily partitions of ``topo/tasks``.
        tick: the tick's scheduled time (timezone-aware).
        window_days: how many days the range covers, ending with the last complete day
            as of ``tick``; fewer when the partitions start later than that.
    """
    # Today's partition exists (the live refresh fetches it) but has not ended yet.
    complete = complete_partition_keys(partitions_def, tick)
    if not complete:
        return None
    keys = complete[-window_days:]
    return DailyRefresh(
        first=keys[0],
        last=keys[-1],
        run_key=f"{DAILY_REFRESH_SCHEDULE_NAME}:{tick.isoformat()}",
    )


def build_daily_refresh_schedule(
    settings: Settings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> dg.ScheduleDefinition:
    """The :data:`DAILY_REFRESH_SCHEDULE_NAME` schedule, on by default (the refresh job)."""
    window_days = settings.refresh_window_days

    @dg.schedule(
        name=DAILY_REFRESH_SCHEDULE_NAME,
        job=REFRESH_JOB,
        cron_schedule=settle_cron(settings.schedule_settle_minutes),
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Every day {settings.schedule_settle_minutes} minutes after midnight "
            f"({settings.timezone}): fetch the day that just ended and refresh the "
            f"{window_days} days ending with it (topo/tasks and everything downstream), "
            "as one run."
        ),
    )
    def daily_refresh_schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> dg.RunRequest | dg.SkipReason:
        # Set by the daemon (and by build_schedule_context); a bare manual evaluation uses now.
        tick = context.scheduled_execution_time or datetime.now(UTC)
        plan = plan_daily_refresh(partitions_def, tick, window_days)
        if plan is None:
            return dg.SkipReason(
                f"no complete day yet: partitions start {partitions_def.start.date()}"
            )
        context.log.info("refreshing partitions %s..%s", plan.first, plan.last)
        return dg.RunRequest(run_key=plan.run_key, tags=plan.tags)

    return daily_refresh_schedule
