"""Downstream automation: analytics follow topo/tasks for every refreshed day, however old."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY
from topo_pipeline.defs.assets.history import TASK_HISTORY_KEY
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.assets.report import REPORT_KEY
from topo_pipeline.defs.automation import (
    DOWNSTREAM_AUTOMATION_SENSOR_NAME,
    DOWNSTREAM_CONDITION_LABEL,
    downstream_automation_condition,
    with_downstream_automation,
)
from topo_pipeline.defs.jobs import DOWNSTREAM_SELECTION, partition_range_tags
from topo_pipeline.settings import Settings
from topo_pipeline_tests.harness import fresh_instance

# Published from the tables, not tables: the copy (by its sensor) and the report built from it.
PUBLISHED = {ANALYST_COPY_KEY, REPORT_KEY}
EVALUATED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the latest partition is 2026-05-31
# 2 days, 14 months and 17 months back; FIRST is TOPO_START_DATE itself.
RECENT, OLD, ANCIENT, FIRST = "2026-05-30", "2025-04-01", "2025-01-15", "2025-01-01"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        duckdb_path=tmp_path / "pipeline.duckdb",
        analyst_duckdb_path=tmp_path / "analyst.duckdb",
        start_date=date(2025, 1, 1),
    )


def test_every_table_downstream_of_tasks_follows_it(tmp_path: Path) -> None:
    defs = build_defs(settings_for(tmp_path))
    graph = defs.resolve_asset_graph()
    downstream = DOWNSTREAM_SELECTION.resolve(graph) - PUBLISHED
    assert {key.path[0] for key in downstream} == {"analytics", "topo"}
    assert TASK_HISTORY_KEY in downstream
    for spec in defs.resolve_all_asset_specs():
        label = spec.automation_condition.get_label() if spec.automation_condition else None
        if spec.key in downstream or spec.key == REPORT_KEY:  # the report follows the copy
            assert label == DOWNSTREAM_CONDITION_LABEL
        else:
            assert spec.key in {TASKS_KEY, ASSIGNEES_KEY, ANALYST_COPY_KEY}
            assert label is None  # driven by the schedule, the sensors, or by hand

    sensor = defs.resolve_sensor_def(DOWNSTREAM_AUTOMATION_SENSOR_NAME)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection.resolve(graph) == downstream | PUBLISHED


def test_a_manual_materialization_of_old_task_days_propagates(tmp_path: Path) -> None:
    """The real code location: topo/tasks days materialized on their own (as from the UI)
    make the automation request the history and the analytics, whichever days they were."""
    defs = build_defs(settings_for(tmp_path))
    downstream = sorted(DOWNSTREAM_SELECTION.resolve(defs.resolve_asset_graph()) - PUBLISHED)
    with fresh_instance() as instance:
        first = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVALUATED_AT
        )
        assert first.total_requested == 0  # nothing upstream yet: no run of empty tables

        for day in (OLD, ANCIENT, FIRST):  # not the latest day (plain eager() ignores those)
            instance.report_runless_asset_event(dg.AssetMaterialization(TASKS_KEY, partition=day))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVALUATED_AT, cursor=first.cursor
        )
        assert {key for key in downstream if second.get_num_requested(key)} == set(downstream)
        assert second.get_num_requested(ANALYST_COPY_KEY) == 0  # analyst_copy_sensor's job
        assert second.get_num_requested(REPORT_KEY) == 0  # follows the copy, not the tables

        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVALUATED_AT, cursor=second.cursor
        )
        assert third.total_requested == 0  # requested once, not on every tick


def test_a_new_assignee_directory_rebuilds_the_rollups_that_name_people(tmp_path: Path) -> None:
    """An update of reference/assignees requests the by-assignee and by-team rollups, and the
    SLA notifications (they name assignees)."""
    defs = build_defs(settings_for(tmp_path))
    graph = defs.resolve_asset_graph()
    analytics = DOWNSTREAM_SELECTION.resolve(graph) - PUBLISHED - {TASK_HISTORY_KEY}
    named = {key for key in analytics if ASSIGNEES_KEY in graph.get(key).parent_keys}
    assert {key.path[1] for key in named} == {
        "sla_by_assignee",
        "completion_rate_by_assignee",
        "sla_by_team",
        "completion_rate_by_team",
        "sla_alerts_sent",
    }
    task_sla = dg.AssetKey(["analytics", "task_sla"])
    with fresh_instance() as instance:
        cursor = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVALUATED_AT
        ).cursor
        for key in analytics:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        cursor = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVALUATED_AT, cursor=cursor
        ).cursor
        instance.report_runless_asset_event(dg.AssetMaterialization(ASSIGNEES_KEY))
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=EVALUATED_AT, cursor=cursor
        )
        assert {key for key in analytics if result.get_num_requested(key)} == named
        assert result.get_num_requested(task_sla) == 0
        assert result.get_num_requested(ASSIGNEES_KEY) == 0  # by hand only


DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01")


@dg.asset(key=TASKS_KEY, partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def tasks_stand_in() -> None:
    """Stands in for topo/tasks: only the graph and the run records matter here."""


@dg.asset(
    key=["analytics", "stand_in"], deps=[TASKS_KEY], backfill_policy=dg.BackfillPolicy.single_run()
)
def analytics_stand_in() -> None:
    """Stands in for an analytics table downstream of topo/tasks."""


@pytest.fixture
def stand_in_assets() -> list[dg.AssetsDefinition]:
    return with_downstream_automation([tasks_stand_in, analytics_stand_in])


def test_a_run_that_already_rebuilt_downstream_triggers_nothing_more(
    stand_in_assets: list[dg.AssetsDefinition],
) -> None:
    downstream = dg.AssetKey(["analytics", "stand_in"])
    with fresh_instance() as instance:
        cursor = dg.evaluate_automation_conditions(
            defs=stand_in_assets, instance=instance, evaluation_time=EVALUATED_AT
        ).cursor

        # As the refresh job does: topo/tasks and downstream in the same run.
        one_day = partition_range_tags(OLD, OLD)
        assert dg.materialize(stand_in_assets, tags=one_day, instance=instance).success
        result = dg.evaluate_automation_conditions(
            defs=stand_in_assets, instance=instance, evaluation_time=EVALUATED_AT, cursor=cursor
        )
        assert result.total_requested == 0

        # topo/tasks alone (a UI materialization of that day): downstream follows.
        only_tasks = dg.materialize(
            stand_in_assets, partition_key=OLD, instance=instance, selection=[TASKS_KEY]
        )
        assert only_tasks.success
        result = dg.evaluate_automation_conditions(
            defs=stand_in_assets,
            instance=instance,
            evaluation_time=EVALUATED_AT,
            cursor=result.cursor,
        )
        assert result.get_num_requested(downstream) == 1
        assert result.get_requested_partitions(TASKS_KEY) == set()


def test_the_condition_is_eager_without_its_waits_for_missing_assets() -> None:
    condition = downstream_automation_condition()
    assert condition.get_label() == DOWNSTREAM_CONDITION_LABEL
    eager = dg.AutomationCondition.eager()
    kept = [
        dg.AutomationCondition.any_deps_updated().since_last_handled(),
        ~dg.AutomationCondition.any_deps_in_progress(),
        ~dg.AutomationCondition.in_progress(),
    ]
    assert list(condition.children) == kept
    assert all(child in eager.children for child in kept[1:])
    assert ~dg.AutomationCondition.any_deps_missing() in eager.children
