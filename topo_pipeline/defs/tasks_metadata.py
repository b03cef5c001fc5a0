"""The metadata a ``topo/tasks`` run records: per partition, and for the run as a whole.

Each day gets its counts and window (:func:`partition_metadata`); the run's last day also
gets the run's overview tables (a ``per_day`` table and a ``preview`` of the rows), which
grow with the range. The run-wide numbers (:func:`run_metadata`: what the API calls cost,
what landed, the history versions recorded, the repeats) go on the materialization
itself, which Dagster copies onto every partition of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import dagster as dg

from topo_pipeline.api.windows import WindowResult
from topo_pipeline.defs.metadata import PER_DAY_ROWS, markdown_table, table_value
from topo_pipeline.defs.partitions import DAY_COMPLETE_METADATA
from topo_pipeline.warehouse.duplicates import DuplicateReport
from topo_pipeline.warehouse.landing import Landing
from topo_pipeline.warehouse.tasks import PartitionWindow


def partition_metadata(
    windows: Sequence[PartitionWindow],
    results: Sequence[WindowResult],
    rows: Mapping[date, int],
    preview: tuple[list[str], list[tuple[object, ...]]],
    *,
    fetched_from: datetime,
) -> dict[str, dict[str, object]]:
    """Metadata per partition key: each day's counts and window, and on the last day the
    run's ``per_day`` table and ``preview`` (columns and rows, as :func:`preview_tasks`
    of :mod:`topo_pipeline.warehouse.tasks` reads them).

    Args:
        windows: the run's partitions, in order.
        results: the fetch's result of each window, in the same order.
        rows: rows landed per partition date.
        preview: the columns and first rows of the run's partitions.
        fetched_from: when the fetch started: a day that had not ended by then is not
            complete (:data:`~topo_pipeline.defs.partitions.DAY_COMPLETE_METADATA`).
    """
    by_partition = {
        window.partition_date.isoformat(): {
            **_day(window, result, rows[window.partition_date]),
            DAY_COMPLETE_METADATA: window.end <= fetched_from,
        }
        for window, result in zip(windows, results, strict=True)
    }
    # Metadata without a partition is copied onto every partition of the run, so the
    # run's tables (which grow with the range) go on its last day only.
    by_partition[windows[-1].partition_date.isoformat()].update(
        {
            "per_day": dg.MetadataValue.md(per_day_table(windows, results, rows)),
            "preview": table_value(*preview),
        }
    )
    return by_partition


def run_metadata(
    stats: Mapping[str, float], fetch_seconds: float, repeats: DuplicateReport, landing: Landing
) -> dict[str, object]:
    """The run's numbers: API requests and waits, rows landed, history versions, repeats.

    Args:
        stats: the client's counters (:meth:`~topo_pipeline.api.stats.FetchStats.as_dict`).
        fetch_seconds: wall time of the fetch.
        repeats: the ids staged more than once.
        landing: what the landing wrote.
    """
    return {
        "rows_landed_in_run": sum(landing.rows.values()),
        "history_versions_recorded": landing.history.versions,
        "history_tasks_removed": landing.history.removed,
        "partitions_in_run": len(landing.rows),
        "api_requests": int(stats["requests"]),
        "api_pages": int(stats["pages"]),
        "api_retries": int(stats["retries"]),
        "api_rate_limited_429": int(stats["rate_limited"]),
        "api_server_errors": int(stats["server_errors"]),
        "api_transport_errors": int(stats["transport_errors"]),
        "api_malformed_bodies": int(stats["malformed_bodies"]),
        "window_rereads": int(stats["rereads"]),
        "tie_rereads": int(stats["tie_rereads"]),
        "api_seconds": round(stats["api_seconds"], 3),
        "wait_seconds": round(stats["wait_seconds"], 3),
        "fetch_wall_seconds": round(fetch_seconds, 3),
        "land_wall_seconds": round(landing.seconds, 3),
        **repeats.metadata(),
        "dagster/table_name": "topo.tasks",
    }


def per_day_table(
    windows: Sequence[PartitionWindow],
    results: Sequence[WindowResult],
    rows: Mapping[date, int],
) -> str:
    """The run's days as a Markdown table, one row each (the latest :data:`PER_DAY_ROWS`
    of a longer range, saying so)."""
    lines = [
        (
            window.partition_date,
            f"{window.start.astimezone(UTC):%Y-%m-%d %H:%M}",
            f"{window.end.astimezone(UTC):%Y-%m-%d %H:%M}",
            result.expected_in_window,
            rows[window.partition_date],
            result.pages,
        )
        for window, result in list(zip(windows, results, strict=True))[-PER_DAY_ROWS:]
    ]
    text = markdown_table(
        ["partition", "window start (UTC)", "window end (UTC)", "API tasks", "landed", "pages"],
        lines,
    )
    if len(lines) < len(results):
        text = f"The last {len(lines)} of the run's {len(results)} days.\n\n{text}"
    return text


def _day(window: PartitionWindow, result: WindowResult, landed: int) -> dict[str, object]:
    return {
        "dagster/row_count": landed,
        "api_in_window_count": result.expected_in_window,
        "api_out_of_bounds": result.out_of_bounds,
        "api_total_count_for_query": result.api_total,
        "window_start_utc": window.start.astimezone(UTC).isoformat(),
        "window_end_utc": window.end.astimezone(UTC).isoformat(),
        "pages": result.pages,
        "reads": result.reads,
    }
