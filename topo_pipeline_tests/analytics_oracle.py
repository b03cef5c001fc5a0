"""The analytics rules computed independently in plain Python, and table comparison helpers.

Shared by the SQL-layer tests (a hand-built task set) and the Dagster asset tests (tasks
served by the simulated API). The expected rows come straight from SPEC.md's rules (minute
arithmetic, ``quantile_cont`` as linear interpolation, pooled rates) and never from the
pipeline's SQL, so a table that agrees with them is right by construction.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.warehouse.analytics import ANALYTICS_TABLES
from topo_pipeline.warehouse.business_hours import WorkingCalendar
from topo_pipeline.warehouse.registry import COMPLETION_RATE, ROLLUPS, ROLLUPS_BY_TABLE, SLA

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "analyst-guide.md"


def ts(text: str) -> datetime:
    """An aware UTC instant from ``YYYY-MM-DD HH:MM:SS[.ffffff]``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Task:
    """The fields of a topo.tasks row the analytics read; the rest get fixed filler."""

    id: str
    partition_date: date
    priority: str | None
    status: str | None
    assignee_user_id: str | None
    created_at: datetime
    completed_at: datetime | None = None
    skipped_at: datetime | None = None
    reopened_at: datetime | None = None
    type: str | None = "CALL"


# --- the rules, independently in Python ----------------------------------------------------


def working_intervals(
    calendar: WorkingCalendar, timezone: str, first: date, last: date
) -> list[tuple[datetime, datetime]]:
    """The working intervals of the local days ``first..last``, as aware UTC instants.

    Walks the days one by one with ``zoneinfo`` (a local time in a DST gap is read with the
    offset before the change, ``fold=0``), unlike the SQL's generated calendar.
    """
    zone = ZoneInfo(timezone)
    intervals = []
    day = first
    while day <= last:
        if day.isoweekday() in calendar.weekdays and day not in calendar.holidays:
            midnight = datetime(day.year, day.month, day.day)
            start = midnight + timedelta(minutes=calendar.start_minute)
            end = midnight + timedelta(minutes=calendar.end_minute)
            intervals.append(
                (
                    start.replace(tzinfo=zone).astimezone(UTC),
                    end.replace(tzinfo=zone).astimezone(UTC),
                )
            )
        day += timedelta(days=1)
    return intervals


def business_minutes(
    intervals: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime
) -> float:
    """Working minutes in ``[start, end)``."""
    total = timedelta(0)
    for low, high in intervals:
        overlap = min(high, end) - max(low, start)
        if overlap > timedelta(0):
            total += overlap
    return total / timedelta(minutes=1)


def business_deadline(
    intervals: Sequence[tuple[datetime, datetime]], start: datetime, minutes: int
) -> datetime | None:
    """The instant ``minutes`` working minutes after ``start``."""
    left = timedelta(minutes=minutes)
    for low, high in intervals:
        if high <= start:
            continue
        piece = high - max(low, start)
        if piece >= left:
            return max(low, start) + left
        left -= piece
    return None


def _verdict(task: Task, due: datetime | None, as_of: datetime) -> str:
    if task.status == "SKIPPED":
        return "SKIPPED"
    if due is None:
        return "UNKNOWN"
    if task.status == "COMPLETED":
        if task.completed_at is None:
            return "UNKNOWN"
        return "MET" if task.completed_at <= due else "BREACHED"
    if task.status in ("PENDING", "IN_PROGRESS"):
        return "BREACHED" if as_of > due else "OPEN"
    return "UNKNOWN"


