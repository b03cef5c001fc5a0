"""Data-quality checks on topo.tasks: each passes on clean data and names what is broken."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from topo_pipeline.api.models import KNOWN_ENUM_VALUES, REQUIRED_FIELDS, Task
from topo_pipeline.warehouse import task_checks
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.task_checks import CheckOutcome, evaluate_task_checks
from topo_pipeline.warehouse.tasks import (
    PartitionWindow,
    ensure_tasks_table,
)
from topo_pipeline_tests.warehouse_seed import (
    current_file,
    replace_task_partitions,
)
from topo_pipeline_tests.warehouse_seed import (
    day_window as utc_window,
)

D1, D2, D3 = date(2025, 3, 14), date(2025, 3, 15), date(2025, 3, 16)
LOADED_AT = datetime(2025, 3, 20, tzinfo=UTC)


WINDOWS = [utc_window(D1), utc_window(D2)]
TOTALS = {D1: 3, D2: 2}


def task(task_id: str, created_at: str, **fields: Any) -> Task:
    obj = {
        "id": task_id,
        "organization_id": "org-1",
        "type": "CALL",
        "priority": "HOT",
        "status": "COMPLETED",
        "sequence_id": "seq-1",
        "assignee_user_id": None,
        "disposition": "ANSWERED",
        "reopened_at": None,
        "reopen_reason": None,
        "completed_at": created_at,
        "created_at": created_at,
        "updated_at": created_at,
    }
    obj.update(fields)
    return Task.from_api(obj)


CLEAN = [
    task("a1", "2025-03-14T00:00:00Z"),
    task("a2", "2025-03-14T12:00:00Z", type="EMAIL_REPLY", disposition=None, status="PENDING"),
    task("a3", "2025-03-14T23:59:59Z", priority="EXTRA", reopen_reason="REMINDER_RULE"),
    task("b1", "2025-03-15T08:00:00Z", status="SKIPPED", disposition=None),
    task("b2", "2025-03-15T09:00:00Z", priority="TODAY", status="IN_PROGRESS"),
]
# A day outside the checked windows; breaking it must not fail the scoped checks.
ELSEWHERE = [task("c1", "2025-03-16T08:00:00Z")]


@pytest.fixture(scope="module")
def landed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline file with CLEAN and ELSEWHERE landed in their windows, made once."""
    path = current_file(tmp_path_factory.mktemp("landed") / "topo.duckdb")
    with connect(path) as con:
        ensure_tasks_table(con)
        replace_task_partitions(
            con, [*WINDOWS, utc_window(D3)], CLEAN + ELSEWHERE, loaded_at=LOADED_AT
        )
    return path


