"""The analytics tables, declared once: ``analytics.task_sla`` and the rollups built from it.

A rollup is a :class:`MeasureFamily` (SLA outcome, or completion rate) grouped by a
:class:`GroupColumn`, per ``partition_date``; :data:`ROLLUPS` is their closed list. The
tables' DDL and comments, their SQL, their Dagster assets and the test oracle all read it
(``docs/design.md``, "The analytics tables"). **Adding a rollup** is one :class:`Rollup`
entry in :data:`ROLLUPS` (plus a :class:`GroupColumn` if the grouping column is new) and
its lines in ``docs/analyst-guide.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from topo_pipeline.warehouse.tables import PARTITION_ZONE, Column, Table, identifier, literal

ANALYTICS_SCHEMA = "analytics"

_DAY_COMMENT = f"Day the tasks were created in {PARTITION_ZONE}."
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


@dataclass(frozen=True)
class Measure:
    """One column of a rollup: an aggregate over the group's ``analytics.task_sla`` rows."""

    column: Column
    expression: str


@dataclass(frozen=True)
class Rate:
    """A pooled rate of a family: ``sum(numerator) / sum(denominator)`` over rollup rows."""

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class MeasureFamily:
    """What a rollup counts, whatever it is grouped by."""

    name: str
    """Prefix of the table name: ``<name>_by_<group label>``."""
    summary: str
    """How a table comment and an asset description start, e.g. ``SLA outcome``."""
    measures: tuple[Measure, ...]
    headline_counts: tuple[str, ...]
    """Measures summed into headline numbers."""
    rates: tuple[Rate, ...]
    """Headline rates; the first is the family's main one (e.g. per highlighted group)."""
    null_group_count: str
    """The measure reported for the NULL group (e.g. open tasks nobody is assigned to)."""
    uses_sla: bool
    """Its numbers depend on ``as_of`` and the SLA targets."""


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


@dataclass(frozen=True)
class GroupColumn:
    """A column of ``analytics.task_sla`` a rollup groups by (NULL is its own group)."""

    name: str
    label: str
    """Suffix of the table name: ``<family>_by_<label>``."""
    noun: str
    """What one group is, in a sentence: ``priority``, ``assignee``."""
    comment: str
    null_group: str
    """How the comment says that NULL is a group of its own."""
    highlight: str | None = None
    """A value whose main rate is a headline of its own (``HOT`` → ``hot_sla_attainment``)."""
    distinct_headline: str | None = None
    """Headline counting the distinct non-NULL values (``assignees``)."""
    null_headline_prefix: str | None = None
    """Headline of the NULL group's :attr:`MeasureFamily.null_group_count`
    (``unassigned`` → ``unassigned_open``)."""
    carried: tuple[Column, ...] = ()
    """Columns that describe a group and come with it (an assignee's name and team)."""
    uses_directory: bool = False
    """Its column (or a carried one) comes from the assignee directory
    (``reference.assignees``), joined to ``analytics.task_sla`` by ``assignee_user_id``."""
    sql_type: str | None = None
    """The column's type when it is not a column of ``analytics.task_sla``."""

    @property
    def column_type(self) -> str:
        return self.sql_type or TASK_SLA.column(self.name).sql_type


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


@dataclass(frozen=True)
class Rollup:
    """One rollup table: a measure family per ``partition_date`` and group."""

    family: MeasureFamily
    group: GroupColumn

    @property
    def table(self) -> str:
        """The table's name in schema ``analytics`` (and the last part of its asset key)."""
        return identifier(f"{self.family.name}_by_{self.group.label}")

    @property
    def table_declaration(self) -> Table:
        group_by = f"(partition_date, {self.group.name})"
        return Table(
            ANALYTICS_SCHEMA,
            self.table,
            f"{self.family.summary} per creation day and {self.group.noun}, from "
            f"analytics.task_sla. One row per {group_by} with at least one task; "
            f"{self.group.null_group}.",
            (
                Column("partition_date", "DATE", _DAY_COMMENT, not_null=True),
                Column(self.group.name, self.group.column_type, self.group.comment),
                *(measure.column for measure in self.family.measures),
                # Last, where the migration of an older file adds them too.
                *self.group.carried,
            ),
        )

    @property
    def group_columns(self) -> tuple[str, ...]:
        """The columns the rollup groups by (besides ``partition_date``)."""
        return (self.group.name, *(column.name for column in self.group.carried))

    @property
    def description(self) -> str:
        """The Dagster asset's description."""
        measures = ", ".join(m.column.name for m in self.family.measures)
        rates = "; ".join(
            f"{r.name} = {r.numerator} / ({r.denominator})" for r in self.family.rates
        )
        return (
            f"{self.family.summary} per creation day and {self.group.noun}, in DuckDB table "
            f"analytics.{self.table}: {measures} ({rates}). {self.group.null_group}."
        )

    @property
    def headlines(self) -> tuple[Headline, ...]:
        family, group = self.family, self.group
        column = identifier(group.name)
        items = [Headline(name, f"sum({identifier(name)})") for name in family.headline_counts]
        items += [
            Headline(
                r.name, f"sum({r.numerator})::DOUBLE / NULLIF(sum({r.denominator}), 0)", "rate"
            )
            for r in family.rates
        ]
        if group.highlight is not None:
            main = family.rates[0]
            where = f"FILTER (WHERE {column} = {literal(group.highlight)})"
            items.append(
                Headline(
                    identifier(f"{group.highlight.lower()}_{main.name}"),
                    f"(sum({main.numerator}) {where})::DOUBLE"
                    f" / NULLIF(sum({main.denominator}) {where}, 0)",
                    "rate",
                )
            )
        if group.distinct_headline is not None:
            items.append(Headline(group.distinct_headline, f"count(DISTINCT {column})"))
        if group.null_headline_prefix is not None:
            count = family.null_group_count
            items.append(
                Headline(
                    f"{group.null_headline_prefix}_{count}",
                    f"sum({identifier(count)}) FILTER (WHERE {column} IS NULL)",
                )
            )
        return tuple(items)


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
