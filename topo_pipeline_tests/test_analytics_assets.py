"""The ``analytics/*`` assets end to end: Dagster runs against the simulated API over HTTP.

Each test materializes the real assets of :func:`build_defs` with ``dg.materialize`` (range
runs of ``topo/tasks`` through Dagster's partition-range run tags, as the UI and the CLI
launch them; the analytics are unpartitioned), then compares every analytics table with
rows computed independently in plain Python (``analytics_oracle``) from the tasks landed.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.definitions import PLANNED_EVENTS_ENV, build_defs
from topo_pipeline.defs.assets import analytics as analytics_assets
from topo_pipeline.defs.assets.analyst_copy import PUBLISH_JOB_NAME
from topo_pipeline.defs.assets.analytics import ANALYTICS_KEYS, OP_NAME, TASK_SLA_KEY
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.jobs import partition_range_tags
from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
    make_task,
    move_on,
)
from topo_pipeline.warehouse.analytics import (
    ANALYTICS_TABLES,
    DEFAULT_SLA_TARGET_MINUTES,
    ROLLUP_TABLES,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.analytics_oracle import (
    Task,
    assert_rows_match,
    expected_tables,
    guide_queries,
    promised_columns,
    ratio,
    read_table,
    row_key,
    table_columns,
    task_from_api,
)
from topo_pipeline_tests.harness import SimulatedPipeline, file_after_run, fresh_instance

ZONE = "America/New_York"  # partition days are not UTC days
START = date(2026, 3, 2)
DAYS = [START + timedelta(days=i) for i in range(4)]
# The simulated present is the evening of the last day, so recent tasks are still open,
# some within their SLA and some past it; day 2 has no tasks at all.
PRESENT = datetime(2026, 3, 5, 18, 0, tzinfo=ZoneInfo(ZONE))
SPEC = DatasetSpec(
    seed=23,
    start_date=START,
    days=4,
    tasks_per_day=[160, 0, 120, 90],
    timezone=ZONE,
    as_of=PRESENT,
    tie_group_size=0,
)
AS_OF = "2026-03-05T23:30:00Z"  # run config: half an hour after the simulated present


class Pipeline(SimulatedPipeline):
    """The pipeline of one test: runs of ``topo/tasks`` and the analytics, and reads."""

    def materialize(
        self,
        first: date,
        last: date | None = None,
        *,
        tables: Sequence[str] | None = ANALYTICS_TABLES,
        tasks: bool = True,
        as_of: str | None = None,
        settings: Settings | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """One run: ``topo/tasks`` over the days ``first..last`` and/or analytics ``tables``
        (unpartitioned: rebuilt whole)."""
        defs = build_defs(settings or self.settings)
        selection = ([TASKS_KEY] if tasks else []) + [ANALYTICS_KEYS[t] for t in tables or ()]
        config = {"as_of": as_of} if as_of is not None else {}
        return dg.materialize(
            [defs.get_assets_def(TASKS_KEY), defs.get_assets_def(TASK_SLA_KEY)],
            selection=selection,
            resources=defs.resources,
            instance=self.instance,
            run_config={"ops": {OP_NAME: {"config": config}}} if tables else None,
            tags=partition_range_tags(first.isoformat(), (last or first).isoformat())
            if tasks
            else None,
            raise_on_error=raise_on_error,
        )

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every analytics table, read back from the pipeline's file, in key order."""
        with connect(self.settings.duckdb_path, read_only=True) as con:
            return {
                table: sorted(read_table(con, table), key=lambda row, t=table: row_key(row, t))
                for table in ANALYTICS_TABLES
            }

    def columns(self) -> dict[str, list[str]]:
        with connect(self.settings.duckdb_path, read_only=True) as con:
            return {table: table_columns(con, table) for table in ANALYTICS_TABLES}

    def served(self, days: Sequence[date] = DAYS) -> list[Task]:
        """The simulator's tasks created on ``days``, as the oracle's :class:`Task`."""
        tasks = [task_from_api(task, self.settings.timezone) for task in self.store.all()]
        return [task for task in tasks if task.partition_date in days]


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(pipeline_factory: Callable[..., Pipeline]) -> PipelineFactory:
    return lambda spec, **options: pipeline_factory(spec, Pipeline, **options)


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Pipeline:
    return make_pipeline(SPEC)


