"""The UI path end to end: the schedule and sensors running, a range materialized from the UI,
a failed run reaching the webhook.

Driven through the webserver's GraphQL API with the operations the UI sends, on a stack of
its own (:mod:`topo_pipeline_tests.webserver_stack`).
"""

from __future__ import annotations

from typing import Any

import pytest

from topo_pipeline.simulator import DEMO_API_KEY, FaultPlan
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.webserver_stack import (
    BACKFILL_DONE,
    BACKFILL_STATUS_QUERY,
    FINISHED,
    INSTIGATORS_QUERY,
    POLL_SECONDS,
    PUBLISH_TIMEOUT,
    RUN_TIMEOUT,
    TASKS_KEY,
    UI_DAYS,
    Stack,
    assert_no_lock_errors,
    asset_nodes,
    ids_by_day,
    tag_of,
    ui_materialize_one_partition,
    ui_materialize_partitions,
)

pytestmark = pytest.mark.slow


def test_every_schedule_and_sensor_in_defs_is_running(stack: Stack) -> None:
    from topo_pipeline.definitions import defs

    repository = defs.get_repository_def()
    schedules = {s.name for s in repository.schedule_defs}
    sensors = {s.name for s in repository.sensor_defs}
    # SPEC "Operating it": a daily schedule and a sensor for days with open tasks.
    assert schedules, "the code location defines no schedule"
    assert sensors, "the code location defines no sensor"

    data = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
    served_schedules = {
        s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]
    }
    served_sensors = {
        s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]
    }
    assert {name: served_schedules.get(name) for name in schedules} == dict.fromkeys(
        schedules, "RUNNING"
    )
    assert {name: served_sensors.get(name) for name in sensors} == dict.fromkeys(sensors, "RUNNING")

    # RUNNING in the UI must mean the daemon evaluates them: every sensor ticks, cleanly.
    def every_sensor_ticked() -> dict[str, list[dict[str, Any]]] | None:
        results = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
        ticks = {
            s["name"]: s["sensorState"]["ticks"]
            for s in results["sensorsOrError"]["results"]
            if s["name"] in sensors
        }
        return ticks if all(ticks.get(name) for name in sensors) else None

    ticks = stack.wait_for("every sensor's first tick", every_sensor_ticked, 180, POLL_SECONDS)
    failed = {
        name: [t["error"] for t in sensor_ticks if t["status"] == "FAILURE"]
        for name, sensor_ticks in ticks.items()
    }
    assert not any(failed.values()), f"sensor ticks failed: {failed}"


@pytest.mark.timeout(900)
def test_ui_materialize_of_a_partition_range_lands_every_table(stack: Stack) -> None:
    nodes = asset_nodes(stack)
    tasks = nodes[tuple(TASKS_KEY)]
    assert tasks.partition_definition is not None
    # In the asset graph: select every asset on the daily partitions, "Materialize".
    selection = [n for n in nodes.values() if n.partition_definition == tasks.partition_definition]
    keys = [day.isoformat() for day in UI_DAYS]

    backfill_id = ui_materialize_partitions(stack, selection, keys)

    def backfill_done() -> dict[str, Any] | None:
        backfill = stack.graphql(BACKFILL_STATUS_QUERY, {"backfillId": backfill_id})
        backfill = backfill["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        return backfill if backfill["status"] in BACKFILL_DONE else None

    backfill = stack.wait_for("the backfill to finish", backfill_done, RUN_TIMEOUT, POLL_SECONDS)
    runs = stack.runs({"tags": [{"key": "dagster/backfill", "value": backfill_id}]})
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, runs)
    assert runs, "the backfill launched no run"
    assert {r["status"] for r in runs} == {"SUCCESS"}, runs
    # Single-run backfill policy: each run covers the whole range, never one day.
    for run in runs:
        assert tag_of(run, "dagster/asset_partition_range_start") == keys[0], run["tags"]
        assert tag_of(run, "dagster/asset_partition_range_end") == keys[-1], run["tags"]
    assert len(runs) <= len(selection), "more runs than assets: the range was split"
    assert_no_lock_errors(stack, [r["runId"] for r in runs])

    stack.wait_until_idle(PUBLISH_TIMEOUT)
    expected = {day: stack.tasks_by_day[day] for day in UI_DAYS}
    assert ids_by_day(stack.pipeline_path, "warehouse.topo.tasks", UI_DAYS) == expected
    with connect(stack.pipeline_path, read_only=True) as con:
        for node in selection:
            if node.key == TASKS_KEY:
                continue
            schema, table = node.key  # analytics/<table> lands in analytics.<table>
            days = con.execute(
                f"SELECT DISTINCT partition_date FROM warehouse.{schema}.{table} "
                "WHERE partition_date BETWEEN ? AND ? ORDER BY 1",
                [UI_DAYS[0], UI_DAYS[-1]],
            ).fetchall()
            assert [d for (d,) in days] == UI_DAYS, f"{schema}.{table} lacks some days"

    # Analysts read the published copy; it follows once the runs have finished.
    def published() -> bool | None:
        if not stack.analyst_path.exists():
            return None
        try:
            found = ids_by_day(stack.analyst_path, "warehouse.topo.tasks", UI_DAYS)
        except Exception:  # noqa: BLE001 - not created yet, or swapped mid-open: poll again
            return None
        return True if found == expected else None

    stack.wait_for("the analyst copy to hold the new days", published, PUBLISH_TIMEOUT)


@pytest.mark.timeout(600)
def test_a_failed_run_is_posted_to_the_webhook_by_the_daemon(stack: Stack) -> None:
    nodes = asset_nodes(stack)
    tasks = nodes[tuple(TASKS_KEY)]
    day = UI_DAYS[0].isoformat()
    stack.api.faults = FaultPlan(error_5xx_rate=1.0, retry_after_seconds=0)
    try:
        run_id = ui_materialize_one_partition(stack, [tasks], day, [])

        def finished() -> dict[str, Any] | None:
            runs = stack.runs({"runIds": [run_id]})
            return runs[0] if runs and runs[0]["status"] in FINISHED else None

        run = stack.wait_for("the run to fail", finished, RUN_TIMEOUT, POLL_SECONDS)
    finally:
        stack.api.faults = FaultPlan()
    assert run["status"] == "FAILURE", run

    def alerted() -> str | None:
        texts = [body.get("text", "") for body in stack.webhook.received()]
        return next((text for text in texts if run_id in text), None)

    # The daemon evaluates run_failure_alert_sensor about every 30 s.
    text = stack.wait_for("the alert to reach the webhook", alerted, 240, POLL_SECONDS)
    assert f"job `{run['jobName']}`" in text
    assert f"partitions {day}" in text
    assert "step `topo__tasks`" in text
    assert "TopoUnavailableError" in text
    assert f"{stack.url}/runs/{run_id}" in text
    assert DEMO_API_KEY not in text
