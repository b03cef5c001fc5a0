"""The ``analytics/*`` assets: SLA and completion-rate tables built from ``topo.tasks``.

One asset per DuckDB table of schema ``analytics`` (grain and columns: SPEC.md and
``docs/analyst-guide.md``): ``analytics/task_sla`` and one per rollup of
:data:`~topo_pipeline.warehouse.registry.ROLLUPS`, whose key, description and metadata come
from that declaration. They share the daily partitions of ``topo/tasks``, each partition
identity-mapped to the same day upstream; the rollups depend on ``analytics/task_sla``, and
the by-assignee and by-team ones also on the unpartitioned ``reference/assignees`` (the
assignee directory, joined for names and teams; see ``defs/assets/reference.py``).

**One step, every analytics asset.** They are one ``multi_asset`` that can be subset, not
one ``@asset`` step each:

* In the UI they are still separate assets: one node each in the lineage graph (rollups downstream
  of ``analytics/task_sla``), each with its own materializations, partition status, table
  name, column schema and plots of its headline numbers. Any one of them can be selected
  and materialized alone; the step then builds only the selected tables (a rollup alone is
  recomputed from the ``analytics.task_sla`` already in the file).
* Building them takes one step: one open of the DuckDB file and one turn in the ``duckdb``
  pool (limit 1) instead of a queued turn per table. So no other run can
  rewrite ``analytics.task_sla`` between it and its rollups, and every table of a run
  carries the same ``as_of``.
* The cost: the run's timeline shows one ``analytics_tables`` step, and retrying it rebuilds
  every selected table (each is cheap and replaced atomically).

The tables are built one after the other in build order, each reported as soon as it is
committed. A table that fails fails the step; the tables built before it are in the file
and materialized, the ones after it are not built.

**Configuration.** SLA targets come from :class:`~topo_pipeline.settings.Settings`
(``TOPO_SLA_HOT_MINUTES`` etc.), fixed when the code location loads. ``as_of``, the instant
open tasks are judged against, is run config (:class:`AnalyticsConfig`); by default it is
the moment the step starts, after the run's ``topo/tasks`` step fetched the data. Setting it
makes a recomputation of a past day reproducible.

**Metadata** per materialization (one per partition): ``dagster/row_count`` and the day's
headline numbers (``hot_sla_attainment``, ``completion_rate``, ... as plain numbers, so the
UI plots them per partition; a rate with a zero denominator is left out rather than sent as
null) and ``dagster/table_name``. On the SLA tables also ``as_of`` and, when
``analytics/task_sla`` was built in the same step, ``sla_target_minutes`` (the targets in
force). The run's last day (the table's latest materialization) also carries
``dagster/column_schema``, the file's columns with their comments (the definition has the
declared ones from the start), and, for a range run, a ``per_day`` overview of its days.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime

import dagster as dg
from pydantic import Field

from topo_pipeline.defs.assets.ingestion import POOL, TASKS_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.failures import explain_user_errors
from topo_pipeline.defs.metadata import PER_DAY_ROWS, add_partition_metadata, markdown_table
from topo_pipeline.defs.partitions import partition_windows
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.analytics import (
    ANALYTICS_TABLES,
    ROLLUP_TABLES,
    ColumnInfo,
    PartitionRows,
    analytics_columns,
    ensure_analytics_tables,
    headline_metrics_by_day,
    missing_sources,
    partition_rows,
    replace_rollup,
    replace_task_sla,
)
from topo_pipeline.warehouse.business_hours import WorkingCalendar
from topo_pipeline.warehouse.registry import (
    ROLLUPS_BY_TABLE,
    TASK_SLA_DESCRIPTION,
    uses_sla,
)

OP_NAME = "analytics_tables"
"""The step building the analytics tables; run config goes under ``ops.analytics_tables``."""

GROUP = "analytics"

ANALYTICS_KEYS: Mapping[str, dg.AssetKey] = {
    table: dg.AssetKey(["analytics", table]) for table in ANALYTICS_TABLES
}
"""Asset key per table of schema ``analytics`` (``analytics/task_sla`` etc.)."""

TASK_SLA_KEY = ANALYTICS_KEYS["task_sla"]

SLA_TABLES = tuple(table for table in ANALYTICS_TABLES if uses_sla(table))
"""The tables whose numbers depend on ``as_of`` and the SLA targets."""

_DESCRIPTIONS = {
    "task_sla": TASK_SLA_DESCRIPTION,
    **{table: rollup.description for table, rollup in ROLLUPS_BY_TABLE.items()},
}

_SOURCES = {
    "task_sla": "topo/tasks",
    **dict.fromkeys(ROLLUP_TABLES, "analytics/task_sla"),
}


def _deps(table: str) -> list[dg.AssetKey]:
    """What ``table`` is built from: ``topo/tasks`` for ``task_sla``; for a rollup
    ``analytics/task_sla`` (same partition) and, for the by-assignee and by-team ones, the
    unpartitioned ``reference/assignees`` (every partition depends on its one state)."""
    if table == "task_sla":
        return [TASKS_KEY]
    if ROLLUPS_BY_TABLE[table].group.uses_directory:
        return [TASK_SLA_KEY, ASSIGNEES_KEY]
    return [TASK_SLA_KEY]


class AnalyticsConfig(dg.Config):
    """Run config of the analytics step (``ops: analytics_tables: config:``)."""

    as_of: str | None = Field(
        default=None,
        description=(
            "The instant open tasks are judged against, as ISO 8601 with a UTC offset, e.g. "
            "2024-03-01T12:00:00Z or 2024-03-01T13:00:00+01:00. Default: when the step starts. "
            "Set it to recompute past days reproducibly."
        ),
    )

    def resolve_as_of(self, now: datetime) -> datetime:
        """``as_of`` as an aware datetime, or ``now`` when it is not set.

        Raises:
            dg.Failure: if ``as_of`` is not an ISO 8601 instant with a UTC offset.
        """
        if self.as_of is None or not self.as_of.strip():
            return now
        text = self.as_of.strip()
        try:
            # fromisoformat in 3.11 takes "Z" and offsets; a bare date parses as naive.
            value = datetime.fromisoformat(text)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None or value.utcoffset() is None:
            raise dg.Failure(
                description=(
                    f"run config as_of {text!r} is not an ISO 8601 instant with a UTC offset; "
                    "write e.g. 2024-03-01T12:00:00Z"
                )
            )
        return value


def build_analytics_assets(
    partitions_def: dg.TimeWindowPartitionsDefinition,
    sla_targets: Mapping[str, int],
    *,
    calendar: WorkingCalendar | None = None,
    timezone: str = "UTC",
) -> dg.AssetsDefinition:
    """The ``analytics/*`` assets over ``partitions_def``, as one subsettable step.

    Args:
        partitions_def: the partitions of ``topo/tasks`` (identity-mapped).
        sla_targets: SLA target in minutes per priority (``Settings.sla_target_minutes``).
        calendar: the business-hours calendar (``Settings.working_calendar()``), local to
            ``timezone``; ``None`` leaves the business-hours columns NULL.
    """
    targets = dict(sla_targets)
    targets_text = ", ".join(f"{priority} {minutes}" for priority, minutes in targets.items())
    hours_text = (
        f"{calendar.describe()} ({timezone})" if calendar else "not configured (columns NULL)"
    )
    specs = [
        dg.AssetSpec(
            key=ANALYTICS_KEYS[table],
            deps=_deps(table),
            description=_DESCRIPTIONS[table]
            + (
                f" SLA targets in minutes: {targets_text}; business hours: {hours_text}."
                if table in SLA_TABLES
                else " Built from analytics.task_sla."
            ),
            group_name=GROUP,
            kinds={"duckdb"},
            metadata={"dagster/table_name": f"analytics.{table}"},
        )
        for table in ANALYTICS_TABLES
    ]

    @dg.multi_asset(
        name=OP_NAME,
        specs=specs,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POOL,
        can_subset=True,
        description=(
            "Builds the selected analytics tables for the run's partitions from topo.tasks, "
            "each partition replaced in one transaction per table."
        ),
    )
    @explain_user_errors("the analytics tables")
    def analytics_tables(
        context: dg.AssetExecutionContext,
        config: AnalyticsConfig,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        as_of = config.resolve_as_of(datetime.now(UTC))
        windows = partition_windows(partitions_def, context.partition_keys)
        days = [window.partition_date for window in windows]
        selected = [
            table
            for table in ANALYTICS_TABLES
            if ANALYTICS_KEYS[table] in context.selected_asset_keys
        ]
        context.log.info(
            "building %s for %d partition(s) %s..%s%s",
            ", ".join(selected),
            len(days),
            days[0],
            days[-1],
            f", SLA as of {as_of.isoformat()}" if "task_sla" in selected else "",
        )

        with warehouse.get_connection() as con:
            missing = missing_sources(con, selected)
            if missing:
                raise dg.Failure(
                    description=(
                        f"{' and '.join(missing)} does not exist in the pipeline's DuckDB file "
                        f"yet: materialize {_SOURCES[selected[0]]} for these partitions first"
                    )
                )
            # On an older file, tables declared since are created first, so that the
            # columns read here are every declared table's.
            ensure_analytics_tables(con)
            columns = analytics_columns(con)

            # Each table is reported as soon as it is committed: a later one that fails
            # leaves the ones before it materialized.
            for table in selected:
                if table == "task_sla":
                    rows = replace_task_sla(
                        con,
                        days,
                        as_of=as_of,
                        sla_targets=targets,
                        calendar=calendar,
                        calendar_timezone=timezone,
                    )
                else:
                    rows = replace_rollup(con, table, days)
                yield _materialize_result(
                    context,
                    table,
                    days,
                    rows=rows,
                    counts=partition_rows(con, days, [table]),
                    columns=columns.get(table, []),
                    # One grouped query per table, whatever the number of days.
                    headlines=headline_metrics_by_day(con, table, days),
                    as_of=as_of if "task_sla" in selected else None,
                    targets=targets if "task_sla" in selected else None,
                )

    return analytics_tables


def _materialize_result(
    context: dg.AssetExecutionContext,
    table: str,
    days: Sequence[date],
    *,
    rows: int,
    counts: Mapping[tuple[str, date], PartitionRows],
    columns: Sequence[ColumnInfo],
    headlines: Mapping[date, Mapping[str, float | int | None]],
    as_of: datetime | None,
    targets: Mapping[str, int] | None,
) -> dg.MaterializeResult:
    """The materialization of ``table``: run-wide metadata, plus each partition's own."""
    key = ANALYTICS_KEYS[table]
    by_partition: dict[str, dict[str, object]] = {}
    for day in days:
        partition = counts.get((table, day))
        metadata: dict[str, object] = {
            "dagster/row_count": partition.row_count if partition else 0,
            **_numbers(headlines[day]),
        }
        if table in SLA_TABLES and partition is not None and partition.as_of is not None:
            metadata["as_of"] = dg.MetadataValue.timestamp(partition.as_of)
        if day == days[-1]:
            # Metadata without a partition is copied to every partition's event, so what
            # is the run's, not the day's, goes on its last day (the table's latest
            # materialization) only: the file's columns (half of an event's size), and a
            # range run's overview.
            metadata["dagster/column_schema"] = dg.TableSchema(
                columns=[
                    dg.TableColumn(name=c.name, type=c.data_type, description=c.comment)
                    for c in columns
                ]
            )
            if len(days) > 1:
                metadata["per_day"] = dg.MetadataValue.md(
                    _per_day_table(table, days, counts, headlines)
                )
        by_partition[day.isoformat()] = metadata
    add_partition_metadata(context, key, by_partition)

    run_metadata: dict[str, object] = {
        "dagster/table_name": f"analytics.{table}",
        "rows_written_in_run": rows,
        "partitions_in_run": len(days),
    }
    if table in SLA_TABLES and as_of is not None:
        run_metadata["as_of"] = dg.MetadataValue.timestamp(as_of)
    if table in SLA_TABLES and targets is not None:
        run_metadata["sla_target_minutes"] = dg.MetadataValue.json(dict(targets))
    return dg.MaterializeResult(asset_key=key, metadata=run_metadata)


def _numbers(headline: Mapping[str, float | int | None]) -> dict[str, float | int]:
    """The numeric headline values; undefined rates (``None``) are left out."""
    return {name: value for name, value in headline.items() if value is not None}


def _per_day_table(
    table: str,
    days: Sequence[date],
    counts: Mapping[tuple[str, date], PartitionRows],
    headlines: Mapping[date, Mapping[str, float | int | None]],
) -> str:
    """The run's days, one row each (the latest :data:`PER_DAY_ROWS` of a longer range)."""
    names = list(headlines[days[0]]) if days else []
    rows = []
    shown = days[-PER_DAY_ROWS:]
    for day in shown:
        partition = counts.get((table, day))
        values = [_format(headlines[day][name]) for name in names]
        rows.append([day.isoformat(), partition.row_count if partition else 0, *values])
    text = markdown_table(["partition", "rows", *names], rows)
    if len(shown) < len(days):
        text = f"The last {len(shown)} of the run's {len(days)} days.\n\n{text}"
    return text


def _format(value: float | int | None) -> object:
    if isinstance(value, float):
        return f"{value:.4f}"
    return value