@pytest.fixture(scope="module")
def range_run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's file after one range run of DAYS at AS_OF (tasks and every table)."""
    return file_after_run(
        tmp_path_factory.mktemp("range-run"),
        SPEC,
        Pipeline,
        lambda pipeline: pipeline.materialize(DAYS[0], DAYS[-1], as_of=AS_OF),
    )


@pytest.fixture
def landed(pipeline: Pipeline, range_run_file: Path) -> Pipeline:
    """``pipeline`` after the range run of DAYS at AS_OF: its file a copy of the module's.

    Only the file: the pipeline's instance has no record of that run.
    """
    shutil.copyfile(range_run_file, pipeline.settings.duckdb_path)
    return pipeline


def assert_tables_match(
    actual: Mapping[str, Sequence[Mapping[str, Any]]],
    expected: Mapping[str, Sequence[Mapping[str, Any]]],
    columns: Mapping[str, Sequence[str]],
    days: Sequence[date] = DAYS,
    tables: Sequence[str] = ANALYTICS_TABLES,
) -> None:
    """Each of ``tables`` holds exactly the expected rows of ``days``, column by column."""
    for table in tables:
        rows = [row for row in actual[table] if row["partition_date"] in days]
        want = [row for row in expected[table] if row["partition_date"] in days]
        assert_rows_match(rows, want, table, columns[table])


def materializations(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dict[str, dg.MetadataValue]]:
    """Metadata of each ``(asset key, partition)`` materialization of the run."""
    events = (
        e.event_specific_data.materialization  # type: ignore[union-attr]
        for e in result.get_asset_materialization_events()
    )
    return {
        (event.asset_key.to_user_string(), event.partition): dict(event.metadata)
        for event in events
    }


def day_rows(rows: Sequence[Mapping[str, Any]], day: date) -> list[Mapping[str, Any]]:
    return [row for row in rows if row["partition_date"] == day]


def _headline(rows: Sequence[Mapping[str, Any]], priority: str | None = None) -> dict[str, Any]:
    """A day's headline numbers from the oracle's task rows (optionally of one priority)."""
    mine = [r for r in rows if priority is None or r["priority"] == priority]
    verdicts = [r["sla_status"] for r in mine]
    met, breached = verdicts.count("MET"), verdicts.count("BREACHED")
    completed = [r["status"] for r in mine].count("COMPLETED")
    return {
        "tasks": len(mine),
        "met": met,
        "breached": breached,
        "sla_attainment": ratio(met, met + breached),
        "completion_rate": ratio(completed, len(mine)),
    }


def assert_headline_metadata(
    metadata: Mapping[tuple[str, str | None], Mapping[str, dg.MetadataValue]],
    task_sla: Sequence[Mapping[str, Any]],
) -> None:
    """Each table's headline numbers are its latest day's, as plottable numbers; its
    overview lists every day."""
    latest = DAYS[-1]
    rows = day_rows(task_sla, latest)
    whole, hot = _headline(rows), _headline(rows, "HOT")
    sla = metadata[("analytics/task_sla", None)]
    by_priority = metadata[("analytics/sla_by_priority", None)]
    completion = metadata[("analytics/completion_rate_by_priority", None)]
    by_assignee = metadata[("analytics/completion_rate_by_assignee", None)]
    assert sla["tasks"].value == whole["tasks"]
    assert (sla["met"].value, sla["breached"].value) == (whole["met"], whole["breached"])
    assert by_assignee["unassigned_tasks"].value == sum(r["assignee_user_id"] is None for r in rows)
    pairs = [
        (sla, "sla_attainment", whole["sla_attainment"]),
        (by_priority, "hot_sla_attainment", hot["sla_attainment"]),
        (completion, "completion_rate", whole["completion_rate"]),
        (completion, "hot_completion_rate", hot["completion_rate"]),
    ]
    for values, name, want in pairs:
        if want is None:  # an undefined rate is left out, not sent as null
            assert name not in values, name
        else:
            assert isinstance(values[name], dg.FloatMetadataValue), name
            assert values[name].value == pytest.approx(want), name
    for table in ANALYTICS_TABLES:
        values = metadata[(f"analytics/{table}", None)]
        assert values["latest_day"].value == latest.isoformat()
        assert isinstance(values["dagster/row_count"], dg.IntMetadataValue)
        overview = values["per_day"].value
        assert overview.startswith("| partition | rows |")
        # Day 2 has no tasks: no rows, so no line; every other day has one.
        assert all(f"| {day} |" in overview for day in DAYS if day != DAYS[1])


