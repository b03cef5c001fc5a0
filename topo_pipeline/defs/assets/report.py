"""``report/sla_report``: the managers' SLA report, rebuilt after every publish.

The asset is downstream of ``publish/analyst_copy`` and reads the copy, so it shows what
analysts see and never holds the pipeline's file; every run that publishes (``topo/tasks*``,
the refresh and publish jobs) rebuilds it right after the copy, and the automation sensor
does after a copy materialized alone. It runs in the ``duckdb`` pool, so two runs cannot
write the page from different copies out of order. The page is built by
:mod:`topo_pipeline.report`; each materialization records the headline numbers as numeric
metadata (the asset's plots in the UI show them over time), the tiles as Markdown and a
link to the file.
"""

from pathlib import Path

import dagster as dg

from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY
from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.automation import downstream_automation_condition
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.metadata import markdown_table
from topo_pipeline.report import ReportError, ReportResult, write_report
from topo_pipeline.report.headlines import week_label

REPORT_KEY = dg.AssetKey(["report", "sla_report"])

NUMBERS = {
    "hot_sla_attainment": "hot_sla_attainment_pct",
    "completion_rate": "completion_rate_pct",
    "open_past_due": "open_past_due",
}
"""Metadata name of each headline number (rates in percent, so the UI's plots read as such)."""


def build_report_asset(
    report_path: Path,
    analyst_path: Path,
    *,
    business_hours: str | None = None,
    lock_timeout_seconds: float = 120.0,
) -> dg.AssetsDefinition:
    """The ``report/sla_report`` asset, writing ``report_path`` from ``analyst_path``.

    Args:
        report_path: the HTML file (``TOPO_REPORT_PATH``).
        analyst_path: the analyst copy it reads (``TOPO_ANALYST_DUCKDB_PATH``).
        business_hours: the business hours in force, described; ``None``: not configured.
        lock_timeout_seconds: how long to wait for the copy while another process writes it.
    """

    @dg.asset(
        key=REPORT_KEY,
        deps=[ANALYST_COPY_KEY],
        # In a range run of topo/tasks (the CLI requires it of every selected asset).
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POOL,
        kinds={"html"},
        group_name="publish",
        automation_condition=downstream_automation_condition(),
        metadata={"dagster/uri": report_path.resolve().as_uri()},
        description=(
            f"The managers' SLA report ({report_path}): one self-contained HTML page per publish "
            "of the analyst copy, for the last complete week against the week before. Tiles: "
            "HOT SLA attainment and completion rate (as percentages) and tasks open past due; "
            "weekly SLA attainment by priority (wall clock and business hours), completion and "
            "skip rate by team, assignees worst first over four weeks, HOT tasks breached or at "
            "risk now, and what changed since the last report. No script, nothing fetched when "
            "viewed; prints on A4."
        ),
    )
    def sla_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with user_errors("report/sla_report"):
            try:
                result = write_report(
                    analyst_path,
                    report_path,
                    business_hours=business_hours,
                    lock_timeout=lock_timeout_seconds,
                )
            except (FileNotFoundError, ReportError) as error:
                # Nothing published to report on: a paragraph, not a traceback.
                raise dg.Failure(
                    description=f"report/sla_report failed: {error}. The previous report, if "
                    "any, is left as it was.",
                    allow_retries=False,
                ) from error
            context.log.info("wrote the SLA report %s (%d bytes)", result.path, result.size_bytes)
            return dg.MaterializeResult(metadata=report_metadata(result))

    return sla_report


def report_metadata(result: ReportResult) -> dict[str, object]:
    """The metadata of one materialization: numbers to plot, the tiles, the file."""
    data = result.data
    metadata: dict[str, object] = {
        "dagster/uri": result.path.resolve().as_uri(),
        "path": dg.MetadataValue.path(str(result.path)),
        "size_bytes": result.size_bytes,
        "published_at": dg.MetadataValue.timestamp(data.facts.published_at),
        "hot_tasks_breached_or_at_risk": data.hot.total,
        "tiles": dg.MetadataValue.md(tiles_markdown(result)),
    }
    if data.week is not None:
        metadata["week"] = f"{data.week.start.isoformat()}..{data.week.end.isoformat()}"
    for headline in result.headlines:
        if headline.current is None:
            continue  # a plot point only where the number is defined
        if headline.kind == "rate":
            metadata[NUMBERS[headline.key]] = round(headline.current * 100, 2)
        else:
            metadata[NUMBERS[headline.key]] = int(headline.current)
    return metadata


def tiles_markdown(result: ReportResult) -> str:
    """The tiles as a Markdown table, with the HOT list and the changes in a line each."""
    data = result.data
    if not result.headlines or data.week is None:
        lines = ["No complete week of tasks yet."]
    else:
        lines = [
            f"**{week_label(data.week)}** against the week before",
            "",
            markdown_table(
                ["headline", "last complete week", "change"],
                [(h.label, h.text(), h.change()) for h in result.headlines],
            ),
        ]
    changes = data.changes
    if changes.window is not None:
        status = sum(t.changes for t in changes.transitions or ())
        lines.append(
            f"\nSince the last report: {status:,} status changes, "
            f"{changes.reassignments:,} reassignments, {changes.new_tasks:,} new tasks."
        )
    lines.append(f"\nHOT tasks breached or at risk now: {data.hot.total:,} ({data.hot.source}).")
    lines.append(f"\n[Open the report]({result.path.resolve().as_uri()})")
    return "\n".join(lines)
