"""The SLA watch: open tasks at risk or past their deadline, and the notifications sent about them.

``analytics.sla_watch`` (a view, :data:`~topo_pipeline.warehouse.analyst_views.SLA_WATCH`)
lists every open task whose deadline is within the warning window of ``as_of`` or past it.
Two tables support it, declared here and created with the others by
:mod:`topo_pipeline.warehouse.schema`:

* ``analytics.sla_watch_settings``: one row, the warning window and the alerted priorities
  in force (:func:`record_watch_settings`), which the view reads;
* ``analytics.sla_alerts_sent``: one row per task and state (WARNING, BREACHED) a
  notification was posted for (:func:`record_sent`), so that none is posted twice, across
  runs and restarts alike.

:func:`notifications_due` is what to post now. The asset that posts
(``defs/assets/sla_alerts.py``) records each notification after the webhook accepted it:
at least once. Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from topo_pipeline.warehouse.duckdb import transaction
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.tables import Column, Table

WARNING = "WARNING"
BREACHED = "BREACHED"

ALERT_HORIZON_MINUTES = 24 * 60
"""Only deadlines at most this long before ``as_of`` are notified: a task that breached
yesterday or earlier is listed in the view, but no longer worth a message. Nor are
deadlines before the watch first ran (``watching_since``): a first deployment does not post
the backlog it finds."""

SLA_WATCH_SETTINGS = Table(
    "analytics",
    "sla_watch_settings",
    "The SLA watch's settings in force. One row per pipeline (there is only one), written "
    "by every run of analytics/sla_alerts_sent; analytics.sla_watch reads its warning window.",
    (
        Column(
            "warning_minutes",
            "INTEGER",
            "An open task is at risk (WARNING) from this many minutes before its deadline "
            "(TOPO_SLA_WARNING_MINUTES).",
            not_null=True,
        ),
        Column(
            "alert_priorities",
            "VARCHAR[]",
            "The priorities whose tasks are notified (TOPO_SLA_ALERT_PRIORITIES).",
            not_null=True,
        ),
        Column("updated_at", "TIMESTAMPTZ", "When this row was written.", not_null=True),
        Column(
            "watching_since",
            "TIMESTAMPTZ",
            "When the SLA watch first ran on this file: deadlines before it are not notified "
            "(a first deployment does not post the backlog it finds).",
            not_null=True,
        ),
    ),
)

SLA_ALERTS_SENT = Table(
    "analytics",
    "sla_alerts_sent",
    "SLA notifications posted to TOPO_ALERT_WEBHOOK_URL. One row per task and state "
    "(WARNING, BREACHED), written once the webhook accepted the post, so that a task is "
    "never notified twice in the same state. Empty without a webhook.",
    (
        Column("task_id", "VARCHAR", "Task id (UUID), as in topo.tasks.", not_null=True),
        Column(
            "state",
            "VARCHAR",
            "WARNING: notified while within the warning window of its deadline; BREACHED: "
            "notified once past it.",
            not_null=True,
        ),
        Column("priority", "VARCHAR", "The task's priority when notified."),
        Column(
            "minutes_left",
            "DOUBLE",
            "Minutes from as_of to the wall-clock deadline (sla_due_at) when notified; "
            "negative once breached.",
        ),
        Column(
            "as_of",
            "TIMESTAMPTZ",
            "The SLA evaluation the notification came from (analytics.task_sla.as_of).",
            not_null=True,
        ),
        Column("sent_at", "TIMESTAMPTZ", "When the webhook accepted the post.", not_null=True),
    ),
)

TABLES: tuple[Table, ...] = (SLA_WATCH_SETTINGS, SLA_ALERTS_SENT)
"""The SLA watch's tables, in creation order."""


@dataclass(frozen=True)
class Notification:
    """One task in one watch state, not notified yet: a row of ``sla_alerts_due.sql``."""

    id: str
    state: str
    partition_date: date
    priority: str | None
    type: str | None
    status: str | None
    assignee_user_id: str | None
    assignee_name: str | None
    team: str | None
    created_at: datetime
    sla_due_at: datetime
    minutes_left: float
    business_sla_due_at: datetime | None
    business_minutes_left: float | None
    as_of: datetime


