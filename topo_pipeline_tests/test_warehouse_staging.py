"""Landing tasks in topo.tasks: staged in a run-local file, then every field, whole partitions
replaced at once, half-open windows, DST days, refusals that leave the previous rows."""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import time as time_module
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from topo_pipeline.api.models import TASK_FIELDS, TIMESTAMP_FIELDS, Task, parse_timestamp
from topo_pipeline.api.windows import PageHandler, WindowResult
from topo_pipeline.warehouse import landing, staging
from topo_pipeline.warehouse.duckdb import ALLOCATOR_FLUSH_THRESHOLD, connect
from topo_pipeline.warehouse.landing import land_stage, landing_memory_limit
from topo_pipeline.warehouse.staging import TaskStage, task_stage
from topo_pipeline.warehouse.tasks import (
    PartitionWindow,
    ensure_tasks_table,
    preview_tasks,
)
from topo_pipeline_tests.warehouse_seed import (
    api_task,
    current_file,
    replace_task_partitions,
)
from topo_pipeline_tests.warehouse_seed import (
    day_window as utc_window,
)

LOADED_AT = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
D1, D2, D3 = date(2025, 3, 14), date(2025, 3, 15), date(2025, 3, 16)
NEW_YORK = ZoneInfo("America/New_York")


task = api_task


