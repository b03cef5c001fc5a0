"""The live refresh of today: when it runs, what it covers, and what it never claims.

``plan_live_refresh`` as a scenario table; the sensor on by default, off at 0, skipping
while a live refresh is in flight; a refresh of the day in progress does not land the day
for the freshness checks (the daily run after midnight does); and the day's results after
that daily run are exactly those of a pipeline that never refreshed it live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.automation import pipeline_asset_keys
from topo_pipeline.defs.freshness import LANDED_BY_DEADLINE, build_landed_by_deadline_checks
from topo_pipeline.defs.jobs import REFRESH_SELECTION
from topo_pipeline.defs.live_refresh import (
    LIVE_REFRESH_SENSOR_NAME,
    LIVE_REFRESH_TAG,
    LiveRefresh,
    plan_live_refresh,
)
from topo_pipeline.defs.location import build_defs
from topo_pipeline.defs.partitions import (
    DAY_COMPLETE_METADATA,
    complete_partition_keys,
    current_partition_key,
    daily_partitions,
)
from topo_pipeline.defs.schedules import DAILY_REFRESH_SCHEDULE_NAME
from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.analytics import ANALYTICS_TABLES
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.harness import fresh_instance
from topo_pipeline_tests.live_harness import (
    DAY,
    MORNING,
    DrivenClock,
    Live,
    live_pipeline,
    minutes,
)
from topo_pipeline_tests.webhook import WebhookReceiver

UTC_PARTITIONS = daily_partitions(Settings(start_date=date(2026, 3, 1)))
LOOKBACK = timedelta(minutes=70)  # HOT's 60-minute target plus one 10-minute interval


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("now", "in_flight", "expected"),
    [
        # In the day: today alone; the run key carries the tick.
        ("2026-03-10T14:00:00+00:00", (), ("2026-03-10", "2026-03-10")),
        # In the first 70 minutes of a day, yesterday too (its last HOT tasks are still due).
        ("2026-03-10T00:30:00+00:00", (), ("2026-03-09", "2026-03-10")),
        ("2026-03-10T01:09:59+00:00", (), ("2026-03-09", "2026-03-10")),
        ("2026-03-10T01:10:00+00:00", (), ("2026-03-10", "2026-03-10")),
        # The first partition has no yesterday.
        ("2026-03-01T00:05:00+00:00", (), ("2026-03-01", "2026-03-01")),
        # Never a second live refresh while one is queued or running.
        ("2026-03-10T14:00:00+00:00", ("run-1",), "a live refresh is still queued or running"),
        # Before the first partition.
        ("2026-02-28T12:00:00+00:00", (), "no partition for today yet"),
    ],
)
def test_plan_live_refresh(now: str, in_flight: tuple[str, ...], expected: Any) -> None:
    plan = plan_live_refresh(UTC_PARTITIONS, at(now), lookback=LOOKBACK, in_flight=in_flight)
    if isinstance(expected, str):
        assert isinstance(plan, str)
        assert expected in plan
        return
    assert isinstance(plan, LiveRefresh)
    assert (plan.first, plan.last) == expected
    assert plan.run_key == f"{LIVE_REFRESH_SENSOR_NAME}:{plan.last}:{at(now).isoformat()}"
    assert plan.tags[LIVE_REFRESH_TAG] == "true"
    if plan.first == plan.last:
        assert plan.partition_key == plan.last
        assert "dagster/asset_partition_range_start" not in plan.tags
    else:
        assert plan.partition_key is None
        assert plan.tags["dagster/asset_partition_range_start"] == plan.first


def test_today_is_a_partition_but_never_a_complete_one() -> None:
    # In New York, 02:00 UTC on the 10th is still the evening of the 9th.
    partitions = daily_partitions(
        Settings(start_date=date(2026, 3, 1), timezone="America/New_York")
    )
    now = at("2026-03-10T02:00:00+00:00")
    assert current_partition_key(partitions, now) == "2026-03-09"
    assert complete_partition_keys(partitions, now)[-1] == "2026-03-08"
    assert partitions.get_partition_keys(current_time=now)[-1] == "2026-03-09"
    # At local midnight the day that just ended is complete, the new one is today.
    midnight = datetime(2026, 3, 10, tzinfo=ZoneInfo("America/New_York"))
    assert complete_partition_keys(partitions, midnight)[-1] == "2026-03-09"
    assert current_partition_key(partitions, midnight) == "2026-03-10"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        duckdb_path=tmp_path / "p.duckdb",
        analyst_duckdb_path=tmp_path / "a.duckdb",
        start_date=date(2026, 3, 1),
        **overrides,
    )


def test_the_sensor_is_on_by_default_and_waits_for_the_live_refresh_in_flight(
    tmp_path: Path,
) -> None:
    clock = DrivenClock(at("2026-03-10T14:00:00+00:00"))
    defs = build_defs(settings_for(tmp_path), clock=clock)
    sensor = defs.resolve_sensor_def(LIVE_REFRESH_SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 600
    with fresh_instance() as instance:

        def tick() -> dg.SensorExecutionData:
            context = dg.build_sensor_context(instance=instance, definitions=defs)
            return sensor.evaluate_tick(context)

        (request,) = tick().run_requests
        assert request.partition_key == "2026-03-10"
        assert request.job_name in (None, "topo_refresh_job")
        in_flight = instance.add_run(
            dg.DagsterRun(
                job_name="topo_refresh_job",
                status=dg.DagsterRunStatus.STARTING,
                tags={LIVE_REFRESH_TAG: "true"},
            )
        )
        waiting = tick()
        assert waiting.run_requests == []
        assert in_flight.run_id in (waiting.skip_message or "")
        # A daily or backfill run in progress does not hold it back (the pool takes turns).
        instance.add_run(
            dg.DagsterRun(job_name="topo_refresh_job", status=dg.DagsterRunStatus.STARTED)
        )
        instance.report_run_canceled(in_flight)
        clock.now += minutes(10)
        (later,) = tick().run_requests
        assert later.run_key != request.run_key


def test_zero_minutes_turn_the_live_refresh_off(tmp_path: Path) -> None:
    defs = build_defs(settings_for(tmp_path, live_refresh_minutes=0))
    sensor = defs.resolve_sensor_def(LIVE_REFRESH_SENSOR_NAME)
    with fresh_instance() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert result.run_requests == []
    assert "TOPO_LIVE_REFRESH_MINUTES is 0" in (result.skip_message or "")


# -- with the pipeline --------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def live(pipeline_factory: Callable[..., Live], receiver: WebhookReceiver) -> Live:
    return live_pipeline(pipeline_factory, receiver)


def daily_run(pipeline: Live, tick: datetime) -> dg.ExecuteInProcessResult:
    """The daily schedule's tick at ``tick``, its run executed then."""
    pipeline.clock.now = tick
    defs = pipeline.defs()
    schedule = defs.resolve_schedule_def(DAILY_REFRESH_SCHEDULE_NAME)
    context = dg.build_schedule_context(instance=pipeline.instance, scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests
    return pipeline.run(request, tick)


def landed(pipeline: Live, now: datetime) -> dict[str, dg.AssetCheckEvaluation]:
    """The freshness checks as of ``now``, by asset."""
    defs = pipeline.defs()
    check = build_landed_by_deadline_checks(
        pipeline_asset_keys(list(defs.assets)),
        daily_partitions(pipeline.settings),
        partitioned_key=TASKS_KEY,
        deadline_hour=6,
        timezone="UTC",
        clock=lambda: now,
    )
    result = dg.materialize(
        [*defs.assets, check],
        selection=dg.AssetSelection.checks(check),
        resources=defs.resources,
        instance=pipeline.instance,
    )
    return {
        e.asset_key.to_user_string(): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == LANDED_BY_DEADLINE
    }


@pytest.mark.slow  # many runs on a driven clock
def test_a_refresh_of_the_day_in_progress_does_not_land_it(live: Live) -> None:
    live.refresh(MORNING + minutes(10))
    live.refresh(datetime(2026, 3, 10, 23, 50, tzinfo=UTC))
    record = live.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TASKS_KEY, asset_partitions=[DAY.isoformat()]), limit=1
    ).records[0]
    assert record.asset_materialization.metadata[DAY_COMPLETE_METADATA].value is False

    next_morning = datetime(2026, 3, 11, 7, 0, tzinfo=UTC)
    before = landed(live, next_morning)
    assert before["topo/tasks"].metadata["expected_partition"].value == DAY.isoformat()
    assert not any(e.passed for e in before.values()), before

    # The daily schedule after midnight fetches the day that ended: now it has landed.
    daily_run(live, datetime(2026, 3, 11, 0, 30, tzinfo=UTC))
    after = landed(live, next_morning)
    assert all(e.passed for e in after.values()), after