def expected_task_sla(
    tasks: Sequence[Task],
    as_of: datetime,
    targets: Mapping[str, int],
    calendar: WorkingCalendar | None = None,
    timezone: str = "UTC",
) -> list[dict[str, Any]]:
    """analytics.task_sla as SPEC.md defines it, plus the documented UNKNOWN cases, and the
    business-hours columns for ``calendar`` (local to ``timezone``; ``None``: NULL)."""
    intervals: list[tuple[datetime, datetime]] = []
    if calendar is not None and tasks:
        zone = ZoneInfo(timezone)
        instants = [t.created_at for t in tasks] + [t.completed_at for t in tasks if t.completed_at]
        first = min(instants).astimezone(zone).date() - timedelta(days=1)
        last = max([*instants, as_of]).astimezone(zone).date() + timedelta(days=400)
        intervals = working_intervals(calendar, timezone, first, last)
    rows = []
    for task in tasks:
        target = targets.get(task.priority) if task.priority is not None else None
        due = task.created_at + timedelta(minutes=target) if target is not None else None
        minutes = None
        if task.status == "COMPLETED" and task.completed_at is not None:
            minutes = (task.completed_at - task.created_at) / timedelta(minutes=1)
        if task.status == "SKIPPED":
            sla_status = "SKIPPED"
        elif due is None:
            sla_status = "UNKNOWN"
        elif task.status == "COMPLETED":
            if task.completed_at is None:
                sla_status = "UNKNOWN"
            else:
                sla_status = "MET" if task.completed_at <= due else "BREACHED"
        elif task.status in ("PENDING", "IN_PROGRESS"):
            sla_status = "BREACHED" if as_of > due else "OPEN"
        else:
            sla_status = "UNKNOWN"
        business: dict[str, Any] = {
            "business_minutes_to_resolution": None,
            "business_sla_due_at": None,
            "business_sla_status": None,
        }
        if calendar is not None:
            business_due = (
                business_deadline(intervals, task.created_at, target)
                if target is not None
                else None
            )
            business["business_sla_due_at"] = business_due
            business["business_sla_status"] = _verdict(task, business_due, as_of)
            if task.status == "COMPLETED" and task.completed_at is not None:
                business["business_minutes_to_resolution"] = business_minutes(
                    intervals, task.created_at, task.completed_at
                )
        rows.append(
            {
                **business,
                "id": task.id,
                "partition_date": task.partition_date,
                "priority": task.priority,
                "type": task.type,
                "status": task.status,
                "assignee_user_id": task.assignee_user_id,
                "created_at": task.created_at,
                "completed_at": task.completed_at,
                "skipped_at": task.skipped_at,
                "sla_target_minutes": target,
                "sla_due_at": due,
                "minutes_to_complete": minutes,
                "sla_status": sla_status,
                "as_of": as_of,
            }
        )
    return rows


def quantile_cont(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the order statistics around ``q * (n - 1)``."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _grouped(
    task_sla: Sequence[dict[str, Any]], key: str
) -> dict[tuple[date, str | None], list[dict[str, Any]]]:
    groups: dict[tuple[date, str | None], list[dict[str, Any]]] = defaultdict(list)
    for row in task_sla:
        groups[(row["partition_date"], row[key])].append(row)
    return groups


