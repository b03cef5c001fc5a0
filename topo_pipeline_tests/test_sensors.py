"""The sensors as scenario tables: stored data and a cursor in; exact requests and cursor out.

``open_tasks_sensor`` is tested through its pure planner and through the real sensor
reading a real analyst copy; ``analyst_copy_sensor`` through its planner and a real
Dagster instance (the full publish path is in ``test_analyst_copy.py``).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pytest

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.analyst_copy_sensor import (
    ANALYST_COPY_SENSOR_NAME,
    Materialization,
    plan_analyst_copy_publish,
)
from topo_pipeline.defs.assets.analyst_copy import PUBLISH_JOB_NAME
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.jobs import REFRESH_JOB_NAME
from topo_pipeline.defs.open_tasks_sensor import (
    OPEN_TASKS_SENSOR_NAME,
    OPEN_TASKS_TAG,
    OpenTaskPolicy,
    build_open_tasks_sensor,
    dump_open_tasks_cursor,
    load_open_tasks_cursor,
    plan_open_task_refresh,
)
from topo_pipeline.recovery import HOST_TAG, PROCESS_TAG, this_host
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import make_task
from topo_pipeline.warehouse.open_tasks import OpenTaskPartition
from topo_pipeline_tests.duckdb_holder import hold_duckdb
from topo_pipeline_tests.harness import fresh_instance
from topo_pipeline_tests.processes import killed_process_owner
from topo_pipeline_tests.warehouse_seed import seed_tasks

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
POLICY = OpenTaskPolicy(
    timezone="UTC",
    first_day=date(2025, 1, 1),
    max_age_days=30,  # window at NOW: 2025-02-18 .. 2025-03-19
    max_partitions_per_tick=2,
    min_interval=timedelta(minutes=60),
)


def d(month_day: str) -> date:
    return date.fromisoformat(f"2025-{month_day}")


def ago(hours: float | None) -> datetime | None:
    return None if hours is None else NOW - timedelta(hours=hours)


def stored(month_day: str, open_tasks: int, loaded_hours_ago: float | None) -> OpenTaskPartition:
    return OpenTaskPartition(d(month_day), open_tasks, ago(loaded_hours_ago))


# (stored days, cursor {day: hours since requested}, requested days, next cursor)
OPEN_TASK_SCENARIOS = {
    "nothing stored; an entry outside the window is dropped": (
        [],
        {"02-10": 100},
        [],
        {},
    ),
    "a day with open tasks, loaded hours ago, never requested": (
        [stored("03-19", 4, 12)],
        {},
        ["03-19"],
        {"03-19": 0},
    ),
    "requested 30 minutes ago: too soon": (
        [stored("03-19", 4, 12)],
        {"03-19": 0.5},
        [],
        {"03-19": 0.5},
    ),
    "loaded 30 minutes ago by another run (the schedule): too soon": (
        [stored("03-19", 4, 0.5)],
        {},
        [],
        {},
    ),
    "requested exactly the minimum interval ago: due again": (
        [stored("03-19", 4, 3)],
        {"03-19": 1},
        ["03-19"],
        {"03-19": 0},
    ),
    "older than the maximum age: ignored, and dropped from the cursor": (
        [stored("02-17", 4, 100)],
        {"02-17": 100},
        [],
        {},
    ),
    "the oldest day inside the maximum age": (
        [stored("02-18", 1, 100)],
        {},
        ["02-18"],
        {"02-18": 0},
    ),
    "today has not ended: never requested": (
        [stored("03-20", 4, 5)],
        {},
        [],
        {},
    ),
    "no open tasks left": (
        [stored("03-19", 0, 48)],
        {"03-19": 30},
        [],
        {"03-19": 30},
    ),
    "at most two per tick: stalest first, the newer day first on a tie": (
        [
            stored("03-10", 1, 48),
            stored("03-11", 1, 48),
            stored("03-12", 1, 5),  # requested 3 h ago: touched 3 h ago
            stored("03-13", 1, 30),
        ],
        {"03-12": 3},
        ["03-11", "03-10"],
        {"03-10": 0, "03-11": 0, "03-12": 3},
    ),
    "the deferred days come next tick, before the recently requested": (
        [
            stored("03-10", 1, 48),
            stored("03-11", 1, 48),
            stored("03-12", 1, 5),
            stored("03-13", 1, 30),
        ],
        {"03-10": 1.5, "03-11": 1.5, "03-12": 3},
        ["03-13", "03-12"],
        {"03-10": 1.5, "03-11": 1.5, "03-12": 0, "03-13": 0},
    ),
    "a day never loaded or requested goes first": (
        [stored("03-16", 2, 48), stored("03-15", 2, None)],
        {},
        ["03-15", "03-16"],
        {"03-15": 0, "03-16": 0},
    ),
}


@pytest.mark.parametrize(
    ("days", "cursor_hours", "requested", "next_cursor_hours"),
    list(OPEN_TASK_SCENARIOS.values()),
    ids=list(OPEN_TASK_SCENARIOS),
)
def test_open_task_planning(
    days: list[OpenTaskPartition],
    cursor_hours: dict[str, float],
    requested: list[str],
    next_cursor_hours: dict[str, float],
) -> None:
    cursor = {d(day): NOW - timedelta(hours=h) for day, h in cursor_hours.items()}
    plan = plan_open_task_refresh(days, cursor, NOW, POLICY)
    assert [p.partition_date for p in plan.requests] == [d(day) for day in requested]
    assert dict(plan.cursor) == {
        d(day): NOW - timedelta(hours=h) for day, h in next_cursor_hours.items()
    }


def test_open_task_planning_uses_the_partition_timezone() -> None:
    # 02:00 UTC on the 20th is 22:00 on the 19th in New York: the 19th has not ended.
    policy = OpenTaskPolicy("America/New_York", date(2025, 1, 1), 30, 5, timedelta(hours=1))
    now = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
    days = [stored("03-19", 3, 48), stored("03-18", 3, 48)]
    plan = plan_open_task_refresh(days, {}, now, policy)
    assert [p.partition_date for p in plan.requests] == [d("03-18")]
    assert policy.window(now) == (d("02-17"), d("03-18"))


def test_open_task_planning_never_goes_before_the_first_partition() -> None:
    policy = OpenTaskPolicy("UTC", d("03-15"), 30, 5, timedelta(hours=1))
    plan = plan_open_task_refresh([stored("03-14", 1, 48), stored("03-15", 1, 48)], {}, NOW, policy)
    assert [p.partition_date for p in plan.requests] == [d("03-15")]


@pytest.mark.parametrize(
    ("days", "cursor_hours", "reason"),
    [
        ([], {}, "no open tasks in the days 2025-02-18..2025-03-19"),
        (
            [stored("03-19", 4, 0.2)],
            {},
            "1 day(s) with open tasks were refreshed less than 1:00:00 ago",
        ),
        (
            [stored("03-17", 1, 9), stored("03-18", 1, 9), stored("03-19", 1, 9)],
            {},
            "1 more due day(s) deferred to later ticks",
        ),
        ([stored("03-19", 4, 9)], {}, ""),
    ],
)
def test_open_task_planning_explains_itself(
    days: list[OpenTaskPartition], cursor_hours: dict[str, float], reason: str
) -> None:
    assert plan_open_task_refresh(days, {}, NOW, POLICY).reason == reason


def test_cursor_round_trip_and_unreadable_cursors() -> None:
    cursor = {d("03-19"): NOW, d("03-01"): NOW - timedelta(hours=5)}
    text = dump_open_tasks_cursor(cursor)
    assert (
        text
        == '{"2025-03-01":"2025-03-20T07:00:00+00:00","2025-03-19":"2025-03-20T12:00:00+00:00"}'
    )
    assert load_open_tasks_cursor(text) == cursor
    for unreadable in ["not json", "[1, 2]", '{"yesterday": "noon"}', '{"2025-03-01": 5}']:
        assert load_open_tasks_cursor(unreadable) == {}
    assert load_open_tasks_cursor(None) == {}


# --- the real sensor over a real analyst copy ----------------------------------------


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        duckdb_path=tmp_path / "pipeline.duckdb",
        analyst_duckdb_path=tmp_path / "analyst.duckdb",
        start_date=date(2025, 1, 1),
    )


def tasks_on(day: str, *statuses: str) -> list[dict]:
    start = datetime.combine(d(day), time(9), UTC)
    return [
        make_task(created_at=start + timedelta(minutes=i), status=status)
        for i, status in enumerate(statuses)
    ]


@pytest.fixture(scope="module")
def seeded_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An analyst copy with open tasks on 03-16 and 03-18, none on 03-17, 02-01 too old."""
    path = tmp_path_factory.mktemp("seeded") / "analyst.duckdb"
    for tasks, loaded_hours_ago in [
        (tasks_on("03-18", "PENDING", "PENDING", "COMPLETED"), 5),
        (tasks_on("03-17", "COMPLETED", "SKIPPED"), 5),
        (tasks_on("03-16", "IN_PROGRESS"), 2),
        (tasks_on("02-01", "PENDING"), 900),
    ]:
        seed_tasks(path, tasks, loaded_at=ago(loaded_hours_ago), with_analytics=False)
    return path