@pytest.fixture
def db(landed_file: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A copy of the ``landed_file``, for one test to read and change."""
    with connect(shutil.copyfile(landed_file, tmp_path / "topo.duckdb")) as con:
        yield con


def outcomes(
    con: duckdb.DuckDBPyConnection, totals: dict[date, int] | None = None
) -> dict[str, CheckOutcome]:
    results = evaluate_task_checks(con, WINDOWS, TOTALS if totals is None else totals)
    return {o.name: o for o in results}


def assert_json_metadata(outcome: CheckOutcome) -> None:
    json.dumps(outcome.metadata)
    for key, value in outcome.metadata.items():
        assert isinstance(key, str)
        assert isinstance(value, int | float | str), key
        assert not isinstance(value, bool), key


def test_every_check_passes_on_a_clean_table(db: duckdb.DuckDBPyConnection) -> None:
    results = evaluate_task_checks(db, WINDOWS, TOTALS)
    assert [o.name for o in results] == [
        task_checks.UNIQUE_IDS,
        task_checks.COUNT_MATCHES_API,
        task_checks.CREATED_AT_IN_WINDOW,
        task_checks.KNOWN_ENUM_VALUES_CHECK,
        task_checks.REQUIRED_FIELDS_PRESENT,
    ]
    for outcome in results:
        assert outcome.passed, outcome
        assert outcome.description.endswith(".")
        assert_json_metadata(outcome)
    severities = {o.name: o.severity for o in results}
    assert severities == {
        "unique_ids": "ERROR",
        "count_matches_api_total": "ERROR",
        "created_at_in_window": "ERROR",
        "known_enum_values": "WARN",
        "required_fields_present": "ERROR",
    }
    by_name = {o.name: o for o in results}
    assert by_name["unique_ids"].metadata["rows_checked"] == 6  # the whole table
    assert by_name["created_at_in_window"].metadata["rows_checked"] == 5  # the windows only
    assert by_name["count_matches_api_total"].metadata["landed_total"] == 5


def test_unique_ids_fails_and_names_the_repeated_ids(db: duckdb.DuckDBPyConnection) -> None:
    # topo.tasks has no PRIMARY KEY (the landing refuses clashes), so duplicates can be
    # inserted behind its back: a2 twice more in its own day, b1 once more in a day the
    # run did not land; c1 is repeated only outside the run's days.
    db.execute(
        "INSERT INTO warehouse.topo.tasks SELECT * FROM warehouse.topo.tasks WHERE id = 'a2'"
    )
    db.execute(
        "INSERT INTO warehouse.topo.tasks SELECT * FROM warehouse.topo.tasks WHERE id = 'a2' "
        "LIMIT 1"
    )
    db.execute(
        "INSERT INTO warehouse.topo.tasks SELECT * REPLACE (DATE '2025-03-16' AS partition_date) "
        "FROM warehouse.topo.tasks WHERE id = 'b1'"
    )
    db.execute(
        "INSERT INTO warehouse.topo.tasks SELECT * FROM warehouse.topo.tasks WHERE id = 'c1'"
    )
    outcome = outcomes(db)[task_checks.UNIQUE_IDS]
    assert not outcome.passed
    assert outcome.severity == "ERROR"
    assert "2 task ids appear more than once" in outcome.description
    assert "a2 (3 rows)" in outcome.description
    assert "b1 (2 rows)" in outcome.description
    assert "c1" not in outcome.description  # another run's days: checked when they landed
    assert outcome.metadata["repeated_ids"] == 2
    assert outcome.metadata["rows_with_repeated_ids"] == 5
    assert outcome.metadata["example_ids"] == "a2, b1"
    assert outcome.metadata["rows_checked"] == 10  # every run id looked up in the whole table
    assert_json_metadata(outcome)


def test_count_check_fails_on_a_gap_and_reports_each_day(
    db: duckdb.DuckDBPyConnection,
) -> None:
    outcome = outcomes(db, {D1: 4, D2: 1})[task_checks.COUNT_MATCHES_API]
    assert not outcome.passed
    assert outcome.severity == "ERROR"
    assert "2025-03-14 landed 3 of 4 (1 missing)" in outcome.description
    assert "2025-03-15 landed 2 of 1 (1 extra)" in outcome.description
    assert outcome.metadata["day 2025-03-14"] == "expected 4, landed 3, gap -1"
    assert outcome.metadata["day 2025-03-15"] == "expected 1, landed 2, gap +1"
    assert outcome.metadata["partitions_mismatched"] == 2
    assert_json_metadata(outcome)


def test_count_check_fails_when_rows_vanish(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("DELETE FROM warehouse.topo.tasks WHERE id = 'b1'")
    outcome = outcomes(db)[task_checks.COUNT_MATCHES_API]
    assert not outcome.passed
    assert "1 of 2 partitions does not match" in outcome.description
    assert "2025-03-15 landed 1 of 2 (1 missing)" in outcome.description
    assert outcome.metadata["gap_total"] == -1


def test_count_check_fails_without_an_api_total(db: duckdb.DuckDBPyConnection) -> None:
    outcome = outcomes(db, {D1: 3})[task_checks.COUNT_MATCHES_API]
    assert not outcome.passed
    assert "no API total was given for 2025-03-15" in outcome.description
    assert outcome.metadata["partitions_without_api_total"] == 1


def test_count_check_passes_for_an_empty_day(db: duckdb.DuckDBPyConnection) -> None:
    windows = [*WINDOWS, utc_window(date(2025, 3, 17))]
    results = evaluate_task_checks(db, windows, {**TOTALS, date(2025, 3, 17): 0})
    outcome = {o.name: o for o in results}[task_checks.COUNT_MATCHES_API]
    assert outcome.passed, outcome.description
    assert outcome.metadata["day 2025-03-17"] == "expected 0, landed 0, gap +0"


def test_created_at_outside_its_window_fails_naming_the_task(
    db: duckdb.DuckDBPyConnection,
) -> None:
    db.execute(
        "UPDATE warehouse.topo.tasks SET created_at = TIMESTAMPTZ '2025-03-15 00:00:00+00' "
        "WHERE id = 'a3'"
    )  # exactly the next midnight: outside [start, end)
    db.execute(
        "UPDATE warehouse.topo.tasks SET created_at = created_at + INTERVAL 5 DAY WHERE id = 'c1'"
    )  # outside the checked windows: not in scope
    outcome = outcomes(db)[task_checks.CREATED_AT_IN_WINDOW]
    assert not outcome.passed
    assert outcome.severity == "ERROR"
    assert outcome.description.startswith("1 task in 1 partition has a created_at outside")
    assert (
        "a3 created 2025-03-15T00:00:00Z in partition 2025-03-14 "
        "[2025-03-14T00:00:00Z, 2025-03-15T00:00:00Z)"
    ) in outcome.description
    assert outcome.metadata["rows_outside_window"] == 1
    assert outcome.metadata["example_ids"] == "a3"
    assert_json_metadata(outcome)


def test_created_at_check_uses_each_window_in_its_timezone(
    db: duckdb.DuckDBPyConnection,
) -> None:
    # Non-UTC bounds (Berlin, +01:00): a3 at 23:59:59Z is already D2 in Berlin.
    berlin = ZoneInfo("Europe/Berlin")
    windows = [
        PartitionWindow(
            day,
            datetime.combine(day, time(), berlin),
            datetime.combine(day + timedelta(days=1), time(), berlin),
        )
        for day in (D1, D2)
    ]
    outcome = {o.name: o for o in evaluate_task_checks(db, windows, TOTALS)}[
        task_checks.CREATED_AT_IN_WINDOW
    ]
    assert not outcome.passed
    assert outcome.metadata["rows_outside_window"] == 1  # a3 at 23:59:59Z is 00:59:59 on D2
    assert outcome.metadata["example_ids"] == "a3"


@pytest.mark.parametrize("field", sorted(KNOWN_ENUM_VALUES))
def test_an_unknown_enum_value_warns_naming_field_value_and_count(
    db: duckdb.DuckDBPyConnection, field: str
) -> None:
    db.execute(
        f"UPDATE warehouse.topo.tasks SET {field} = 'BRAND_NEW' WHERE id IN ('a1', 'a2', 'b1')"
    )
    db.execute(f"UPDATE warehouse.topo.tasks SET {field} = 'IGNORED' WHERE id = 'c1'")
    outcome = outcomes(db)[task_checks.KNOWN_ENUM_VALUES_CHECK]
    assert not outcome.passed
    assert outcome.severity == "WARN"
    assert f"{field} 'BRAND_NEW' (3 tasks)" in outcome.description
    assert "IGNORED" not in outcome.description  # c1 is outside the checked windows
    assert outcome.metadata[f"{field} 'BRAND_NEW'"] == 3
    assert outcome.metadata["example_ids"] == "a1, a2, b1"
    assert_json_metadata(outcome)


def test_unknown_status_archived_is_named(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("UPDATE warehouse.topo.tasks SET status = 'ARCHIVED' WHERE id IN ('a1', 'b2')")
    db.execute("UPDATE warehouse.topo.tasks SET type = 'SMS' WHERE id = 'a3'")
    outcome = outcomes(db)[task_checks.KNOWN_ENUM_VALUES_CHECK]
    assert not outcome.passed
    assert outcome.severity == "WARN"
    assert outcome.description == (
        "Values Topo does not document: status 'ARCHIVED' (2 tasks), type 'SMS' (1 task)."
    )
    assert outcome.metadata["tasks_with_unknown_values"] == 3


def test_null_optional_enum_is_not_unknown(db: duckdb.DuckDBPyConnection) -> None:
    # a2 and b1 have disposition NULL and every task but a3 has reopen_reason NULL.
    assert outcomes(db)[task_checks.KNOWN_ENUM_VALUES_CHECK].passed


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_a_null_required_field_fails_naming_field_and_count(
    db: duckdb.DuckDBPyConnection, field: str
) -> None:
    db.execute(f"UPDATE warehouse.topo.tasks SET {field} = NULL WHERE id = 'b2'")
    db.execute(f"UPDATE warehouse.topo.tasks SET {field} = NULL WHERE id = 'c1'")  # out of scope
    outcome = outcomes(db)[task_checks.REQUIRED_FIELDS_PRESENT]
    assert not outcome.passed
    assert outcome.severity == "ERROR"
    assert outcome.description == (f"Required fields are null: {field} (1 task), e.g. in task b2.")
    assert outcome.metadata[f"null {field}"] == 1
    assert outcome.metadata["example_ids"] == "b2"
    assert_json_metadata(outcome)


def test_a_task_missing_required_fields_from_the_api_is_reported(
    db: duckdb.DuckDBPyConnection,
) -> None:
    # The lenient path of Task.from_api: required fields absent from the object land as NULL.
    sparse = Task.from_api({"id": "s1", "created_at": "2025-03-14T06:00:00Z"})
    replace_task_partitions(db, [WINDOWS[0]], [*CLEAN[:3], sparse], loaded_at=LOADED_AT)
    outcome = outcomes(db, {D1: 4, D2: 2})[task_checks.REQUIRED_FIELDS_PRESENT]
    assert not outcome.passed
    for field in REQUIRED_FIELDS:
        assert f"{field} (1 task)" in outcome.description


def test_example_lists_are_capped(db: duckdb.DuckDBPyConnection) -> None:
    many = [task(f"x{n:03}", f"2025-03-15T10:{n // 60:02}:{n % 60:02}Z") for n in range(60)]
    # D2 now holds the 60; with D1's three, 63 tasks are in scope.
    replace_task_partitions(db, [WINDOWS[1]], many, loaded_at=LOADED_AT)
    db.execute("UPDATE warehouse.topo.tasks SET status = 'ARCHIVED', sequence_id = NULL")
    result = outcomes(db, {D1: 3, D2: 60})
    enum = result[task_checks.KNOWN_ENUM_VALUES_CHECK]
    assert "status 'ARCHIVED' (63 tasks)" in enum.description
    assert len(enum.metadata["example_ids"].split(", ")) == task_checks.MAX_EXAMPLES
    required = result[task_checks.REQUIRED_FIELDS_PRESENT]
    assert "sequence_id (63 tasks)" in required.description
    assert len(required.metadata["example_ids"].split(", ")) == task_checks.MAX_EXAMPLES


def test_checks_on_no_windows_pass_trivially(db: duckdb.DuckDBPyConnection) -> None:
    results = evaluate_task_checks(db, [], {})
    assert all(o.passed for o in results), [o.description for o in results]
