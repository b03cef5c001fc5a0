"""The ``topo/tasks`` asset: Topo tasks of each day, landed in DuckDB ``topo.tasks``."""

import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from topo_pipeline.api.client import WindowResult
from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.metadata import (
    PER_DAY_ROWS,
    add_partition_metadata,
    markdown_table,
    table_value,
)
from topo_pipeline.defs.partitions import DAY_COMPLETE_METADATA, partition_windows
from topo_pipeline.defs.progress import FetchProgress
from topo_pipeline.defs.resources import TopoApiResource, WarehouseResource
from topo_pipeline.warehouse import duplicates, task_checks
from topo_pipeline.warehouse.history import recorded_changes
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.staging import replace_task_partitions_from_stage, task_stage
from topo_pipeline.warehouse.tasks import PartitionWindow, ensure_tasks_table

TASKS_KEY = dg.AssetKey(["topo", "tasks"])
POOL = "duckdb"
"""Every step that opens the pipeline's DuckDB file runs in this pool (limit 1)."""

_CHECKS: dict[str, tuple[str, bool]] = {
    # name: (description, blocking)
    task_checks.UNIQUE_IDS: ("No task id appears twice in topo.tasks.", True),
    task_checks.COUNT_MATCHES_API: (
        "Each partition holds as many tasks as Topo reported for its window.",
        False,
    ),
    task_checks.CREATED_AT_IN_WINDOW: (
        "Every task's created_at lies inside its partition's day.",
        False,
    ),
    task_checks.KNOWN_ENUM_VALUES_CHECK: (
        "type, priority, status, disposition and reopen_reason hold documented values "
        "(warns on values Topo added later).",
        False,
    ),
    task_checks.REQUIRED_FIELDS_PRESENT: (
        "Fields the API documents as required are not null.",
        False,
    ),
    duplicates.NO_CONFLICTING_DUPLICATES: (duplicates.DESCRIPTION, True),
}

PREVIEW_ROWS = 10