@pytest.fixture
def copy_settings(seeded_copy: Path, tmp_path: Path) -> Settings:
    """Settings whose analyst copy is a copy of ``seeded_copy``."""
    settings = settings_for(tmp_path)
    shutil.copyfile(seeded_copy, settings.analyst_duckdb_path)
    return settings


def tick(settings: Settings, at: datetime, cursor: str | None, **kwargs: float) -> dg.SensorResult:
    sensor = build_open_tasks_sensor(settings, clock=lambda: at, **kwargs)
    # The code location resolves the job of partitioned run requests; its warehouse
    # resource names the analyst copy the sensor reads.
    defs = build_defs(settings)
    with dg.build_sensor_context(
        cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        return sensor.evaluate_tick(context)


def test_the_sensor_requests_days_with_open_tasks(copy_settings: Settings) -> None:
    data = tick(copy_settings, NOW, None)
    assert [(r.partition_key, r.run_key, r.tags[OPEN_TASKS_TAG]) for r in data.run_requests] == [
        ("2025-03-18", "open_tasks_sensor:2025-03-18:2025-03-20T12:00:00+00:00", "2"),
        ("2025-03-16", "open_tasks_sensor:2025-03-16:2025-03-20T12:00:00+00:00", "1"),
    ]
    assert json.loads(data.cursor) == {
        "2025-03-16": "2025-03-20T12:00:00+00:00",
        "2025-03-18": "2025-03-20T12:00:00+00:00",
    }

    # Ten minutes later: nothing is due; the cursor is kept.
    later = tick(copy_settings, NOW + timedelta(minutes=10), data.cursor)
    assert later.run_requests == []
    assert later.skip_message == "2 day(s) with open tasks were refreshed less than 1:00:00 ago"
    assert later.cursor == data.cursor

    # After the interval both are due again, with new run keys.
    again = tick(copy_settings, NOW + timedelta(minutes=61), later.cursor)
    assert [r.run_key for r in again.run_requests] == [
        "open_tasks_sensor:2025-03-18:2025-03-20T13:01:00+00:00",
        "open_tasks_sensor:2025-03-16:2025-03-20T13:01:00+00:00",
    ]


def test_without_an_analyst_copy_the_tick_is_skipped(tmp_path: Path) -> None:
    cursor = '{"2025-03-18":"2025-03-20T11:00:00+00:00"}'
    data = tick(settings_for(tmp_path), NOW, cursor)
    assert data.run_requests == []
    assert "not published yet" in data.skip_message
    assert data.cursor == cursor  # unchanged


def test_a_locked_analyst_copy_skips_the_tick_instead_of_failing(copy_settings: Settings) -> None:
    # Someone opened the copy read-write (it should be read-only), holding its lock.
    with hold_duckdb(copy_settings.analyst_duckdb_path, read_only=False):
        data = tick(copy_settings, NOW, None, read_lock_timeout=0.2)
    assert data.run_requests == []
    assert "stayed locked" in data.skip_message


def test_a_run_writing_the_pipeline_file_does_not_stop_the_sensor(
    copy_settings: Settings,
) -> None:
    # Another process holds the pipeline's file read-write, as a run does while writing.
    # The sensor never opens that file, so it neither waits for it nor blocks the writer.
    seed_tasks(copy_settings.duckdb_path, tasks_on("03-18", "PENDING"), loaded_at=ago(5))
    with hold_duckdb(copy_settings.duckdb_path, read_only=False):
        data = tick(copy_settings, NOW, None, read_lock_timeout=0.2)
    assert [r.partition_key for r in data.run_requests] == ["2025-03-18", "2025-03-16"]


def test_the_open_task_sensor_runs_the_refresh_job_and_is_on_by_default(tmp_path: Path) -> None:
    defs = build_defs(settings_for(tmp_path))
    sensor = defs.resolve_sensor_def(OPEN_TASKS_SENSOR_NAME)
    assert sensor.job_name == REFRESH_JOB_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 300


# --- analyst copy sensor --------------------------------------------------------------


def M(storage_id: int, run_id: str, minutes_ago: float = 1) -> Materialization:
    return Materialization(storage_id, run_id, (NOW - timedelta(minutes=minutes_ago)).timestamp())


# (cursor, materializations seen, unfinished runs, publish?, next cursor, run key)
PUBLISH_SCENARIOS = {
    "nothing materialized yet": (None, [], set(), False, None, None),
    "first tick after a finished run": (None, [M(5, "a")], set(), True, 5, "analyst_copy:5"),
    "the run that wrote is still going": (5, [M(7, "b"), M(9, "b")], {"b"}, False, 5, None),
    "two runs wrote, both finished: one publish": (
        5,
        [M(7, "b"), M(9, "c"), M(8, "b")],
        set(),
        True,
        9,
        "analyst_copy:9",
    ),
    "one of two runs still going: wait for both": (
        5,
        [M(7, "b"), M(8, "c")],
        {"c"},
        False,
        5,
        None,
    ),
    "nothing after the cursor": (9, [M(9, "c"), M(4, "a")], set(), False, 9, None),
    "an event reported outside any run": (9, [M(12, "")], set(), True, 12, "analyst_copy:12"),
    "a run unfinished 59 minutes after writing: still waiting": (
        5,
        [M(7, "b", minutes_ago=59)],
        {"b"},
        False,
        5,
        None,
    ),
    "a run unfinished an hour after writing (stuck): publish anyway": (
        5,
        [M(7, "b", minutes_ago=60), M(8, "c")],
        {"b"},
        True,
        8,
        "analyst_copy:8",
    ),
}


@pytest.mark.parametrize(
    ("cursor", "seen", "unfinished", "publish", "next_cursor", "run_key"),
    list(PUBLISH_SCENARIOS.values()),
    ids=list(PUBLISH_SCENARIOS),
)
def test_analyst_copy_publish_planning(
    cursor: int | None,
    seen: list[Materialization],
    unfinished: set[str],
    publish: bool,
    next_cursor: int | None,
    run_key: str | None,
) -> None:
    plan = plan_analyst_copy_publish(cursor, seen, unfinished, NOW)
    assert (plan.publish, plan.cursor, plan.run_key) == (publish, next_cursor, run_key)


# (materializations seen, unfinished runs among them, queued or running runs, publish?)
COMING_RUN_SCENARIOS = {
    "a burst: more runs queued after a finished one": ([M(7, "b")], set(), {"c", "d"}, False),
    "the queued runs are the ones that wrote": ([M(7, "b")], {"b"}, {"b"}, False),
    "nothing queued any more: publish the burst once": (
        [M(7, "b"), M(8, "c")],
        set(),
        set(),
        True,
    ),
    "queue busy for an hour since the first change: publish anyway": (
        [M(7, "b", minutes_ago=61)],
        set(),
        {"c"},
        True,
    ),
    "queued runs but nothing new to publish": ([], set(), {"c"}, False),
}


@pytest.mark.parametrize(
    ("seen", "unfinished", "coming", "publish"),
    list(COMING_RUN_SCENARIOS.values()),
    ids=list(COMING_RUN_SCENARIOS),
)
def test_analyst_copy_publish_waits_for_queued_and_running_runs(
    seen: list[Materialization], unfinished: set[str], coming: set[str], publish: bool
) -> None:
    plan = plan_analyst_copy_publish(5, seen, unfinished, NOW, coming_run_ids=coming)
    assert plan.publish is publish
    assert plan.cursor == (max(m.storage_id for m in seen) if publish else 5)
    if not publish and seen:
        assert all(run in plan.reason for run in sorted(coming | unfinished))


def add_run(
    instance: dg.DagsterInstance,
    *,
    job_name: str,
    status: dg.DagsterRunStatus,
    asset_selection: frozenset[dg.AssetKey],
    tags: dict[str, str] | None = None,
) -> dg.DagsterRun:
    """A run record in ``instance`` as a launcher leaves it, without executing anything."""
    return instance.add_run(
        dg.DagsterRun(
            job_name=job_name, status=status, asset_selection=asset_selection, tags=tags or {}
        )
    )


def test_the_analyst_copy_sensor_reacts_to_materializations_in_the_instance(
    tmp_path: Path,
) -> None:
    defs = build_defs(settings_for(tmp_path))
    sensor = defs.resolve_sensor_def(ANALYST_COPY_SENSOR_NAME)
    assert sensor.job_name == PUBLISH_JOB_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with fresh_instance() as instance:

        def evaluate(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
            return sensor.evaluate_tick(context)

        idle = evaluate(None)
        assert idle.run_requests == []
        assert idle.skip_message == "no topo/analytics materialization yet"

        # A materialization recorded outside any run (e.g. reported by hand) counts.
        instance.report_runless_asset_event(dg.AssetMaterialization(TASKS_KEY, partition="x"))
        first = evaluate(None)
        (request,) = first.run_requests
        assert request.run_key == f"analyst_copy:{first.cursor}"
        assert evaluate(first.cursor).run_requests == []

        # Other assets do not trigger a publish.
        instance.report_runless_asset_event(dg.AssetMaterialization("something_else"))
        assert evaluate(first.cursor).run_requests == []

        instance.report_runless_asset_event(dg.AssetMaterialization(TASKS_KEY, partition="y"))
        # A running refresh (it has not written yet) will change tables soon: wait for it.
        running = add_run(
            instance,
            job_name=REFRESH_JOB_NAME,
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({TASKS_KEY}),
        )
        held = evaluate(first.cursor)
        assert held.run_requests == []
        assert running.run_id in (held.skip_message or "")
        # Once it ended, a running run of an unrelated job does not hold the copy back.
        instance.report_run_canceled(running)
        add_run(
            instance,
            job_name="other_job",
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({dg.AssetKey("something_else")}),
        )
        # A refresh whose process was killed never finishes by itself: it does not count.
        dead = killed_process_owner()
        add_run(
            instance,
            job_name=REFRESH_JOB_NAME,
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({TASKS_KEY}),
            tags={HOST_TAG: this_host(), PROCESS_TAG: dead.token()},
        )
        second = evaluate(first.cursor)
        assert len(second.run_requests) == 1
        assert int(second.cursor) > int(first.cursor)