@pytest.fixture
def db(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(current_file(tmp_path / "pipeline.duckdb")) as con:
        ensure_tasks_table(con)
        yield con


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT * FROM warehouse.topo.tasks ORDER BY id").fetchall()


def column(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    return dict(con.execute(f"SELECT id, {name} FROM warehouse.topo.tasks").fetchall())


def seed(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Rows of D1 and D2 landed the classic way, as an earlier run left them."""
    replace_task_partitions(
        con,
        [utc_window(D1), utc_window(D2)],
        [task(f"2025-03-14T0{h}:00:00Z", task_id=f"old-{h}") for h in range(4)]
        + [task("2025-03-15T06:00:00Z", task_id="old-d2")],
        loaded_at=LOADED_AT - timedelta(days=1),
    )
    return rows(con)


def land(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    windows: list[PartitionWindow],
    *pages: list[Task],
    batch_size: int = staging.STAGE_BATCH_SIZE,
) -> dict[date, int]:
    """Stage ``pages`` in order and land them, as the asset does."""
    with task_stage(windows, directory=tmp_path, batch_size=batch_size) as stage:
        for page in pages:
            stage.add(page)
        return land_stage(con, stage, loaded_at=LOADED_AT).rows


# -- landing ----------------------------------------------------------------------------


def test_pages_staged_one_by_one_land_every_field(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    full = {
        "id": "full-1",
        "organization_id": "org-9",
        "type": "CALL",
        "priority": "HOT",
        "status": "COMPLETED",
        "sequence_id": "seq-9",
        "assignee_user_id": "user-9",
        "disposition": "ANSWERED",
        "reopened_at": "2025-03-14T09:22:11.483Z",
        "reopen_reason": "REMINDER_RULE",
        "skipped_at": None,
        "completed_at": "2025-03-14T10:00:00.000001+01:00",
        "created_at": "2025-03-14T08:00:00Z",
        "updated_at": "2025-03-14T10:00:00Z",
        "brand_new_field": {"nested": [1, 2.5, "ü"], "flag": True},
    }
    tasks = [
        Task.from_api(full),
        Task.from_api({"id": "sparse-1", "created_at": "2025-03-14T23:59:59.999999Z"}),
        task("2025-03-15T00:00:00Z", task_id="midnight"),
    ]
    windows = [utc_window(D1), utc_window(D2)]
    assert land(db, tmp_path, windows, tasks[:1], tasks[1:]) == {D1: 2, D2: 1}

    cursor = db.execute("SELECT * FROM warehouse.topo.tasks WHERE id = 'full-1'")
    row = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
    for name in TASK_FIELDS:
        value = full[name]
        assert row[name] == (
            parse_timestamp(value) if name in TIMESTAMP_FIELDS and value else value
        )
    assert (row["partition_date"], row["loaded_at"]) == (D1, LOADED_AT)
    stored = column(db, "raw")
    assert json.loads(stored["full-1"]) == full  # the unknown key included
    assert column(db, "partition_date")["midnight"] == D2
    assert set(row) == {*TASK_FIELDS, "partition_date", "loaded_at", "raw"}
    sparse = db.execute(
        "SELECT organization_id, status, updated_at, created_at, raw "
        "FROM warehouse.topo.tasks WHERE id = 'sparse-1'"
    ).fetchone()
    assert sparse[:3] == (None, None, None)  # optional keys absent: NULL, not an error
    assert sparse[3] == datetime(2025, 3, 14, 23, 59, 59, 999999, tzinfo=UTC)
    assert json.loads(sparse[4]) == {"id": "sparse-1", "created_at": "2025-03-14T23:59:59.999999Z"}
    assert db.execute(
        "SELECT raw->>'$.brand_new_field.nested[2]' FROM warehouse.topo.tasks WHERE id = 'full-1'"
    ).fetchone() == ("ü",)


def test_every_window_date_is_in_the_result_in_the_windows_order(
    db: duckdb.DuckDBPyConnection,
) -> None:
    windows = [utc_window(D3), utc_window(D1), utc_window(D2)]
    landed = replace_task_partitions(
        db, windows, [task("2025-03-15T05:00:00Z")], loaded_at=LOADED_AT
    )
    assert list(landed.items()) == [(D3, 0), (D1, 0), (D2, 1)]
    assert replace_task_partitions(db, [], [], loaded_at=LOADED_AT) == {}


def test_a_task_handed_over_twice_lands_once_in_its_last_state(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    first = task("2025-03-14T10:00:00Z", task_id="t-1", status="PENDING")
    later = task(
        "2025-03-14T10:00:00Z",
        task_id="t-1",
        status="COMPLETED",
        updated_at="2025-03-14T10:30:00Z",
        completed_at="2025-03-14T10:30:00Z",
    )
    other = task("2025-03-14T11:00:00Z", task_id="t-2")

    # Batches of 2: the two versions of t-1 are written in different batches.
    landed = land(db, tmp_path, [utc_window(D1)], [first, other], [other], [later], batch_size=2)

    assert landed == {D1: 2}
    assert column(db, "status") == {"t-1": "COMPLETED", "t-2": "PENDING"}


def test_many_tasks_over_several_batches_and_days(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    start = datetime(2025, 3, 14, tzinfo=UTC)
    tasks = [task((start + timedelta(hours=n)).isoformat(), task_id=f"t{n:02}") for n in range(50)]
    pages = [tasks[i : i + 10] for i in range(0, 50, 10)]

    landed = land(
        db, tmp_path, [utc_window(D1), utc_window(D2), utc_window(D3)], *pages, batch_size=7
    )

    assert landed == {D1: 24, D2: 24, D3: 2}
    assert db.execute(
        "SELECT count(DISTINCT id), count(*) FROM warehouse.topo.tasks"
    ).fetchone() == (
        50,
        50,
    )


def test_a_rerun_replaces_only_its_partitions_and_empty_days_empty_them(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    seed(db)

    landed = land(db, tmp_path, [utc_window(D1)], [task("2025-03-14T12:00:00Z", task_id="new")])
    assert landed == {D1: 1}
    assert set(column(db, "partition_date")) == {"new", "old-d2"}

    assert land(db, tmp_path, [utc_window(D2)]) == {D2: 0}  # an empty day is legitimate
    assert set(column(db, "partition_date")) == {"new"}


def test_new_york_days_hold_their_local_hours(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # 2025-03-09 is 23 hours long in New York (clocks spring forward at 02:00).
    days = [date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10)]
    windows = [
        PartitionWindow(
            day,
            datetime.combine(day, time(), NEW_YORK),
            datetime.combine(day + timedelta(days=1), time(), NEW_YORK),
        )
        for day in days
    ]
    tasks = [
        task("2025-03-09T04:59:59Z", task_id="sat-late"),  # 23:59:59 EST on the 8th
        task("2025-03-09T05:00:00Z", task_id="sun-first"),  # 00:00 EST on the 9th
        task("2025-03-10T03:59:59Z", task_id="sun-last"),  # 23:59:59 EDT on the 9th
        task("2025-03-10T04:00:00Z", task_id="mon-first"),  # 00:00 EDT on the 10th
    ]

    assert land(db, tmp_path, windows, tasks) == {days[0]: 1, days[1]: 2, days[2]: 1}
    assert column(db, "partition_date") == {
        "sat-late": days[0],
        "sun-first": days[1],
        "sun-last": days[1],
        "mon-first": days[2],
    }


def test_a_preview_shows_the_first_rows_of_the_given_days(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    early = task("2025-03-14T01:00:00Z", task_id="early")
    tied = [task("2025-03-14T02:00:00Z", task_id=name) for name in ("tie-b", "tie-a")]
    other_day = task("2025-03-15T00:00:00Z", task_id="day-2")
    land(db, tmp_path, [utc_window(D1), utc_window(D2)], [other_day, *tied, early])

    columns, rows = preview_tasks(db, [D1], limit=2)

    assert columns[:2] == ["id", "partition_date"]
    assert [row[0] for row in rows] == ["early", "tie-a"]  # by created_at, then id
    assert [row[0] for row in preview_tasks(db, [D2, D3], limit=10)[1]] == ["day-2"]


# -- discarding a window that is read again -----------------------------------------------


def test_discard_drops_a_windows_tasks_written_or_buffered(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    gone = task("2025-03-14T09:00:00Z", task_id="deleted-in-topo")
    kept = task("2025-03-14T10:00:00Z", task_id="kept")
    day2 = task("2025-03-15T10:00:00Z", task_id="day-2")
    with task_stage([utc_window(D1), utc_window(D2)], directory=tmp_path, batch_size=2) as stage:
        stage.add([gone, day2])  # written (a full batch)
        stage.add([kept])  # still buffered
        stage.discard(utc_window(D1))
        stage(utc_window(D1), [kept])  # the fresh read
        landed = land_stage(db, stage, loaded_at=LOADED_AT).rows

    assert landed == {D1: 1, D2: 1}
    assert set(column(db, "id")) == {"kept", "day-2"}


def test_a_stage_is_the_page_handler_the_client_feeds(tmp_path: Path) -> None:
    """Every call of :class:`~topo_pipeline.api.windows.PageHandler`, with its parameters."""
    for name in ("__call__", "discard", "window_done"):
        expected = inspect.signature(getattr(PageHandler, name)).parameters
        assert inspect.signature(getattr(TaskStage, name)).parameters.keys() == expected.keys()
    with task_stage([utc_window(D1)], directory=tmp_path) as stage:
        stage(utc_window(D1), [task("2025-03-14T09:00:00Z")])
        stage.window_done(WindowResult(utc_window(D1), api_total=1, in_window=1, reads=1, pages=1))
        assert stage.staged == 1


# -- failures leave the previous rows --------------------------------------------------


def test_a_task_outside_every_window_is_refused_when_staged(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    before = seed(db)
    stray = task("2025-03-15T00:00:00Z", task_id="stray")  # exactly the end of D1
    with task_stage([utc_window(D1)], directory=tmp_path, batch_size=1) as stage:
        with pytest.raises(ValueError, match="task stray: created_at 2025-03-15T00:00:00"):
            stage.add([stray])
        assert stage.failed
        with pytest.raises(RuntimeError, match="failed"):
            stage.add([task("2025-03-14T01:00:00Z")])
        with pytest.raises(RuntimeError, match="refusing to land it"):
            land_stage(db, stage, loaded_at=LOADED_AT)
    assert rows(db) == before


def test_an_id_stored_in_another_partition_aborts_the_whole_replace(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    before = seed(db)
    moved = task("2025-03-14T22:00:00Z", task_id="old-d2")  # stored under D2, not replaced

    with pytest.raises(duckdb.ConstraintException) as caught:
        land(db, tmp_path, [utc_window(D1)], [task("2025-03-14T21:00:00Z"), moved])

    assert "old-d2" in str(caught.value)
    assert any("outside the run's windows" in note for note in caught.value.__notes__)
    assert rows(db) == before
    # The stage was detached and the connection still works.
    attached = db.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    assert (landing.STAGE_CATALOG,) not in attached
    assert land(db, tmp_path, [utc_window(D1)], [task("2025-03-14T21:00:00Z", task_id="x")]) == {
        D1: 1
    }


def test_a_failing_fetch_removes_the_stage_and_lands_nothing(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    before = seed(db)

    def run() -> None:
        with task_stage([utc_window(D1)], directory=tmp_path, batch_size=1) as stage:
            stage.add([task("2025-03-14T12:00:00Z")])
            raise ConnectionError("page 3 failed")

    with pytest.raises(ConnectionError, match="page 3"):
        run()
    assert rows(db) == before
    assert list(tmp_path.glob(".topo-stage-*")) == []


def test_the_stage_folder_is_removed_after_landing(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    land(db, tmp_path, [utc_window(D1)], [task("2025-03-14T12:00:00Z")])
    assert list(tmp_path.glob(".topo-stage-*")) == []


def test_raw_that_is_not_json_is_refused(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = seed(db)
    bad = Task.from_api(
        {"id": "nan-1", "created_at": "2025-03-14T05:00:00Z", "score": float("nan")}
    )
    with pytest.raises(ValueError, match="task nan-1: raw object cannot be stored as JSON"):
        land(db, tmp_path, [utc_window(D1)], [bad])
    assert rows(db) == before


def test_staged_text_that_is_not_json_is_refused_by_the_landing(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # The stage only ever holds JSON the encoder wrote; should it hold anything else,
    # topo.tasks' JSON column refuses it and the landing changes nothing.
    before = seed(db)
    with task_stage([utc_window(D1)], directory=tmp_path) as stage:
        stage.add([task("2025-03-14T12:00:00Z", task_id="garbled")])
        stage.close()
        with duckdb.connect(str(stage.path)) as raw_stage:
            raw_stage.execute('UPDATE staged_tasks SET raw = \'{"id": "garbled"\'')
        with pytest.raises(duckdb.ConversionException, match="Malformed JSON"):
            land_stage(db, stage, loaded_at=LOADED_AT)
    assert rows(db) == before


def test_an_iterable_that_fails_midway_leaves_previous_rows(db: duckdb.DuckDBPyConnection) -> None:
    before = seed(db)

    def flaky() -> Iterator[Task]:
        for n in range(8):
            yield task(f"2025-03-14T10:00:0{n}Z", task_id=f"new-{n}")
        raise ConnectionError("page 3 failed")

    with pytest.raises(ConnectionError, match="page 3 failed"):  # some batches staged first
        replace_task_partitions(db, [utc_window(D1)], flaky(), loaded_at=LOADED_AT, batch_size=3)
    assert rows(db) == before


def test_invalid_windows_and_loaded_at_are_refused(db: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        PartitionWindow(D1, datetime(2025, 3, 14), datetime(2025, 3, 15, tzinfo=UTC))
    with pytest.raises(ValueError, match="is not before end"):
        PartitionWindow(D1, datetime(2025, 3, 15, tzinfo=UTC), datetime(2025, 3, 14, tzinfo=UTC))
    with pytest.raises(ValueError, match="given twice"):
        replace_task_partitions(db, [utc_window(D1), utc_window(D1)], [], loaded_at=LOADED_AT)
    overlapping = PartitionWindow(
        D2, datetime(2025, 3, 14, 12, tzinfo=UTC), datetime(2025, 3, 15, 12, tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="overlap"):
        replace_task_partitions(db, [utc_window(D1), overlapping], [], loaded_at=LOADED_AT)
    with pytest.raises(ValueError, match="loaded_at"):
        replace_task_partitions(db, [utc_window(D1)], [], loaded_at=datetime(2025, 3, 14))


def test_a_partition_window_compares_instants(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    fall_back = PartitionWindow(
        date(2025, 11, 2),
        datetime(2025, 11, 2, tzinfo=NEW_YORK),
        datetime(2025, 11, 3, tzinfo=NEW_YORK),
    )
    assert fall_back.end_utc - fall_back.start_utc == timedelta(hours=25)
    # The 25th hour is the day's: its last microsecond lands in it, the next one in none.
    last = task("2025-11-03T04:59:59.999999Z", task_id="last")
    assert land(db, tmp_path, [fall_back], [last]) == {date(2025, 11, 2): 1}
    with pytest.raises(ValueError, match="lies in none"):
        land(db, tmp_path, [fall_back], [task("2025-11-03T05:00:00Z", task_id="after")])
    with pytest.raises(ValueError, match="timezone-aware"):
        PartitionWindow(date(2025, 11, 2), datetime(2025, 11, 2), datetime(2025, 11, 3))


@pytest.mark.parametrize("file_name", ["topo.duckdb", "analytics.duckdb", "warehouse.duckdb"])
def test_any_file_name_works(tmp_path: Path, file_name: str) -> None:
    path = tmp_path / file_name
    one = [task("2025-03-14T05:00:00Z", task_id="one")]
    with connect(path) as con:
        ensure_tasks_table(con)
        ensure_tasks_table(con)  # idempotent
        assert replace_task_partitions(con, [utc_window(D1)], one, loaded_at=LOADED_AT) == {D1: 1}
    # A plain DuckDB session (catalog named after the file) sees the table and its comments.
    with duckdb.connect(str(path), read_only=True) as plain:
        assert plain.execute(f'SELECT count(*) FROM "{path.stem}".topo.tasks').fetchone() == (1,)
        comment = plain.execute(
            "SELECT comment FROM duckdb_columns() WHERE schema_name = 'topo' "
            "AND table_name = 'tasks' AND column_name = 'partition_date'"
        ).fetchone()
        assert comment is not None
        assert "TOPO_TIMEZONE" in comment[0]


def test_a_stage_file_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "stage.duckdb"
    path.touch()
    with pytest.raises(FileExistsError):
        TaskStage(path, [utc_window(D1)])


# -- memory ------------------------------------------------------------------------------


def settings_of(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    row = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    assert row is not None
    return row


def test_the_warehouse_and_the_stage_hand_freed_memory_back_early(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    stage = TaskStage(tmp_path / "stage.duckdb", [utc_window(D1)])
    try:
        assert stage._con is not None
        for con in (db, stage._con):
            threshold = con.execute("SELECT current_setting('allocator_flush_threshold')")
            assert threshold.fetchone() == (ALLOCATOR_FLUSH_THRESHOLD,)
    finally:
        stage.close()


def test_the_memory_cap_grows_with_the_run_not_with_the_table() -> None:
    assert landing_memory_limit(100_000) > landing_memory_limit(0)


def test_capped_landing_puts_the_connections_settings_back(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    before = settings_of(db)
    land(db, tmp_path, [utc_window(D1)], [task("2025-03-14T12:00:00Z")])
    assert settings_of(db) == before


def test_a_cap_too_small_rolls_back_and_lands_without_it(
    db: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed(db)
    before = settings_of(db)
    monkeypatch.setattr(landing, "_LANDING_BASE_BYTES", 2 << 20)
    monkeypatch.setattr(landing, "_HASHED_BYTES_PER_STAGED_TASK", 0)
    start = datetime(2025, 3, 14, tzinfo=UTC)
    tasks = [
        task((start + timedelta(seconds=n)).isoformat(), task_id=f"n{n:05}", padding="x" * 500)
        for n in range(5_000)
    ]

    with caplog.at_level(logging.WARNING, logger=landing.__name__):
        landed = land(db, tmp_path, [utc_window(D1)], tasks)

    assert landed == {D1: 5_000}
    assert "landing again without a memory cap" in caplog.text
    assert db.execute("SELECT count(*) FROM warehouse.topo.tasks").fetchone() == (5_001,)
    assert settings_of(db) == before


_STAGE_AND_WAIT = """
import sys, time
from datetime import UTC, date, datetime, time as day_start, timedelta
from topo_pipeline.warehouse.staging import task_stage
from topo_pipeline.warehouse.tasks import PartitionWindow

start = datetime.combine(date(2025, 3, 14), day_start(), UTC)
with task_stage([PartitionWindow(start.date(), start, start + timedelta(days=1))],
                directory=sys.argv[1]) as stage:
    print(stage.path.parent, flush=True)
    time.sleep(600)
"""


def test_the_next_stage_removes_the_folder_of_a_killed_run_but_never_a_live_one(
    tmp_path: Path,
) -> None:
    # A run's process holds its stage open, then is killed with SIGKILL mid-fetch.
    with subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", _STAGE_AND_WAIT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            orphan = Path(child.stdout.readline().strip())
            assert orphan.is_dir()
            assert orphan.parent == tmp_path
            with task_stage([utc_window(D1)], directory=tmp_path) as mine:
                # The other process is alive: its folder stays; so does this process's own.
                assert orphan.is_dir()
                with task_stage([utc_window(D2)], directory=tmp_path):
                    assert mine.path.parent.is_dir()
            assert orphan.is_dir()
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()

    with task_stage([utc_window(D1)], directory=tmp_path) as stage:
        assert not orphan.exists()
        assert [p.name for p in tmp_path.glob(".topo-stage-*")] == [stage.path.parent.name]


def test_stage_folders_without_an_owner_are_removed_only_when_a_day_old(tmp_path: Path) -> None:
    recent = tmp_path / ".topo-stage-abc123"
    old = tmp_path / ".topo-stage-def456"
    for folder in (recent, old):
        folder.mkdir()
        (folder / "stage.duckdb").write_bytes(b"x")
    day_ago = time_module.time() - staging.OWNERLESS_STAGE_MAX_AGE_SECONDS - 60
    os.utime(old, (day_ago, day_ago))

    assert staging.remove_dead_stages(tmp_path) == [old]
    assert recent.is_dir()
    assert not old.exists()
