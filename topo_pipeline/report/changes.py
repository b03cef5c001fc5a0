"""What changed since the last report: status changes and reassignments from the history.

The report covers the changes ``topo.task_history`` recorded in a window ``(since,
through]`` of observation times (landings, not Topo's own times): ``through`` is the
newest version the history holds, ``since`` where the previous report stopped. Each page
records its window in two ``<meta>`` tags (:meth:`ChangesWindow.meta_tags`), and the next
report reads them back from the file it replaces (:meth:`ChangesWindow.from_html`). When
nothing was observed since, the previous window is shown again; without a previous report
(or one newer than the data), the last :data:`FIRST_REPORT_LOOKBACK`.

Status changes are the view ``analytics.task_status_changes``'s; reassignments come from
``topo.task_history`` itself (the view ``analytics.task_reassignments`` keeps only each
task's latest one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import duckdb

from topo_pipeline.report.queries import relation_exists, report_sql
from topo_pipeline.warehouse.duckdb import CATALOG
from topo_pipeline.warehouse.queries import render_sql

FIRST_REPORT_LOOKBACK = timedelta(days=7)
"""The window of a report with no usable previous one."""

RECENT_REASSIGNMENTS = 15
"""Most reassignments listed (the latest); all are counted."""

_SINCE, _THROUGH = "topo-report:changes-since", "topo-report:changes-through"

Basis = Literal["previous report", "unchanged since the previous report", "first report", "none"]


@dataclass(frozen=True)
class ChangesWindow:
    """Observation times ``(since, through]`` whose changes a report lists."""

    since: datetime
    through: datetime

    def meta_tags(self) -> str:
        """Two ``<meta>`` tags recording the window in the page."""
        return (
            f'<meta name="{_SINCE}" content="{self.since.isoformat()}">'
            f'<meta name="{_THROUGH}" content="{self.through.isoformat()}">'
        )

    @classmethod
    def from_html(cls, text: str) -> ChangesWindow | None:
        """The window recorded in a report's page; ``None`` if it has none (or a bad one)."""
        found = {}
        for name in (_SINCE, _THROUGH):
            match = re.search(rf'<meta name="{re.escape(name)}" content="([^"]+)">', text)
            if match is None:
                return None
            try:
                found[name] = datetime.fromisoformat(match.group(1))
            except ValueError:
                return None
            if found[name].tzinfo is None:
                return None
        return cls(found[_SINCE], found[_THROUGH])


@dataclass(frozen=True)
class StatusTransition:
    from_status: str
    to_status: str
    changes: int
    hot: int


@dataclass(frozen=True)
class Reassignment:
    id: str
    partition_date: date
    priority: str | None
    previous_user_id: str | None
    previous_name: str | None
    user_id: str | None
    name: str | None
    observed_at: datetime


@dataclass(frozen=True)
class Changes:
    """The changes of :attr:`window` (``None``: the file has no history yet)."""

    window: ChangesWindow | None
    basis: Basis
    new_tasks: int = 0
    changed_versions: int = 0
    removed: int = 0
    transitions: tuple[StatusTransition, ...] | None = None
    """``None`` when there is no history to read them from."""
    reassignments: int = 0
    recent: tuple[Reassignment, ...] = ()


def changes_window(
    previous: ChangesWindow | None, through: datetime | None
) -> tuple[ChangesWindow | None, Basis]:
    """The window of this report, given the previous one and the history's newest change."""
    if through is None:
        return None, "none"
    if previous is None or previous.through > through:
        return ChangesWindow(through - FIRST_REPORT_LOOKBACK, through), "first report"
    if previous.through < through:
        return ChangesWindow(previous.through, through), "previous report"
    return previous, "unchanged since the previous report"


def load_changes(con: duckdb.DuckDBPyConnection, previous: ChangesWindow | None) -> Changes:
    """The changes since ``previous`` (see the module), read from the attached file."""
    if not relation_exists(con, "topo", "task_history"):
        return Changes(None, "none")
    (through,) = con.execute(report_sql("history_through")).fetchone() or (None,)
    window, basis = changes_window(previous, through)
    if window is None:
        return Changes(None, basis)
    params = {"since": window.since, "through": window.through}
    summary = con.execute(report_sql("changes_summary"), params).fetchone()
    new_tasks, changed, removed = summary or (0, 0, 0)
    status_changes = report_sql("status_changes").format(
        changes=render_sql("task_status_changes_view", catalog=f"{CATALOG}.")
    )
    transitions = tuple(
        StatusTransition(*row) for row in con.execute(status_changes, params).fetchall()
    )
    rows = con.execute(
        report_sql("reassignments"), {**params, "limit": RECENT_REASSIGNMENTS}
    ).fetchall()
    return Changes(
        window=window,
        basis=basis,
        new_tasks=int(new_tasks),
        changed_versions=int(changed),
        removed=int(removed),
        transitions=transitions,
        reassignments=int(rows[0][8]) if rows else 0,
        recent=tuple(Reassignment(*row[:8]) for row in rows),
    )
