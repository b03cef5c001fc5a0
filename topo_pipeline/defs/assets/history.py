"""The ``topo/task_history`` asset: DuckDB table ``topo.task_history``, as the lineage shows it.

``topo/tasks`` writes the history: each landing records the versions that changed in the
transaction that replaces its days (:mod:`topo_pipeline.warehouse.history`), so the two
tables never disagree. This asset, downstream of ``topo/tasks`` and unpartitioned, puts
the table in the lineage and the catalog (the analyst copy depends on it) and, once per
run, reports what it holds and checks its current versions against ``topo.tasks``. Why
not a second output of the landing step: ``docs/operating.md``, "Partitions".
"""

import dagster as dg

from topo_pipeline.defs.assets.ingestion import POOL, TASKS_KEY
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.history import HistorySummary, history_summary
from topo_pipeline.warehouse.schema import TASK_HISTORY, ensure_schema

TASK_HISTORY_KEY = dg.AssetKey(["topo", "task_history"])

CURRENT_VERSIONS_MATCH_TASKS = "current_versions_match_tasks"


@dg.asset(
    key=TASK_HISTORY_KEY,
    deps=[TASKS_KEY],
    # In a range run of topo/tasks* (the CLI requires it of every selected asset).
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=POOL,
    kinds={"duckdb"},
    group_name="topo",
    check_specs=[
        dg.AssetCheckSpec(
            CURRENT_VERSIONS_MATCH_TASKS,
            asset=TASK_HISTORY_KEY,
            description=(
                "Every task of topo.tasks has one current version in topo.task_history: the "
                "current versions (valid_to NULL) not marked removed number as many as the "
                "rows of topo.tasks."
            ),
        )
    ],
    description=(
        "Every observed version of each Topo task, in DuckDB table topo.task_history: one "
        "row per task per version, valid from the landing that first fetched it until the "
        "landing that fetched a different one or found the task gone (removed). Written by "
        "topo/tasks in the same transaction as each landing; this unpartitioned asset "
        "reports, once per run, the table's versions, tasks and newest version."
    ),
)
def task_history(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with user_errors("topo/task_history"), warehouse.get_connection() as con:
        ensure_schema(con)
        summary = history_summary(con)
    return dg.MaterializeResult(metadata=_metadata(summary), check_results=[_check(summary)])


def _metadata(summary: HistorySummary) -> dict[str, object]:
    metadata: dict[str, object] = {
        "dagster/row_count": summary.versions,
        "tasks_with_history": summary.tasks,
        "tasks_removed": summary.removed,
        "dagster/table_name": TASK_HISTORY.display_name,
    }
    if summary.latest_version_at is not None:
        metadata["latest_version_at"] = dg.MetadataValue.timestamp(summary.latest_version_at)
    return metadata


def _check(summary: HistorySummary) -> dg.AssetCheckResult:
    current = summary.tasks - summary.removed
    return dg.AssetCheckResult(
        check_name=CURRENT_VERSIONS_MATCH_TASKS,
        asset_key=TASK_HISTORY_KEY,
        passed=summary.current_match_stored,
        description=(
            None
            if summary.current_match_stored
            else f"{current} current versions not removed, but {summary.stored_tasks} rows "
            "in topo.tasks: some tasks have no current version or more than one."
        ),
        metadata={"current_versions": current, "topo_tasks_rows": summary.stored_tasks},
    )
