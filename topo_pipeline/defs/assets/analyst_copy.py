"""``publish/analyst_copy``: the copy of every ``topo`` and ``analytics`` table analysts open.

How publishing is triggered, and why this way: ``analyst_copy_sensor``
(:mod:`topo_pipeline.defs.analyst_copy_sensor`) watches the event log for materializations of
``topo/tasks`` and everything downstream of it and, once the runs that wrote them have
finished, launches :data:`PUBLISH_JOB_NAME`. That reacts to *every* run that changed
tables, whatever launched it (schedule, sensor, automation, the UI, the CLI), including
a run that failed after writing some tables, and coalesces runs that end close together
into one publish. The alternatives were weaker: an asset in the refresh job would miss
runs launched outside it; a ``run_status_sensor`` fires on one status only (a failed run
that wrote tables would go unpublished) and once per run; an automation condition on
an unpartitioned asset depending on every partitioned one would put it into every
``topo/tasks+`` selection, so those jobs would mix partitioned and unpartitioned assets.

The asset deliberately declares no dependencies for the same reason (it is not part of
``topo/tasks``'s downstream selection). It runs in the ``duckdb`` pool because it opens
the pipeline's file (read-only, which still blocks writers in other processes).
"""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.failures import explain_user_errors
from topo_pipeline.defs.metadata import markdown_table
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.analyst_copy import publish_analyst_copy

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster does not export the name.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ANALYST_COPY_KEY = dg.AssetKey(["publish", "analyst_copy"])

PUBLISH_JOB_NAME = "publish_analyst_copy_job"
"""Job: materializes ``publish/analyst_copy``; launched by ``analyst_copy_sensor``."""


def build_analyst_copy_asset(analyst_path: Path) -> dg.AssetsDefinition:
    """The ``publish/analyst_copy`` asset, writing ``analyst_path``."""

    @dg.asset(
        key=ANALYST_COPY_KEY,
        pool=POOL,
        kinds={"duckdb"},
        group_name="publish",
        # A publish fails only on a lock held longer than the lock timeout or on I/O;
        # the old copy stays in place meanwhile.
        retry_policy=dg.RetryPolicy(
            max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        description=(
            f"The analyst copy ({analyst_path}): every topo and analytics table of the "
            "pipeline's DuckDB file, with comments, built aside and swapped in atomically, "
            "in a storage format DuckDB 1.4 clients can read. Analysts open this file, "
            "never the pipeline's. Published by analyst_copy_sensor after runs that "
            "changed tables; materialize it by hand to publish now."
        ),
    )
    @explain_user_errors("publish/analyst_copy")
    def analyst_copy(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        result = publish_analyst_copy(
            warehouse.path, analyst_path, lock_timeout=warehouse.lock_timeout_seconds
        )
        context.log.info("published %d tables to %s", len(result.tables), result.path)
        table_md = markdown_table(
            ["table", "rows"], [(t.qualified_name, t.rows) for t in result.tables]
        )
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(result.path)),
                "storage_version": result.storage_version,
                "size_bytes": result.size_bytes,
                "tables": dg.MetadataValue.md(table_md),
                **{f"rows/{t.qualified_name}": t.rows for t in result.tables},
            }
        )

    return analyst_copy


def build_publish_job() -> "UnresolvedAssetJobDefinition":
    """The :data:`PUBLISH_JOB_NAME` job."""
    return dg.define_asset_job(
        PUBLISH_JOB_NAME,
        selection=dg.AssetSelection.assets(ANALYST_COPY_KEY),
        description="Publish the analyst copy (TOPO_ANALYST_DUCKDB_PATH) from the pipeline's file.",
    )
