"""The analytics tables against a hand-built set of tasks, on real DuckDB files.

The expected rows are computed in plain Python, straight from SPEC.md's rules, by
``analytics_oracle`` (shared with the asset tests), and compared with every column of every
table. ``EXPECTED_SLA_STATUS`` additionally spells out, task by task,
which branch each hand-built task exercises, so the Python oracle is checked too.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from topo_pipeline.warehouse.analyst_copy import publish_analyst_copy
from topo_pipeline.warehouse.analytics import (
    ANALYTICS_TABLES,
    DEFAULT_SLA_TARGET_MINUTES,
    ROLLUP_TABLES,
    ensure_analytics_tables,
    headline_metrics_by_day,
    partition_rows,
    replace_rollup,
    replace_task_sla,
)
from topo_pipeline.warehouse.assignees import Assignee, replace_assignees
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.pipeline_info import PipelineInfo
from topo_pipeline.warehouse.schema import ensure_schema
from topo_pipeline.warehouse.task_sla import TASK_SLA
from topo_pipeline_tests.analytics_oracle import (
    Task,
    assert_all_tables_match,
    assert_rows_match,
    expected_tables,
    expected_task_sla,
    guide_queries,
    ratio,
    read_table,
    row_key,
    table_columns,
    ts,
)
from topo_pipeline_tests.warehouse_seed import current_file

DAY1 = date(2024, 3, 1)
DAY2 = date(2024, 3, 2)
EMPTY_DAY = date(2024, 3, 3)  # replaced like the others, but holds no tasks
DAYS = (DAY1, DAY2, EMPTY_DAY)
AS_OF = datetime(2024, 3, 3, 12, 0, tzinfo=UTC)


TASKS = (
    # Day 1 ---------------------------------------------------------------------------------
    Task("t01", DAY1, "HOT", "COMPLETED", "A", ts("2024-03-01 09:00"), ts("2024-03-01 10:00")),
    Task("t02", DAY1, "HOT", "COMPLETED", "A", ts("2024-03-01 09:30"), ts("2024-03-01 10:30:01")),
    Task("t03", DAY1, "HOT", "SKIPPED", "B", ts("2024-03-01 11:00"), None, ts("2024-03-01 11:05")),
    Task("t04", DAY1, "TODAY", "PENDING", "B", ts("2024-03-01 08:00")),
    Task(
        "t05", DAY1, "TODAY", "COMPLETED", None, ts("2024-03-01 12:00"), ts("2024-03-01 20:15:30")
    ),
    Task("t06", DAY1, "TODAY", "IN_PROGRESS", "A", ts("2024-03-01 13:00")),
    # Reopened by a reminder rule: open again, but Topo kept the earlier completed_at.
    Task(
        "t07",
        DAY1,
        "EXTRA",
        "PENDING",
        "C",
        ts("2024-03-01 14:00"),
        completed_at=ts("2024-03-01 15:00"),
        reopened_at=ts("2024-03-02 10:00"),
    ),
    Task(
        "t08", DAY1, "EXTRA", "SKIPPED", "C", ts("2024-03-01 16:00"), None, ts("2024-03-01 17:00")
    ),
    Task("t09", DAY1, "URGENT", "COMPLETED", "A", ts("2024-03-01 15:00"), ts("2024-03-01 15:45")),
    Task("t10", DAY1, "HOT", "CANCELLED", None, ts("2024-03-01 17:00")),
    Task("t11", DAY1, "HOT", "COMPLETED", "B", ts("2024-03-01 18:00")),
    # Created after UTC midnight but landed on day 1 (a pipeline zone west of UTC):
    # partition_date comes from topo.tasks, never from created_at.
    Task("t12", DAY1, "HOT", "COMPLETED", "A", ts("2024-03-02 03:00"), ts("2024-03-02 03:20")),
    Task(
        "t13", DAY1, "URGENT", "SKIPPED", None, ts("2024-03-01 19:00"), None, ts("2024-03-01 19:30")
    ),
    # Day 2 ---------------------------------------------------------------------------------
    Task("t14", DAY2, "HOT", "PENDING", "A", ts("2024-03-02 23:00")),
    Task("t15", DAY2, "TODAY", "PENDING", None, ts("2024-03-02 18:00")),
    Task("t16", DAY2, "TODAY", "IN_PROGRESS", "B", ts("2024-03-02 20:00")),
    Task("t17", DAY2, "HOT", "COMPLETED", "B", ts("2024-03-02 10:00"), ts("2024-03-02 10:59:59.5")),
    Task("t18", DAY2, "TODAY", "COMPLETED", "B", ts("2024-03-02 01:00"), ts("2024-03-02 21:07")),
    Task("t19", DAY2, "TODAY", "COMPLETED", "B", ts("2024-03-02 02:00"), ts("2024-03-03 05:00")),
    Task("t20", DAY2, "TODAY", "PENDING", "C", ts("2024-03-02 12:00")),
    Task("t21", DAY2, None, "PENDING", None, ts("2024-03-02 05:00")),
    Task("t22", DAY2, "EXTRA", "COMPLETED", "A", ts("2024-03-02 04:00"), ts("2024-03-02 04:10")),
    Task("t23", DAY2, "HOT", "IN_PROGRESS", None, ts("2024-03-02 09:00")),
    Task("t24", DAY2, "TODAY", None, "C", ts("2024-03-02 06:00")),
)

#: Each task's verdict under the default targets at AS_OF, and the branch it exercises.
EXPECTED_SLA_STATUS = {
    "t01": "MET",  # completed exactly on the due instant (60 minutes)
    "t02": "BREACHED",  # completed one second after the due instant
    "t03": "SKIPPED",
    "t04": "BREACHED",  # PENDING, due 2024-03-02 08:00, before AS_OF
    "t05": "MET",  # unassigned, 495.5 minutes of 1440
    "t06": "BREACHED",  # IN_PROGRESS past due
    "t07": "OPEN",  # reopened: PENDING, due 2024-03-04 14:00; the old completed_at is ignored
    "t08": "SKIPPED",  # with t07, EXTRA on day 1 has no completed task and met + breached = 0
    "t09": "UNKNOWN",  # priority URGENT has no target
    "t10": "UNKNOWN",  # status CANCELLED is not one the rules know
    "t11": "UNKNOWN",  # COMPLETED without completed_at
    "t12": "MET",
    "t13": "SKIPPED",  # skipped with an unknown priority is still SKIPPED
    "t14": "BREACHED",  # HOT, PENDING, due at midnight, still open at AS_OF
    "t15": "OPEN",  # unassigned, within due at AS_OF
    "t16": "OPEN",  # IN_PROGRESS within due
    "t17": "MET",  # 59.99 minutes (sub-second completion time)
    "t18": "MET",
    "t19": "BREACHED",
    "t20": "OPEN",  # open and due exactly at AS_OF: not yet breached
    "t21": "UNKNOWN",  # NULL priority: no target
    "t22": "MET",
    "t23": "BREACHED",  # HOT, IN_PROGRESS, unassigned, past due
    "t24": "UNKNOWN",  # the API sent no status
}


#: The assignee directory of the fixture: A and B are on one team; C is missing from it.
DIRECTORY = {"A": ("Ada Park", "East"), "B": ("Bo Lind", "East"), "Z": ("Zoe Ames", "West")}


# --- building and reading the database ------------------------------------------------------

_INSERT_TASK = """
INSERT INTO warehouse.topo.tasks (
    id, organization_id, type, priority, status, sequence_id, assignee_user_id, disposition,
    reopened_at, reopen_reason, skipped_at, completed_at, created_at, updated_at,
    partition_date, loaded_at, raw
) VALUES (
    $id, 'org-1', $type, $priority, $status, 'seq-1', $assignee_user_id, NULL,
    $reopened_at, $reopen_reason, $skipped_at, $completed_at, $created_at, $created_at,
    $partition_date, $loaded_at, $raw
)
"""


def insert_directory(con: duckdb.DuckDBPyConnection, directory: Mapping[str, Any]) -> None:
    people = [
        Assignee(user_id, name, team, line)
        for line, (user_id, (name, team)) in enumerate(directory.items(), start=2)
    ]
    replace_assignees(con, people, loaded_at=AS_OF)


def insert_tasks(con: duckdb.DuckDBPyConnection, tasks: Sequence[Task]) -> None:
    ensure_schema(con)
    for task in tasks:
        con.execute(
            _INSERT_TASK,
            {
                "id": task.id,
                "type": task.type,
                "priority": task.priority,
                "status": task.status,
                "assignee_user_id": task.assignee_user_id,
                "reopened_at": task.reopened_at,
                "reopen_reason": "REMINDER_RULE" if task.reopened_at else None,
                "skipped_at": task.skipped_at,
                "completed_at": task.completed_at,
                "created_at": task.created_at,
                "partition_date": task.partition_date,
                "loaded_at": AS_OF,
                "raw": json.dumps({"id": task.id, "status": task.status}),
            },
        )


def build_all(
    con: duckdb.DuckDBPyConnection,
    days: Sequence[date] = DAYS,
    *,
    as_of: datetime = AS_OF,
    targets: Mapping[str, int] = DEFAULT_SLA_TARGET_MINUTES,
) -> dict[str, int]:
    """Replace every analytics table for ``days``; rows written per table."""
    written = {"task_sla": replace_task_sla(con, days, as_of=as_of, sla_targets=targets)}
    for table in ROLLUP_TABLES:
        written[table] = replace_rollup(con, table, days)
    return written


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline file holding TASKS and every analytics table built for DAYS, made once."""
    path = current_file(tmp_path_factory.mktemp("built") / "pipeline.duckdb")
    with connect(path) as con:
        insert_tasks(con, TASKS)
        insert_directory(con, DIRECTORY)
        build_all(con)
    return path