# -- a range run --------------------------------------------------------------------------


def test_a_range_run_builds_every_table_and_its_metadata(pipeline: Pipeline) -> None:
    result = pipeline.materialize(DAYS[0], DAYS[-1], as_of=AS_OF)

    as_of = parse_timestamp(AS_OF)
    tasks = pipeline.served()
    expected = expected_tables(tasks, as_of, DEFAULT_SLA_TARGET_MINUTES)
    columns = pipeline.columns()
    assert_tables_match(pipeline.tables(), expected, columns)
    # The data set exercises every verdict and both kinds of groups that need care.
    verdicts = {row["sla_status"] for row in expected["task_sla"]}
    assert verdicts == {"MET", "BREACHED", "OPEN", "SKIPPED"}
    assert any(t.assignee_user_id is None for t in tasks)
    assert any(t.reopened_at is not None and t.status != "COMPLETED" for t in tasks)
    assert not day_rows(expected["task_sla"], DAYS[1]), "day 2 is an empty partition"

    # One run, two steps: topo/tasks, then every analytics table together. topo/tasks has a
    # materialization per day; each analytics table one for the run.
    assert len(result.get_step_success_events()) == 2
    metadata = materializations(result)
    assert set(metadata) == {(TASKS_KEY.to_user_string(), day.isoformat()) for day in DAYS} | {
        (key.to_user_string(), None) for key in ANALYTICS_KEYS.values()
    }
    for table in ANALYTICS_TABLES:
        values = metadata[(f"analytics/{table}", None)]
        assert values["dagster/row_count"].value == len(expected[table])
        assert values["dagster/table_name"].value == f"analytics.{table}"
        assert values["days"].value == len(DAYS) - 1  # day 2 holds no task
        schema = values["dagster/column_schema"]
        assert [c.name for c in schema.value.columns] == columns[table]
        assert all(c.description for c in schema.value.columns)
    assert_headline_metadata(metadata, expected["task_sla"])


# -- as_of and SLA targets -------------------------------------------------------------------


def test_as_of_from_run_config_is_honoured_and_reproducible(landed: Pipeline) -> None:
    first = landed.tables()
    # The same as_of written with another offset is the same instant: identical tables.
    result = landed.materialize(DAYS[0], DAYS[-1], tasks=False, as_of="2026-03-05T18:30:00-05:00")
    assert landed.tables() == first
    assert {row["as_of"] for row in first["task_sla"]} == {parse_timestamp(AS_OF)}
    sla_metadata = materializations(result)[("analytics/sla_by_priority", None)]
    assert sla_metadata["as_of"].value == parse_timestamp(AS_OF).timestamp()

    # A later as_of judges more open tasks overdue, exactly as the rules say.
    later = "2026-03-07T12:00:00Z"
    landed.materialize(DAYS[0], DAYS[-1], tasks=False, as_of=later)
    expected = expected_tables(landed.served(), parse_timestamp(later), DEFAULT_SLA_TARGET_MINUTES)
    assert_tables_match(landed.tables(), expected, landed.columns())
    before = {row["id"]: row["sla_status"] for row in first["task_sla"]}
    after = {row["id"]: row["sla_status"] for row in expected["task_sla"]}
    assert any(before[i] == "OPEN" and after[i] == "BREACHED" for i in before)

    # Without config, as_of is when the run evaluated the SLA.
    started = datetime.now(UTC)
    landed.materialize(DAYS[2], tasks=False)
    finished = datetime.now(UTC)
    stamps = {row["as_of"] for row in day_rows(landed.tables()["task_sla"], DAYS[2])}
    assert len(stamps) == 1
    assert started <= stamps.pop() <= finished


def test_a_bad_as_of_fails_the_run_and_keeps_the_tables(landed: Pipeline) -> None:
    before = landed.tables()

    for bad in ("2026-03-05T23:30:00", "2026-03-05", "yesterday"):
        result = landed.materialize(DAYS[0], tasks=False, as_of=bad, raise_on_error=False)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
        assert repr(bad) in message
        assert "UTC offset" in message
    assert landed.tables() == before


