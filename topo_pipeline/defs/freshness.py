"""Freshness checks: has yesterday landed by the deadline, and is the analyst copy current?

- ``landed_by_deadline`` on ``topo/tasks`` and every asset downstream of it: from
  ``TOPO_FRESHNESS_DEADLINE_HOUR`` o'clock in ``TOPO_TIMEZONE`` on, the day that ended
  before that deadline (yesterday) must have a materialization fetched after it ended (a
  live refresh of the day while in progress does not count); before the hour, the day
  before is expected. It fails (ERROR) naming the missing day and how long it is overdue.
- ``current`` on ``publish/analyst_copy``: the copy was published after the newest
  materialization of a pipeline asset, or at most ``TOPO_ANALYST_COPY_MAX_LAG_MINUTES``
  before it. Its metadata shows when the copy was published and its age, so the UI shows
  how old the analysts' data is.

``freshness_checks_schedule`` (on by default) runs both every hour, so a failure shows on
the asset pages within the hour and clears once the day lands. The checks read Dagster's
event log only, never DuckDB, so they take no slot of the ``duckdb`` pool.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.jobs import CONSOLE_PARAGRAPHS
from topo_pipeline.defs.partitions import DAY_COMPLETE_METADATA, complete_partition_keys

LANDED_BY_DEADLINE = "landed_by_deadline"
LANDED_BY_DEADLINE_OP = "landed_by_deadline_checks"
ANALYST_COPY_CURRENT = "current"
FRESHNESS_JOB_NAME = "freshness_checks_job"
FRESHNESS_SCHEDULE_NAME = "freshness_checks_schedule"
FRESHNESS_CRON = "5 * * * *"
"""Hourly, five minutes past the hour."""


def last_deadline(now: datetime, deadline_hour: int, timezone: str) -> datetime:
    """The latest ``deadline_hour:00`` in ``timezone`` at or before ``now``."""
    local = now.astimezone(ZoneInfo(timezone))
    today = datetime.combine(local.date(), time(deadline_hour), ZoneInfo(timezone))
    return today if today <= local else today - timedelta(days=1)


def expected_partition(
    partitions_def: dg.TimeWindowPartitionsDefinition, deadline: datetime
) -> str | None:
    """The latest partition that had ended by ``deadline`` (``None`` before the first).

    Never the day in progress, though the partitions include it (the live refresh).
    """
    keys = complete_partition_keys(partitions_def, deadline)
    return keys[-1] if keys else None


def build_landed_by_deadline_checks(
    asset_keys: Sequence[dg.AssetKey],
    partitions_def: dg.TimeWindowPartitionsDefinition,
    *,
    partitioned_key: dg.AssetKey,
    deadline_hour: int,
    timezone: str,
    clock: Clock = utc_now,
) -> dg.AssetChecksDefinition:
    """The ``landed_by_deadline`` check of each of ``asset_keys``, as one definition.

    ``partitioned_key`` (``topo/tasks``) lands by day; the other keys, unpartitioned, have
    landed the day once materialized after it.
    """

    @dg.multi_asset_check(
        name=LANDED_BY_DEADLINE_OP,
        # The UI runs an asset's checks with it: materializing topo/tasks selects only its
        # own check of these.
        can_subset=True,
        specs=[
            dg.AssetCheckSpec(
                LANDED_BY_DEADLINE,
                asset=key,
                description=(
                    f"The day that ended before {deadline_hour:02d}:00 {timezone} (yesterday, "
                    "from that hour on) has been materialized. Checked hourly."
                ),
            )
            for key in asset_keys
        ],
    )
    def landed_by_deadline_checks(
        context: dg.AssetCheckExecutionContext,
    ) -> Iterator[dg.AssetCheckResult]:
        now = clock()
        deadline = last_deadline(now, deadline_hour, timezone)
        partition = expected_partition(partitions_def, deadline)
        selected = context.selected_asset_check_keys
        for key in asset_keys:
            if dg.AssetCheckKey(key, LANDED_BY_DEADLINE) in selected:
                yield _landed_result(
                    context.instance,
                    key,
                    partitioned_key,
                    partition,
                    deadline,
                    now,
                    day_end=(
                        partitions_def.time_window_for_partition_key(partition).end
                        if partition
                        else None
                    ),
                )

    return landed_by_deadline_checks


def _landed_result(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partitioned_key: dg.AssetKey,
    partition: str | None,
    deadline: datetime,
    now: datetime,
    *,
    day_end: datetime | None,
) -> dg.AssetCheckResult:
    metadata: dict[str, object] = {
        "expected_partition": partition or "(none yet)",
        "deadline": dg.MetadataValue.timestamp(deadline),
    }
    if partition is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=LANDED_BY_DEADLINE,
            passed=True,
            metadata=metadata,
            description="No partition had ended by the last deadline.",
        )
    records = _complete_materializations(instance, partitioned_key, partition, day_end)
    if records and key != partitioned_key:
        # Built from topo/tasks: landed if materialized since that day landed.
        day_landed = records[0].storage_id
        records = [
            record
            for record in instance.fetch_materializations(key, limit=1).records
            if record.storage_id > day_landed
        ]
    if records:
        metadata["landed_at"] = dg.MetadataValue.timestamp(records[0].timestamp)
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=LANDED_BY_DEADLINE,
            passed=True,
            metadata=metadata,
            description=f"Partition {partition} has landed.",
        )
    overdue = now - deadline
    metadata["overdue_minutes"] = round(overdue.total_seconds() / 60)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=LANDED_BY_DEADLINE,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=(
            f"Partition {partition} of {key.to_user_string()} has not landed; it was due at "
            f"{deadline.isoformat()}. Look for a failed or missing run of topo_refresh_job "
            "(README: Troubleshooting)."
        ),
    )


_RECENT_MATERIALIZATIONS = 25
"""Materializations of the expected day looked at for a complete one (newest first)."""


def _complete_materializations(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str,
    day_end: datetime | None,
) -> list[dg.EventLogRecord]:
    """The newest materialization of ``partition`` taken after its day ended, if any.

    A live refresh of the day in progress (metadata ``day_complete: false``) does not count:
    the day landed only once a fetch started after it ended. A materialization recorded
    without that metadata counts when it was recorded after the day's end.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]),
        limit=_RECENT_MATERIALIZATIONS,
    ).records
    for record in records:
        materialization = record.asset_materialization
        flag = materialization.metadata.get(DAY_COMPLETE_METADATA) if materialization else None
        complete = getattr(flag, "value", None)
        if complete is None:
            complete = day_end is None or record.timestamp >= day_end.timestamp()
        if complete:
            return [record]
    return []


