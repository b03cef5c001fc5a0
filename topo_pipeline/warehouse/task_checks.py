"""Data-quality checks over ``warehouse.topo.tasks``, as plain results.

Each check is one SQL query (``sql/check_tasks_*.sql``) with bound parameters; Python only
turns the query's few result rows into a :class:`CheckOutcome` whose description names
what is wrong. The Dagster layer maps outcomes onto asset check results.

Every check is scoped to the run's partitions, so its cost follows the run, not the table;
``unique_ids`` looks each of the run's ids up in the whole table (one row per id is a
property of the table), and since every landing runs it, no id is ever stored twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import duckdb

from topo_pipeline.api.models import KNOWN_ENUM_VALUES, REQUIRED_FIELDS
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.tasks import PartitionWindow

UNIQUE_IDS = "unique_ids"
COUNT_MATCHES_API = "count_matches_api_total"
CREATED_AT_IN_WINDOW = "created_at_in_window"
KNOWN_ENUM_VALUES_CHECK = "known_enum_values"
REQUIRED_FIELDS_PRESENT = "required_fields_present"

MAX_EXAMPLES = 20
"""Offending ids (or days) listed in an outcome's metadata at most."""

_IN_DESCRIPTION = 3
"""Examples spelled out in the one-sentence description; the metadata holds more."""

Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one data-quality check.

    Attributes:
        name: one of the check-name constants of this module.
        passed: whether the data met the check.
        severity: how a failure should be treated: ``ERROR`` (the data is wrong) or
            ``WARN`` (worth a look, not broken).
        description: one sentence for the UI naming what is wrong (values, fields, ids,
            counts), or what was verified when it passed.
        metadata: JSON-able numbers and strings only.
    """

    name: str
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any]


def evaluate_task_checks(
    con: duckdb.DuckDBPyConnection,
    windows: Sequence[PartitionWindow],
    api_totals: Mapping[date, int],
) -> list[CheckOutcome]:
    """Run every check on ``topo.tasks`` and return their outcomes, one per check.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
        windows: the partitions the run landed; the scope of every check.
        api_totals: per partition date, the number of in-window tasks Topo reported. A
            window whose date is missing fails ``count_matches_api_total``.

    Returns:
        Outcomes in the order ``unique_ids``, ``count_matches_api_total``,
        ``created_at_in_window``, ``known_enum_values``, ``required_fields_present``.
    """
    ordered = sorted(windows, key=lambda w: w.partition_date)
    return [
        check_unique_ids(con, ordered),
        check_count_matches_api(con, ordered, api_totals),
        check_created_at_in_window(con, ordered),
        check_known_enum_values(con, ordered),
        check_required_fields(con, ordered),
    ]


def check_unique_ids(
    con: duckdb.DuckDBPyConnection, windows: Sequence[PartitionWindow]
) -> CheckOutcome:
    """``unique_ids``: no task id of ``windows`` is stored twice anywhere in ``topo.tasks``.

    Severity ERROR. Each id of the run's partitions is looked up in the whole table; ids
    of other partitions were checked when those were landed.
    """
    rows_checked, repeated_ids, repeated_rows, examples = _one_row(
        con,
        "check_tasks_unique_ids",
        {"partition_dates": [w.partition_date for w in windows], "max_examples": MAX_EXAMPLES},
    )
    metadata: dict[str, Any] = {
        "rows_checked": rows_checked,
        "repeated_ids": repeated_ids,
        "rows_with_repeated_ids": repeated_rows,
    }
    if repeated_ids == 0:
        return CheckOutcome(
            UNIQUE_IDS,
            True,
            "ERROR",
            f"All {_n(rows_checked, 'row')} of topo.tasks have distinct task ids.",
            metadata,
        )
    metadata["example_ids"] = ", ".join(e["id"] for e in examples)
    named = ", ".join(f"{e['id']} ({e['copies']} rows)" for e in examples[:_IN_DESCRIPTION])
    return CheckOutcome(
        UNIQUE_IDS,
        False,
        "ERROR",
        f"{_n(repeated_ids, 'task id')} {_verb(repeated_ids, 'appears', 'appear')} more than "
        f"once in topo.tasks "
        f"({_n(repeated_rows, 'row')} in all), e.g. {named}.",
        metadata,
    )


def check_count_matches_api(
    con: duckdb.DuckDBPyConnection,
    windows: Sequence[PartitionWindow],
    api_totals: Mapping[date, int],
) -> CheckOutcome:
    """``count_matches_api_total``: each partition holds as many rows as Topo reported (ERROR)."""
    dates = [w.partition_date for w in windows]
    rows = con.execute(
        load_sql("check_tasks_count_by_partition"),
        {"partition_dates": dates, "expected": [api_totals.get(d) for d in dates]},
    ).fetchall()
    unknown = [d for d, expected, _ in rows if expected is None]
    mismatched = [(d, e, n) for d, e, n in rows if e is not None and e != n]
    landed_total = sum(n for _, _, n in rows)
    expected_total = sum(e for _, e, _ in rows if e is not None)
    metadata: dict[str, Any] = {
        "partitions_checked": len(rows),
        "partitions_mismatched": len(mismatched),
        "partitions_without_api_total": len(unknown),
        "expected_total": expected_total,
        "landed_total": landed_total,
        "gap_total": landed_total - expected_total,
    }
    # Days that differ first, then the rest, so the metadata shows what matters.
    for d, expected, landed in [*mismatched, *(r for r in rows if r not in mismatched)][
        :MAX_EXAMPLES
    ]:
        metadata[f"day {d}"] = (
            f"expected {expected}, landed {landed}, gap {landed - expected:+d}"
            if expected is not None
            else f"expected unknown, landed {landed}"
        )
    if not mismatched and not unknown:
        return CheckOutcome(
            COUNT_MATCHES_API,
            True,
            "ERROR",
            f"All {_n(len(rows), 'partition')} hold as many tasks as Topo reported "
            f"({landed_total:,} in all).",
            metadata,
        )
    problems = [
        f"{d} landed {landed:,} of {expected:,} ({_gap(landed - expected)})"
        for d, expected, landed in mismatched[:_IN_DESCRIPTION]
    ]
    if len(mismatched) > _IN_DESCRIPTION:
        problems.append(f"{len(mismatched) - _IN_DESCRIPTION} more day(s)")
    if unknown:
        problems.append("no API total was given for " + ", ".join(str(d) for d in unknown[:5]))
    failing = len(mismatched) + len(unknown)
    return CheckOutcome(
        COUNT_MATCHES_API,
        False,
        "ERROR",
        f"{failing} of {_n(len(rows), 'partition')} {_verb(failing, 'does', 'do')} not match "
        f"Topo's count: {'; '.join(problems)}.",
        metadata,
    )


def check_created_at_in_window(
    con: duckdb.DuckDBPyConnection, windows: Sequence[PartitionWindow]
) -> CheckOutcome:
    """``created_at_in_window``: every row's ``created_at`` is inside its partition (ERROR)."""
    rows_checked, outside, partitions_affected, examples = _one_row(
        con,
        "check_tasks_created_at_in_window",
        {
            "partition_dates": [w.partition_date for w in windows],
            "window_starts": [w.start_utc for w in windows],
            "window_ends": [w.end_utc for w in windows],
            "max_examples": MAX_EXAMPLES,
        },
    )
    metadata: dict[str, Any] = {
        "rows_checked": rows_checked,
        "partitions_checked": len(windows),
        "rows_outside_window": outside,
        "partitions_affected": partitions_affected,
    }
    if outside == 0:
        return CheckOutcome(
            CREATED_AT_IN_WINDOW,
            True,
            "ERROR",
            f"All {_n(rows_checked, 'task')} in {_n(len(windows), 'partition')} were created "
            "inside their partition's window.",
            metadata,
        )
    metadata["example_ids"] = ", ".join(e["id"] for e in examples)
    named = ", ".join(
        f"{e['id']} created {_utc(e['created_at'])} in partition {e['partition_date']} "
        f"[{_utc(e['window_start'])}, {_utc(e['window_end'])})"
        for e in examples[:_IN_DESCRIPTION]
    )
    return CheckOutcome(
        CREATED_AT_IN_WINDOW,
        False,
        "ERROR",
        f"{_n(outside, 'task')} in {_n(partitions_affected, 'partition')} "
        f"{_verb(outside, 'has', 'have')} a created_at outside its partition's window, "
        f"e.g. {named}.",
        metadata,
    )


