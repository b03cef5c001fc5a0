"""The ``topo/tasks`` asset: Topo tasks of each day, landed in DuckDB ``topo.tasks``.

A run reads as its steps, each a function here: :func:`fetch` the run's days from
``GET /v1/tasks`` into a run-local stage, :func:`land` the stage (``topo.tasks`` replaced
and ``topo.task_history`` recorded, in one transaction), :func:`check` what landed. The
asset orchestrates them and reports (:mod:`topo_pipeline.defs.tasks_metadata`).
"""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb

from topo_pipeline.api.windows import WindowResult
from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.metadata import add_partition_metadata
from topo_pipeline.defs.partitions import partition_windows
from topo_pipeline.defs.progress import FetchProgress
from topo_pipeline.defs.resources import TopoApiResource, WarehouseResource
from topo_pipeline.defs.tasks_metadata import partition_metadata, run_metadata
from topo_pipeline.warehouse import duplicates, task_checks
from topo_pipeline.warehouse.duplicates import DuplicateReport
from topo_pipeline.warehouse.landing import Landing, land_stage
from topo_pipeline.warehouse.staging import TaskStage, task_stage
from topo_pipeline.warehouse.tasks import PartitionWindow, ensure_tasks_table, preview_tasks

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
            with task_stage(windows, directory=_stage_directory(warehouse)) as stage:
                # A day fetched before it ended (today's, by the live refresh) is not complete.
                fetch_started_at = clock()
                fetched = fetch(topo_api, stage, context.log)
                # The warehouse is only opened, and locked, once every window reconciled.
                with warehouse.get_connection() as con:
                    landing = land(con, stage, loaded_at=fetched.finished_at, log=context.log)
                    check_results = check(con, fetched, log=context.log)
                    dates = [window.partition_date for window in windows]
                    preview = preview_tasks(con, dates, PREVIEW_ROWS)
            add_partition_metadata(
                context,
                TASKS_KEY,
                partition_metadata(
                    windows, fetched.results, landing.rows, preview, fetched_from=fetch_started_at
                ),
            )
            return dg.MaterializeResult(
                metadata=run_metadata(fetched.stats, fetched.seconds, fetched.repeats, landing),
                check_results=check_results,
            )

    return topo_tasks


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch` brought into the stage."""

    windows: list[PartitionWindow]
    results: list[WindowResult]
    """One per window, in the same order."""
    stats: dict[str, float]
    """The client's counters (:meth:`~topo_pipeline.api.stats.FetchStats.as_dict`)."""
    seconds: float
    """Wall time of the fetch."""
    finished_at: datetime
    """When the fetch ended: the ``loaded_at`` of the rows it lands."""
    repeats: DuplicateReport
    """The ids staged more than once, and whether their copies conflict."""

    @property
    def api_totals(self) -> dict[date, int]:
        """Topo's own count for each day, so tasks it sent outside the bounds (not landed)
        show up as a mismatch instead of vanishing."""
        return {
            window.partition_date: result.expected_in_window
            for window, result in zip(self.windows, self.results, strict=True)
        }


def fetch(topo_api: TopoApiResource, stage: TaskStage, log: dg.DagsterLogManager) -> Fetched:
    """Fetch the stage's windows from Topo into ``stage``, writing progress lines to ``log``.

    Pages go to the stage as they arrive, so memory stays flat however many days the run
    covers; every window is reconciled with Topo's ``total_count`` before this returns.

    Raises:
        TopoError: as :meth:`~topo_pipeline.api.client.TopoClient.fetch_windows`.
    """
    windows = stage.windows
    started = time.monotonic()
    with topo_api.client() as client:
        progress = FetchProgress(
            stage,
            total_days=len(windows),
            counters=client.stats.as_dict,
            log=log.info,
            rate_in_force=lambda: client.rate.rate_in_force,
            interval=topo_api.progress_interval_seconds,
        )
        with progress:
            results = client.fetch_windows(windows, progress)
        stats = client.stats.as_dict()
    seconds = time.monotonic() - started
    log.info(
        "fetched %d partition(s) in %.1fs: %d requests, %d retries, %d rate-limited",
        len(windows),
        seconds,
        stats["requests"],
        stats["retries"],
        stats["rate_limited"],
    )
    return Fetched(
        windows=windows,
        results=results,
        stats=stats,
        seconds=seconds,
        finished_at=datetime.now(UTC),
        repeats=stage.duplicates(),
    )


def land(
    con: duckdb.DuckDBPyConnection,
    stage: TaskStage,
    *,
    loaded_at: datetime,
    log: dg.DagsterLogManager,
) -> Landing:
    """Land ``stage`` in the warehouse: replace its partitions of ``topo.tasks`` and record
    the versions that changed in ``topo.task_history``, in one transaction.

    Raises:
        DuplicateTaskIdError: as :func:`~topo_pipeline.warehouse.landing.land_stage`.
        HistoryOrderError: as :func:`~topo_pipeline.warehouse.landing.land_stage`.
    """
    ensure_tasks_table(con)
    landing = land_stage(con, stage, loaded_at=loaded_at)
    log.info(
        "landed %d tasks in %d partition(s) of topo.tasks in %.1fs",
        sum(landing.rows.values()),
        len(landing.rows),
        landing.seconds,
    )
    return landing


def check(
    con: duckdb.DuckDBPyConnection, fetched: Fetched, *, log: dg.DagsterLogManager
) -> list[dg.AssetCheckResult]:
    """Every check of ``topo/tasks`` on the partitions ``fetched`` covered, once landed.

    A check that fails with ERROR (a blocking one stops the run) is also logged with its
    description, so the console says what it found.
    """
    outcomes = task_checks.evaluate_task_checks(con, fetched.windows, fetched.api_totals)
    outcomes = [*outcomes, duplicates.check_duplicates(fetched.repeats)]
    for outcome in outcomes:
        if not outcome.passed and outcome.severity == dg.AssetCheckSeverity.ERROR.value:
            log.error("check %s failed: %s", outcome.name, outcome.description)
    return [_check_result(outcome) for outcome in outcomes]


def _stage_directory(warehouse: WarehouseResource) -> Path:
    """Beside the warehouse file: that disk has room for the data, a tmpfs /tmp may not."""
    directory = Path(warehouse.database).parent
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _check_result(outcome: task_checks.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=TASKS_KEY,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata=outcome.metadata,
    )