@pytest.fixture
def db(built: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A copy of the ``built`` file, for one test to read and change."""
    with connect(shutil.copyfile(built, tmp_path / "pipeline.duckdb")) as con:
        yield con


# --- the tables -----------------------------------------------------------------------------


def test_the_oracle_reproduces_the_hand_written_verdicts() -> None:
    rows = expected_task_sla(TASKS, AS_OF, DEFAULT_SLA_TARGET_MINUTES)
    assert {row["id"]: row["sla_status"] for row in rows} == EXPECTED_SLA_STATUS


@pytest.mark.parametrize("file_name", ["topo.duckdb", "analytics.duckdb"])
def test_every_table_and_column_matches_the_rules(tmp_path: Path, file_name: str) -> None:
    # File names equal to a schema name must work too: every statement is catalog-qualified.
    with connect(tmp_path / file_name) as con:
        insert_tasks(con, TASKS)
        insert_directory(con, DIRECTORY)
        written = build_all(con)
        expected = expected_tables(TASKS, AS_OF, DEFAULT_SLA_TARGET_MINUTES, DIRECTORY)
        assert_all_tables_match(con, expected)
        assert written == {table: len(rows) for table, rows in expected.items()}


def test_without_a_directory_names_and_teams_are_null(tmp_path: Path) -> None:
    with connect(tmp_path / "pipeline.duckdb") as con:
        insert_tasks(con, TASKS)
        build_all(con)
        expected = expected_tables(TASKS, AS_OF, DEFAULT_SLA_TARGET_MINUTES)
        assert_all_tables_match(con, expected)
        for table in ("sla_by_assignee", "completion_rate_by_assignee"):
            assert {(r["assignee_name"], r["team"]) for r in read_table(con, table)} == {
                (None, None)
            }
        # Every task is in the one NULL team.
        by_team = read_table(con, "completion_rate_by_team")
        assert {(r["partition_date"], r["team"]) for r in by_team} == {(DAY1, None), (DAY2, None)}
        assert sum(r["tasks"] for r in by_team) == len(TASKS)


def test_names_and_teams_follow_the_directory(db: duckdb.DuckDBPyConnection) -> None:
    by_assignee = {
        (r["partition_date"], r["assignee_user_id"]): r for r in read_table(db, "sla_by_assignee")
    }
    assert (by_assignee[(DAY1, "A")]["assignee_name"], by_assignee[(DAY1, "A")]["team"]) == (
        "Ada Park",
        "East",
    )
    assert by_assignee[(DAY1, "C")]["assignee_name"] is None  # not in the directory
    by_team = {(r["partition_date"], r["team"]): r for r in read_table(db, "sla_by_team")}
    # Day 1: A has t01 t02 t06 t09 t12, B has t03 t04 t11; C and the unassigned are NULL.
    assert by_team[(DAY1, "East")]["tasks"] == 8
    assert by_team[(DAY1, None)]["tasks"] == 5
    assert (DAY1, "West") not in by_team  # Z has no tasks: no row
    # A changed directory reaches the rollups when they are rebuilt; task_sla is untouched.
    before = read_table(db, "task_sla")
    insert_directory(db, {**DIRECTORY, "C": ("Cy Moss", "West")})
    for table in ROLLUP_TABLES:
        replace_rollup(db, table, DAYS)
    assert read_table(db, "task_sla") == before
    by_team = {(r["partition_date"], r["team"]): r for r in read_table(db, "sla_by_team")}
    assert by_team[(DAY1, "West")]["tasks"] == 2
    assert by_team[(DAY1, None)]["tasks"] == 3


def test_task_sla_edge_cases(db: duckdb.DuckDBPyConnection) -> None:
    rows = {row["id"]: row for row in read_table(db, "task_sla")}
    assert {task_id: row["sla_status"] for task_id, row in rows.items()} == EXPECTED_SLA_STATUS
    assert rows["t01"]["sla_due_at"] == rows["t01"]["completed_at"]
    assert rows["t01"]["minutes_to_complete"] == 60.0
    assert rows["t02"]["minutes_to_complete"] == pytest.approx(60 + 1 / 60)
    assert rows["t17"]["minutes_to_complete"] == pytest.approx(59 + 59.5 / 60)
    # Reopened: status wins over the stale completed_at.
    assert rows["t07"]["completed_at"] is not None
    assert rows["t07"]["minutes_to_complete"] is None
    # Unknown priority: no target, but the completion time is still measured.
    assert rows["t09"]["sla_target_minutes"] is None
    assert rows["t09"]["sla_due_at"] is None
    assert rows["t09"]["minutes_to_complete"] == 45.0
    assert rows["t11"]["minutes_to_complete"] is None
    assert rows["t10"]["minutes_to_complete"] is None
    assert rows["t20"]["sla_due_at"] == AS_OF


def test_rollup_edge_cases(db: duckdb.DuckDBPyConnection) -> None:
    by_priority = {
        (r["partition_date"], r["priority"]): r for r in read_table(db, "sla_by_priority")
    }
    extra_day1 = by_priority[(DAY1, "EXTRA")]
    # No completed task and no verdict: quantiles and attainment are NULL, counts still there.
    assert extra_day1["tasks"] == 2
    assert extra_day1["median_minutes_to_complete"] is None
    assert extra_day1["p90_minutes_to_complete"] is None
    assert extra_day1["sla_attainment"] is None
    # Unknown and NULL priorities are groups of their own; unknown tasks are not judged.
    assert by_priority[(DAY1, "URGENT")]["met"] == 0
    assert by_priority[(DAY1, "URGENT")]["median_minutes_to_complete"] == 45.0
    assert by_priority[(DAY2, None)]["tasks"] == 1
    # HOT day 1: t01 met, t02 breached, t12 met; t11 (no completed_at) is in no quantile.
    hot_day1 = by_priority[(DAY1, "HOT")]
    assert (hot_day1["met"], hot_day1["breached"]) == (2, 1)
    assert hot_day1["sla_attainment"] == pytest.approx(2 / 3)
    assert hot_day1["median_minutes_to_complete"] == 60.0
    assert hot_day1["p90_minutes_to_complete"] == pytest.approx(60 + 0.8 / 60)

    by_assignee = {
        (r["partition_date"], r["assignee_user_id"]): r for r in read_table(db, "sla_by_assignee")
    }
    assert by_assignee[(DAY1, "C")]["sla_attainment"] is None  # one OPEN, one SKIPPED
    assert by_assignee[(DAY2, None)]["open"] == 3  # t15, t21, t23: the unassigned backlog

    for table in ANALYTICS_TABLES:
        days = {row["partition_date"] for row in read_table(db, table)}
        assert days == {DAY1, DAY2}, f"{table}: the empty day must have no rows"


def test_rerunning_one_day_changes_only_that_day(db: duckdb.DuckDBPyConnection) -> None:
    before = {table: read_table(db, table) for table in ANALYTICS_TABLES}
    # Day 2 moves on: t14 gets done late, t21 is no longer returned by the API.
    db.execute(
        "UPDATE warehouse.topo.tasks SET status = 'COMPLETED', completed_at = $at WHERE id = 't14'",
        {"at": ts("2024-03-03 01:30")},
    )
    db.execute("DELETE FROM warehouse.topo.tasks WHERE id = 't21'")
    later = AS_OF + timedelta(hours=6)
    build_all(db, [DAY2], as_of=later)

    day2_tasks = [
        replace(t, status="COMPLETED", completed_at=ts("2024-03-03 01:30")) if t.id == "t14" else t
        for t in TASKS
        if t.partition_date == DAY2 and t.id != "t21"
    ]
    new_day2 = expected_tables(day2_tasks, later, DEFAULT_SLA_TARGET_MINUTES, DIRECTORY)
    for table in ANALYTICS_TABLES:
        after = read_table(db, table)
        day1_before = [row for row in before[table] if row["partition_date"] == DAY1]
        day1_after = [row for row in after if row["partition_date"] == DAY1]
        assert sorted(day1_after, key=lambda r: row_key(r, table)) == sorted(
            day1_before, key=lambda r: row_key(r, table)
        ), f"{table}: day 1 changed"
        assert_rows_match(
            [row for row in after if row["partition_date"] == DAY2],
            new_day2[table],
            table,
            table_columns(db, table),
        )


class _FailOnInsert:
    """A connection whose analytics INSERT fails, after the partition's DELETE has run."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str, *args: Any) -> duckdb.DuckDBPyConnection:
        if "INSERT INTO warehouse.analytics." in sql:
            raise RuntimeError("injected failure after the delete")
        return self._con.execute(sql, *args)


@pytest.mark.parametrize("table", ANALYTICS_TABLES)
def test_a_failing_replace_keeps_the_previous_rows(
    db: duckdb.DuckDBPyConnection, table: str
) -> None:
    before = read_table(db, table)
    assert before
    failing: Any = _FailOnInsert(db)
    if table == "task_sla":
        with pytest.raises(RuntimeError, match="injected"):
            replace_task_sla(failing, DAYS, as_of=AS_OF, sla_targets=DEFAULT_SLA_TARGET_MINUTES)
    else:
        with pytest.raises(RuntimeError, match="injected"):
            replace_rollup(failing, table, DAYS)
    assert read_table(db, table) == before


def test_a_database_error_mid_replace_keeps_the_previous_rows(
    db: duckdb.DuckDBPyConnection,
) -> None:
    before = read_table(db, "task_sla")
    # The insert reads topo.tasks; without it DuckDB fails after the delete has run.
    db.execute("ALTER TABLE warehouse.topo.tasks RENAME TO tasks_elsewhere")
    with pytest.raises(duckdb.CatalogException):
        replace_task_sla(db, [DAY1], as_of=AS_OF, sla_targets=DEFAULT_SLA_TARGET_MINUTES)
    assert read_table(db, "task_sla") == before


def test_custom_sla_targets_change_the_result(db: duckdb.DuckDBPyConnection) -> None:
    # Tighter targets, and a target for the priority that was unknown so far.
    targets = {"HOT": 30, "TODAY": 600, "EXTRA": 100, "URGENT": 60}
    build_all(db, as_of=AS_OF, targets=targets)
    assert_all_tables_match(db, expected_tables(TASKS, AS_OF, targets, DIRECTORY))
    rows = {row["id"]: row for row in read_table(db, "task_sla")}
    assert rows["t01"]["sla_status"] == "BREACHED"  # 60 minutes > 30
    assert rows["t09"]["sla_status"] == "MET"  # URGENT now has a target
    assert rows["t09"]["sla_target_minutes"] == 60
    assert rows["t07"]["sla_status"] == "BREACHED"  # EXTRA due after 100 minutes


def test_due_time_is_exact_minutes_whatever_the_session_timezone(tmp_path: Path) -> None:
    # 2024-03-10 is a DST change in New York; a 1440-minute target is still 24 hours.
    task = Task("dst", date(2024, 3, 9), "TODAY", "PENDING", None, ts("2024-03-09 12:00"))
    with connect(tmp_path / "pipeline.duckdb") as con:
        insert_tasks(con, [task])
        con.execute("SET TimeZone = 'America/New_York'")
        replace_task_sla(con, [task.partition_date], as_of=AS_OF, sla_targets={"TODAY": 1440})
        (due,) = con.execute("SELECT sla_due_at FROM warehouse.analytics.task_sla").fetchone()
    assert due == ts("2024-03-10 12:00")


def test_partition_rows_count_each_tables_days_with_their_as_of(
    db: duckdb.DuckDBPyConnection,
) -> None:
    counts = partition_rows(db, [*DAYS, EMPTY_DAY])
    expected = {}
    for table in ANALYTICS_TABLES:
        for day in DAYS:
            rows = [r for r in read_table(db, table) if r["partition_date"] == day]
            if rows:
                as_of = max(r["as_of"] for r in rows) if "as_of" in rows[0] else None
                expected[(table, day)] = (len(rows), as_of)
    assert {key: (c.row_count, c.as_of) for key, c in counts.items()} == expected
    assert all(day != EMPTY_DAY for _, day in counts)  # a day without rows is absent
    # Some tables only, in one query; a name that is not an analytics table is refused.
    some = partition_rows(db, DAYS, ["task_sla", ROLLUP_TABLES[-1]])
    assert some == {k: v for k, v in counts.items() if k[0] in ("task_sla", ROLLUP_TABLES[-1])}
    with pytest.raises(ValueError, match="unknown analytics tables"):
        partition_rows(db, DAYS, ["task_sla", "tasks; DROP TABLE x"])
    with pytest.raises(ValueError, match="no analytics tables"):
        partition_rows(db, DAYS, [])


def expected_headlines(task_sla: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The headline numbers of every analytics table over the rows ``task_sla`` (pooled)."""
    verdicts = [row["sla_status"] for row in task_sla]
    met, breached = verdicts.count("MET"), verdicts.count("BREACHED")
    hot = [row["sla_status"] for row in task_sla if row["priority"] == "HOT"]
    statuses = [row["status"] for row in task_sla]
    completed, skipped = statuses.count("COMPLETED"), statuses.count("SKIPPED")
    hot_statuses = [row["status"] for row in task_sla if row["priority"] == "HOT"]
    assignees = {row["assignee_user_id"] for row in task_sla} - {None}
    unassigned = [row for row in task_sla if row["assignee_user_id"] is None]
    no_team = [row for row in task_sla if row["assignee_user_id"] not in DIRECTORY]
    teams = len({DIRECTORY[a][1] for a in assignees if a in DIRECTORY})
    tasks = len(task_sla)
    sla = {
        "tasks": tasks,
        "met": met,
        "breached": breached,
        "sla_attainment": ratio(met, met + breached),
    }
    completion = {
        "tasks": tasks,
        "completed": completed,
        "skipped": skipped,
        "completion_rate": ratio(completed, tasks),
        "skip_rate": ratio(skipped, tasks),
    }
    open_unassigned = sum(row["status"] in ("PENDING", "IN_PROGRESS") for row in unassigned)
    return {
        "task_sla": {
            **sla,
            "open_within_sla": verdicts.count("OPEN"),
            "skipped": verdicts.count("SKIPPED"),
            "unknown": verdicts.count("UNKNOWN"),
        },
        "sla_by_priority": {
            **sla,
            "hot_sla_attainment": ratio(hot.count("MET"), hot.count("MET") + hot.count("BREACHED")),
        },
        "sla_by_assignee": {
            **sla,
            "assignees": len(assignees),
            "unassigned_open": open_unassigned,
        },
        "completion_rate_by_priority": {
            **completion,
            "hot_completion_rate": ratio(hot_statuses.count("COMPLETED"), len(hot_statuses)),
        },
        "completion_rate_by_assignee": {
            **completion,
            "assignees": len(assignees),
            "unassigned_tasks": len(unassigned),
        },
        "completion_rate_by_task_type": completion,
        "sla_by_team": {
            **sla,
            "teams": teams,
            "no_team_open": sum(row["status"] in ("PENDING", "IN_PROGRESS") for row in no_team),
        },
        "completion_rate_by_team": {**completion, "teams": teams, "no_team_tasks": len(no_team)},
    }


def test_headline_metrics_by_day(db: duckdb.DuckDBPyConnection) -> None:
    task_sla = expected_task_sla(TASKS, AS_OF, DEFAULT_SLA_TARGET_MINUTES)
    expected = {
        day: expected_headlines([row for row in task_sla if row["partition_date"] == day])
        for day in DAYS
    }
    assert expected[DAY1]["sla_by_team"]["teams"] == 1  # only East has tasks
    for table in ANALYTICS_TABLES:
        by_day = headline_metrics_by_day(db, table, DAYS)
        assert list(by_day) == list(DAYS), table
        for day in (DAY1, DAY2):
            assert by_day[day] == pytest.approx(expected[day][table]), (table, day)
        empty = by_day[EMPTY_DAY]  # a day without rows: counts 0, rates None
        assert empty["tasks"] == 0
        assert all(v is None for k, v in empty.items() if k.endswith(("attainment", "rate")))


def test_empty_and_repeated_partition_lists(db: duckdb.DuckDBPyConnection) -> None:
    before = read_table(db, "task_sla")
    assert replace_task_sla(db, [], as_of=AS_OF, sla_targets=DEFAULT_SLA_TARGET_MINUTES) == 0
    assert replace_rollup(db, "sla_by_priority", []) == 0
    assert read_table(db, "task_sla") == before
    day1 = sum(task.partition_date == DAY1 for task in TASKS)
    rows = replace_task_sla(db, [DAY1, DAY1], as_of=AS_OF, sla_targets=DEFAULT_SLA_TARGET_MINUTES)
    assert rows == day1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda con: replace_rollup(con, "task_sla", [DAY1]), "unknown rollup table"),
        (lambda con: replace_rollup(con, "tasks; DROP TABLE x", [DAY1]), "unknown rollup table"),
        (
            lambda con: headline_metrics_by_day(con, "topo.tasks", [DAY1]),
            "unknown analytics table",
        ),
        (
            lambda con: replace_task_sla(
                con, [DAY1], as_of=datetime(2024, 3, 3), sla_targets={"HOT": 60}
            ),
            "timezone-aware",
        ),
        (
            lambda con: replace_task_sla(con, [DAY1], as_of=AS_OF, sla_targets={"HOT": 0}),
            "positive whole number",
        ),
        (
            lambda con: replace_task_sla(con, [DAY1], as_of=AS_OF, sla_targets={"HOT": 1.5}),
            "positive whole number",
        ),
        (
            lambda con: replace_rollup(con, "sla_by_priority", [datetime(2024, 3, 1, tzinfo=UTC)]),
            "datetime.date",
        ),
    ],
)
def test_bad_arguments_are_refused(
    db: duckdb.DuckDBPyConnection, call: Callable[[Any], object], message: str
) -> None:
    before = {table: read_table(db, table) for table in ANALYTICS_TABLES}
    with pytest.raises(ValueError, match=message):
        call(db)
    assert {table: read_table(db, table) for table in ANALYTICS_TABLES} == before


def test_every_table_and_column_has_a_comment(db: duckdb.DuckDBPyConnection) -> None:
    ensure_analytics_tables(db)  # idempotent on an existing schema
    tables = dict(
        db.execute(
            "SELECT table_name, comment FROM duckdb_tables() "
            "WHERE database_name = 'warehouse' AND schema_name = 'analytics'"
        ).fetchall()
    )
    # And the settings of each build, of the SLA watch, and the notifications sent.
    assert set(tables) == {*ANALYTICS_TABLES, "builds", "sla_watch_settings", "sla_alerts_sent"}
    assert all(comment and "One row per" in comment for comment in tables.values()), tables
    columns = db.execute(
        "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
        "WHERE database_name = 'warehouse' AND schema_name = 'analytics'"
    ).fetchall()
    for table, column, data_type, comment in columns:
        assert comment, f"{table}.{column} has no comment"
        assert len(comment) > 10, f"{table}.{column}: {comment!r}"
        if column == "partition_date":
            assert data_type == "DATE"
        if column.endswith(("_at", "as_of")):
            assert data_type == "TIMESTAMP WITH TIME ZONE", f"{table}.{column}"
        if column.endswith(("_rate", "attainment", "minutes_to_complete")):
            assert data_type == "DOUBLE", f"{table}.{column}"
    described = db.execute("DESCRIBE warehouse.analytics.task_sla").fetchall()
    assert len(described) == 17


# --- the analyst guide ----------------------------------------------------------------------

PINNED_TODAY = date(2024, 3, 4)


def _pin_today(sql: str) -> str:
    """Make 'the last 30 days' cover the fixture days, whatever today is."""
    return re.sub(r"\bcurrent_date\b", f"DATE '{PINNED_TODAY.isoformat()}'", sql)


@pytest.fixture
def analyst_copy(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The fixture data, published to an analyst copy and opened the way analysts do."""
    source, path = tmp_path / "pipeline.duckdb", tmp_path / "topo_analytics.duckdb"
    with connect(source) as con:
        insert_tasks(con, TASKS)
        insert_directory(con, DIRECTORY)
        build_all(con)
    info = PipelineInfo(
        timezone="UTC",
        start_date=DAY1,
        version="test",
        sla_target_minutes=DEFAULT_SLA_TARGET_MINUTES,
    )
    publish_analyst_copy(source, path, info=info)
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(sql)
    return [column[0] for column in cursor.description], cursor.fetchall()


def test_the_guide_has_the_promised_queries() -> None:
    queries = guide_queries()
    assert len(queries) >= 6
    text = "\n".join(queries)
    for topic in ("HOT SLA attainment", "p90", "nobody is assigned", "per week", "HOT tasks past"):
        assert topic in text
    # Multi-day rates are pooled, never averages of daily rates.
    assert "avg(sla_attainment)" not in text
    assert "avg(completion_rate)" not in text


def test_the_guide_reads_comments_where_duckdb_keeps_them(
    analyst_copy: duckdb.DuckDBPyConnection,
) -> None:
    names, _ = _run(analyst_copy, "DESCRIBE analytics.task_sla")
    assert "comment" not in names  # as the guide says: DESCRIBE shows names and types only
    _, rows = _run(analyst_copy, _guide_query("The columns of one table with their descriptions"))
    assert [row[0] for row in rows] == list(TASK_SLA.column_names)
    assert all(row[2] for row in rows)
    _, rows = _run(analyst_copy, _guide_query("Every table and view of the copy"))
    kinds = {(schema, name): kind for schema, name, kind, _ in rows}
    assert kinds[("topo", "tasks")] == "table"
    assert kinds[("analytics", "daily_by_priority")] == "view"
    assert all(comment for *_, comment in rows)


# Every query running and returning its promised columns is tested on demo-like data in
# test_analytics_assets.py; here the numbers of a few are checked against the fixture.


def _guide_query(topic: str) -> str:
    (sql,) = [sql for sql in guide_queries() if topic in sql.splitlines()[0]]
    return _pin_today(sql)


def test_guide_results_match_the_rules(analyst_copy: duckdb.DuckDBPyConnection) -> None:
    task_sla = expected_task_sla(TASKS, AS_OF, DEFAULT_SLA_TARGET_MINUTES)

    _, rows = _run(analyst_copy, _guide_query("HOT SLA attainment per assignee"))
    want = {}
    for assignee in {row["assignee_user_id"] for row in task_sla if row["priority"] == "HOT"}:
        mine = [
            r["sla_status"]
            for r in task_sla
            if r["priority"] == "HOT" and r["assignee_user_id"] == assignee
        ]
        met, breached = mine.count("MET"), mine.count("BREACHED")
        want[assignee] = (len(mine), met, breached, ratio(met, met + breached))
    assert {row[0]: tuple(row[2:5]) for row in rows} == {k: v[:3] for k, v in want.items()}
    assert {row[0]: row[5] for row in rows} == pytest.approx({k: v[3] for k, v in want.items()})
    # Named from the directory; C is not in it, and NULL is the unassigned group.
    assert {row[0]: row[1] for row in rows} == {
        assignee: DIRECTORY.get(assignee, (None, None))[0] for assignee in want
    }

    _, rows = _run(analyst_copy, _guide_query("Open tasks nobody is assigned to"))
    assert [row[0] for row in rows] == ["t23", "t15", "t21"]  # by due time, no target last

    _, rows = _run(analyst_copy, _guide_query("HOT tasks past their due time"))
    assert {row[0] for row in rows} == {"t14", "t23"}

    _, rows = _run(analyst_copy, _guide_query("Daily SLA attainment"))
    for day, tasks, met, breached, attainment, _hot, _rolling in rows:
        mine = [r["sla_status"] for r in task_sla if r["partition_date"] == day]
        assert (tasks, met, breached) == (len(mine), mine.count("MET"), mine.count("BREACHED"))
        assert attainment == pytest.approx(met / (met + breached))
    # The rolling figure pools both days' counts; it is not the mean of the daily rates.
    everything = [r["sla_status"] for r in task_sla]
    pooled = everything.count("MET") / (everything.count("MET") + everything.count("BREACHED"))
    assert rows[-1][-1] == pytest.approx(pooled)

    _, rows = _run(analyst_copy, _guide_query("SLA attainment and completion rate per team"))
    team_of = {user: team for user, (_name, team) in DIRECTORY.items()}
    want_teams: dict[str | None, list[dict[str, Any]]] = {}
    for row in task_sla:
        want_teams.setdefault(team_of.get(row["assignee_user_id"]), []).append(row)
    assert [row[0] for row in rows] == ["East", None]
    for team, tasks, met, breached, attainment, completion in rows:
        mine = want_teams[team]
        verdicts = [r["sla_status"] for r in mine]
        assert (tasks, met, breached) == (
            len(mine),
            verdicts.count("MET"),
            verdicts.count("BREACHED"),
        )
        assert attainment == pytest.approx(ratio(met, met + breached))
        assert completion == pytest.approx(
            ratio([r["status"] for r in mine].count("COMPLETED"), len(mine))
        )

    _, rows = _run(analyst_copy, _guide_query("Assignees by name and team"))
    assert {(row[0], row[1], row[2], row[3]) for row in rows} == {
        ("East", "Ada Park", "A", sum(r["assignee_user_id"] == "A" for r in task_sla)),
        ("East", "Bo Lind", "B", sum(r["assignee_user_id"] == "B" for r in task_sla)),
        (None, None, "C", sum(r["assignee_user_id"] == "C" for r in task_sla)),
    }

    _, rows = _run(analyst_copy, _guide_query("missing from the assignee directory"))
    assert [row[:2] for row in rows] == [("C", 4)]  # t07, t08, t20, t24

    _, rows = _run(analyst_copy, _guide_query("Completion and skip rate per week"))
    ((week, tasks, completed, rate, previous, change),) = rows
    assert week == date(2024, 2, 26)  # Monday of the fixture week
    statuses = [r["status"] for r in task_sla]
    assert (tasks, completed) == (len(statuses), statuses.count("COMPLETED"))
    assert rate == pytest.approx(completed / tasks)
    assert previous is None
    assert change is None

    _, rows = _run(analyst_copy, _guide_query("What this file holds"))
    ((published_at, zone, hot, today, extra, first, last, tasks, version),) = rows
    assert published_at is not None
    assert (zone, hot, today, extra) == ("UTC", 60, 1440, 4320)
    assert (first, last, tasks, version) == (DAY1, DAY2, len(TASKS), "test")

    _, rows = _run(analyst_copy, _guide_query("Every day and priority of the last 30 days"))
    priorities = {t.priority for t in TASKS} | set(DEFAULT_SLA_TARGET_MINUTES)
    assert {(row[0], row[1]) for row in rows} == {
        (day, priority) for day in (DAY1, DAY2) for priority in priorities
    }
    assert sum(row[2] for row in rows) == len(TASKS)

    _, rows = _run(analyst_copy, _guide_query("Open tasks already past their SLA deadline now"))
    now = datetime.now(UTC)
    overdue = [
        r
        for r in task_sla
        if r["status"] in ("PENDING", "IN_PROGRESS") and r["sla_due_at"] and r["sla_due_at"] < now
    ]
    assert {row[0]: row[3] for row in rows} == {
        assignee: sum(1 for r in overdue if r["assignee_user_id"] == assignee)
        for assignee in {r["assignee_user_id"] for r in overdue}
    }
    assert {row[0]: (row[1], row[2]) for row in rows} == {
        row[0]: DIRECTORY.get(row[0], (None, None)) for row in rows
    }
    assert {row[1] for row in rows} - {None}, "some overdue assignee is named"

    _, rows = _run(analyst_copy, _guide_query("Weekly SLA attainment per team"))
    want_weeks: dict[tuple[date, str | None], list[str]] = {}
    for row in task_sla:
        week = row["partition_date"] - timedelta(days=row["partition_date"].weekday())
        key = (week, team_of.get(row["assignee_user_id"]))
        want_weeks.setdefault(key, []).append(row["sla_status"])
    assert [(row[0], row[1]) for row in rows] == sorted(
        want_weeks, key=lambda key: (key[0], key[1] is None, key[1] or "")
    )
    for week, team, tasks, met, breached, attainment in rows:
        verdicts = want_weeks[(week, team)]
        assert (tasks, met, breached) == (
            len(verdicts),
            verdicts.count("MET"),
            verdicts.count("BREACHED"),
        )
        assert attainment == pytest.approx(ratio(met, met + breached))
