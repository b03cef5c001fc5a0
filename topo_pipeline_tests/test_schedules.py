"""The daily refresh schedule as scenario tables: tick in, exactly this run request out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.jobs import REFRESH_JOB_NAME
from topo_pipeline.defs.partitions import daily_partitions
from topo_pipeline.defs.schedules import (
    DAILY_REFRESH_SCHEDULE_NAME,
    plan_daily_refresh,
    settle_cron,
)
from topo_pipeline.settings import Settings

NEW_YORK = ZoneInfo("America/New_York")


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "duckdb_path": tmp_path / "pipeline.duckdb",
        "analyst_duckdb_path": tmp_path / "analyst.duckdb",
        "start_date": date(2025, 1, 1),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def evaluate(settings: Settings, tick: datetime) -> dg.RunRequest | str:
    """The schedule's run request for ``tick`` (or its skip message)."""
    schedule = build_defs(settings).resolve_schedule_def(DAILY_REFRESH_SCHEDULE_NAME)
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    if data.skip_message:
        return data.skip_message
    (request,) = data.run_requests
    return request


@pytest.mark.parametrize(
    ("settle_minutes", "cron"),
    [
        (0, "0 0 * * *"),  # right at local midnight
        (30, "30 0 * * *"),  # the default
        (150, "30 2 * * *"),
        (1439, "59 23 * * *"),
    ],
)
def test_settle_delay_sets_the_tick_time(settle_minutes: int, cron: str, tmp_path: Path) -> None:
    assert settle_cron(settle_minutes) == cron
    settings = settings_for(tmp_path, schedule_settle_minutes=settle_minutes, timezone="Asia/Tokyo")
    schedule = build_defs(settings).resolve_schedule_def(DAILY_REFRESH_SCHEDULE_NAME)
    assert schedule.cron_schedule == cron
    assert schedule.execution_timezone == "Asia/Tokyo"


UTC_TICK = datetime(2025, 3, 20, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tick", "window_days", "expected"),
    [
        # The day that just ended plus the six before it.
        (UTC_TICK, 7, ("2025-03-13", "2025-03-19")),
        # Only the day that just ended.
        (UTC_TICK, 1, ("2025-03-19", "2025-03-19")),
        # A late tick (a daemon that was down) still covers the days of its own tick.
        (UTC_TICK + timedelta(hours=20), 7, ("2025-03-13", "2025-03-19")),
        # A settle delay of 0: the day ending exactly at the tick counts as complete.
        (datetime(2025, 3, 20, tzinfo=UTC), 2, ("2025-03-18", "2025-03-19")),
        # Shortly after the start date the window is clipped to the first partition.
        (datetime(2025, 1, 3, 0, 30, tzinfo=UTC), 7, ("2025-01-01", "2025-01-02")),
        # Before the first day has ended there is nothing to fetch.
        (datetime(2025, 1, 1, 0, 30, tzinfo=UTC), 7, None),
        (datetime(2024, 12, 1, 0, 30, tzinfo=UTC), 7, None),
    ],
)
def test_plan_daily_refresh(
    tick: datetime, window_days: int, expected: tuple[str, str] | None, tmp_path: Path
) -> None:
    partitions = daily_partitions(settings_for(tmp_path))
    plan = plan_daily_refresh(partitions, tick, window_days)
    if expected is None:
        assert plan is None
        return
    assert plan is not None
    assert (plan.first, plan.last) == expected
    assert plan.run_key == f"{DAILY_REFRESH_SCHEDULE_NAME}:{tick.isoformat()}"


