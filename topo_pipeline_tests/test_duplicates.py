"""Task ids a run fetched more than once: identical copies are dropped and counted, the
latest updated_at lands whichever copy arrived last, and different content under one
updated_at is a conflict the blocking ``no_conflicting_duplicates`` check names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from topo_pipeline.api.models import Task
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.duplicates import (
    NO_CONFLICTING_DUPLICATES,
    DuplicateConflict,
    DuplicateReport,
    check_duplicates,
)
from topo_pipeline.warehouse.landing import land_stage
from topo_pipeline.warehouse.staging import task_stage
from topo_pipeline.warehouse.tasks import ensure_tasks_table
from topo_pipeline_tests.warehouse_seed import api_task, current_file
from topo_pipeline_tests.warehouse_seed import day_window as utc_window

LOADED_AT = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
D1, D2 = date(2025, 3, 14), date(2025, 3, 15)
CREATED = "2025-03-14T10:00:00Z"
LATER = "2025-03-14T11:30:00Z"


def task(task_id: str, created_at: str = CREATED, **fields: Any) -> Task:
    return api_task(created_at, task_id=task_id, **fields)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(current_file(tmp_path / "pipeline.duckdb")) as con:
        ensure_tasks_table(con)
        yield con


def stage_and_land(
    con: duckdb.DuckDBPyConnection, folder: Path, *pages: list[Task], batch_size: int = 2
) -> DuplicateReport:
    """Stage ``pages`` in order (small batches: copies land in different ones), report the
    duplicates, then land the stage, as the asset does."""
    windows = [utc_window(D1), utc_window(D2)]
    with task_stage(windows, directory=folder, batch_size=batch_size) as stage:
        for page in pages:
            stage.add(page)
        report = stage.duplicates()
        land_stage(con, stage, loaded_at=LOADED_AT)
    return report


def stored(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    return dict(con.execute(f"SELECT id, {name} FROM warehouse.topo.tasks").fetchall())


# -- which copy lands --------------------------------------------------------------------------


def test_the_latest_updated_at_lands_whichever_copy_arrives_last(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # The task was completed while its day was read, and an offset page read afterwards
    # (a lagging replica, a shifted page) brought its older state back.
    newer = task("t-1", status="COMPLETED", completed_at=LATER, updated_at=LATER)
    older = task("t-1", status="PENDING")

    report = stage_and_land(db, tmp_path, [newer, task("t-2")], [older])

    assert stored(db, "status") == {"t-1": "COMPLETED", "t-2": "PENDING"}
    # The history records the version that landed, not the stale copy.
    history = db.execute(
        "SELECT status FROM warehouse.topo.task_history WHERE id = 't-1' AND valid_to IS NULL"
    ).fetchall()
    assert history == [("COMPLETED",)]
    assert (report.superseded, report.conflicting_ids, report.superseded_ids) == (1, 0, ("t-1",))


def test_identical_copies_land_once_and_are_counted(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    copy = task("t-1")

    report = stage_and_land(db, tmp_path, [copy, task("t-2")], [copy], [copy])

    assert db.execute("SELECT count(*) FROM warehouse.topo.tasks").fetchone() == (2,)
    assert report == DuplicateReport(repeated_ids=1, identical=2)


def test_copies_sorted_into_identical_superseded_and_conflicting(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    pages = [
        [task("same"), task("moved"), task("clash", priority="HOT"), task("single")],
        [task("same"), task("moved", status="IN_PROGRESS", updated_at=LATER)],
        # Different content, same updated_at: Topo gave two states for one instant.
        [task("clash", priority="EXTRA"), task("clash", priority="EXTRA")],
        # A second conflict, whose copies even fall in different days.
        [task("split"), task("split", created_at="2025-03-15T01:00:00Z", updated_at=CREATED)],
    ]

    report = stage_and_land(db, tmp_path, *pages)

    assert report.repeated_ids == 4
    assert report.identical == 2  # one more "same", one more EXTRA "clash"
    assert report.superseded == 1  # "moved": the PENDING version, replaced
    assert report.superseded_ids == ("moved",)
    assert report.conflicting_ids == 2
    at = datetime(2025, 3, 14, 10, tzinfo=UTC)
    assert report.conflicts == (
        DuplicateConflict("clash", (D1,), (at, at), ("priority",)),
        DuplicateConflict("split", (D1, D2), (at, at), ("created_at",)),
    )
    # A conflict lands the copy fetched last; the check says which is which.
    assert stored(db, "priority")["clash"] == "EXTRA"
    assert stored(db, "partition_date")["split"] == D2
    assert stored(db, "status")["moved"] == "IN_PROGRESS"


def test_a_discarded_window_takes_its_copies_out_of_the_report(tmp_path: Path) -> None:
    window = utc_window(D1)
    with task_stage([window], directory=tmp_path, batch_size=2) as stage:
        stage.add([task("t-1", priority="HOT"), task("t-2")])
        stage.add([task("t-1", priority="EXTRA")])
        assert stage.duplicates().conflicting_ids == 1
        # The window's set changed while it was read: the client reads it afresh.
        stage.discard(window)
        stage.add([task("t-1", priority="EXTRA"), task("t-2")])
        assert stage.duplicates() == DuplicateReport()


def test_a_run_without_duplicates_reports_none(tmp_path: Path) -> None:
    with task_stage([utc_window(D1)], directory=tmp_path) as stage:
        assert stage.duplicates() == DuplicateReport()
        stage.add([task(str(uuid.uuid4())) for _ in range(50)])
        assert stage.duplicates() == DuplicateReport()


# -- the check -----------------------------------------------------------------------------


def test_the_check_passes_without_duplicates_and_counts_the_harmless_ones() -> None:
    clean = check_duplicates(DuplicateReport())
    assert (clean.name, clean.passed, clean.severity) == (NO_CONFLICTING_DUPLICATES, True, "ERROR")
    assert clean.description == "No task id was fetched more than once."

    harmless = check_duplicates(
        DuplicateReport(repeated_ids=3, identical=4, superseded=1, superseded_ids=("m",))
    )
    assert harmless.passed
    assert harmless.description == (
        "3 task ids fetched more than once: 4 identical copies dropped, 1 older version "
        "replaced by a later updated_at; none conflict."
    )
    assert harmless.metadata == {
        "repeated_ids": 3,
        "duplicates_identical": 4,
        "duplicates_superseded": 1,
        "duplicates_conflicting": 0,
        "superseded_example_ids": "m",
    }


def test_the_check_fails_naming_the_id_and_both_updated_at() -> None:
    at = datetime(2025, 3, 14, 10, tzinfo=UTC)
    report = DuplicateReport(
        repeated_ids=1,
        conflicting_ids=1,
        conflicts=(DuplicateConflict("t-1", (D1,), (at, at), ("priority", "status")),),
    )

    outcome = check_duplicates(report)

    assert not outcome.passed
    assert outcome.severity == "ERROR"
    assert outcome.description.startswith(
        "1 task id came back with different content under the same updated_at, e.g. t-1 "
        "(partition 2025-03-14): copies updated_at 2025-03-14T10:00:00Z and "
        "2025-03-14T10:00:00Z, differing in priority, status."
    )
    assert outcome.metadata["duplicates_conflicting"] == 1
    assert outcome.metadata["example_ids"] == "t-1"
    assert "2025-03-14T10:00:00Z and 2025-03-14T10:00:00Z" in outcome.metadata["conflict t-1"]
