"""The analytics tables: per-task SLA evaluation and the daily rollups built from it.

:func:`replace_task_sla` recomputes ``analytics.task_sla`` from ``topo.tasks``, and
:func:`replace_rollup` each rollup of :data:`~topo_pipeline.warehouse.registry.ROLLUPS`
from ``analytics.task_sla``, for a set of ``partition_date`` values in one transaction (a
failure leaves the previous rows). They open that transaction themselves: call them with an
open connection from :func:`topo_pipeline.warehouse.duckdb.connect` and no transaction
open. How a task without an SLA verdict counts is in ``docs/analyst-guide.md``; why the
tables are built this way, in ``docs/design.md``. Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from topo_pipeline.warehouse.business_hours import WorkingCalendar
from topo_pipeline.warehouse.duckdb import transaction
from topo_pipeline.warehouse.queries import load_sql, render_sql
from topo_pipeline.warehouse.registry import ROLLUPS, ROLLUPS_BY_TABLE, headlines_of
from topo_pipeline.warehouse.rollup_declarations import Rollup
from topo_pipeline.warehouse.schema import TOPO_TASKS, ensure_schema
from topo_pipeline.warehouse.tables import Table
from topo_pipeline.warehouse.task_sla import TASK_SLA

DEFAULT_SLA_TARGET_MINUTES: Mapping[str, int] = {"HOT": 60, "TODAY": 1440, "EXTRA": 4320}
"""SLA target per priority, in minutes, when nothing else is configured."""

ROLLUP_TABLES = tuple(rollup.table for rollup in ROLLUPS)
"""The tables :func:`replace_rollup` builds from ``analytics.task_sla``, in build order."""

ANALYTICS_TABLES = (TASK_SLA.name, *ROLLUP_TABLES)
"""The tables of schema ``analytics``, in build order (``task_sla`` feeds the others)."""

_DECLARATIONS: Mapping[str, Table] = {
    TASK_SLA.name: TASK_SLA,
    **{rollup.table: rollup.table_declaration for rollup in ROLLUPS},
}


def ensure_analytics_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the file's schema up to date, the analytics tables and comments included.

    Idempotent; the replace functions call it themselves before writing. See
    :func:`topo_pipeline.warehouse.schema.ensure_schema`.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
    """
    ensure_schema(con)


def rebuild_days(con: duckdb.DuckDBPyConnection, table: str) -> list[date]:
    """The ``partition_date`` values a whole rebuild of ``table`` replaces.

    The days ``topo.tasks`` holds, and the days ``table`` still holds, so that a day whose
    tasks are gone loses its rows. Creates missing tables first (an empty file has no days).

    Raises:
        ValueError: if ``table`` is not one of :data:`ANALYTICS_TABLES`.
    """
    declaration = _DECLARATIONS.get(table)
    if declaration is None:
        raise ValueError(f"unknown analytics table {table!r}; expected one of {ANALYTICS_TABLES}")
    ensure_analytics_tables(con)
    sql = render_sql("analytics_days", tasks=TOPO_TASKS.qualified, table=declaration.qualified)
    return [day for (day,) in con.execute(sql).fetchall()]


