"""The analytics tables, declared once: ``analytics.task_sla`` and the rollups built from it.

A rollup is a :class:`MeasureFamily` (SLA outcome, or completion rate) grouped by a
:class:`GroupColumn`, per ``partition_date`` (``rollup_declarations.py``; ``task_sla.py``
declares the table they read); :data:`ROLLUPS` is their closed list. The
tables' DDL and comments, their SQL, their Dagster assets and the test oracle all read it
(``docs/design.md``, "The analytics tables"). **Adding a rollup** is one :class:`Rollup`
entry in :data:`ROLLUPS` (plus a :class:`GroupColumn` if the grouping column is new) and
its lines in ``docs/analyst-guide.md``.
"""

from __future__ import annotations

from topo_pipeline.warehouse.rollup_declarations import (
    GroupColumn,
    Measure,
    MeasureFamily,
    Rate,
    Rollup,
)
from topo_pipeline.warehouse.tables import Column, Table
from topo_pipeline.warehouse.task_sla import TASK_SLA, TASK_SLA_HEADLINES, Headline


def _count(name: str, condition: str, comment: str) -> Measure:
    return Measure(
        Column(name, "BIGINT", comment, not_null=True),
        f"count(*) FILTER (WHERE {condition})",
    )


_TASKS = Measure(Column("tasks", "BIGINT", "Tasks in the group (every status).", True), "count(*)")
_COMPLETED = _count("completed", "status = 'COMPLETED'", "Tasks with status COMPLETED.")
_SKIPPED = _count("skipped", "status = 'SKIPPED'", "Tasks with status SKIPPED.")

SLA = MeasureFamily(
    name="sla",
    summary="SLA outcome",
    measures=(
        _TASKS,
        _COMPLETED,
        _SKIPPED,
        _count(
            "open",
            "status IN ('PENDING', 'IN_PROGRESS')",
            "Tasks with status PENDING or IN_PROGRESS (overdue ones included).",
        ),
        _count("met", "sla_status = 'MET'", "Tasks with sla_status MET."),
        _count(
            "breached",
            "sla_status = 'BREACHED'",
            "Tasks with sla_status BREACHED: completed late, or still open past sla_due_at at "
            "as_of.",
        ),
        Measure(
            Column(
                "sla_attainment",
                "DOUBLE",
                "met / (met + breached), in [0, 1]; NULL when met + breached is 0. Across "
                "days, sum met and breached first; do not average this column.",
            ),
            "(count(*) FILTER (WHERE sla_status = 'MET'))::DOUBLE"
            " / NULLIF(count(*) FILTER (WHERE sla_status IN ('MET', 'BREACHED')), 0)",
        ),
        # quantile_cont skips NULLs, so a COMPLETED task without completed_at does not count.
        Measure(
            Column(
                "median_minutes_to_complete",
                "DOUBLE",
                "Median minutes_to_complete over the group's COMPLETED tasks (quantile_cont "
                "0.5); NULL when none has a completion time.",
            ),
            "quantile_cont(minutes_to_complete, 0.5) FILTER (WHERE status = 'COMPLETED')",
        ),
        Measure(
            Column(
                "p90_minutes_to_complete",
                "DOUBLE",
                "90th percentile of minutes_to_complete over the group's COMPLETED tasks "
                "(quantile_cont 0.9, linear interpolation); NULL when none has a completion "
                "time.",
            ),
            "quantile_cont(minutes_to_complete, 0.9) FILTER (WHERE status = 'COMPLETED')",
        ),
        # One replace_task_sla run writes a whole partition with one as_of; max() is that value.
        Measure(
            Column(
                "as_of",
                "TIMESTAMPTZ",
                "When the SLA of these tasks was evaluated (analytics.task_sla.as_of).",
                not_null=True,
            ),
            "max(as_of)",
        ),
        # Last, where the migration of an older file adds them. NULL, not 0, where no task
        # has a business-hours verdict (no working calendar).
        Measure(
            Column(
                "business_met",
                "BIGINT",
                "Tasks with business_sla_status MET; NULL when business hours are not "
                "configured (TOPO_BUSINESS_HOURS).",
            ),
            "CASE WHEN count(business_sla_status) > 0"
            " THEN count(*) FILTER (WHERE business_sla_status = 'MET') END",
        ),
        Measure(
            Column(
                "business_breached",
                "BIGINT",
                "Tasks with business_sla_status BREACHED; NULL when business hours are not "
                "configured.",
            ),
            "CASE WHEN count(business_sla_status) > 0"
            " THEN count(*) FILTER (WHERE business_sla_status = 'BREACHED') END",
        ),
        Measure(
            Column(
                "business_sla_attainment",
                "DOUBLE",
                "business_met / (business_met + business_breached), in [0, 1]: attainment in "
                "business hours. NULL when their sum is 0 or business hours are not "
                "configured. Across days, sum the counts first.",
            ),
            "(count(*) FILTER (WHERE business_sla_status = 'MET'))::DOUBLE"
            " / NULLIF(count(*) FILTER (WHERE business_sla_status IN ('MET', 'BREACHED')), 0)",
        ),
    ),
    headline_counts=("tasks", "met", "breached"),
    rates=(Rate("sla_attainment", "met", "met + breached"),),
    null_group_count="open",
    uses_sla=True,
)

