"""Landing tasks in topo.tasks: every field, atomic partition replace, windows, DST, batches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from topo_pipeline.api.models import Task
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.staging import STAGE_BATCH_SIZE, replace_task_partitions
from topo_pipeline.warehouse.tasks import (
    PartitionWindow,
    ensure_tasks_table,
)

NEW_YORK = ZoneInfo("America/New_York")
LOADED_AT = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
D1, D2, D3 = date(2025, 3, 14), date(2025, 3, 15), date(2025, 3, 16)

FULL = {
    "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "organization_id": "0b8e4f0e-8a4e-4c8e-9f59-2f1f2b0c1a01",
    "type": "CALL",
    "priority": "HOT",
    "status": "COMPLETED",
    "sequence_id": "5d1f4a3e-6b7c-4d8e-9f0a-1b2c3d4e5f60",
    "assignee_user_id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
    "disposition": "ANSWERED",
    "reopened_at": "2025-03-14T09:22:11.483Z",
    "reopen_reason": "REMINDER_RULE",
    "skipped_at": None,
    "completed_at": "2025-03-14T10:00:00.000001+01:00",
    "created_at": "2025-03-14T08:00:00Z",
    "updated_at": "2025-03-14T10:00:00Z",
    "brand_new_field": {"nested": [1, 2.5, "ü"], "flag": True},
}


def utc_window(day: date) -> PartitionWindow:
    start = datetime.combine(day, time(), UTC)
    return PartitionWindow(day, start, start + timedelta(days=1))


def zoned_window(day: date, tz: ZoneInfo) -> PartitionWindow:
    # The shape Dagster hands over: both bounds midnight in the partition's own zone.
    return PartitionWindow(
        day,
        datetime.combine(day, time(), tz),
        datetime.combine(day + timedelta(days=1), time(), tz),
    )


def task(created_at: str, *, task_id: str | None = None, **fields: Any) -> Task:
    obj = {
        "id": task_id or str(uuid.uuid4()),
        "organization_id": "org-1",
        "type": "EMAIL_REPLY",
        "priority": "TODAY",
        "status": "PENDING",
        "sequence_id": "seq-1",
        "assignee_user_id": None,
        "created_at": created_at,
        "updated_at": created_at,
    }
    obj.update(fields)
    return Task.from_api(obj)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "pipeline.duckdb") as con:
        ensure_tasks_table(con)
        yield con


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT * FROM warehouse.topo.tasks ORDER BY id").fetchall()


def by_id(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, Any]:
    return dict(con.execute(f"SELECT id, {column} FROM warehouse.topo.tasks").fetchall())


def land(
    con: duckdb.DuckDBPyConnection,
    windows: list[PartitionWindow],
    tasks: Any,
    batch_size: int = STAGE_BATCH_SIZE,
) -> dict[date, int]:
    return replace_task_partitions(con, windows, tasks, loaded_at=LOADED_AT, batch_size=batch_size)


def test_lands_every_field_and_raw_exactly(db: duckdb.DuckDBPyConnection) -> None:
    sparse = {"id": "sparse-1", "created_at": "2025-03-14T23:59:59.999999Z"}  # optional keys absent
    landed = land(db, [utc_window(D1)], [Task.from_api(FULL), Task.from_api(sparse)])
    assert landed == {D1: 2}

    row = db.execute("SELECT * FROM warehouse.topo.tasks WHERE id = $id", {"id": FULL["id"]})
    names = [c[0] for c in row.description]
    stored = dict(zip(names, row.fetchone(), strict=True))
    for name in ("id", "organization_id", "type", "priority", "status", "sequence_id"):
        assert stored[name] == FULL[name], name
    assert stored["assignee_user_id"] == FULL["assignee_user_id"]
    assert stored["disposition"] == "ANSWERED"
    assert stored["reopen_reason"] == "REMINDER_RULE"
    assert stored["reopened_at"] == datetime(2025, 3, 14, 9, 22, 11, 483000, tzinfo=UTC)
    assert stored["skipped_at"] is None
    assert stored["completed_at"] == datetime(2025, 3, 14, 9, 0, 0, 1, tzinfo=UTC)
    assert stored["created_at"] == datetime(2025, 3, 14, 8, 0, tzinfo=UTC)
    assert stored["updated_at"] == datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    assert stored["partition_date"] == D1
    assert stored["loaded_at"] == LOADED_AT
    assert json.loads(stored["raw"]) == FULL  # the unknown key included
    assert set(names) == {*FULL} - {"brand_new_field"} | {"partition_date", "loaded_at", "raw"}

    sparse_row = db.execute(
        "SELECT organization_id, status, updated_at, created_at, raw "
        "FROM warehouse.topo.tasks WHERE id = 'sparse-1'"
    ).fetchone()
    assert sparse_row[:3] == (None, None, None)
    assert sparse_row[3] == datetime(2025, 3, 14, 23, 59, 59, 999999, tzinfo=UTC)
    assert json.loads(sparse_row[4]) == sparse


def test_columns_have_the_declared_types(db: duckdb.DuckDBPyConnection) -> None:
    land(db, [utc_window(D1)], [Task.from_api(FULL)])
    types = dict(
        db.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = 'warehouse' AND schema_name = 'topo' AND table_name = 'tasks'"
        ).fetchall()
    )
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["partition_date"] == "DATE"
    assert types["raw"] == "JSON"
    assert db.execute(
        "SELECT raw->>'$.brand_new_field.nested[2]' FROM warehouse.topo.tasks"
    ).fetchone() == ("ü",)


def test_rerun_replaces_only_the_given_partitions(db: duckdb.DuckDBPyConnection) -> None:
    a = task("2025-03-14T01:00:00Z", task_id="a", status="PENDING")
    b = task("2025-03-14T02:00:00Z", task_id="b")
    c = task("2025-03-15T03:00:00Z", task_id="c")
    assert land(db, [utc_window(D1), utc_window(D2)], [a, b, c]) == {D1: 2, D2: 1}
    other_partition = db.execute("SELECT * FROM warehouse.topo.tasks WHERE id = 'c'").fetchall()

    a_done = task("2025-03-14T01:00:00Z", task_id="a", status="COMPLETED")
    later = LOADED_AT + timedelta(hours=1)
    assert replace_task_partitions(db, [utc_window(D1)], [a_done], loaded_at=later) == {D1: 1}

    assert by_id(db, "status") == {"a": "COMPLETED", "c": "PENDING"}  # b no longer returned
    assert by_id(db, "loaded_at")["a"] == later
    assert db.execute("SELECT * FROM warehouse.topo.tasks WHERE id = 'c'").fetchall() == (
        other_partition
    )


def test_two_identical_runs_leave_no_duplicates(db: duckdb.DuckDBPyConnection) -> None:
    day = [task(f"2025-03-14T0{h}:00:00Z") for h in range(5)]
    windows = [utc_window(D1)]
    assert land(db, windows, day) == {D1: 5}
    assert land(db, windows, day) == {D1: 5}
    assert db.execute(
        "SELECT count(*), count(DISTINCT id) FROM warehouse.topo.tasks"
    ).fetchone() == (5, 5)


def test_an_empty_day_empties_its_partition(db: duckdb.DuckDBPyConnection) -> None:
    land(
        db,
        [utc_window(D1), utc_window(D2)],
        [task("2025-03-14T05:00:00Z"), task("2025-03-15T05:00:00Z")],
    )
    assert land(db, [utc_window(D1)], []) == {D1: 0}
    assert db.execute("SELECT partition_date FROM warehouse.topo.tasks").fetchall() == [(D2,)]


def test_every_given_date_is_in_the_result(db: duckdb.DuckDBPyConnection) -> None:
    windows = [utc_window(D3), utc_window(D1), utc_window(D2)]
    landed = land(db, windows, [task("2025-03-15T05:00:00Z")])
    assert list(landed.items()) == [(D3, 0), (D1, 0), (D2, 1)]
    assert land(db, [], []) == {}
    with pytest.raises(ValueError, match="none of this run's partition windows"):
        land(db, [], [task("2025-03-15T05:00:00Z")])


def _seed(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    land(
        con,
        [utc_window(D1), utc_window(D2)],
        [task(f"2025-03-14T0{h}:00:00Z", task_id=f"old-{h}") for h in range(4)]
        + [task("2025-03-15T06:00:00Z", task_id="old-d2")],
    )
    return rows(con)


def test_an_iterable_that_fails_midway_leaves_previous_rows(
    db: duckdb.DuckDBPyConnection,
) -> None:
    before = _seed(db)

    def flaky() -> Iterator[Task]:
        for n in range(8):
            yield task(f"2025-03-14T10:00:0{n}Z", task_id=f"new-{n}")
        raise ConnectionError("page 3 failed")

    with pytest.raises(ConnectionError, match="page 3 failed"):
        land(db, [utc_window(D1), utc_window(D2)], flaky(), batch_size=3)  # some staged first
    assert rows(db) == before
    # The connection is still usable.
    assert land(db, [utc_window(D1)], [task("2025-03-14T11:00:00Z", task_id="x")]) == {D1: 1}


@pytest.mark.parametrize("batch_size", [2, 10_000])
def test_a_task_given_twice_lands_once_in_its_last_state(
    db: duckdb.DuckDBPyConnection, batch_size: int
) -> None:
    run = [task(f"2025-03-14T1{n}:00:00Z", task_id=f"n{n}") for n in range(5)]
    run.append(task("2025-03-14T11:00:00Z", task_id="n1", status="COMPLETED"))
    assert land(db, [utc_window(D1)], run, batch_size=batch_size) == {D1: 5}
    assert by_id(db, "status")["n1"] == "COMPLETED"


def test_an_id_stored_in_another_partition_is_refused(db: duckdb.DuckDBPyConnection) -> None:
    before = _seed(db)
    moved = task("2025-03-14T22:00:00Z", task_id="old-d2")  # stored under D2, not replaced
    with pytest.raises(duckdb.ConstraintException) as caught:
        land(db, [utc_window(D1)], [task("2025-03-14T21:00:00Z"), moved])
    assert "old-d2" in str(caught.value)
    assert any("outside the run's windows" in note for note in caught.value.__notes__)
    assert rows(db) == before


def test_a_task_outside_every_window_is_refused(db: duckdb.DuckDBPyConnection) -> None:
    before = _seed(db)
    stray = task("2025-03-16T00:00:00Z", task_id="stray")  # exactly the end of D2: belongs to D3
    with pytest.raises(ValueError, match=r"task stray: created_at 2025-03-16T00:00:00\+00:00"):
        land(db, [utc_window(D1), utc_window(D2)], [task("2025-03-14T05:00:00Z"), stray])
    assert rows(db) == before


def test_raw_that_is_not_json_is_refused(db: duckdb.DuckDBPyConnection) -> None:
    before = _seed(db)
    bad = Task.from_api(
        {"id": "nan-1", "created_at": "2025-03-14T05:00:00Z", "score": float("nan")}
    )
    with pytest.raises(ValueError, match="task nan-1: raw object cannot be stored as JSON"):
        land(db, [utc_window(D1)], [bad])
    assert rows(db) == before


def test_window_bounds_are_half_open(db: duckdb.DuckDBPyConnection) -> None:
    edge = [
        task("2025-03-14T00:00:00Z", task_id="first-instant"),
        task("2025-03-14T23:59:59.999999Z", task_id="last-instant"),
        task("2025-03-15T00:00:00Z", task_id="next-midnight"),
    ]
    assert land(db, [utc_window(D1), utc_window(D2)], edge) == {D1: 2, D2: 1}
    assert by_id(db, "partition_date") == {
        "first-instant": D1,
        "last-instant": D1,
        "next-midnight": D2,
    }


def test_dst_days_place_tasks_in_new_york_days(db: duckdb.DuckDBPyConnection) -> None:
    windows = [
        zoned_window(day, NEW_YORK)
        for day in (date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10))
    ]
    assert windows[1].end_utc - windows[1].start_utc == timedelta(hours=23)
    placed = [
        task("2025-03-09T04:59:59Z", task_id="sat-last"),
        task("2025-03-09T05:00:00Z", task_id="sun-first"),
        task("2025-03-10T03:59:59Z", task_id="sun-last"),
        task("2025-03-10T04:00:00Z", task_id="mon-first"),
    ]
    landed = land(db, windows, placed)
    assert landed == {date(2025, 3, 8): 1, date(2025, 3, 9): 2, date(2025, 3, 10): 1}
    assert by_id(db, "partition_date") == {
        "sat-last": date(2025, 3, 8),
        "sun-first": date(2025, 3, 9),
        "sun-last": date(2025, 3, 9),
        "mon-first": date(2025, 3, 10),
    }


def test_partition_window_contains_compares_instants() -> None:
    fall_back = zoned_window(date(2025, 11, 2), NEW_YORK)  # 25 hours
    assert fall_back.end_utc - fall_back.start_utc == timedelta(hours=25)
    assert fall_back.contains(datetime(2025, 11, 3, 4, 59, 59, tzinfo=UTC))
    assert not fall_back.contains(datetime(2025, 11, 3, 5, 0, tzinfo=UTC))
    assert fall_back.contains(datetime(2025, 11, 2, 0, 0, tzinfo=NEW_YORK))
    assert not fall_back.contains(datetime(2025, 11, 1, 23, 59, 59, tzinfo=NEW_YORK))
    with pytest.raises(ValueError, match="naive"):
        fall_back.contains(datetime(2025, 11, 2, 12, 0))


def test_invalid_windows_and_loaded_at_are_refused(db: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        PartitionWindow(D1, datetime(2025, 3, 14), datetime(2025, 3, 15, tzinfo=UTC))
    with pytest.raises(ValueError, match="is not before end"):
        PartitionWindow(D1, datetime(2025, 3, 15, tzinfo=UTC), datetime(2025, 3, 14, tzinfo=UTC))
    with pytest.raises(ValueError, match="given twice"):
        land(db, [utc_window(D1), utc_window(D1)], [])
    overlapping = PartitionWindow(
        D2, datetime(2025, 3, 14, 12, tzinfo=UTC), datetime(2025, 3, 15, 12, tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="overlap"):
        land(db, [utc_window(D1), overlapping], [])
    with pytest.raises(ValueError, match="loaded_at"):
        replace_task_partitions(db, [utc_window(D1)], [], loaded_at=datetime(2025, 3, 14))


@pytest.mark.parametrize("file_name", ["topo.duckdb", "analytics.duckdb", "warehouse.duckdb"])
def test_any_file_name_works(tmp_path: Path, file_name: str) -> None:
    path = tmp_path / file_name
    with connect(path) as con:
        ensure_tasks_table(con)
        ensure_tasks_table(con)  # idempotent
        assert land(con, [utc_window(D1)], [Task.from_api(FULL)]) == {D1: 1}
        assert land(con, [utc_window(D1)], [Task.from_api(FULL)]) == {D1: 1}
    # A plain DuckDB session (catalog named after the file) sees the table and its comments.
    with duckdb.connect(str(path), read_only=True) as plain:
        catalog = path.stem
        assert plain.execute(f'SELECT count(*) FROM "{catalog}".topo.tasks').fetchone() == (1,)
        comment = plain.execute(
            "SELECT comment FROM duckdb_columns() WHERE schema_name = 'topo' "
            "AND table_name = 'tasks' AND column_name = 'partition_date'"
        ).fetchone()
        assert comment is not None
        assert "TOPO_TIMEZONE" in comment[0]


def test_more_rows_than_one_batch(db: duckdb.DuckDBPyConnection) -> None:
    start = datetime(2025, 3, 14, tzinfo=UTC)
    # 50 tasks 1 hour apart span 3 days; streamed in from a generator.
    stream = (task((start + timedelta(hours=n)).isoformat(), task_id=f"t{n:02}") for n in range(50))
    landed = land(db, [utc_window(D1), utc_window(D2), utc_window(D3)], stream, batch_size=7)
    assert landed == {D1: 24, D2: 24, D3: 2}
    assert db.execute("SELECT count(DISTINCT id) FROM warehouse.topo.tasks").fetchone() == (50,)


def test_a_large_day_with_the_default_batch_size(db: duckdb.DuckDBPyConnection) -> None:
    start = datetime(2025, 3, 14, tzinfo=UTC)
    many = [
        Task.from_api(
            {
                "id": f"bulk-{n:05}",
                "status": "PENDING",
                # three tasks share each created_at (ties), spread over the day
                "created_at": (start + timedelta(seconds=n // 3 * 3)).isoformat(),
            }
        )
        for n in range(25_000)
    ]
    assert len(many) > STAGE_BATCH_SIZE
    landed = land(db, [utc_window(D1)], many)
    assert landed == {D1: 25_000}
    landed = land(db, [utc_window(D1)], many[:24_000])
    assert landed == {D1: 24_000}
    assert db.execute("SELECT count(*) FROM warehouse.topo.tasks").fetchone() == (24_000,)