def replace_task_sla(
    con: duckdb.DuckDBPyConnection,
    partition_dates: Sequence[date],
    *,
    as_of: datetime,
    sla_targets: Mapping[str, int],
    calendar: WorkingCalendar | None = None,
    calendar_timezone: str = "UTC",
) -> int:
    """Recompute ``analytics.task_sla`` for ``partition_dates`` from ``topo.tasks``.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
        partition_dates: the days (``partition_date`` values) to replace.
        as_of: the instant open tasks are judged against (timezone-aware).
        sla_targets: SLA target in minutes per priority, e.g.
            :data:`DEFAULT_SLA_TARGET_MINUTES`. A priority missing here gets no target and
            ``sla_status = 'UNKNOWN'``; add an entry to cover a priority Topo introduces.
        calendar: the working calendar of the business-hours columns (its times local to
            ``calendar_timezone``); ``None`` leaves them NULL.

    Returns:
        The number of rows written (one per task in those partitions).

    Raises:
        ValueError: if ``as_of`` is naive, a target is not a positive integer, or a
            partition date is not a plain :class:`~datetime.date`.
        duckdb.Error: if DuckDB fails; the transaction is rolled back first.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    priorities, minutes = _split_targets(sla_targets)
    params = {
        "partition_dates": _partition_list(partition_dates),
        "as_of": as_of,
        "sla_priorities": priorities,
        "sla_target_minutes": minutes,
        **_calendar_params(calendar, calendar_timezone, max(minutes, default=1)),
    }
    insert_sql = load_sql("task_sla_insert_partitions")
    return _replace(con, TASK_SLA.name, insert_sql, params)


def replace_rollup(
    con: duckdb.DuckDBPyConnection, table: str, partition_dates: Sequence[date]
) -> int:
    """Recompute one rollup table for ``partition_dates`` from ``analytics.task_sla``.

    Run :func:`replace_task_sla` for the same days first; the rollup only reads it.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
        table: one of :data:`ROLLUP_TABLES` (the name without schema). It selects a
            declaration of the registry, whose names fill the SQL templates; the argument
            itself is never put into SQL text.
        partition_dates: the days (``partition_date`` values) to replace.

    Returns:
        The number of rows written (one per group with at least one task).

    Raises:
        ValueError: if ``table`` is not a rollup table or a partition date is not a date.
        duckdb.Error: if DuckDB fails; the transaction is rolled back first.
    """
    rollup = ROLLUPS_BY_TABLE.get(table)
    if rollup is None:
        raise ValueError(f"unknown rollup table {table!r}; expected one of {ROLLUP_TABLES}")
    params = {"partition_dates": _partition_list(partition_dates)}
    return _replace(con, rollup.table, _rollup_insert_sql(rollup), params)


def headline_metrics_by_day(
    con: duckdb.DuckDBPyConnection, table: str, partition_dates: Iterable[date]
) -> dict[date, dict[str, float | int | None]]:
    """A few numbers summarising ``table`` on each day of ``partition_dates``, for Dagster
    metadata, in one grouped query.

    Rates are sums over sums, and are ``None`` when their denominator is 0; a day without
    rows gets counts 0 and rates ``None``. The numbers of each table are declared in the
    registry (:func:`~topo_pipeline.warehouse.registry.headlines_of`), e.g.:

    * ``task_sla``: ``tasks``, ``met``, ``breached``, ``open_within_sla``, ``skipped``,
      ``unknown`` (tasks whose SLA cannot be judged), ``sla_attainment``.
    * ``sla_by_priority``: ``tasks``, ``met``, ``breached``, ``sla_attainment``,
      ``hot_sla_attainment``.
    * ``sla_by_assignee``: ``tasks``, ``met``, ``breached``, ``sla_attainment``,
      ``assignees`` (distinct assigned users), ``unassigned_open`` (open tasks without one).
    * ``completion_rate_by_priority``: ``tasks``, ``completed``, ``skipped``,
      ``completion_rate``, ``skip_rate``, ``hot_completion_rate``.
    * ``completion_rate_by_assignee``: ``tasks``, ``completed``, ``skipped``,
      ``completion_rate``, ``skip_rate``, ``assignees``, ``unassigned_tasks``.
    * ``sla_by_team`` / ``completion_rate_by_team``: as by assignee, with ``teams`` and
      ``no_team_open`` / ``no_team_tasks``.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
        table: one of :data:`ANALYTICS_TABLES`.
        partition_dates: the days to summarise.

    Returns:
        Per day, in the order given: metric name to value (``int`` counts, ``float``
        rates, ``None`` for undefined rates).

    Raises:
        ValueError: if ``table`` is not an analytics table or a partition date is not a date.
    """
    days = _partition_list(partition_dates)
    cursor = con.execute(_headline_sql(table), {"partition_dates": days})
    names = [column[0] for column in cursor.description][1:]
    found = {row[0]: dict(zip(names, row[1:], strict=True)) for row in cursor.fetchall()}
    empty = {h.name: (0 if h.kind == "count" else None) for h in headlines_of(table)}
    return {day: found.get(day, dict(empty)) for day in days}


@dataclass(frozen=True)
class PartitionRows:
    """What one analytics table holds for one ``partition_date``."""

    row_count: int
    as_of: datetime | None
    """The SLA evaluation instant of the rows (SLA tables only; ``None`` otherwise)."""


@dataclass(frozen=True)
class ColumnInfo:
    """One column of an analytics table, as DuckDB describes it."""

    name: str
    data_type: str
    comment: str | None


def partition_rows(
    con: duckdb.DuckDBPyConnection,
    partition_dates: Iterable[date],
    tables: Iterable[str] = ANALYTICS_TABLES,
) -> dict[tuple[str, date], PartitionRows]:
    """Rows (and ``as_of``) of analytics tables per partition, for Dagster metadata.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect` on a file
            where the analytics tables exist.
        partition_dates: the days to count.
        tables: the tables to count (all of them by default), in one query.

    Returns:
        ``(table, partition_date)`` to its :class:`PartitionRows`; a day a table holds no
        rows for is absent.
    """
    rows = con.execute(
        _partition_rows_sql(tuple(tables)), {"partition_dates": _partition_list(partition_dates)}
    ).fetchall()
    return {(table, day): PartitionRows(int(count), as_of) for table, day, count, as_of in rows}


def analytics_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[ColumnInfo]]:
    """Every column of every analytics table, in order, with its type and ``COMMENT``."""
    columns: dict[str, list[ColumnInfo]] = {}
    for table, name, data_type, comment in con.execute(load_sql("analytics_columns")).fetchall():
        columns.setdefault(table, []).append(ColumnInfo(name, data_type, comment))
    return columns


def _replace(
    con: duckdb.DuckDBPyConnection, table: str, insert_sql: str, params: Mapping[str, Any]
) -> int:
    """Delete the partitions' rows of ``table`` and insert them recomputed, atomically."""
    ensure_analytics_tables(con)
    delete_sql = render_sql("analytics_delete_partitions", table=_DECLARATIONS[table].qualified)
    delete_params = {"partition_dates": params["partition_dates"]}
    with transaction(con):
        con.execute(delete_sql, delete_params)
        row = con.execute(insert_sql, dict(params)).fetchone()
    return int(row[0]) if row else 0


def _rollup_insert_sql(rollup: Rollup) -> str:
    declaration = rollup.table_declaration
    measures = ",\n    ".join(f"{m.expression} AS {m.column.name}" for m in rollup.family.measures)
    source = TASK_SLA.qualified
    if rollup.group.uses_directory:
        source = f"(\n{load_sql('task_sla_with_directory')}) AS task_sla"
    return render_sql(
        "rollup_insert_partitions",
        table=declaration.qualified,
        group=", ".join(rollup.group_columns),
        columns=", ".join(
            (
                "partition_date",
                *rollup.group_columns,
                *(m.column.name for m in rollup.family.measures),
            )
        ),
        measures=measures,
        source=source,
    )


def _headline_sql(table: str) -> str:
    declaration = _DECLARATIONS.get(table)
    if declaration is None:
        raise ValueError(f"unknown analytics table {table!r}; expected one of {ANALYTICS_TABLES}")
    return render_sql(
        "analytics_headline",
        table=declaration.qualified,
        headlines=",\n    ".join(h.select_item() for h in headlines_of(table)),
    )


def _partition_rows_sql(tables: Sequence[str]) -> str:
    unknown = [table for table in tables if table not in _DECLARATIONS]
    if unknown:
        raise ValueError(f"unknown analytics tables {unknown}; expected some of {ANALYTICS_TABLES}")
    if not tables:
        raise ValueError("no analytics tables to count")
    return "\nUNION ALL\n".join(
        render_sql(
            "analytics_partition_rows",
            table_name=table.name,
            table=table.qualified,
            as_of="max(as_of)" if "as_of" in table.column_names else "NULL::TIMESTAMPTZ",
        )
        for table in (_DECLARATIONS[name] for name in tables)
    )


def _partition_list(partition_dates: Iterable[date]) -> list[date]:
    days = set()
    for day in partition_dates:
        # A datetime is a date too, but would bind as a TIMESTAMP and be truncated in
        # DuckDB's session timezone; the partition is a calendar day, so insist on one.
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError(f"partition dates must be datetime.date values, got {day!r}")
        days.add(day)
    return sorted(days)


def _calendar_params(
    calendar: WorkingCalendar | None, timezone: str, longest_target: int
) -> dict[str, Any]:
    """The working calendar as ``task_sla_insert_partitions.sql`` binds it."""
    if calendar is None:
        return {
            "business": False,
            "timezone": timezone,
            "work_weekdays": [],
            "work_start_minute": 0,
            "work_end_minute": 0,
            "holidays": [],
            "horizon_days": 0,
        }
    return {
        "business": True,
        "timezone": timezone,
        "work_weekdays": list(calendar.weekdays),
        "work_start_minute": calendar.start_minute,
        "work_end_minute": calendar.end_minute,
        "holidays": list(calendar.holidays),
        "horizon_days": calendar.horizon_days(longest_target),
    }


def _split_targets(sla_targets: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """The targets as parallel lists, bound as ``$sla_priorities`` / ``$sla_target_minutes``."""
    priorities: list[str] = []
    minutes: list[int] = []
    for priority, target in sla_targets.items():
        if not isinstance(priority, str) or not priority:
            raise ValueError(f"SLA target priority must be a non-empty string, got {priority!r}")
        if isinstance(target, bool) or not isinstance(target, int) or target <= 0:
            raise ValueError(
                f"SLA target for {priority} must be a positive whole number of minutes, "
                f"got {target!r}"
            )
        priorities.append(priority)
        minutes.append(target)
    return priorities, minutes
