"""HOT tasks breached or at risk now, for the report.

From the view ``analytics.sla_watch`` where the file has one (its HOT rows, as the pipeline
declares the view); otherwise, in a file of an older release, derived from
``analytics.task_sla``: open HOT
tasks (PENDING or IN_PROGRESS when last fetched) whose due time has passed, or comes within
:data:`AT_RISK_MINUTES`, at the report's time. Either way the page says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from topo_pipeline.report.queries import relation_exists, report_sql
from topo_pipeline.warehouse.duckdb import CATALOG
from topo_pipeline.warehouse.queries import render_sql

HOT_ROWS = 25
"""Most HOT tasks listed as breached or at risk."""

AT_RISK_MINUTES = 15
"""An open HOT task due within this many minutes counts as at risk."""

SLA_WATCH = ("analytics", "sla_watch")
"""A view listing tasks breached or at risk, used instead of the derived list when present."""


@dataclass(frozen=True)
class HotWatch:
    """HOT tasks breached or at risk now, from ``analytics.sla_watch`` or derived."""

    source: str
    """``analytics.sla_watch`` or ``analytics.task_sla`` (derived)."""
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    total: int
    past_due: int | None
    due_soon: int | None


def load_hot_watch(con: duckdb.DuckDBPyConnection, now: datetime) -> HotWatch:
    """The HOT tasks breached or at risk at ``now`` (see the module)."""
    if relation_exists(con, *SLA_WATCH):
        return _sla_watch(con)
    params = {"now": now, "near_minutes": AT_RISK_MINUTES, "limit": HOT_ROWS}
    rows = con.execute(report_sql("hot_watch_derived"), params).fetchall()
    return HotWatch(
        source="analytics.task_sla",
        columns=("Task", "Created", "Status", "Assignee", "Team", "Due", "Past due by"),
        rows=tuple(
            (r[0], r[6], r[2], r[4] or r[3] or "(unassigned)", r[5], r[7], timedelta(minutes=r[8]))
            for r in rows
        ),
        total=int(rows[0][9] + rows[0][10]) if rows else 0,
        past_due=int(rows[0][9]) if rows else 0,
        due_soon=int(rows[0][10]) if rows else 0,
    )


def _sla_watch(con: duckdb.DuckDBPyConnection) -> HotWatch:
    """The HOT rows of ``analytics.sla_watch``, as the pipeline declares the view.

    Read through the view's declared body on the report's own alias: in a copy named after
    a schema the file's view names that catalog, which the report's alias does not match.
    """
    schema, name = SLA_WATCH
    body = render_sql("sla_watch_view", catalog=f"{CATALOG}.")
    relation = f"({body}) AS {name} WHERE priority = 'HOT'"
    (total,) = con.execute(f"SELECT count(*) FROM {relation}").fetchone() or (0,)
    cursor = con.execute(f"SELECT * FROM {relation} LIMIT {HOT_ROWS}")
    return HotWatch(
        source=f"{schema}.{name}",
        columns=tuple(d[0] for d in cursor.description),
        rows=tuple(cursor.fetchall()),
        total=int(total),
        past_due=None,
        due_soon=None,
    )