COMPLETION_RATE = MeasureFamily(
    name="completion_rate",
    summary="Task outcomes",
    measures=(
        Measure(
            Column(
                "tasks", "BIGINT", "Tasks in the group (every status, unknown ones included).", True
            ),
            "count(*)",
        ),
        _COMPLETED,
        _SKIPPED,
        _count(
            "pending", "status = 'PENDING'", "Tasks with status PENDING (reopened tasks included)."
        ),
        _count("in_progress", "status = 'IN_PROGRESS'", "Tasks with status IN_PROGRESS."),
        # NULLIF cannot trigger while every group has a task; it keeps the rate NULL, not an
        # error, should that ever change.
        Measure(
            Column(
                "completion_rate",
                "DOUBLE",
                "completed / tasks, in [0, 1]; NULL when tasks is 0. Across days, sum completed "
                "and tasks first; do not average this column.",
            ),
            "(count(*) FILTER (WHERE status = 'COMPLETED'))::DOUBLE / NULLIF(count(*), 0)",
        ),
        Measure(
            Column(
                "skip_rate",
                "DOUBLE",
                "skipped / tasks, in [0, 1]; NULL when tasks is 0. Across days, sum skipped and "
                "tasks first.",
            ),
            "(count(*) FILTER (WHERE status = 'SKIPPED'))::DOUBLE / NULLIF(count(*), 0)",
        ),
    ),
    headline_counts=("tasks", "completed", "skipped"),
    rates=(
        Rate("completion_rate", "completed", "tasks"),
        Rate("skip_rate", "skipped", "tasks"),
    ),
    null_group_count="tasks",
    uses_sla=False,
)


PRIORITY = GroupColumn(
    name="priority",
    label="priority",
    noun="priority",
    comment="Task priority: HOT, TODAY, EXTRA, or a value Topo added later; NULL groups tasks "
    "without a priority.",
    null_group="NULL priority is its own group",
    highlight="HOT",
)

ASSIGNEE = GroupColumn(
    name="assignee_user_id",
    label="assignee",
    noun="assignee",
    comment="Workspace user the tasks are assigned to; NULL groups the unassigned tasks.",
    null_group="NULL assignee_user_id (unassigned) is its own group",
    distinct_headline="assignees",
    null_headline_prefix="unassigned",
    carried=(
        Column(
            "assignee_name",
            "VARCHAR",
            "The assignee's name from the assignee directory (reference.assignees); NULL for "
            "the unassigned group, for an assignee the directory does not name, and for every "
            "row when no directory is configured (TOPO_ASSIGNEES_PATH unset).",
        ),
        Column(
            "team",
            "VARCHAR",
            "The assignee's team from the assignee directory (reference.assignees); NULL as "
            "for assignee_name, and when the directory gives the assignee no team.",
        ),
    ),
    uses_directory=True,
)

TEAM = GroupColumn(
    name="team",
    label="team",
    noun="team",
    comment="Team of the tasks' assignees, from the assignee directory (reference.assignees); "
    "NULL groups unassigned tasks, tasks of assignees the directory does not name or gives no "
    "team, and every task when no directory is configured (TOPO_ASSIGNEES_PATH unset).",
    null_group="NULL team (unassigned, or an assignee without a team in the directory) is its "
    "own group",
    distinct_headline="teams",
    null_headline_prefix="no_team",
    uses_directory=True,
    sql_type="VARCHAR",
)

TASK_TYPE = GroupColumn(
    name="type",
    label="task_type",
    noun="task type",
    comment="Task type: CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW, or a value Topo "
    "added later; NULL groups tasks without a type.",
    null_group="NULL type is its own group",
)


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(SLA, PRIORITY),
    Rollup(SLA, ASSIGNEE),
    Rollup(COMPLETION_RATE, PRIORITY),
    Rollup(COMPLETION_RATE, ASSIGNEE),
    Rollup(COMPLETION_RATE, TASK_TYPE),
    Rollup(SLA, TEAM),
    Rollup(COMPLETION_RATE, TEAM),
)
"""Every rollup table, in build order (after ``analytics.task_sla``, which they read)."""

ROLLUPS_BY_TABLE = {rollup.table: rollup for rollup in ROLLUPS}

ANALYTICS_TABLE_DECLARATIONS: tuple[Table, ...] = (
    TASK_SLA,
    *(rollup.table_declaration for rollup in ROLLUPS),
)


def headlines_of(table: str) -> tuple[Headline, ...]:
    """The headline numbers of analytics table ``table``.

    Raises:
        KeyError: if ``table`` is not an analytics table.
    """
    if table == TASK_SLA.name:
        return TASK_SLA_HEADLINES
    return ROLLUPS_BY_TABLE[table].headlines


def uses_sla(table: str) -> bool:
    """Whether ``table``'s numbers depend on ``as_of`` and the SLA targets."""
    return table == TASK_SLA.name or ROLLUPS_BY_TABLE[table].family.uses_sla