def expected_sla_rollup(task_sla: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    rows = []
    for (day, group), members in _grouped(task_sla, key).items():
        statuses = [m["status"] for m in members]
        verdicts = [m["sla_status"] for m in members]
        met, breached = verdicts.count("MET"), verdicts.count("BREACHED")
        durations = [
            m["minutes_to_complete"]
            for m in members
            if m["status"] == "COMPLETED" and m["minutes_to_complete"] is not None
        ]
        business = [m["business_sla_status"] for m in members]
        judged = any(verdict is not None for verdict in business)
        business_met = business.count("MET") if judged else None
        business_breached = business.count("BREACHED") if judged else None
        rows.append(
            {
                "business_met": business_met,
                "business_breached": business_breached,
                "business_sla_attainment": (
                    ratio(business.count("MET"), business.count("MET") + business.count("BREACHED"))
                ),
                "partition_date": day,
                key: group,
                "tasks": len(members),
                "completed": statuses.count("COMPLETED"),
                "skipped": statuses.count("SKIPPED"),
                "open": statuses.count("PENDING") + statuses.count("IN_PROGRESS"),
                "met": met,
                "breached": breached,
                "sla_attainment": ratio(met, met + breached),
                "median_minutes_to_complete": quantile_cont(durations, 0.5),
                "p90_minutes_to_complete": quantile_cont(durations, 0.9),
                "as_of": max(m["as_of"] for m in members),
            }
        )
    return rows


def expected_completion_rollup(
    task_sla: Sequence[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    rows = []
    for (day, group), members in _grouped(task_sla, key).items():
        statuses = [m["status"] for m in members]
        rows.append(
            {
                "partition_date": day,
                key: group,
                "tasks": len(members),
                "completed": statuses.count("COMPLETED"),
                "skipped": statuses.count("SKIPPED"),
                "pending": statuses.count("PENDING"),
                "in_progress": statuses.count("IN_PROGRESS"),
                "completion_rate": ratio(statuses.count("COMPLETED"), len(members)),
                "skip_rate": ratio(statuses.count("SKIPPED"), len(members)),
            }
        )
    return rows


# The rules of each measure family, in Python; which rollups exist (family x grouping
# column) is read from the registry, so a new rollup is checked without a change here.
FAMILY_RULES = {
    SLA.name: expected_sla_rollup,
    COMPLETION_RATE.name: expected_completion_rollup,
}


Directory = Mapping[str, tuple[str | None, str | None]]
"""The assignee directory as the oracle reads it: user id → (name, team)."""


def expected_tables(
    tasks: Sequence[Task],
    as_of: datetime,
    targets: Mapping[str, int],
    directory: Directory | None = None,
    calendar: WorkingCalendar | None = None,
    timezone: str = "UTC",
) -> dict[str, list[dict[str, Any]]]:
    """Every analytics table; names and teams from ``directory`` (none: all NULL), business
    hours from ``calendar`` (none: NULL)."""
    task_sla = expected_task_sla(tasks, as_of, targets, calendar, timezone)
    people = directory or {}

    def described(user_id: str | None) -> dict[str, str | None]:
        name, team = people.get(user_id, (None, None)) if user_id is not None else (None, None)
        return {"assignee_name": name, "team": team}

    # Each task's row with its assignee's name and team, for the rollups that group by them.
    enriched = [{**row, **described(row["assignee_user_id"])} for row in task_sla]
    tables: dict[str, list[dict[str, Any]]] = {"task_sla": task_sla}
    for rollup in ROLLUPS:
        rows = FAMILY_RULES[rollup.family.name](enriched, rollup.group.name)
        for row in rows:
            facts = described(row.get("assignee_user_id"))
            row.update({column.name: facts[column.name] for column in rollup.group.carried})
        tables[rollup.table] = rows
    return tables


# --- reading and comparing the tables ------------------------------------------------------


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    cursor = con.execute(f"SELECT * FROM warehouse.analytics.{table}")
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 'warehouse' "
        "AND schema_name = 'analytics' AND table_name = $table ORDER BY column_index",
        {"table": table},
    ).fetchall()
    return [name for (name,) in rows]


def row_key(row: Mapping[str, Any], table: str) -> tuple[Any, ...]:
    if table == "task_sla":
        return (row["id"],)
    group = ROLLUPS_BY_TABLE[table].group.name
    # None sorts first, so the NULL group has a stable place.
    return (row["partition_date"], row[group] is not None, row[group] or "")


def assert_rows_match(
    actual: Sequence[Mapping[str, Any]],
    expected: Sequence[Mapping[str, Any]],
    table: str,
    columns: Sequence[str],
) -> None:
    """Same rows, and every column equal (floats to 1e-9 relative)."""
    actual_sorted = sorted(actual, key=lambda row: row_key(row, table))
    expected_sorted = sorted(expected, key=lambda row: row_key(row, table))
    assert [row_key(r, table) for r in actual_sorted] == [
        row_key(r, table) for r in expected_sorted
    ], f"{table}: different rows"
    for got, want in zip(actual_sorted, expected_sorted, strict=True):
        assert set(got) == set(columns) == set(want), f"{table}: columns differ"
        for column in columns:
            if isinstance(want[column], float):
                assert got[column] == pytest.approx(want[column], rel=1e-9, abs=1e-9), (
                    f"{table} {row_key(want, table)} {column}"
                )
            else:
                assert got[column] == want[column], f"{table} {row_key(want, table)} {column}"
                assert (
                    type(got[column]) is type(want[column])
                    or want[column] is None
                    or (isinstance(got[column], datetime) and isinstance(want[column], datetime))
                ), f"{table} {column}: {type(got[column])} vs {type(want[column])}"


def assert_all_tables_match(
    con: duckdb.DuckDBPyConnection, expected: Mapping[str, Sequence[Mapping[str, Any]]]
) -> None:
    for table in ANALYTICS_TABLES:
        assert_rows_match(read_table(con, table), expected[table], table, table_columns(con, table))


def task_from_api(task: Mapping[str, Any], timezone: str) -> Task:
    """The :class:`Task` an API task object lands as, with its creation day in ``timezone``."""

    def instant(name: str) -> datetime | None:
        value = task.get(name)
        return parse_timestamp(value) if value else None

    created_at = parse_timestamp(task["created_at"])
    return Task(
        id=task["id"],
        partition_date=created_at.astimezone(ZoneInfo(timezone)).date(),
        priority=task.get("priority"),
        status=task.get("status"),
        assignee_user_id=task.get("assignee_user_id"),
        created_at=created_at,
        completed_at=instant("completed_at"),
        skipped_at=instant("skipped_at"),
        reopened_at=instant("reopened_at"),
        type=task.get("type"),
    )


# --- the analyst guide ----------------------------------------------------------------------

_SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)
_COLUMNS_LINE = re.compile(r"^-- columns: (.+)$", re.MULTILINE)


def guide_queries() -> list[str]:
    """The ```sql blocks of ``docs/analyst-guide.md``, in order."""
    return _SQL_BLOCK.findall(GUIDE.read_text())


def promised_columns(sql: str) -> list[str] | None:
    """The column names a guide query declares on its ``-- columns:`` line, if it has one."""
    match = _COLUMNS_LINE.search(sql)
    return [name.strip() for name in match.group(1).split(",")] if match else None
