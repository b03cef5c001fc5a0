"""Builds the code location's definitions for given settings, without reading the environment."""

from __future__ import annotations

import dagster as dg

from topo_pipeline.defs.alerts import build_run_failure_alert_sensor
from topo_pipeline.defs.analyst_copy_sensor import build_analyst_copy_sensor
from topo_pipeline.defs.assets.analyst_copy import (
    ANALYST_COPY_KEY,
    PUBLISH_JOB,
    build_analyst_copy_asset,
    pipeline_info,
)
from topo_pipeline.defs.assets.analytics import build_analytics_assets
from topo_pipeline.defs.assets.history import task_history
from topo_pipeline.defs.assets.ingestion import TASKS_KEY, build_tasks_asset
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY, build_assignees_asset
from topo_pipeline.defs.assets.report import build_report_asset
from topo_pipeline.defs.assets.sla_alerts import build_sla_alerts_asset
from topo_pipeline.defs.automation import (
    build_downstream_automation_sensor,
    pipeline_asset_keys,
    with_downstream_automation,
)
from topo_pipeline.defs.catalog import with_catalog
from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.console import console_logger
from topo_pipeline.defs.freshness import (
    build_analyst_copy_current_check,
    build_freshness_job,
    build_freshness_schedule,
    build_landed_by_deadline_checks,
)
from topo_pipeline.defs.jobs import REFRESH_JOB
from topo_pipeline.defs.live_refresh import build_live_refresh_sensor
from topo_pipeline.defs.open_tasks_sensor import build_open_tasks_sensor
from topo_pipeline.defs.partitions import daily_partitions
from topo_pipeline.defs.recovery_sensor import build_dead_run_sensor
from topo_pipeline.defs.resources import TopoApiResource, WarehouseResource
from topo_pipeline.defs.schedules import build_daily_refresh_schedule
from topo_pipeline.report.build import describe_business_hours
from topo_pipeline.settings import Settings


def build_defs(settings: Settings, *, clock: Clock = utc_now) -> dg.Definitions:
    """Every asset, check, schedule, sensor and resource, wired for ``settings``.

    ``clock`` is the time the live refresh, the SLA notifications and the completeness of a
    fetched day go by (tests drive it).
    """
    partitions_def = daily_partitions(settings)
    warehouse = WarehouseResource.from_settings(settings)
    pipeline_assets = [
        build_tasks_asset(partitions_def, clock=clock),
        task_history,
        build_assignees_asset(settings.assignees_path),
        build_analytics_assets(
            settings.sla_target_minutes,
            calendar=settings.working_calendar(),
            timezone=settings.timezone,
        ),
        # SLA notifications on today's open tasks: defs/assets/sla_alerts.py.
        build_sla_alerts_asset(
            webhook_url=settings.alert_webhook_url,
            warning_minutes=settings.sla_warning_minutes,
            priorities=settings.sla_alert_priorities,
            timezone=settings.timezone,
            task_url_template=settings.task_url_template,
            clock=clock,
        ),
    ]
    # The tables the analyst copy publishes: topo/tasks, everything downstream of it (the
    # history, the analytics), and the assignee directory.
    published = [*pipeline_asset_keys(pipeline_assets), ASSIGNEES_KEY]
    info = pipeline_info(settings)
    # Observability: defs/alerts.py (failed runs), defs/freshness.py (late days, stale copy).
    freshness_checks = [
        build_landed_by_deadline_checks(
            pipeline_asset_keys(pipeline_assets),
            partitions_def,
            partitioned_key=TASKS_KEY,
            deadline_hour=settings.freshness_deadline_hour,
            timezone=settings.timezone,
        ),
        build_analyst_copy_current_check(
            ANALYST_COPY_KEY, published, max_lag_minutes=settings.analyst_copy_max_lag_minutes
        ),
    ]
    return dg.Definitions(
        assets=with_catalog(
            [
                *with_downstream_automation(pipeline_assets),
                build_analyst_copy_asset(published, info),
                build_report_asset(
                    settings.report_file,
                    settings.analyst_duckdb_path,
                    business_hours=describe_business_hours(
                        settings.working_calendar(), settings.timezone
                    ),
                    lock_timeout_seconds=settings.lock_timeout_seconds,
                ),
            ],
            settings.asset_owners,
            uris={ANALYST_COPY_KEY: warehouse.analyst_copy_uri},
        ),
        asset_checks=freshness_checks,
        jobs=[REFRESH_JOB, PUBLISH_JOB, build_freshness_job(freshness_checks)],
        # Every step opens the DuckDB file in pool "duckdb" (one at a time): steps in
        # their own processes would only add start-up time.
        executor=dg.in_process_executor,
        # Errors a user causes print as a paragraph, not a traceback: defs/console.py.
        loggers={"console": console_logger},
        schedules=[
            build_daily_refresh_schedule(settings, partitions_def),
            build_freshness_schedule(settings.timezone),
        ],
        sensors=[
            build_open_tasks_sensor(settings),
            # Today's partition every TOPO_LIVE_REFRESH_MINUTES: defs/live_refresh.py.
            build_live_refresh_sensor(settings, partitions_def, clock=clock),
            build_analyst_copy_sensor(published),
            build_downstream_automation_sensor(),
            # Fails runs whose process died and frees their pool slots (defs/run_guard.py
            # does the same in every run that starts).
            build_dead_run_sensor(),
            build_run_failure_alert_sensor(
                webhook_url=settings.alert_webhook_url, ui_base_url=settings.ui_base_url
            ),
        ],
        # The DuckDB files and the client's and warehouse's settings reach steps and sensors
        # through these resources, configured from the settings' declarations.
        resources={"topo_api": TopoApiResource.from_settings(settings), "warehouse": warehouse},
    )
