"""The kinds of declaration a rollup is made of: measures, families, group columns.

A :class:`Rollup` is a :class:`MeasureFamily` (what it counts) grouped by a
:class:`GroupColumn`, per ``partition_date``; from these it derives its table, asset
description and headline numbers. The rollups themselves are listed in
:mod:`~topo_pipeline.warehouse.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass

from topo_pipeline.warehouse.tables import Column, Table, identifier, literal
from topo_pipeline.warehouse.task_sla import ANALYTICS_SCHEMA, DAY_COMMENT, TASK_SLA, Headline


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
                Column("partition_date", "DATE", DAY_COMMENT, not_null=True),
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