def build_analyst_copy_current_check(
    copy_key: dg.AssetKey,
    pipeline_keys: Sequence[dg.AssetKey],
    *,
    max_lag_minutes: int,
    clock: Clock = utc_now,
) -> dg.AssetChecksDefinition:
    """The ``current`` check of the analyst copy."""

    @dg.asset_check(
        asset=copy_key,
        name=ANALYST_COPY_CURRENT,
        description=(
            "The analyst copy was published after the pipeline's newest materialization "
            f"(or at most {max_lag_minutes} minutes before it); shows the copy's age."
        ),
    )
    def analyst_copy_current(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = clock().timestamp()
        published = _latest_timestamp(context.instance, [copy_key])
        changed = _latest_timestamp(context.instance, pipeline_keys)
        metadata: dict[str, object] = {}
        if changed is not None:
            metadata["pipeline_changed_at"] = dg.MetadataValue.timestamp(changed)
        if published is None:
            return dg.AssetCheckResult(
                passed=changed is None,
                severity=dg.AssetCheckSeverity.WARN,
                metadata=metadata,
                description="The analyst copy has never been published.",
            )
        behind = max(0.0, (changed or 0.0) - published) / 60
        metadata.update(
            published_at=dg.MetadataValue.timestamp(published),
            age_minutes=round((now - published) / 60),
            behind_pipeline_minutes=round(behind),
        )
        passed = behind <= max_lag_minutes
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=(
                f"Published {round((now - published) / 60)} minutes ago"
                + (
                    "."
                    if passed
                    else f", {round(behind)} minutes before the pipeline's latest change: "
                    "is analyst_copy_sensor running, and did its last publish fail?"
                )
            ),
        )

    return analyst_copy_current


def _latest_timestamp(instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey]) -> float | None:
    stamps = [
        event.timestamp
        for key in keys
        if (event := instance.get_latest_materialization_event(key)) is not None
    ]
    return max(stamps) if stamps else None


def build_freshness_job(checks: Sequence[dg.AssetChecksDefinition]):
    """The :data:`FRESHNESS_JOB_NAME` job: the freshness checks alone."""
    return dg.define_asset_job(
        FRESHNESS_JOB_NAME,
        selection=dg.AssetSelection.checks(*checks),
        config=CONSOLE_PARAGRAPHS,
        description=(
            "Run the freshness checks: yesterday landed by the deadline, analyst copy current."
        ),
    )


def build_freshness_schedule(timezone: str) -> dg.ScheduleDefinition:
    """The :data:`FRESHNESS_SCHEDULE_NAME` schedule, hourly, on by default."""
    return dg.ScheduleDefinition(
        name=FRESHNESS_SCHEDULE_NAME,
        cron_schedule=FRESHNESS_CRON,
        execution_timezone=timezone,
        job_name=FRESHNESS_JOB_NAME,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Runs the freshness checks every hour.",
    )