def test_sla_targets_from_the_environment_reach_tables_and_metadata(pipeline: Pipeline) -> None:
    settings = Settings.from_env(
        {
            "TOPO_API_BASE_URL": pipeline.settings.base_url,
            "TOPO_DUCKDB_PATH": str(pipeline.settings.duckdb_path),
            "TOPO_ANALYST_DUCKDB_PATH": str(pipeline.settings.analyst_duckdb_path),
            "TOPO_START_DATE": pipeline.settings.start_date.isoformat(),
            "TOPO_TIMEZONE": ZONE,
            "TOPO_API_REQUESTS_PER_MINUTE": "0",
            "TOPO_SLA_HOT_MINUTES": "20",
            "TOPO_SLA_TODAY_MINUTES": "300",
            "TOPO_SLA_EXTRA_MINUTES": "7000",
        }
    )
    targets = {"HOT": 20, "TODAY": 300, "EXTRA": 7000}
    assert dict(settings.sla_target_minutes) == targets

    result = pipeline.materialize(DAYS[0], DAYS[-1], as_of=AS_OF, settings=settings)

    tasks = pipeline.served()
    expected = expected_tables(tasks, parse_timestamp(AS_OF), targets)
    assert_tables_match(pipeline.tables(), expected, pipeline.columns())
    assert {row["sla_target_minutes"] for row in pipeline.tables()["task_sla"]} == {20, 300, 7000}
    # The targets change verdicts: some task is judged differently than under the defaults.
    defaults = expected_tables(tasks, parse_timestamp(AS_OF), DEFAULT_SLA_TARGET_MINUTES)
    assert expected["task_sla"] != defaults["task_sla"]

    metadata = materializations(result)
    for table in ("task_sla", "sla_by_priority", "sla_by_assignee"):
        values = metadata[(f"analytics/{table}", None)]
        assert values["sla_target_minutes"].value == targets
        assert values["as_of"].value == parse_timestamp(AS_OF).timestamp()
    spec = build_defs(settings).get_assets_def(TASK_SLA_KEY).specs_by_key[TASK_SLA_KEY]
    assert "HOT 20, TODAY 300, EXTRA 7000" in (spec.description or "")


# -- re-materializing one day --------------------------------------------------------------


def test_a_refetched_day_reaches_the_tables_and_every_day_is_judged_again(
    landed: Pipeline,
) -> None:
    before = landed.tables()
    as_landed = landed.served()

    # Day 3 moves on in Topo: a task gets completed, one skipped, one unassigned, one is
    # deleted. A change on day 1 must not show up: that day is not fetched again.
    day3 = sorted(
        (t for t in landed.store.all() if task_from_api(t, ZONE).partition_date == DAYS[2]),
        key=lambda t: t["id"],
    )
    open_tasks = [t for t in day3 if t["status"] in ("PENDING", "IN_PROGRESS")]
    done = [t for t in day3 if t["status"] == "COMPLETED"]
    now = "2026-03-06T15:00:00Z"
    landed.store.upsert(
        {**open_tasks[0], "status": "COMPLETED", "completed_at": now, "updated_at": now}
    )
    landed.store.upsert(
        {**open_tasks[1], "status": "SKIPPED", "skipped_at": now, "updated_at": now}
    )
    landed.store.upsert({**done[0], "assignee_user_id": None, "updated_at": now})
    assert landed.store.delete(done[1]["id"])
    day1_task = next(
        t for t in landed.store.all() if task_from_api(t, ZONE).partition_date == DAYS[0]
    )
    landed.store.upsert({**day1_task, "status": "SKIPPED", "skipped_at": now})

    # topo/tasks alone first: the analytics keep their rows until they are rebuilt.
    landed.materialize(DAYS[2], tables=None)
    assert landed.tables() == before

    later = "2026-03-06T16:00:00Z"
    landed.materialize(DAYS[2], tasks=False, as_of=later)

    # Every day is rebuilt at the new as_of: day 3 from its new tasks, the others from
    # the tasks landed before.
    in_file = [t for t in as_landed if t.partition_date != DAYS[2]] + landed.served([DAYS[2]])
    expected = expected_tables(in_file, parse_timestamp(later), DEFAULT_SLA_TARGET_MINUTES)
    after = landed.tables()
    assert_tables_match(after, expected, landed.columns())
    rows = {row["id"]: row for row in after["task_sla"]}
    assert rows[open_tasks[0]["id"]]["status"] == "COMPLETED"
    assert rows[open_tasks[1]["id"]]["sla_status"] == "SKIPPED"
    assert rows[done[0]["id"]]["assignee_user_id"] is None
    assert done[1]["id"] not in rows
    assert rows[day1_task["id"]]["status"] == day1_task["status"]


