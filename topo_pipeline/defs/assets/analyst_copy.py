"""``publish/analyst_copy``: the copy of every published table (``topo``, ``reference``,
``analytics``) analysts open.

An ordinary asset downstream of every table it publishes, so any run whose selection
reaches it (``topo/tasks*``, every job of the project) publishes after its tables are
built. ``analyst_copy_sensor`` is the safety net for hand-picked selections under the
daemon. Each publish records :data:`COVERS_THROUGH_METADATA`, the newest table-changing
event it includes, so the sensor does not publish again what a run did.
"""

from collections.abc import Mapping, Sequence

import dagster as dg

from topo_pipeline import __version__
from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.jobs import CONSOLE_PARAGRAPHS
from topo_pipeline.defs.metadata import table_value
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.analyst_copy import PublishResult, publish_analyst_copy
from topo_pipeline.warehouse.pipeline_info import PipelineInfo

ANALYST_COPY_KEY = dg.AssetKey(["publish", "analyst_copy"])

PUBLISH_JOB_NAME = "publish_analyst_copy_job"
"""Job: materializes ``publish/analyst_copy`` and what is built from it (the SLA report);
launched by ``analyst_copy_sensor``."""


COVERS_THROUGH_METADATA = "covers_through_event"
"""Metadata key of a publish: the newest table-changing event-log storage id it includes."""


def pipeline_info(settings: Settings) -> PipelineInfo:
    """What every publish writes into ``topo.pipeline_info`` for ``settings``."""
    return PipelineInfo(
        timezone=settings.timezone,
        start_date=settings.start_date,
        version=__version__,
        sla_target_minutes=dict(settings.sla_target_minutes),
    )


def latest_change_event(instance: dg.DagsterInstance, watched: Sequence[dg.AssetKey]) -> int:
    """The newest storage id of a materialization of any of ``watched`` (0: none yet).

    Taken before a publish starts copying: an event is recorded only after its step
    committed the data, so every change up to this id is in the copy.
    """
    newest = 0
    for key in watched:
        records = instance.fetch_materializations(key, limit=1).records
        if records:
            newest = max(newest, records[0].storage_id)
    return newest


def published_through(instance: dg.DagsterInstance) -> int | None:
    """:data:`COVERS_THROUGH_METADATA` of the latest publish, or ``None`` if none says."""
    records = instance.fetch_materializations(ANALYST_COPY_KEY, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(COVERS_THROUGH_METADATA)
    raw = getattr(value, "value", None)
    return int(raw) if isinstance(raw, int) else None


def publish_metadata(result: PublishResult, covers_through: int) -> Mapping[str, object]:
    """The metadata a publish records on ``publish/analyst_copy``."""
    return {
        "dagster/uri": result.path.resolve().as_uri(),
        "path": dg.MetadataValue.path(str(result.path)),
        "storage_version": result.storage_version,
        "size_bytes": result.size_bytes,
        "copy_method": result.copy_method,
        "tables": table_value(
            ["table", "rows"], [(t.qualified_name, t.rows) for t in result.tables]
        ),
        COVERS_THROUGH_METADATA: covers_through,
        **{f"rows/{t.qualified_name}": t.rows for t in result.tables},
    }


def build_analyst_copy_asset(
    watched: Sequence[dg.AssetKey], info: PipelineInfo
) -> dg.AssetsDefinition:
    """The ``publish/analyst_copy`` asset, writing the warehouse resource's ``analyst_database``.

    Args:
        watched: the assets whose materializations change published tables.
        info: what the copy says about itself (:func:`pipeline_info`).
    """
    watched = tuple(watched)

    @dg.asset(
        key=ANALYST_COPY_KEY,
        deps=watched,
        # In a range run of topo/tasks (the CLI requires it of every selected asset).
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POOL,
        kinds={"duckdb"},
        group_name="publish",
        # A publish fails only on a lock held longer than the lock timeout or on I/O;
        # the old copy stays in place meanwhile.
        retry_policy=dg.RetryPolicy(
            max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        description=(
            "The analyst copy (TOPO_ANALYST_DUCKDB_PATH, the file its dagster/uri names): every "
            "topo, reference and analytics table of the pipeline's DuckDB file, with comments, "
            "built aside and swapped in atomically, in a storage format DuckDB 1.4 clients can "
            "read. Analysts open this file, never the pipeline's. Published by every run whose "
            "selection reaches it (or by analyst_copy_sensor after runs that changed tables "
            "without it); materialize it by hand to publish now."
        ),
    )
    def analyst_copy(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        with user_errors("publish/analyst_copy"):
            covers_through = latest_change_event(context.instance, watched)
            result = publish_analyst_copy(
                warehouse.database,
                warehouse.analyst_database,
                lock_timeout=warehouse.lock_timeout_seconds,
                info=info,
            )
            context.log.info("published %d tables to %s", len(result.tables), result.path)
            return dg.MaterializeResult(metadata=dict(publish_metadata(result, covers_through)))

    return analyst_copy


PUBLISH_JOB = dg.define_asset_job(
    PUBLISH_JOB_NAME,
    # With what is built from the copy (the SLA report), so every publish brings it along.
    selection=dg.AssetSelection.assets(ANALYST_COPY_KEY).downstream(),
    config=CONSOLE_PARAGRAPHS,
    description=(
        "Publish the analyst copy (TOPO_ANALYST_DUCKDB_PATH) from the pipeline's file, and "
        "the SLA report built from it."
    ),
)
"""The :data:`PUBLISH_JOB_NAME` job."""
