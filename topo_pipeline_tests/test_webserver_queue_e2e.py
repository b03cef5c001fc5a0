"""Runs that queue, end to end: a burst of single-partition runs from the UI through the
run queue and pool ``duckdb`` (runs that die: ``test_webserver_recovery_e2e.py``).

On a stack of its own (:mod:`topo_pipeline_tests.webserver_stack`), so it runs beside the
other UI test modules on another worker.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from topo_pipeline.defs.freshness import FRESHNESS_JOB_NAME
from topo_pipeline_tests.webserver_stack import (
    ANALYST_COPY_KEY,
    ANALYTICS_TABLES,
    BACKFILL_DAYS,
    BACKFILL_RUNS_TIMEOUT,
    FINISHED,
    INSTIGATORS_QUERY,
    PUBLISH_TIMEOUT,
    TASKS_KEY,
    Stack,
    assert_no_lock_errors,
    asset_nodes,
    days_by_table,
    ids_by_day,
    overlapping_steps,
    tag_of,
    ui_materialize_one_partition,
)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(int(BACKFILL_RUNS_TIMEOUT) + 300)
def test_a_burst_of_partitions_as_separate_queued_runs_never_hit_the_duckdb_lock(
    stack: Stack,
) -> None:
    nodes = asset_nodes(stack)
    tasks = nodes[tuple(TASKS_KEY)]
    batch = {"key": "topo_pipeline_tests/batch", "value": uuid.uuid4().hex}
    keys = [day.isoformat() for day in BACKFILL_DAYS]

    # One "Launch 1 run" per partition, as fast as the UI takes them: a run per partition,
    # of topo/tasks alone, for days more than a year old.
    assert max(BACKFILL_DAYS) < datetime.now(UTC).date() - timedelta(days=366)
    burst_started = time.time()
    run_ids = [ui_materialize_one_partition(stack, [tasks], key, [batch]) for key in keys]
    assert len(set(run_ids)) == len(keys)

    def all_finished() -> list[dict[str, Any]] | None:
        runs = stack.runs({"tags": [batch]})
        done = [r for r in runs if r["status"] in FINISHED]
        return runs if len(done) == len(keys) else None

    runs = stack.wait_for(f"{len(keys)} runs to finish", all_finished, BACKFILL_RUNS_TIMEOUT, 5.0)

    statuses = Counter(r["status"] for r in runs)
    assert statuses == {"SUCCESS": len(keys)}, statuses
    assert sorted(tag_of(r, "dagster/partition") for r in runs) == keys
    assert_no_lock_errors(stack, run_ids)
    for run_id in run_ids:
        # Launched into the run queue, then started by the daemon's queue coordinator.
        types = {event.get("eventType") for event in stack.run_events(run_id)}
        assert {"RUN_ENQUEUED", "RUN_STARTING"} <= types, (run_id, types)

    # Automation rebuilds the five analytics tables of every one of those days, and the
    # analyst copy ends up holding them all (checked in the copy: reading the pipeline's
    # file would take its lock from the runs still writing).
    expected = {day: stack.tasks_by_day[day] for day in BACKFILL_DAYS}

    def copy_complete() -> bool | None:
        try:
            tasks = ids_by_day(stack.analyst_path, "warehouse.topo.tasks", BACKFILL_DAYS)
            task_sla = ids_by_day(stack.analyst_path, "warehouse.analytics.task_sla", BACKFILL_DAYS)
            days = days_by_table(stack.analyst_path, BACKFILL_DAYS)
        except Exception:  # noqa: BLE001 - not there yet, or swapped mid-open: poll again
            return None
        every_table = dict.fromkeys(ANALYTICS_TABLES, BACKFILL_DAYS)
        return True if (tasks, task_sla, days) == (expected, expected, every_table) else None

    stack.wait_for(
        "automation to rebuild the days' analytics and the copy to hold them",
        copy_complete,
        BACKFILL_RUNS_TIMEOUT,
        5.0,
    )
    stack.wait_until_idle(PUBLISH_TIMEOUT)
    # The burst was published, but not once per run: runs that end while others are on
    # their way leave the publish to the last of them.
    publishes = [t for t in stack.materialization_times(ANALYST_COPY_KEY) if t >= burst_started]
    assert 1 <= len(publishes) < len(keys), f"{len(publishes)} publishes for {len(keys)} runs"

    # Pool "duckdb" (limit 1): no two steps that open the file ever ran at the same time,
    # across these runs and every other run the instance made meanwhile (analyst-copy
    # publishes, automation's runs, anything a sensor launched).
    every_run = stack.runs({"createdAfter": stack.started_at - 60})
    assert_no_lock_errors(stack, [r["runId"] for r in every_run if r["runId"] not in run_ids])
    from topo_pipeline.definitions import defs

    # The freshness checks read Dagster's event log only, never the file.
    freshness_steps = set(defs.resolve_job_def(FRESHNESS_JOB_NAME).graph.node_names())
    overlaps = overlapping_steps(every_run, ignore=freshness_steps)
    assert not overlaps, f"steps ran at the same time despite the pool: {overlaps[:3]}"

    assert ids_by_day(stack.pipeline_path, "warehouse.topo.tasks", BACKFILL_DAYS) == expected

    # The daemon's sensors ran the whole time; none of their ticks failed.
    data = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
    failed = {
        s["name"]: [t["error"] for t in s["sensorState"]["ticks"] if t["status"] == "FAILURE"]
        for s in data["sensorsOrError"]["results"]
    }
    assert not any(failed.values()), f"sensor ticks failed: {failed}"
