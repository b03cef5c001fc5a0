"""topo.task_history: the versions each landing records, the views on it, the as-of query."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from topo_pipeline.api.models import Task
from topo_pipeline.defs.assets.history import CURRENT_VERSIONS_MATCH_TASKS, TASK_HISTORY_KEY
from topo_pipeline.defs.location import build_defs
from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.analyst_copy import publish_analyst_copy
from topo_pipeline.warehouse.analytics import DEFAULT_SLA_TARGET_MINUTES
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.history import (
    HistoryChanges,
    HistoryOrderError,
    HistorySummary,
    history_summary,
)
from topo_pipeline.warehouse.landing import Landing, land_stage
from topo_pipeline.warehouse.schema import HISTORY_FIELDS, TASK_HISTORY, VIEWS, ensure_schema
from topo_pipeline.warehouse.staging import task_stage
from topo_pipeline.warehouse.tasks import DuplicateTaskIdError
from topo_pipeline_tests import analytics_oracle as oracle
from topo_pipeline_tests.analytics_oracle import guide_queries, promised_columns
from topo_pipeline_tests.harness import fresh_instance
from topo_pipeline_tests.test_warehouse_schema import first_release_file, some_tasks
from topo_pipeline_tests.warehouse_seed import current_file, day_window, replace_task_partitions

D1, D2 = date(2025, 3, 14), date(2025, 3, 15)
T1 = datetime(2025, 3, 16, 2, tzinfo=UTC)
T2 = T1 + timedelta(days=1)
T3 = T2 + timedelta(days=1)
ALICE, BOB = "user-alice", "user-bob"


def api_task(
    task_id: str,
    day: date = D1,
    *,
    hour: int = 9,
    status: str = "PENDING",
    priority: str | None = "TODAY",
    assignee: str | None = ALICE,
    completed_minutes: float | None = None,
    skipped_minutes: float | None = None,
    updated: str = "2025-03-14T10:00:00Z",
) -> dict[str, Any]:
    created = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    def after(minutes: float | None) -> str | None:
        return None if minutes is None else (created + timedelta(minutes=minutes)).isoformat()

    return {
        "id": task_id,
        "organization_id": "org",
        "type": "CALL",
        "priority": priority,
        "status": status,
        "sequence_id": "seq",
        "assignee_user_id": assignee,
        "disposition": None,
        "reopened_at": None,
        "reopen_reason": None,
        "skipped_at": after(skipped_minutes),
        "completed_at": after(completed_minutes),
        "created_at": created.isoformat(),
        "updated_at": updated,
    }


@pytest.fixture
def db(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(current_file(tmp_path / "pipeline.duckdb")) as con:
        ensure_schema(con)
        yield con


def land(
    con: duckdb.DuckDBPyConnection,
    tasks: Sequence[dict[str, Any]],
    loaded_at: datetime,
    days: Sequence[date] = (D1,),
) -> None:
    replace_task_partitions(
        con,
        [day_window(day) for day in days],
        [Task.from_api(task) for task in tasks],
        loaded_at=loaded_at,
    )


def history(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cursor = con.execute("SELECT * FROM warehouse.topo.task_history ORDER BY id, version")
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def versions(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """(id, version, valid_from, valid_to, removed, status, assignee) of every row."""
    return [
        (
            r["id"],
            r["version"],
            r["valid_from"],
            r["valid_to"],
            r["removed"],
            r["status"],
            r["assignee_user_id"],
        )
        for r in history(con)
    ]


def view(con: duckdb.DuckDBPyConnection, name: str, order: str) -> list[dict[str, Any]]:
    cursor = con.execute(f"SELECT * FROM warehouse.analytics.{name} ORDER BY {order}")
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_first_landing_records_one_version_per_task(db: duckdb.DuckDBPyConnection) -> None:
    land(db, [api_task("a"), api_task("b", status="COMPLETED", completed_minutes=30)], T1)
    rows = history(db)
    assert [
        (r["id"], r["version"], r["valid_from"], r["valid_to"], r["removed"]) for r in rows
    ] == [
        ("a", 1, T1, None, False),
        ("b", 1, T1, None, False),
    ]
    stored = db.execute(
        f"SELECT id, {', '.join(HISTORY_FIELDS)} FROM warehouse.topo.tasks ORDER BY id"
    ).fetchall()
    assert [(r["id"], *(r[f] for f in HISTORY_FIELDS)) for r in rows] == stored
    assert set(rows[0]) == set(TASK_HISTORY.column_names)


def test_re_landing_records_status_changes_and_reassignments(
    db: duckdb.DuckDBPyConnection,
) -> None:
    land(db, [api_task("a"), api_task("b"), api_task("c")], T1)
    land(
        db,
        [
            api_task("a", status="IN_PROGRESS"),
            api_task("b", assignee=BOB),  # reassigned, same status
            api_task("c"),
        ],
        T2,
    )
    land(
        db,
        [
            api_task("a", status="COMPLETED", completed_minutes=600),
            api_task("b", assignee=None),  # unassigned
            api_task("c"),
        ],
        T3,
    )
    assert versions(db) == [
        ("a", 1, T1, T2, False, "PENDING", ALICE),
        ("a", 2, T2, T3, False, "IN_PROGRESS", ALICE),
        ("a", 3, T3, None, False, "COMPLETED", ALICE),
        ("b", 1, T1, T2, False, "PENDING", ALICE),
        ("b", 2, T2, T3, False, "PENDING", BOB),
        ("b", 3, T3, None, False, "PENDING", None),
        ("c", 1, T1, None, False, "PENDING", ALICE),
    ]
    changes = view(db, "task_status_changes", "id, version")
    day = timedelta(days=1) / timedelta(minutes=1)
    assert [
        (
            c["id"],
            c["from_status"],
            c["to_status"],
            c["from_status_since"],
            c["changed_at"],
            c["minutes_in_from_status"],
        )
        for c in changes
    ] == [
        ("a", "PENDING", "IN_PROGRESS", T1, T2, day),
        ("a", "IN_PROGRESS", "COMPLETED", T2, T3, day),
    ]
    reassignments = {r["id"]: r for r in view(db, "task_reassignments", "id")}
    assert {k: r["reassignments"] for k, r in reassignments.items()} == {"a": 0, "b": 2, "c": 0}
    b = reassignments["b"]
    assert (b["first_assignee_user_id"], b["assignee_user_id"], b["assignees"]) == (
        ALICE,
        None,
        2,
    )
    assert (b["last_reassigned_at"], b["versions"], b["removed"]) == (T3, 3, False)
    assert reassignments["a"]["last_reassigned_at"] is None


def test_an_unchanged_re_fetch_adds_no_rows(db: duckdb.DuckDBPyConnection) -> None:
    tasks = [api_task("a"), api_task("b", status="SKIPPED", skipped_minutes=5)]
    land(db, tasks, T1)
    before = history(db)
    # Fields the history does not keep (updated_at, sequence_id) change nothing either.
    land(db, [{**t, "updated_at": "2025-03-15T08:00:00Z", "sequence_id": "s2"} for t in tasks], T2)
    assert history(db) == before
    land(db, tasks, T3)
    assert history(db) == before
    loaded = db.execute("SELECT DISTINCT loaded_at FROM warehouse.topo.tasks").fetchall()
    assert loaded == [(T3,)]  # the tasks themselves were replaced


def test_a_task_that_disappears_is_closed_and_marked_removed_and_can_come_back(
    db: duckdb.DuckDBPyConnection,
) -> None:
    land(db, [api_task("a"), api_task("gone", status="IN_PROGRESS")], T1)
    land(db, [api_task("a")], T2)
    land(db, [api_task("a")], T2 + timedelta(hours=1))  # still gone: nothing new
    land(db, [api_task("a"), api_task("gone", status="IN_PROGRESS")], T3)  # back, unchanged
    assert versions(db) == [
        ("a", 1, T1, None, False, "PENDING", ALICE),
        ("gone", 1, T1, T2, False, "IN_PROGRESS", ALICE),
        ("gone", 2, T2, T3, True, "IN_PROGRESS", ALICE),
        ("gone", 3, T3, None, False, "IN_PROGRESS", ALICE),
    ]
    changes = view(db, "task_status_changes", "id, version")
    assert [(c["from_status"], c["to_status"], c["changed_at"]) for c in changes] == [
        ("IN_PROGRESS", "REMOVED", T2),
        ("REMOVED", "IN_PROGRESS", T3),
    ]
    # Every task has exactly one current version, and the live ones are topo.tasks.
    current = db.execute(
        "SELECT id FROM warehouse.topo.task_history WHERE valid_to IS NULL AND NOT removed "
        "ORDER BY id"
    ).fetchall()
    assert current == db.execute("SELECT id FROM warehouse.topo.tasks ORDER BY id").fetchall()


def test_an_empty_day_marks_every_task_removed(db: duckdb.DuckDBPyConnection) -> None:
    land(db, [api_task("a"), api_task("b", D2)], T1, days=(D1, D2))
    land(db, [], T2, days=(D1,))  # only D1 re-fetched: D2's task is untouched
    assert versions(db) == [
        ("a", 1, T1, T2, False, "PENDING", ALICE),
        ("a", 2, T2, None, True, "PENDING", ALICE),
        ("b", 1, T1, None, False, "PENDING", ALICE),
    ]
    assert view(db, "task_reassignments", "id")[0]["removed"] is True


def test_the_landing_reports_the_versions_it_recorded(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    def landing(tasks: Sequence[dict[str, Any]], loaded_at: datetime) -> Landing:
        with task_stage([day_window(D1)], directory=tmp_path) as stage:
            stage.add([Task.from_api(task) for task in tasks])
            return land_stage(db, stage, loaded_at=loaded_at)

    first = landing([api_task("a"), api_task("b"), api_task("c")], T1)
    assert (first.rows, first.history) == ({D1: 3}, HistoryChanges(versions=3, removed=0))
    assert first.seconds >= 0
    # a changed, b unchanged, c gone: what the transaction recorded, not a read-back.
    second = landing([api_task("a", status="COMPLETED", completed_minutes=5), api_task("b")], T2)
    assert (second.rows, second.history) == ({D1: 2}, HistoryChanges(versions=2, removed=1))
    assert len(history(db)) == 3 + 2


def test_the_summary_counts_versions_tasks_and_the_newest_version(
    db: duckdb.DuckDBPyConnection,
) -> None:
    assert history_summary(db) == HistorySummary(0, 0, 0, None, 0)  # a new file
    land(db, [api_task("a"), api_task("b"), api_task("c")], T1)
    land(db, [api_task("a", status="COMPLETED", completed_minutes=5), api_task("b")], T2)

    summary = history_summary(db)

    assert summary == HistorySummary(
        versions=5, tasks=3, removed=1, latest_version_at=T2, stored_tasks=2
    )
    assert summary.current_match_stored
    db.execute("DELETE FROM warehouse.topo.tasks WHERE id = 'b'")  # behind the landing's back
    assert not history_summary(db).current_match_stored


def materialize_history(path: Path) -> dg.ExecuteInProcessResult:
    """The ``topo/task_history`` asset of the code location, over the file at ``path``."""
    defs = build_defs(Settings(duckdb_path=path, analyst_duckdb_path=path.parent / "copy.duckdb"))
    with fresh_instance() as instance:
        return dg.materialize(
            [defs.get_assets_def(TASK_HISTORY_KEY)],
            selection=[TASK_HISTORY_KEY],
            resources={"warehouse": defs.resources["warehouse"]},
            instance=instance,
        )


def test_the_asset_reports_the_history_once_and_checks_it_against_the_tasks(
    tmp_path: Path,
) -> None:
    path = current_file(tmp_path / "pipeline.duckdb")
    with connect(path) as con:
        land(con, [api_task("a"), api_task("b", D2)], T1, days=(D1, D2))
        land(con, [api_task("a", status="COMPLETED", completed_minutes=5)], T2)

    result = materialize_history(path)

    (event,) = result.get_asset_materialization_events()  # one, whatever the days
    materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
    assert materialization.partition is None
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["dagster/row_count"] == 3
    assert (metadata["tasks_with_history"], metadata["tasks_removed"]) == (2, 0)
    assert metadata["latest_version_at"] == T2.timestamp()
    assert metadata["dagster/table_name"] == "topo.task_history"
    (check,) = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == (CURRENT_VERSIONS_MATCH_TASKS, True)

    with connect(path) as con:  # a row of topo.tasks lost behind the landing's back
        con.execute("DELETE FROM warehouse.topo.tasks WHERE id = 'b'")
    result = materialize_history(path)

    assert result.success  # the check reports, it blocks nothing
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert "2 current versions not removed, but 1 rows in topo.tasks" in (check.description or "")


def test_a_failing_landing_leaves_history_untouched(db: duckdb.DuckDBPyConnection) -> None:
    land(db, [api_task("a"), api_task("elsewhere", D2)], T1, days=(D1, D2))
    before = history(db)
    # "elsewhere" is stored under D2, outside this run: the landing refuses it, after the
    # history of D1 was already compared (a's status changed) in the same transaction.
    with pytest.raises(DuplicateTaskIdError):
        land(
            db, [api_task("a", status="COMPLETED", completed_minutes=5), api_task("elsewhere")], T2
        )
    assert history(db) == before

    def failing() -> Iterator[Task]:
        yield Task.from_api(api_task("a", status="SKIPPED", skipped_minutes=5))
        raise RuntimeError("the fetch broke")

    with pytest.raises(RuntimeError, match="the fetch broke"):
        replace_task_partitions(db, [day_window(D1)], failing(), loaded_at=T2)
    assert history(db) == before


def test_a_landing_older_than_the_history_is_refused(db: duckdb.DuckDBPyConnection) -> None:
    land(db, [api_task("a")], T2)
    before = history(db)
    with pytest.raises(HistoryOrderError, match="earlier than the history"):
        land(db, [api_task("a", status="IN_PROGRESS")], T1)
    assert history(db) == before
    assert db.execute("SELECT status FROM warehouse.topo.tasks").fetchall() == [("PENDING",)]


def test_a_task_moving_between_days_of_one_run_keeps_its_history(
    db: duckdb.DuckDBPyConnection,
) -> None:
    land(db, [api_task("a", D1, hour=23)], T1, days=(D1, D2))
    land(db, [api_task("a", D2, hour=1)], T2, days=(D1, D2))
    rows = history(db)
    assert [(r["version"], r["partition_date"], r["removed"], r["valid_to"]) for r in rows] == [
        (1, D1, False, T2),
        (2, D2, False, None),
    ]


def test_rows_written_outside_the_landing_are_seeded_before_comparing(
    db: duckdb.DuckDBPyConnection,
) -> None:
    land(db, [api_task("a")], T1)
    db.execute("DELETE FROM warehouse.topo.task_history")  # as if written by another tool
    land(db, [api_task("a", status="IN_PROGRESS")], T2)
    assert versions(db) == [
        ("a", 1, T1, T2, False, "PENDING", ALICE),
        ("a", 2, T2, None, False, "IN_PROGRESS", ALICE),
    ]


def test_a_migrated_file_starts_history_from_its_stored_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    first_release_file(path)  # some_tasks() of one day, without history
    with connect(path) as con:
        assert ensure_schema(con) == 1
        stored = con.execute(
            "SELECT id, status, assignee_user_id, loaded_at, partition_date "
            "FROM warehouse.topo.tasks ORDER BY id"
        ).fetchall()
        assert versions(con) == [
            (task_id, 1, loaded, None, False, status, assignee)
            for task_id, status, assignee, loaded, _ in stored
        ]
        # The first landing after the migration compares with the stored rows.
        loaded_at = stored[0][3]
        later = loaded_at + timedelta(days=1)
        tasks = some_tasks()
        changed = [dataclasses.replace(tasks[0], status="SKIPPED"), *tasks[1:]]
        replace_task_partitions(con, [day_window(stored[0][4])], changed, loaded_at=later)
        rows = versions(con)
    first = stored[0]
    assert len(rows) == len(stored) + 1
    assert [r for r in rows if r[0] == first[0]] == [
        (first[0], 1, loaded_at, later, False, first[1], first[2]),
        (first[0], 2, later, None, False, "SKIPPED", first[2]),
    ]


def test_the_analyst_copy_publishes_the_history_and_its_views(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    land(db, [api_task("a"), api_task("b")], T1)
    land(
        db,
        [api_task("a", status="COMPLETED", completed_minutes=90), api_task("b", assignee=BOB)],
        T2,
    )
    db.close()
    copy = tmp_path / "topo_analytics.duckdb"
    publish_analyst_copy(tmp_path / "pipeline.duckdb", copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM topo.task_history").fetchone() == (4,)
        assert con.execute(
            "SELECT id, from_status, to_status FROM analytics.task_status_changes"
        ).fetchall() == [("a", "PENDING", "COMPLETED")]
        assert con.execute(
            "SELECT id, reassignments FROM analytics.task_reassignments ORDER BY id"
        ).fetchall() == [("a", 0), ("b", 1)]
        commented = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE table_name IN ('task_history', 'task_status_changes', 'task_reassignments') "
            "AND comment IS NULL"
        ).fetchall()
        assert commented == []
    assert {v.name for v in VIEWS} >= {"task_status_changes", "task_reassignments"}


# -- the analyst guide's as-of query, against an oracle ------------------------------------


def _as_of_query(instant: datetime) -> str:
    (sql,) = [q for q in guide_queries() if "SLA by priority as of an earlier instant" in q]
    pinned, replaced = re.subn(
        r"SELECT now\(\)::TIMESTAMPTZ AS as_of",
        f"SELECT TIMESTAMPTZ '{instant.isoformat()}' AS as_of",
        sql,
    )
    assert replaced == 1
    return pinned


def _landing(tasks: Sequence[oracle.Task]) -> list[dict[str, Any]]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return [
        {
            "id": t.id,
            "organization_id": "org",
            "type": t.type,
            "priority": t.priority,
            "status": t.status,
            "sequence_id": "seq",
            "assignee_user_id": t.assignee_user_id,
            "disposition": None,
            "reopened_at": iso(t.reopened_at),
            "reopen_reason": "REMINDER_RULE" if t.reopened_at else None,
            "skipped_at": iso(t.skipped_at),
            "completed_at": iso(t.completed_at),
            "created_at": t.created_at.isoformat(),
            "updated_at": t.created_at.isoformat(),
        }
        for t in tasks
    ]


def _states() -> list[tuple[datetime, list[oracle.Task]]]:
    """Three landings of two days: tasks done, reopened, reassigned, removed, added, back."""
    ts = oracle.ts
    base = [
        oracle.Task("h1", D1, "HOT", "PENDING", ALICE, ts("2025-03-14 09:00:00")),
        oracle.Task("h2", D1, "HOT", "IN_PROGRESS", BOB, ts("2025-03-14 09:30:00")),
        oracle.Task("t1", D1, "TODAY", "PENDING", ALICE, ts("2025-03-14 10:00:00")),
        oracle.Task(
            "t2",
            D1,
            "TODAY",
            "COMPLETED",
            None,
            ts("2025-03-14 11:00:00"),
            completed_at=ts("2025-03-14 12:00:00"),
        ),
        oracle.Task("e1", D1, "EXTRA", "PENDING", BOB, ts("2025-03-14 12:00:00")),
        oracle.Task("x1", D1, None, "PENDING", None, ts("2025-03-14 13:00:00")),
        oracle.Task("n1", D2, "HOT", "PENDING", ALICE, ts("2025-03-15 08:00:00")),
        oracle.Task("n2", D2, "CRITICAL", "PENDING", BOB, ts("2025-03-15 09:00:00")),
    ]
    first = datetime(2025, 3, 15, 9, 30, tzinfo=UTC)
    by_id = {t.id: t for t in base}
    second_state = [
        replace(by_id["h1"], status="COMPLETED", completed_at=ts("2025-03-14 09:45:00")),
        replace(by_id["h2"], status="COMPLETED", completed_at=ts("2025-03-14 11:00:00")),
        replace(by_id["t1"], assignee_user_id=BOB),
        replace(by_id["t2"], status="PENDING", reopened_at=ts("2025-03-15 10:00:00")),
        by_id["e1"],
        # x1 is gone
        replace(by_id["n1"], status="SKIPPED", skipped_at=ts("2025-03-15 09:00:00")),
        by_id["n2"],
        oracle.Task("n3", D2, "TODAY", "PENDING", ALICE, ts("2025-03-15 10:30:00")),
    ]
    second = first + timedelta(hours=5)
    by_id = {t.id: t for t in second_state}
    third_state = [
        *(by_id[k] for k in ("h1", "h2", "e1", "n1", "n2")),
        replace(by_id["t1"], status="COMPLETED", completed_at=ts("2025-03-15 11:00:00")),
        replace(by_id["t2"], status="COMPLETED", completed_at=ts("2025-03-15 12:00:00")),
        base[5],  # x1 is back, as it was
        replace(by_id["n3"], status="IN_PROGRESS"),
    ]
    third = second + timedelta(days=2)
    return [(first, base), (second, second_state), (third, third_state)]


def test_the_guides_as_of_query_matches_an_oracle(db: duckdb.DuckDBPyConnection) -> None:
    states = _states()
    for loaded_at, tasks in states:
        land(db, _landing(tasks), loaded_at, days=(D1, D2))

    def state_at(instant: datetime) -> list[oracle.Task]:
        known = [tasks for loaded_at, tasks in states if loaded_at <= instant]
        return known[-1] if known else []

    instants = [
        states[0][0] - timedelta(seconds=1),  # before the first landing: nothing
        states[0][0],  # exactly at a landing: its state
        states[0][0] + timedelta(hours=2),  # open HOT tasks now breached
        states[1][0],  # exactly at the second landing: the second state alone
        states[1][0] + timedelta(hours=1),
        states[2][0] - timedelta(microseconds=1),  # just before the third landing
        states[2][0] + timedelta(days=30),  # the current state, everything overdue
    ]
    columns = promised_columns(_as_of_query(instants[0]))
    assert columns is not None
    checked = 0
    for instant in instants:
        cursor = db.execute(_as_of_query(instant))
        assert [c[0] for c in cursor.description] == columns
        actual = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        task_sla = oracle.expected_task_sla(state_at(instant), instant, DEFAULT_SLA_TARGET_MINUTES)
        # The wall-clock measures of the table (the query rebuilds no business-hours ones).
        expected = [
            {column: row[column] for column in columns}
            for row in oracle.expected_sla_rollup(task_sla, "priority")
        ]
        oracle.assert_rows_match(actual, expected, "sla_by_priority", columns)
        checked += len(expected)
    assert checked > 20