# -- selecting some of them -----------------------------------------------------------------


def test_a_table_that_fails_fails_the_step_after_the_tables_before_it_and_builds_none_after(
    landed: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = landed.tables()
    failing = ROLLUP_TABLES[2]
    built_before, left_after = ANALYTICS_TABLES[:3], ANALYTICS_TABLES[3:]
    assert ANALYTICS_TABLES[3] == failing
    real = analytics_assets.replace_rollup

    def replace_rollup(con: duckdb.DuckDBPyConnection, table: str, days: Any) -> int:
        if table == failing:
            raise duckdb.IOException(f"disk full while writing {table}")
        return real(con, table, days)

    # The step looks replace_rollup up in its module's namespace when it runs.
    monkeypatch.setattr(analytics_assets, "replace_rollup", replace_rollup)
    later = "2026-03-07T12:00:00Z"
    result = landed.materialize(DAYS[0], tasks=False, as_of=later, raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert f"disk full while writing {failing}" in str(failure.step_failure_data.error)
    # The tables built before the failure are in the file and materialized; the failing
    # one and those after it keep their rows and have no materialization from this run.
    after = landed.tables()
    expected = expected_tables(landed.served(), parse_timestamp(later), DEFAULT_SLA_TARGET_MINUTES)
    assert_tables_match(after, expected, landed.columns(), tables=built_before)
    assert {t: after[t] for t in left_after} == {t: before[t] for t in left_after}
    assert {key for key, _ in materializations(result)} == {
        f"analytics/{table}" for table in built_before
    }


def test_one_rollup_can_be_rebuilt_alone(landed: Pipeline) -> None:
    before = landed.tables()
    with connect(landed.settings.duckdb_path) as con:
        con.execute("DELETE FROM warehouse.analytics.sla_by_priority")

    result = landed.materialize(DAYS[0], tasks=False, tables=["sla_by_priority"])

    after = landed.tables()
    assert after["task_sla"] == before["task_sla"]  # not selected, not touched
    assert after["sla_by_priority"] == before["sla_by_priority"]
    (key,) = {key for key, _ in materializations(result)}
    assert key == "analytics/sla_by_priority"
    values = materializations(result)[(key, None)]
    # Its as_of is the evaluation it was built from, not the time of this run.
    assert values["as_of"].value == parse_timestamp(AS_OF).timestamp()
    assert "sla_target_minutes" not in values


def test_analytics_before_any_tasks_are_empty_tables(make_pipeline: PipelineFactory) -> None:
    pipeline = make_pipeline(SPEC, new_file=True)  # a new deployment: no file yet
    result = pipeline.materialize(DAYS[0], tasks=False)
    assert result.success
    assert all(rows == [] for rows in pipeline.tables().values())
    values = materializations(result)[("analytics/task_sla", None)]
    assert values["dagster/row_count"].value == 0
    assert "latest_day" not in values


def test_the_code_location_defines_an_asset_per_analytics_table(tmp_path: Path) -> None:
    defs = build_defs(Settings(duckdb_path=tmp_path / "pipeline.duckdb"))
    tasks_def = defs.get_assets_def(TASKS_KEY)
    analytics_def = defs.get_assets_def(TASK_SLA_KEY)
    assert set(analytics_def.keys) == set(ANALYTICS_KEYS.values())
    assert analytics_def.can_subset
    assert tasks_def.partitions_def is not None
    assert analytics_def.partitions_def is None  # rebuilt whole: no event per day
    assert analytics_def.backfill_policy == dg.BackfillPolicy.single_run()
    assert analytics_def.op.pool == "duckdb"
    graph = defs.resolve_asset_graph()
    for table, key in ANALYTICS_KEYS.items():
        spec = analytics_def.specs_by_key[key]
        assert spec.group_name == "analytics"
        assert spec.kinds == {"duckdb"}
        assert spec.metadata["dagster/table_name"] == f"analytics.{table}"
        upstream = {TASKS_KEY if table == "task_sla" else TASK_SLA_KEY}
        if table.endswith(("_by_assignee", "_by_team")):
            upstream.add(ASSIGNEES_KEY)
        assert graph.get(key).parent_keys == upstream
    assert set(ROLLUP_TABLES) | {"task_sla"} == set(ANALYTICS_TABLES)


# -- the analyst guide on a demo-like data set --------------------------------------------


@dataclass(frozen=True)
class DemoDatabase:
    """A materialized pipeline file, and the tasks the simulator served for it."""

    path: Path
    tasks: list[Task]


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> DemoDatabase:
    """A database materialized like ``make demo`` does: the last complete days up to now.

    Smaller days than the demo's, so the test stays quick. The path is the published
    analyst copy (the pipeline's file is named like it too, which must not matter), so
    analysts' unqualified ``topo.tasks`` and ``analytics.*`` names resolve as they do there.
    Besides the seeded data set, Topo "added" a priority the pipeline has
    no SLA target for, as real data will one day.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    spec = DatasetSpec(
        seed=5,
        start_date=today - timedelta(days=13),
        days=14,
        tasks_per_day=[50] * 14,
        as_of=now,
        tie_group_size=0,
    )
    data = generate_dataset(spec)
    yesterday = today - timedelta(days=1)
    # On a day the refresh below does not fetch again, so the simulated users' work (which
    # depends on the date) cannot complete, skip or delete it.
    surprise_day = yesterday - timedelta(days=4)
    surprise = make_task(
        priority="CRITICAL", status="PENDING", created_at=f"{surprise_day}T09:00:00Z"
    )
    path = tmp_path_factory.mktemp("demo") / "topo_analytics.duckdb"
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        SimulatedTopoApi(TaskStore([*data.tasks, surprise], data.sequence_templates)) as api,
        fresh_instance() as instance,
    ):
        monkeypatch.setenv(API_KEY_ENV, DEMO_API_KEY)
        settings = Settings(
            base_url=api.base_url,
            duckdb_path=path,
            analyst_duckdb_path=path.parent / "published" / "topo_analytics.duckdb",
            start_date=spec.start_date,
            requests_per_minute=None,
        )
        pipeline = Pipeline(api, settings, instance)
        # One as_of for both runs, so every day's SLA is judged at the same instant.
        pipeline.materialize(spec.start_date, yesterday, as_of=now.isoformat())
        # Later that day Topo's users work the recent tasks, and the daily refresh fetches
        # the last days again: topo.task_history gets their new versions.
        refreshed = yesterday - timedelta(days=2)
        activity = move_on(
            pipeline.store, created_from=datetime.combine(refreshed, time(), UTC), now=now
        )
        assert activity.completed
        assert activity.reassigned
        assert activity.deleted
        pipeline.materialize(refreshed, yesterday, as_of=now.isoformat())
        publish = build_defs(settings).resolve_job_def(PUBLISH_JOB_NAME)
        assert publish.execute_in_process(instance=instance).success
        days = [spec.start_date + timedelta(days=i) for i in range(13)]
        return DemoDatabase(settings.analyst_duckdb_path, pipeline.served(days))


def _run(path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute(sql)
        return [column[0] for column in cursor.description], cursor.fetchall()


@pytest.mark.parametrize("index", range(len(guide_queries())))
def test_every_guide_query_runs_on_the_demo_database(
    demo_database: DemoDatabase, index: int
) -> None:
    sql = guide_queries()[index]
    columns = promised_columns(sql)
    assert columns, f"query {index} declares no '-- columns:' line"
    names, rows = _run(demo_database.path, sql)
    assert names == columns
    assert rows, f"query {index} returns nothing on demo data:\n{sql}"


def test_guide_numbers_agree_with_the_rules_on_demo_data(demo_database: DemoDatabase) -> None:
    with duckdb.connect(str(demo_database.path), read_only=True) as con:
        cursor = con.execute("SELECT * FROM analytics.task_sla")
        names = [column[0] for column in cursor.description]
        task_sla = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        ((as_of,),) = con.execute("SELECT DISTINCT as_of FROM analytics.task_sla").fetchall()
    expected = expected_tables(demo_database.tasks, as_of, DEFAULT_SLA_TARGET_MINUTES)["task_sla"]
    assert_rows_match(task_sla, expected, "task_sla", names)
    assert {row["sla_status"] for row in task_sla} >= {"MET", "BREACHED", "OPEN", "UNKNOWN"}

    (sql,) = [q for q in guide_queries() if "HOT SLA attainment per assignee" in q]
    _, rows = _run(demo_database.path, sql)
    today = datetime.now().astimezone().date()  # the session's current_date
    recent = [
        r
        for r in expected
        if r["priority"] == "HOT" and r["partition_date"] > today - timedelta(30)
    ]
    for assignee, _name, tasks_count, met, breached, attainment in rows:
        mine = [r["sla_status"] for r in recent if r["assignee_user_id"] == assignee]
        assert (tasks_count, met, breached) == (
            len(mine),
            mine.count("MET"),
            mine.count("BREACHED"),
        )
        assert attainment == pytest.approx(ratio(met, met + breached))
    assert {row[0] for row in rows} == {r["assignee_user_id"] for r in recent}

    (sql,) = [q for q in guide_queries() if "per week of creation" in q]
    _, rows = _run(demo_database.path, sql)
    assert len(rows) >= 2
    assert any(row[4] is not None for row in rows), "two weeks give a week-over-week change"


# -- what a range run asks of Dagster ------------------------------------------------------


def test_a_range_run_writes_about_two_events_per_day(make_pipeline: PipelineFactory) -> None:
    """Events grow with the days of topo/tasks only (a materialization per day; the planned
    events are one per asset, as loading the code location sets); the analytics and the
    analyst copy add a constant, whatever the range."""
    assert os.environ[PLANNED_EVENTS_ENV] == "1"

    def events_of(days: int) -> int:
        spec = DatasetSpec(seed=3, start_date=START, days=days, tasks_per_day=[5] * days)
        pipeline = make_pipeline(spec)
        defs = build_defs(pipeline.settings)
        result = dg.materialize(
            [*defs.assets],
            selection=dg.AssetSelection.assets(TASKS_KEY).downstream(),
            resources=defs.resources,
            instance=pipeline.instance,
            tags=partition_range_tags(START.isoformat(), (START + timedelta(days - 1)).isoformat()),
        )
        assert result.success
        return len(pipeline.instance.all_logs(result.run_id))

    short, long = events_of(3), events_of(23)
    assert long - short <= 2 * 20
    # Not only fewer: exactly one materialization a day of topo/tasks more.
    assert long - short == 20


# -- which settings built the tables --------------------------------------------------------


def test_each_build_records_its_settings_and_a_change_is_logged(landed: Pipeline) -> None:
    landed.materialize(DAYS[0], tasks=False, as_of=AS_OF)
    changed = landed.settings.model_copy(update={"sla_hot_minutes": 30})
    result = landed.materialize(DAYS[0], tasks=False, as_of=AS_OF, settings=changed)

    with connect(landed.settings.duckdb_path, read_only=True) as con:
        builds = con.execute(
            "SELECT partition_timezone, sla_target_minutes['HOT'], business_hours, tables "
            "FROM warehouse.analytics.builds ORDER BY built_at"
        ).fetchall()
        targets = {
            row[0]
            for row in con.execute(
                "SELECT DISTINCT sla_target_minutes FROM warehouse.analytics.task_sla "
                "WHERE priority = 'HOT'"
            ).fetchall()
        }
    # The module's range run, then the two builds here: the latest row is what the tables hold.
    assert [(zone, hot) for zone, hot, _, _ in builds[-2:]] == [(ZONE, 60), (ZONE, 30)]
    assert builds[-1][2] is None  # no business hours configured
    assert builds[-1][3] == list(ANALYTICS_TABLES)
    assert targets == {30}
    logged = [
        entry.user_message
        for entry in landed.instance.all_logs(result.run_id)
        if entry.dagster_event is None and entry.level >= logging.WARNING
    ]
    assert any("SLA targets HOT 60, TODAY 1440, EXTRA 4320 -> HOT 30" in m for m in logged), logged


def test_a_new_time_zone_is_logged_with_how_to_land_the_days_again(landed: Pipeline) -> None:
    landed.materialize(DAYS[0], tasks=False, as_of=AS_OF)
    berlin = landed.settings.model_copy(update={"timezone": "Europe/Berlin"})
    result = landed.materialize(DAYS[0], tasks=False, as_of=AS_OF, settings=berlin)
    logged = [
        entry.user_message
        for entry in landed.instance.all_logs(result.run_id)
        if entry.dagster_event is None and entry.level >= logging.WARNING
    ]
    (message,) = [m for m in logged if "TOPO_TIMEZONE" in m]
    assert f"TOPO_TIMEZONE {ZONE} -> Europe/Berlin" in message
    assert "--partition-range" in message