def build_tasks_asset(
    partitions_def: dg.TimeWindowPartitionsDefinition, *, clock: Clock = utc_now
) -> dg.AssetsDefinition:
    """The ``topo/tasks`` asset over ``partitions_def``.

    ``clock`` says when a fetch starts: a day fetched before it ended is not complete.
    """

    @dg.asset(
        key=TASKS_KEY,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POOL,
        kinds={"duckdb", "python"},
        group_name="topo",
        check_specs=[
            dg.AssetCheckSpec(name, asset=TASKS_KEY, description=text, blocking=blocking)
            for name, (text, blocking) in _CHECKS.items()
        ],
        description=(
            "Topo tasks, one row per task id with its latest fetched state, in DuckDB table "
            "topo.tasks. A partition is the tasks created on one day of TOPO_TIMEZONE; "
            "materializing it fetches that day from GET /v1/tasks and replaces the day's rows "
            "in one transaction. A range run fetches its days concurrently."
        ),
    )
    def topo_tasks(
        context: dg.AssetExecutionContext,
        topo_api: TopoApiResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        with user_errors("topo/tasks"):
            windows = partition_windows(partitions_def, context.partition_keys)
            # Pages go to a run-local stage file as they arrive (memory stays flat however
            # many days the run covers), and the warehouse is only opened, and locked, once
            # every window reconciled with Topo's total_count. The stage sits beside the
            # warehouse file: that disk has room for the data, a tmpfs /tmp may not.
            stage_dir = Path(warehouse.database).parent
            stage_dir.mkdir(parents=True, exist_ok=True)
            with task_stage(windows, directory=stage_dir) as stage:
                fetch_started = time.monotonic()
                # A day fetched before it ended (today's, by the live refresh) is not complete.
                fetch_started_at = clock()
                with topo_api.client() as client:
                    progress = FetchProgress(
                        stage,
                        total_days=len(windows),
                        counters=client.stats.as_dict,
                        log=context.log.info,
                        rate_in_force=lambda: client.rate.requests_per_minute,
                        interval=topo_api.progress_interval_seconds,
                    )
                    with progress:
                        results = client.fetch_windows(windows, progress)
                    stats = client.stats.as_dict()
                fetch_seconds = time.monotonic() - fetch_started
                context.log.info(
                    "fetched %d partition(s) in %.1fs: %d requests, %d retries, %d rate-limited",
                    len(windows),
                    fetch_seconds,
                    stats["requests"],
                    stats["retries"],
                    stats["rate_limited"],
                )

                repeats = stage.duplicates()
                loaded_at = datetime.now(UTC)
                api_totals = {
                    # Topo's own count for each day, so tasks it sent outside the bounds (not
                    # landed) show up as a mismatch instead of vanishing.
                    w.partition_date: r.expected_in_window
                    for w, r in zip(windows, results, strict=True)
                }
                with warehouse.get_connection() as con:
                    land_started = time.monotonic()
                    ensure_tasks_table(con)
                    landed = replace_task_partitions_from_stage(con, stage, loaded_at=loaded_at)
                    land_seconds = time.monotonic() - land_started
                    history = recorded_changes(con, list(landed), loaded_at)
                    context.log.info(
                        "landed %d tasks in %d partition(s) of topo.tasks in %.1fs",
                        sum(landed.values()),
                        len(landed),
                        land_seconds,
                    )
                    outcomes = task_checks.evaluate_task_checks(con, windows, api_totals)
                    preview = con.execute(
                        load_sql("preview_topo_tasks"),
                        {
                            "partition_dates": [w.partition_date for w in windows],
                            "limit": PREVIEW_ROWS,
                        },
                    )
                    preview_table = table_value(
                        [column[0] for column in preview.description], preview.fetchall()
                    )

            by_partition = {
                window.partition_date.isoformat(): _partition_metadata(
                    window, result, landed[window.partition_date], fetch_started_at
                )
                for window, result in zip(windows, results, strict=True)
            }
            # Metadata without a partition is copied onto every partition of the run, so the
            # run's tables (which grow with the range) go on its last day only.
            by_partition[windows[-1].partition_date.isoformat()].update(
                {
                    "per_day": dg.MetadataValue.md(_per_day_table(windows, results, landed)),
                    "preview": preview_table,
                }
            )
            add_partition_metadata(context, TASKS_KEY, by_partition)
            return dg.MaterializeResult(
                metadata={
                    "rows_landed_in_run": sum(landed.values()),
                    "history_versions_recorded": history.versions,
                    "history_tasks_removed": history.removed,
                    "partitions_in_run": len(windows),
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
                    "land_wall_seconds": round(land_seconds, 3),
                    **repeats.metadata(),
                    "dagster/table_name": "topo.tasks",
                },
                check_results=[
                    _check_result(outcome)
                    for outcome in [*outcomes, duplicates.check_duplicates(repeats)]
                ],
            )

    return topo_tasks


def _partition_metadata(
    window: PartitionWindow, result: WindowResult, landed: int, fetch_started_at: datetime
) -> dict[str, object]:
    return {
        "dagster/row_count": landed,
        DAY_COMPLETE_METADATA: window.end <= fetch_started_at,
        "api_in_window_count": result.expected_in_window,
        "api_out_of_bounds": result.out_of_bounds,
        "api_total_count_for_query": result.api_total,
        "window_start_utc": window.start.astimezone(UTC).isoformat(),
        "window_end_utc": window.end.astimezone(UTC).isoformat(),
        "pages": result.pages,
        "reads": result.reads,
    }


def _per_day_table(
    windows: list[PartitionWindow], results: list[WindowResult], landed: dict[date, int]
) -> str:
    """The run's days, one row each (the latest :data:`PER_DAY_ROWS` of a longer range)."""
    rows = []
    for window, result in list(zip(windows, results, strict=True))[-PER_DAY_ROWS:]:
        rows.append(
            (
                window.partition_date,
                f"{window.start.astimezone(UTC):%Y-%m-%d %H:%M}",
                f"{window.end.astimezone(UTC):%Y-%m-%d %H:%M}",
                result.expected_in_window,
                landed[window.partition_date],
                result.pages,
            )
        )
    text = markdown_table(
        ["partition", "window start (UTC)", "window end (UTC)", "API tasks", "landed", "pages"],
        rows,
    )
    if len(rows) < len(results):
        text = f"The last {len(rows)} of the run's {len(results)} days.\n\n{text}"
    return text


def _check_result(outcome: task_checks.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=TASKS_KEY,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata=outcome.metadata,
    )