def check_known_enum_values(
    con: duckdb.DuckDBPyConnection, windows: Sequence[PartitionWindow]
) -> CheckOutcome:
    """``known_enum_values``: enum fields hold documented values (WARN: Topo may add values)."""
    known = [(field, value) for field, values in KNOWN_ENUM_VALUES.items() for value in values]
    rows = con.execute(
        load_sql("check_tasks_enum_values"),
        {
            "partition_dates": [w.partition_date for w in windows],
            "known_fields": [field for field, _ in known],
            "known_values": [value for _, value in known],
            "max_examples": MAX_EXAMPLES,
        },
    ).fetchall()
    metadata: dict[str, Any] = {
        "partitions_checked": len(windows),
        "unknown_values": len(rows),
        "tasks_with_unknown_values": sum(tasks for _, _, tasks, _ in rows),
    }
    if not rows:
        return CheckOutcome(
            KNOWN_ENUM_VALUES_CHECK,
            True,
            "WARN",
            f"Every {', '.join(KNOWN_ENUM_VALUES)} value in {_n(len(windows), 'partition')} "
            "is one Topo documents.",
            metadata,
        )
    named = [f"{field} {value!r} ({_n(tasks, 'task')})" for field, value, tasks, _ in rows]
    for field, value, tasks, _ in rows[:MAX_EXAMPLES]:
        metadata[f"{field} {value!r}"] = tasks
    example_ids: list[str] = []
    for *_, ids in rows:
        example_ids.extend(ids)
    metadata["example_ids"] = ", ".join(example_ids[:MAX_EXAMPLES])
    return CheckOutcome(
        KNOWN_ENUM_VALUES_CHECK,
        False,
        "WARN",
        f"Values Topo does not document: {', '.join(named)}.",
        metadata,
    )


