"""The code location: ``defs`` is what ``workspace.yaml`` and ``dagster dev`` load."""

from __future__ import annotations

import dagster as dg

from topo_pipeline.defs.assets.analytics import build_analytics_assets
from topo_pipeline.defs.assets.ingestion import build_tasks_asset
from topo_pipeline.defs.partitions import daily_partitions
from topo_pipeline.defs.resources import TopoApiResource, WarehouseResource
from topo_pipeline.settings import API_KEY_ENV, Settings


def build_defs(settings: Settings) -> dg.Definitions:
    """Every asset, check, schedule, sensor and resource, wired for ``settings``."""
    partitions_def = daily_partitions(settings)
    return dg.Definitions(
        assets=[
            build_tasks_asset(partitions_def),
            build_analytics_assets(partitions_def, settings.sla_target_minutes),
        ],
        resources={
            "topo_api": TopoApiResource(
                api_key=dg.EnvVar(API_KEY_ENV),
                base_url=settings.api_base_url,
                requests_per_minute=settings.requests_per_minute,
                concurrency=settings.concurrency,
                timeout_seconds=settings.request_timeout_seconds,
                max_attempts=settings.max_attempts,
            ),
            "warehouse": WarehouseResource(
                path=str(settings.duckdb_path),
                lock_timeout_seconds=settings.lock_timeout_seconds,
            ),
        },
    )


defs = build_defs(Settings.from_env())