def _day_rows(path: Path, day: date) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``day`` in topo.tasks (without when it was fetched) and the analytics."""
    with connect(path, read_only=True) as con:
        rows = {
            "topo.tasks": con.execute(
                "SELECT * EXCLUDE (loaded_at) FROM warehouse.topo.tasks "
                "WHERE partition_date = $day ORDER BY id",
                {"day": day},
            ).fetchall()
        }
        for table in ANALYTICS_TABLES:
            rows[table] = con.execute(
                f"SELECT * FROM warehouse.analytics.{table} WHERE partition_date = $day "
                "ORDER BY ALL",
                {"day": day},
            ).fetchall()
    return rows


@pytest.mark.slow  # many runs on a driven clock
def test_the_days_results_after_the_daily_run_are_those_without_live_refreshes(
    live: Live, tmp_path: Path
) -> None:
    # The day refreshed live while Topo's users work, then finalized.
    for hour in (10, 14, 18, 22):
        live.refresh(datetime(2026, 3, 10, hour, 0, tzinfo=UTC))
    tick = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)
    assert live.traffic is not None
    live.traffic.advance(tick)
    daily_run(live, tick)

    # A pipeline over the same Topo that never saw the day before its daily run.
    with fresh_instance() as instance:
        settings = Settings(
            base_url=live.settings.base_url,
            duckdb_path=tmp_path / "daily-only" / "pipeline.duckdb",
            analyst_duckdb_path=tmp_path / "daily-only" / "copy.duckdb",
            start_date=live.settings.start_date,
            requests_per_minute=None,
            assignees_path=live.settings.assignees_path,
        )
        daily_only = Live(live.api, settings, instance, clock=DrivenClock(tick))
        daily_only.load_directory()
        daily_run(daily_only, tick)

    live_rows = _day_rows(live.settings.duckdb_path, DAY)
    assert len(live_rows["topo.tasks"]) > 60  # the morning's tasks and the day's new ones
    assert live_rows == _day_rows(settings.duckdb_path, DAY)


def test_every_asset_of_the_refresh_job_runs_a_range_in_one_run(tmp_path: Path) -> None:
    """The live refresh's range (yesterday and today), the daily run's and the CLI's
    ``--partition-range`` need a single-run backfill policy on every selected asset."""
    defs = build_defs(settings_for(tmp_path))
    graph = defs.resolve_asset_graph()
    for key in REFRESH_SELECTION.resolve(graph):
        policy = graph.get(key).backfill_policy
        assert policy is not None, key
        assert policy.max_partitions_per_run is None, key