def check_required_fields(
    con: duckdb.DuckDBPyConnection, windows: Sequence[PartitionWindow]
) -> CheckOutcome:
    """``required_fields_present``: fields Topo documents as required are not null (ERROR)."""
    cursor = con.execute(
        load_sql("check_tasks_required_fields"),
        {"partition_dates": [w.partition_date for w in windows], "max_examples": MAX_EXAMPLES},
    )
    columns = [c[0] for c in cursor.description]
    row = dict(zip(columns, cursor.fetchone(), strict=True))
    missing_columns = [f for f in REQUIRED_FIELDS if f not in row]
    if missing_columns:
        # The query lists the fields one by one; keep it in step with REQUIRED_FIELDS.
        raise RuntimeError(
            f"check_tasks_required_fields.sql does not count {', '.join(missing_columns)}"
        )
    nulls = {field: row[field] for field in REQUIRED_FIELDS}
    offending = {field: count for field, count in nulls.items() if count}
    metadata: dict[str, Any] = {
        "rows_checked": row["rows_checked"],
        "partitions_checked": len(windows),
        **{f"null {field}": count for field, count in nulls.items()},
    }
    if not offending:
        return CheckOutcome(
            REQUIRED_FIELDS_PRESENT,
            True,
            "ERROR",
            f"{', '.join(REQUIRED_FIELDS)} are set on all {_n(row['rows_checked'], 'task')} "
            f"in {_n(len(windows), 'partition')}.",
            metadata,
        )
    metadata["example_ids"] = ", ".join(row["example_ids"])
    named = ", ".join(f"{field} ({_n(count, 'task')})" for field, count in offending.items())
    shown = row["example_ids"][:_IN_DESCRIPTION]
    return CheckOutcome(
        REQUIRED_FIELDS_PRESENT,
        False,
        "ERROR",
        f"Required fields are null: {named}, e.g. in {_verb(len(shown), 'task', 'tasks')} "
        f"{', '.join(shown)}.",
        metadata,
    )


def _one_row(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any]) -> tuple:
    row = con.execute(load_sql(query), params).fetchone()
    if row is None:  # cannot happen: an aggregate without GROUP BY yields one row
        raise RuntimeError(f"{query}.sql returned no row")
    return row


def _n(count: int, noun: str) -> str:
    """``1 task``, ``2,000 tasks``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _verb(count: int, singular: str, plural: str) -> str:
    return singular if count == 1 else plural


def _gap(difference: int) -> str:
    return f"{-difference:,} missing" if difference < 0 else f"{difference:,} extra"


def _utc(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
