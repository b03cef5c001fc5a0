"""Runs that queue and runs that die, end to end: a burst of single-partition runs from the
UI through the run queue and pool ``duckdb``, and runs killed inside their pool step.

On a stack of its own (:mod:`topo_pipeline_tests.webserver_stack`), so these tests run
beside ``test_webserver_e2e.py`` on another worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from topo_pipeline.defs.freshness import FRESHNESS_JOB_NAME
from topo_pipeline.liveness import parse_owner
from topo_pipeline.recovery import PROCESS_TAG
from topo_pipeline.simulator import FaultPlan
from topo_pipeline_tests.processes import venv_executable
from topo_pipeline_tests.webserver_stack import (
    ANALYST_COPY_KEY,
    ANALYTICS_TABLES,
    BACKFILL_DAYS,
    BACKFILL_RUNS_TIMEOUT,
    FINISHED,
    INSTIGATORS_QUERY,
    POLL_SECONDS,
    POOL_QUERY,
    PUBLISH_TIMEOUT,
    RUN_TIMEOUT,
    TASKS_KEY,
    UI_DAYS,
    Stack,
    assert_no_lock_errors,
    asset_nodes,
    days_by_table,
    ids_by_day,
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

    freshness_steps = set(defs.resolve_job_def(FRESHNESS_JOB_NAME).graph.node_names())
    steps = sorted(
        (step["startTime"], step["endTime"], run["runId"], step["stepKey"])
        for run in every_run
        for step in run["stepStats"]
        # The freshness checks read Dagster's event log only, never the file.
        if step["stepKey"] not in freshness_steps
        if step["startTime"] is not None and step["endTime"] is not None
    )
    overlaps = []
    busy_until: tuple[float, float, str, str] | None = None
    for step in steps:
        if busy_until is not None and step[0] < busy_until[1]:
            overlaps.append((busy_until, step))
        if busy_until is None or step[1] > busy_until[1]:
            busy_until = step
    assert not overlaps, f"steps ran at the same time despite the pool: {overlaps[:3]}"

    assert ids_by_day(stack.pipeline_path, "warehouse.topo.tasks", BACKFILL_DAYS) == expected

    # The daemon's sensors ran the whole time; none of their ticks failed.
    data = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
    failed = {
        s["name"]: [t["error"] for t in s["sensorState"]["ticks"] if t["status"] == "FAILURE"]
        for s in data["sensorsOrError"]["results"]
    }
    assert not any(failed.values()), f"sensor ticks failed: {failed}"


def _slot_holders(stack: Stack) -> list[str]:
    info = stack.graphql(POOL_QUERY, {"pool": "duckdb"})["instance"]["concurrencyLimit"]
    return [slot["runId"] for slot in info["claimedSlots"]]


def _run(stack: Stack, run_id: str) -> dict[str, Any]:
    (run,) = stack.runs({"runIds": [run_id]})
    return run


def _run_pid(stack: Stack, run_id: str) -> int:
    owner = parse_owner(tag_of(_run(stack, run_id), PROCESS_TAG) or "")
    assert owner is not None, f"run {run_id} has no {PROCESS_TAG} tag"
    return owner.pid


@pytest.mark.timeout(900)
def test_runs_killed_inside_the_pool_step_do_not_wedge_the_runs_after_them(stack: Stack) -> None:
    """kill -9 inside topo/tasks, of a run from the UI and of a CLI run: no manual step."""
    stack.wait_until_idle(PUBLISH_TIMEOUT)
    tasks = asset_nodes(stack)[tuple(TASKS_KEY)]
    batch = {"key": "topo_pipeline_tests/batch", "value": uuid.uuid4().hex}
    day, other_day = UI_DAYS[0].isoformat(), UI_DAYS[1].isoformat()
    # Every request now hangs, so a run sits in topo/tasks, holding the pool's slot.
    stack.api.faults = FaultPlan(latency_seconds=RUN_TIMEOUT)
    cli_log = stack.workdir / "cli_run.log"
    cli: subprocess.Popen[bytes] | None = None
    try:
        # 1. A run launched from the UI (started by the daemon, through the code server).
        first = ui_materialize_one_partition(stack, [tasks], day, [batch])
        stack.wait_for(
            "the UI run to hold the duckdb slot",
            lambda: True if _slot_holders(stack) == [first] else None,
            RUN_TIMEOUT,
            POLL_SECONDS,
        )

        # 2. A CLI run waits for the slot and says at INFO which run holds it.
        with cli_log.open("wb") as log:
            cli = subprocess.Popen(  # noqa: S603 - fixed argv
                [
                    venv_executable("dagster"),
                    *("asset", "materialize", "-m", "topo_pipeline.definitions"),
                    *("--select", "topo/tasks", "--partition", other_day),
                ],
                cwd=stack.workdir,
                env=dict(stack.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def cli_run_waiting() -> str | None:
            for run in stack.runs({"statuses": ["STARTED"]}):
                if run["runId"] == first or tag_of(run, "dagster/partition") != other_day:
                    continue
                for event in stack.run_events(run["runId"]):
                    text = event.get("message") or ""
                    if "is waiting for a slot of pool 'duckdb'" in text:
                        assert event["level"] == "INFO", event
                        assert f"held by run {first} (job " in text, text
                        return run["runId"]
            return None

        cli_run = stack.wait_for(
            "the CLI run to name the slot holder", cli_run_waiting, RUN_TIMEOUT
        )
        assert f"held by run {first}" in cli_log.read_text(errors="replace")

        # 3. kill -9 the UI run inside its pool step: the CLI run gets the slot by itself.
        os.kill(_run_pid(stack, first), signal.SIGKILL)
        stack.wait_for(
            "the CLI run to take the freed slot",
            lambda: True if _slot_holders(stack) == [cli_run] else None,
            RUN_TIMEOUT,
            POLL_SECONDS,
        )
        assert _run(stack, first)["status"] == "FAILURE"

        # 4. kill -9 the CLI run, which no code server watches, while a UI run waits.
        stack.api.faults = FaultPlan()
        last = ui_materialize_one_partition(stack, [tasks], day, [batch])
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()

        def finished(run_id: str) -> dict[str, Any] | None:
            run = _run(stack, run_id)
            return run if run["status"] in FINISHED else None

        assert stack.wait_for("the next run", lambda: finished(last), RUN_TIMEOUT)["status"] == (
            "SUCCESS"
        )
    finally:
        stack.api.faults = FaultPlan()
        if cli is not None and cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()

    assert _run(stack, cli_run)["status"] == "FAILURE"
    failure = next(
        event["message"]
        for event in stack.run_events(cli_run)
        if event.get("eventType") == "RUN_FAILURE"
    )
    assert "is gone" in failure, failure
    assert _slot_holders(stack) == []