@dataclass(frozen=True)
class WatchCounts:
    """What ``analytics.sla_watch`` holds for the alerted priorities."""

    at_risk: int
    """Open tasks within the warning window (not breached yet)."""
    recently_breached: int
    """Open tasks past their deadline by at most :data:`ALERT_HORIZON_MINUTES`."""
    breached: int
    """Open tasks past their deadline, however long ago."""
    evaluated_at: datetime | None
    """``as_of`` of ``analytics.task_sla`` (``None`` before it was built)."""


def record_watch_settings(
    con: duckdb.DuckDBPyConnection,
    *,
    warning_minutes: int,
    priorities: Sequence[str],
    at: datetime,
) -> None:
    """Replace the row of ``analytics.sla_watch_settings``, in one transaction.

    ``watching_since`` is kept from the row replaced (``at`` for the first one).

    Raises:
        ValueError: if ``warning_minutes`` is negative or ``at`` is naive.
    """
    if warning_minutes < 0:
        raise ValueError("warning_minutes must not be negative")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    table = SLA_WATCH_SETTINGS.qualified
    with transaction(con):
        row = con.execute(f"SELECT min(watching_since) FROM {table}").fetchone()
        since = row[0] if row and row[0] is not None else at
        con.execute(f"DELETE FROM {table}")
        con.execute(
            load_sql("replace_sla_watch_settings"),
            {
                "warning_minutes": warning_minutes,
                "priorities": list(priorities),
                "updated_at": at,
                "watching_since": since,
            },
        )


def watch_counts(con: duckdb.DuckDBPyConnection, priorities: Sequence[str]) -> WatchCounts:
    """How many tasks of ``priorities`` are at risk or breached at the last evaluation."""
    row = con.execute(
        load_sql("sla_watch_counts"),
        {"priorities": list(priorities), "horizon_minutes": ALERT_HORIZON_MINUTES},
    ).fetchone()
    if row is None:  # pragma: no cover - an aggregate without GROUP BY always returns a row
        return WatchCounts(0, 0, 0, None)
    at_risk, recent, breached, evaluated_at = row
    return WatchCounts(int(at_risk), int(recent), int(breached), evaluated_at)


def notifications_due(
    con: duckdb.DuckDBPyConnection, priorities: Sequence[str]
) -> list[Notification]:
    """The notifications to post now, breaches first, then by deadline.

    One per task of ``priorities`` in ``analytics.sla_watch`` whose state was not notified
    yet (a breached task whose breach was notified gets no warning either), deadlines at
    most :data:`ALERT_HORIZON_MINUTES` before ``as_of`` and not before ``watching_since``.
    """
    cursor = con.execute(
        load_sql("sla_alerts_due"),
        {"priorities": list(priorities), "horizon_minutes": ALERT_HORIZON_MINUTES},
    )
    return [Notification(*row) for row in cursor.fetchall()]


def record_sent(
    con: duckdb.DuckDBPyConnection, notification: Notification, *, sent_at: datetime
) -> None:
    """Record that ``notification`` was posted (one statement, its own transaction).

    Call it only after the webhook accepted the post: a crash between the two posts the
    notification again on the next run (at least once), never loses it.
    """
    con.execute(
        load_sql("insert_sla_alert_sent"),
        {
            "task_id": notification.id,
            "state": notification.state,
            "priority": notification.priority,
            "minutes_left": notification.minutes_left,
            "as_of": notification.as_of,
            "sent_at": sent_at,
        },
    )


def sent_notifications(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """``(task_id, state)`` of every notification recorded as sent, in the order sent."""
    rows = con.execute(
        f"SELECT task_id, state FROM {SLA_ALERTS_SENT.qualified} ORDER BY sent_at, task_id"
    ).fetchall()
    return [(task_id, state) for task_id, state in rows]


def sent_count(con: duckdb.DuckDBPyConnection) -> int:
    """Rows of ``analytics.sla_alerts_sent``."""
    row = con.execute(f"SELECT count(*) FROM {SLA_ALERTS_SENT.qualified}").fetchone()
    return int(row[0]) if row else 0