# Ticks of "30 0 * * *" in America/New_York around both 2025 DST changes, as Dagster fires
# them (00:30 local wall time; the UTC offset changes with DST).
@pytest.mark.parametrize(
    ("tick", "first", "last", "hours"),
    [
        # Spring forward on 2025-03-09 (23 hours), inside the window from the 10th on.
        (datetime(2025, 3, 9, 0, 30, tzinfo=NEW_YORK), "2025-03-02", "2025-03-08", 7 * 24),
        (datetime(2025, 3, 10, 0, 30, tzinfo=NEW_YORK), "2025-03-03", "2025-03-09", 7 * 24 - 1),
        (datetime(2025, 3, 16, 0, 30, tzinfo=NEW_YORK), "2025-03-09", "2025-03-15", 7 * 24 - 1),
        (datetime(2025, 3, 17, 0, 30, tzinfo=NEW_YORK), "2025-03-10", "2025-03-16", 7 * 24),
        # Fall back on 2025-11-02 (25 hours).
        (datetime(2025, 11, 2, 0, 30, tzinfo=NEW_YORK), "2025-10-26", "2025-11-01", 7 * 24),
        (datetime(2025, 11, 3, 0, 30, tzinfo=NEW_YORK), "2025-10-27", "2025-11-02", 7 * 24 + 1),
    ],
)
def test_ranges_across_dst_in_new_york(
    tick: datetime, first: str, last: str, hours: int, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, timezone="America/New_York")
    request = evaluate(settings, tick)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key_range == dg.PartitionKeyRange(first, last)
    assert request.run_key == f"{DAILY_REFRESH_SCHEDULE_NAME}:{tick.isoformat()}"
    # The range spans whole local days: from local midnight to local midnight.
    partitions = daily_partitions(settings)
    start = partitions.time_window_for_partition_key(first).start
    end = partitions.time_window_for_partition_key(last).end
    assert (start.hour, end.hour) == (0, 0)
    assert end.timestamp() - start.timestamp() == hours * 3600


def test_a_settle_delay_into_the_missing_spring_hour_still_covers_the_day(
    tmp_path: Path,
) -> None:
    # "30 2 * * *" on 2025-03-09 in New York: 02:30 does not exist; Dagster fires at 03:00.
    settings = settings_for(tmp_path, timezone="America/New_York", schedule_settle_minutes=150)
    request = evaluate(settings, datetime(2025, 3, 9, 3, 0, tzinfo=NEW_YORK))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key_range == dg.PartitionKeyRange("2025-03-02", "2025-03-08")


def test_each_tick_gets_its_own_run_key(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    monday = evaluate(settings, UTC_TICK)
    tuesday = evaluate(settings, UTC_TICK + timedelta(days=1))
    assert isinstance(monday, dg.RunRequest)
    assert isinstance(tuesday, dg.RunRequest)
    # Overlapping ranges, distinct keys: the daemon launches both.
    assert monday.run_key != tuesday.run_key
    assert monday.partition_key_range == dg.PartitionKeyRange("2025-03-13", "2025-03-19")
    assert tuesday.partition_key_range == dg.PartitionKeyRange("2025-03-14", "2025-03-20")
    assert monday.partition_key is None  # a range run, not one run per day


def test_before_the_first_day_ends_the_tick_is_skipped(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, start_date=date(2025, 3, 20))
    message = evaluate(settings, UTC_TICK)
    assert message == "no complete day yet: partitions start 2025-03-20"


def test_the_schedule_runs_the_refresh_job_and_is_on_by_default(tmp_path: Path) -> None:
    schedule = build_defs(settings_for(tmp_path)).resolve_schedule_def(DAILY_REFRESH_SCHEDULE_NAME)
    assert schedule.job_name == REFRESH_JOB_NAME
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize(
    ("cron", "start", "expected"),
    [
        (
            "30 0 * * *",
            datetime(2025, 3, 8, 12, tzinfo=NEW_YORK),
            ["2025-03-09T00:30:00-05:00", "2025-03-10T00:30:00-04:00"],
        ),
        (
            "30 0 * * *",
            datetime(2025, 11, 1, 12, tzinfo=NEW_YORK),
            ["2025-11-02T00:30:00-04:00", "2025-11-03T00:30:00-05:00"],
        ),
        (
            "30 2 * * *",
            datetime(2025, 3, 8, 12, tzinfo=NEW_YORK),
            ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"],
        ),
    ],
)
def test_the_dst_ticks_above_are_the_ones_dagster_fires(
    cron: str, start: datetime, expected: list[str]
) -> None:
    # Dagster has no public API that lists a schedule's ticks, but time-window partitions
    # over the same cron string start at the same ticks: both walk the cron in the zone
    # with Dagster's own iteration (a missing time fires at the next existing minute, a
    # repeated one once).
    partitions = dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=start, timezone="America/New_York", fmt="%Y-%m-%dT%H:%M"
    )
    keys = partitions.get_partition_keys(current_time=start + timedelta(days=len(expected) + 1))
    ticks = [partitions.time_window_for_partition_key(key).start for key in keys]
    assert [tick.isoformat() for tick in ticks[: len(expected)]] == expected
