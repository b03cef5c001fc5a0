"""The ``analytics/*`` assets: SLA and completion-rate tables built from ``topo.tasks``.

One asset per DuckDB table of schema ``analytics`` (grain and columns: ``docs/analyst-guide.md``),
built by one subsettable step (one turn in the ``duckdb`` pool, one ``as_of`` for every
table). They are unpartitioned: each materialization rebuilds the whole table from what
``topo.tasks`` holds, one transaction per table, keeping its per-day (``partition_date``)
rows; so a range run of ``topo/tasks`` adds a few events, not a few per day, and every day
is built with the settings in force. Why: ``docs/operating.md`` ("Partitions").
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime

import dagster as dg
from pydantic import Field

from topo_pipeline.defs.assets.ingestion import POOL, TASKS_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.metadata import PER_DAY_ROWS, markdown_table
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.analytics import (
    ANALYTICS_TABLES,
    ColumnInfo,
    PartitionRows,
    analytics_columns,
    ensure_analytics_tables,
    headline_metrics_by_day,
    partition_rows,
    rebuild_days,
    replace_rollup,
    replace_task_sla,
)
from topo_pipeline.warehouse.builds import BuildSettings, record_build
from topo_pipeline.warehouse.business_hours import WorkingCalendar
from topo_pipeline.warehouse.registry import ROLLUPS_BY_TABLE, uses_sla
from topo_pipeline.warehouse.task_sla import TASK_SLA_DESCRIPTION

OP_NAME = "analytics_tables"
"""The step building the analytics tables; run config goes under ``ops.analytics_tables``."""

GROUP = "analytics"

_RELAND = (
    "; topo.tasks still holds the days landed under the former zone: land them again with "
    "dg launch --assets 'topo/tasks*' --partition-range <TOPO_START_DATE>...<yesterday> "
    "(README, 'Changing settings')"
)

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


def _deps(table: str) -> list[dg.AssetKey]:
    """What ``table`` is built from: ``topo/tasks`` for ``task_sla``; for a rollup
    ``analytics/task_sla`` and, for the by-assignee and by-team ones, ``reference/assignees``."""
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
    sla_targets: Mapping[str, int],
    *,
    calendar: WorkingCalendar | None = None,
    timezone: str = "UTC",
) -> dg.AssetsDefinition:
    """The ``analytics/*`` assets, as one subsettable step.

    Args:
        sla_targets: SLA target in minutes per priority (``Settings.sla_target_minutes``).
        calendar: the business-hours calendar (``Settings.working_calendar()``), local to
            ``timezone``; ``None`` leaves the business-hours columns NULL.
    """
    targets = dict(sla_targets)
    targets_text = ", ".join(f"{priority} {minutes}" for priority, minutes in targets.items())
    hours_text = (
        f"{calendar.describe()} ({timezone})" if calendar else "not configured (columns NULL)"
    )
    build_settings = BuildSettings(
        timezone=timezone,
        sla_target_minutes=targets,
        business_hours=calendar.describe() if calendar else None,
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
        # In a range run of topo/tasks (the CLI requires it of every selected asset).
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POOL,
        can_subset=True,
        description=(
            "Rebuilds the selected analytics tables from topo.tasks, every day they cover, "
            "one transaction per table."
        ),
    )
    def analytics_tables(
        context: dg.AssetExecutionContext,
        config: AnalyticsConfig,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        with user_errors("the analytics tables"):
            as_of = config.resolve_as_of(datetime.now(UTC))
            selected = [
                table
                for table in ANALYTICS_TABLES
                if ANALYTICS_KEYS[table] in context.selected_asset_keys
            ]
            context.log.info(
                "building %s%s",
                ", ".join(selected),
                f", SLA as of {as_of.isoformat()}" if "task_sla" in selected else "",
            )
            with warehouse.get_connection() as con:
                ensure_analytics_tables(con)
                columns = analytics_columns(con)
                # Each table is reported as soon as it is committed: a later one that fails
                # leaves the ones before it materialized.
                for table in selected:
                    days = rebuild_days(con, table)
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
                    shown = days[-PER_DAY_ROWS:]
                    yield _materialize_result(
                        table,
                        days,
                        rows=rows,
                        counts=partition_rows(con, shown, [table]),
                        columns=columns.get(table, []),
                        # One grouped query per table, whatever the number of days.
                        headlines=headline_metrics_by_day(con, table, shown),
                        as_of=as_of if "task_sla" in selected else None,
                        targets=targets if "task_sla" in selected else None,
                    )
                changes = record_build(
                    con,
                    build_settings,
                    built_at=datetime.now(UTC),
                    as_of=as_of if "task_sla" in selected else None,
                    tables=selected,
                )
            for change in changes:
                context.log.warning(
                    "%s since the last build: every analytics table holds the new settings' "
                    "results now (analytics.builds records each build's)%s",
                    change,
                    _RELAND if change.startswith("TOPO_TIMEZONE") else "",
                )

    return analytics_tables


def _materialize_result(
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
    """The materialization of ``table``: its size, the latest day's headline numbers (plotted
    over materializations in the UI) and an overview of its latest days."""
    metadata: dict[str, object] = {
        "dagster/table_name": f"analytics.{table}",
        "dagster/row_count": rows,
        "days": len(days),
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name=c.name, type=c.data_type, description=c.comment)
                for c in columns
            ]
        ),
    }
    if days:
        latest = days[-1]
        metadata["first_day"] = days[0].isoformat()
        metadata["latest_day"] = latest.isoformat()
        metadata.update(_numbers(headlines.get(latest, {})))
        metadata["per_day"] = dg.MetadataValue.md(_per_day_table(table, days, counts, headlines))
    if table in SLA_TABLES and as_of is None and days:
        # A rollup built alone: the evaluation its rows come from.
        latest_rows = counts.get((table, days[-1]))
        as_of = latest_rows.as_of if latest_rows else None
    if table in SLA_TABLES and as_of is not None:
        metadata["as_of"] = dg.MetadataValue.timestamp(as_of)
    if table in SLA_TABLES and targets is not None:
        metadata["sla_target_minutes"] = dg.MetadataValue.json(dict(targets))
    return dg.MaterializeResult(asset_key=ANALYTICS_KEYS[table], metadata=metadata)


def _numbers(headline: Mapping[str, float | int | None]) -> dict[str, float | int]:
    """The numeric headline values; undefined rates (``None``) are left out."""
    return {name: value for name, value in headline.items() if value is not None}


def _per_day_table(
    table: str,
    days: Sequence[date],
    counts: Mapping[tuple[str, date], PartitionRows],
    headlines: Mapping[date, Mapping[str, float | int | None]],
) -> str:
    """The table's latest :data:`PER_DAY_ROWS` days, one row each."""
    shown = days[-PER_DAY_ROWS:]
    names = list(headlines[shown[0]]) if shown else []
    rows = []
    for day in shown:
        partition = counts.get((table, day))
        values = [_format(headlines[day][name]) for name in names]
        rows.append([day.isoformat(), partition.row_count if partition else 0, *values])
    text = markdown_table(["partition", "rows", *names], rows)
    if len(shown) < len(days):
        text = f"The latest {len(shown)} of the table's {len(days)} days.\n\n{text}"
    return text


def _format(value: float | int | None) -> object:
    if isinstance(value, float):
        return f"{value:.4f}"
    return value
