"""``analytics.task_sla`` declared: its table, description and headline numbers.

The task-grain table every rollup of :mod:`~topo_pipeline.warehouse.registry` reads, with
the :class:`Headline` numbers a table reports (Dagster metadata, plotted per day) and the
comments shared by every table of schema ``analytics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from topo_pipeline.warehouse.tables import PARTITION_ZONE, Column, Table, identifier

ANALYTICS_SCHEMA = "analytics"

DAY_COMMENT = f"Day the tasks were created in {PARTITION_ZONE}."
"""The comment of a rollup's ``partition_date``."""
PARTITION_COMMENT = f"Day of created_at in {PARTITION_ZONE}; the Dagster partition."
"""The comment of every task-grain table's ``partition_date``."""

TASK_SLA = Table(
    ANALYTICS_SCHEMA,
    "task_sla",
    "SLA evaluation of every Topo task. One row per task id (same tasks as topo.tasks); "
    f"partition_date is the day the task was created in {PARTITION_ZONE}.",
    (
        Column("id", "VARCHAR", "Task id (UUID), as in topo.tasks. Unique.", not_null=True),
        Column("partition_date", "DATE", PARTITION_COMMENT, not_null=True),
        Column(
            "priority",
            "VARCHAR",
            "Priority from topo.tasks: HOT, TODAY, EXTRA (Topo may add values; NULL if the "
            "API sent none).",
        ),
        Column(
            "type",
            "VARCHAR",
            "Task type from topo.tasks: CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW "
            "(Topo may add values).",
        ),
        Column(
            "status",
            "VARCHAR",
            "Status when last fetched: PENDING, IN_PROGRESS, COMPLETED, SKIPPED (Topo may add "
            "values). Decides sla_status.",
        ),
        Column(
            "assignee_user_id",
            "VARCHAR",
            "Workspace user the task is assigned to; NULL means unassigned.",
        ),
        Column(
            "created_at",
            "TIMESTAMPTZ",
            "When Topo created the task; the SLA clock starts here.",
            not_null=True,
        ),
        Column(
            "completed_at",
            "TIMESTAMPTZ",
            "When the task was completed, as Topo reports it. A reopened task can keep an "
            "earlier completed_at while its status is open again; status decides.",
        ),
        Column("skipped_at", "TIMESTAMPTZ", "When the task was skipped; NULL if not skipped."),
        Column(
            "sla_target_minutes",
            "INTEGER",
            "SLA target for the task's priority in minutes (defaults HOT 60, TODAY 1440, EXTRA "
            "4320; configurable). NULL when no target is configured for the priority (a "
            "priority Topo added later, or NULL priority).",
        ),
        Column(
            "sla_due_at",
            "TIMESTAMPTZ",
            "created_at + sla_target_minutes (exact minutes, not calendar days: 1440 minutes "
            "is 24 hours also across DST changes). NULL when sla_target_minutes is NULL.",
        ),
        Column(
            "minutes_to_complete",
            "DOUBLE",
            "For status COMPLETED: (completed_at - created_at) in fractional minutes. NULL for "
            "every other status, and for a COMPLETED task without completed_at.",
        ),
        Column(
            "sla_status",
            "VARCHAR",
            "MET: COMPLETED with completed_at <= sla_due_at. BREACHED: COMPLETED after "
            "sla_due_at, or PENDING/IN_PROGRESS with as_of > sla_due_at. OPEN: "
            "PENDING/IN_PROGRESS not yet due at as_of. SKIPPED: status SKIPPED. UNKNOWN: cannot "
            "be judged (no target for the priority, a COMPLETED task without completed_at, or a "
            "status other than the four known ones).",
            not_null=True,
        ),
        Column(
            "as_of",
            "TIMESTAMPTZ",
            "When the SLA was evaluated (the run's time unless configured); open tasks are "
            "judged against it.",
            not_null=True,
        ),
        Column(
            "business_minutes_to_resolution",
            "DOUBLE",
            "For status COMPLETED: the working minutes between created_at and completed_at, "
            f"in the hours of TOPO_BUSINESS_HOURS (local to {PARTITION_ZONE}) less holidays. "
            "NULL for every other status, and for every task "
            "when TOPO_BUSINESS_HOURS is not set.",
        ),
        Column(
            "business_sla_due_at",
            "TIMESTAMPTZ",
            "The business-hours deadline: the instant when sla_target_minutes working minutes "
            "have passed since created_at (a 60-minute target on a task created at 17:30 with "
            "hours 09:00-18:00 is due at 09:30 on the next working day). NULL when "
            "sla_target_minutes is NULL, and when TOPO_BUSINESS_HOURS is not set.",
        ),
        Column(
            "business_sla_status",
            "VARCHAR",
            "sla_status judged against business_sla_due_at instead of sla_due_at (MET, "
            "BREACHED, OPEN, SKIPPED, UNKNOWN by the same rules). NULL when "
            "TOPO_BUSINESS_HOURS is not set.",
        ),
    ),
)
"""``analytics.task_sla``: built from ``topo.tasks`` by ``task_sla_insert_partitions.sql``."""

TASK_SLA_DESCRIPTION = (
    "SLA evaluation of every Topo task, in DuckDB table analytics.task_sla: one row per task "
    "id with its SLA target, due time, minutes to complete and sla_status (MET, BREACHED, "
    "OPEN, SKIPPED or UNKNOWN) as of the run's as_of."
)


@dataclass(frozen=True)
class Headline:
    """One headline number of a table over some days (Dagster metadata, plotted per day).

    ``expression`` aggregates the table's rows; a ``count`` is 0 over no rows, a ``rate``
    NULL when its denominator is 0. Rates are pooled (sums over sums), never averages.
    """

    name: str
    expression: str
    kind: str = "count"

    def select_item(self) -> str:
        if self.kind == "count":
            return f"coalesce({self.expression}, 0)::BIGINT AS {identifier(self.name)}"
        return f"{self.expression} AS {identifier(self.name)}"


TASK_SLA_HEADLINES: tuple[Headline, ...] = (
    Headline("tasks", "count(*)"),
    Headline("met", "count(*) FILTER (WHERE sla_status = 'MET')"),
    Headline("breached", "count(*) FILTER (WHERE sla_status = 'BREACHED')"),
    Headline("open_within_sla", "count(*) FILTER (WHERE sla_status = 'OPEN')"),
    Headline("skipped", "count(*) FILTER (WHERE sla_status = 'SKIPPED')"),
    # Non-zero means Topo sent a priority without a target or a status the rules do not know.
    Headline("unknown", "count(*) FILTER (WHERE sla_status = 'UNKNOWN')"),
    Headline(
        "sla_attainment",
        "(count(*) FILTER (WHERE sla_status = 'MET'))::DOUBLE"
        " / NULLIF(count(*) FILTER (WHERE sla_status IN ('MET', 'BREACHED')), 0)",
        "rate",
    ),
)
