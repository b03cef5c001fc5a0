"""The Dagster instance on PostgreSQL (``deploy/postgres/dagster.yaml``), against a real server.

A throwaway PostgreSQL server (the session's ``postgres`` fixture, ``postgres_server.py``)
holds the instance of one webserver-and-daemon stack (``webserver_stack.py``, started with
the PostgreSQL settings in its ``DAGSTER_HOME`` instead of the repository's
``dagster.yaml``), and CLI runs given the same ``DAGSTER_HOME`` and ``DAGSTER_PG_URL``
share it. The tests run in this order on one instance, the daemon working throughout:

* two CLI runs and a run the daemon launches from the run queue, at once, take turns in
  pool ``duckdb``: never more than one slot claimed, never two steps at once, no DuckDB
  lock error;
* a range run of the README's selection ``topo/tasks*`` with the CLI is recorded in
  PostgreSQL, nothing in SQLite, and publishes the analyst copy;
* a CLI run killed with ``kill -9`` inside its pool step does not wedge the next one, as on
  SQLite (``test_recovery_cli.py``): with nothing done by hand, the next run (or the
  daemon's ``dead_run_sensor``) marks it failed and frees its slot through the instance,
  and takes the slot;
* meanwhile the daemon's sensors follow up on the runs of ``topo/tasks`` alone through
  the PostgreSQL event log: automation rebuilds the analytics, ``analyst_copy_sensor``
  publishes the copy, and no sensor tick fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from topo_pipeline.defs.alerts import RUN_FAILURE_ALERT_SENSOR_NAME
from topo_pipeline.defs.analyst_copy_sensor import ANALYST_COPY_SENSOR_NAME
from topo_pipeline.defs.automation import DOWNSTREAM_AUTOMATION_SENSOR_NAME
from topo_pipeline.defs.freshness import FRESHNESS_JOB_NAME
from topo_pipeline.simulator import FaultPlan
from topo_pipeline_tests.postgres_server import (
    PG_URL_ENV,
    POSTGRES_INSTANCE_YAML,
    PostgresServer,
)
from topo_pipeline_tests.processes import cli_materialize, instance_at
from topo_pipeline_tests.webserver_stack import (
    ANALYST_COPY_KEY,
    ANALYTICS_TABLES,
    BACKFILL_DAYS,
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
    days_by_table,
    ids_by_day,
    overlapping_steps,
    running_stack,
    tag_of,
    ui_materialize_one_partition,
)

pytestmark = [pytest.mark.slow, pytest.mark.alone]

POOL = "duckdb"
KILLED_DAY = BACKFILL_DAYS[0]
CLI_DAYS = BACKFILL_DAYS[1:3]
QUEUED_DAY = BACKFILL_DAYS[3]
FOLLOWED_DAYS = [KILLED_DAY, *CLI_DAYS, QUEUED_DAY]
"""The days of the runs of ``topo/tasks`` alone, which the daemon's sensors follow up."""
HANG_SECONDS = 180.0
"""API latency that keeps the run to be killed inside its pool step."""
TURN_LATENCY_SECONDS = 6.0
"""API latency while three runs share the pool: each holds the slot at least this long, so
the two CLI runs, started together, reach their pool step while the other holds it."""


@pytest.fixture(scope="module")
def pg_stack(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    url = postgres.create_database(f"topo_{uuid.uuid4().hex[:12]}")
    with running_stack(
        tmp_path_factory, instance_yaml=POSTGRES_INSTANCE_YAML, instance_env={PG_URL_ENV: url}
    ) as stack:
        yield stack


def open_instance(stack: Stack) -> AbstractContextManager[dg.DagsterInstance]:
    """The stack's instance, as its processes open it (``DAGSTER_HOME``, ``DAGSTER_PG_URL``)."""
    return instance_at(stack.home, {PG_URL_ENV: stack.env[PG_URL_ENV]})


def finish(process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for a CLI run; fail with its output unless it succeeded."""
    code = process.wait(timeout=RUN_TIMEOUT)
    assert code == 0, f"{log.name} exited {code}:\n{log.read_text(errors='replace')[-4000:]}"


def runs_of_day(instance: dg.DagsterInstance, day: date) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": day.isoformat()}))
    )


def outside_the_pool() -> set[str]:
    """Steps that never open the DuckDB file: the freshness checks read the event log only
    (a CLI run of ``topo/tasks`` runs them too, as checks of the selected asset)."""
    from topo_pipeline.definitions import defs

    return set(defs.resolve_job_def(FRESHNESS_JOB_NAME).graph.node_names())


def slot_holders(instance: dg.DagsterInstance) -> list[str]:
    return [
        slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
    ]


@pytest.mark.timeout(900)
def test_two_cli_runs_and_a_queued_run_at_once_take_turns_in_pool_duckdb(
    pg_stack: Stack, tmp_path: Path
) -> None:
    stack = pg_stack
    tasks = asset_nodes(stack)[tuple(TASKS_KEY)]
    stack.api.faults = FaultPlan(latency_seconds=TURN_LATENCY_SECONDS)
    most_claimed = 0
    waiting_seen: set[str] = set()
    try:
        # The UI's "Launch 1 run": queued, then launched by the daemon's run coordinator.
        queued = ui_materialize_one_partition(stack, [tasks], QUEUED_DAY.isoformat(), [])
        logs = [tmp_path / f"cli-{day}.log" for day in CLI_DAYS]
        clis = [
            cli_materialize(stack.env, log, "topo/tasks", partition=day.isoformat())
            for day, log in zip(CLI_DAYS, logs, strict=True)
        ]
        with open_instance(stack) as instance:

            def all_done() -> bool | None:
                nonlocal most_claimed
                info = instance.event_log_storage.get_concurrency_info(POOL)
                most_claimed = max(most_claimed, len(info.claimed_slots))
                waiting_seen.update(step.run_id for step in info.pending_steps)
                run = instance.get_run_by_id(queued)
                cli_running = any(cli.poll() is None for cli in clis)
                return None if cli_running or run is None or not run.is_finished else True

            stack.wait_for("the three runs to finish", all_done, RUN_TIMEOUT, 0.25)
    finally:
        stack.api.faults = FaultPlan()
    for cli, log in zip(clis, logs, strict=True):
        finish(cli, log)

    runs = [r for day in (*CLI_DAYS, QUEUED_DAY) for r in stack.runs({"tags": [_day(day)]})]
    assert sorted((tag_of(r, "dagster/partition"), r["status"]) for r in runs) == [
        (day.isoformat(), "SUCCESS") for day in (*CLI_DAYS, QUEUED_DAY)
    ]
    run_ids = [r["runId"] for r in runs]
    assert_no_lock_errors(stack, run_ids)
    queued_events = {event.get("eventType") for event in stack.run_events(queued)}
    assert {"RUN_ENQUEUED", "RUN_STARTING"} <= queued_events, queued_events

    # One slot, never more, and the runs did wait for it: some step was blocked by the pool.
    assert most_claimed == 1
    blocked = [
        r
        for r in run_ids
        if any(
            f"blocked by limit for pool {POOL}" in (event.get("message") or "")
            for event in stack.run_events(r)
        )
    ]
    assert blocked or waiting_seen, "the runs never contended for the slot: the test proves little"
    assert not overlapping_steps(runs, ignore=outside_the_pool()), "steps overlapped in the pool"
    # What they landed is checked in the analyst copy once the daemon has published it
    # (the last test): reading the pipeline's file now would take its lock from the runs
    # the daemon starts next.


@pytest.mark.timeout(600)
def test_a_cli_range_run_is_recorded_in_postgresql_and_publishes_the_copy(
    pg_stack: Stack, tmp_path: Path
) -> None:
    stack = pg_stack
    assert (stack.home / "dagster.yaml").read_bytes() == POSTGRES_INSTANCE_YAML.read_bytes()
    first, last = UI_DAYS[0].isoformat(), UI_DAYS[-1].isoformat()

    log = tmp_path / "range.log"
    finish(cli_materialize(stack.env, log, "topo/tasks*", partition_range=f"{first}...{last}"), log)

    with open_instance(stack) as instance:
        for storage in (
            instance.run_storage,
            instance.event_log_storage,
            instance.schedule_storage,
        ):
            assert type(storage).__module__.startswith("dagster_postgres."), storage
        (run,) = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/asset_partition_range_start": first})
        )
        assert run.status == dg.DagsterRunStatus.SUCCESS
        landed = instance.fetch_materializations(dg.AssetKey(TASKS_KEY), limit=100).records
        assert sorted(r.partition_key for r in landed if r.run_id == run.run_id) == [
            day.isoformat() for day in UI_DAYS
        ]
        published = instance.fetch_materializations(dg.AssetKey(ANALYST_COPY_KEY), limit=100)
        # The run published the copy itself (the daemon's sensor may have, too, for others).
        assert run.run_id in {r.run_id for r in published.records}
    # Dagster kept nothing on disk but compute logs: no SQLite run, event or schedule storage.
    assert not (stack.home / "history").exists()
    assert not (stack.home / "schedules").exists()

    expected = {day: stack.tasks_by_day[day] for day in UI_DAYS}
    assert ids_by_day(stack.analyst_path, "warehouse.topo.tasks", UI_DAYS) == expected
    assert days_by_table(stack.analyst_path, UI_DAYS) == dict.fromkeys(ANALYTICS_TABLES, UI_DAYS)


@pytest.mark.timeout(600)
def test_a_cli_run_killed_inside_its_pool_step_does_not_wedge_the_next(
    pg_stack: Stack, tmp_path: Path
) -> None:
    # Nothing is done by hand: the next run's guard (topo_pipeline/defs/run_guard.py) or the
    # daemon's dead_run_sensor, whichever looks first, marks the dead run failed and frees
    # its slot through the instance, here the PostgreSQL one.
    stack = pg_stack
    stack.api.faults = FaultPlan(latency_seconds=HANG_SECONDS)
    log = tmp_path / "killed.log"
    killed = cli_materialize(stack.env, log, "topo/tasks", partition=KILLED_DAY.isoformat())
    with open_instance(stack) as instance:
        try:

            def holding() -> str | None:
                assert killed.poll() is None, log.read_text(errors="replace")
                ours = {r.run_id for r in runs_of_day(instance, KILLED_DAY)}
                return next((r for r in slot_holders(instance) if r in ours), None)

            dead = stack.wait_for("the run to take the duckdb slot", holding, RUN_TIMEOUT, 0.5)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
            stack.api.faults = FaultPlan()

        # The next run of the day takes the slot and lands the day (its tasks are checked in
        # the analyst copy by the last test).
        log = tmp_path / "next.log"
        finish(cli_materialize(stack.env, log, "topo/tasks", partition=KILLED_DAY.isoformat()), log)

        run = instance.get_run_by_id(dead)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.FAILURE
        failures = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert any(
            f"Marked failed by topo_pipeline.recovery: its process (pid {killed.pid}"
            in entry.message
            for entry in failures
        ), [entry.message for entry in failures]
        assert dead not in slot_holders(instance)
        statuses = sorted(r.status.value for r in runs_of_day(instance, KILLED_DAY))
    assert statuses == ["FAILURE", "SUCCESS"]


# Two daemon ticks (automation, then the publish) behind whatever the other test workers
# load the machine with: the wait is generous, as a slow machine must not fail it.
@pytest.mark.timeout(900)
def test_the_daemon_sensors_follow_up_through_the_postgresql_event_log(pg_stack: Stack) -> None:
    stack = pg_stack
    expected = {day: stack.tasks_by_day[day] for day in FOLLOWED_DAYS}

    # Automation rebuilds the analytics of the days landed by runs of topo/tasks alone, and
    # analyst_copy_sensor publishes them (none of those runs published the copy itself).
    def copy_complete() -> bool | None:
        try:
            tasks = ids_by_day(stack.analyst_path, "warehouse.topo.tasks", FOLLOWED_DAYS)
            task_sla = ids_by_day(stack.analyst_path, "warehouse.analytics.task_sla", FOLLOWED_DAYS)
            days = days_by_table(stack.analyst_path, FOLLOWED_DAYS)
        except Exception:  # noqa: BLE001 - not there yet, or swapped mid-open: poll again
            return None
        every_table = dict.fromkeys(ANALYTICS_TABLES, sorted(FOLLOWED_DAYS))
        return True if (tasks, task_sla, days) == (expected, expected, every_table) else None

    stack.wait_for(
        "automation to rebuild the analytics and the sensor to publish them",
        copy_complete,
        2 * PUBLISH_TIMEOUT,
        POLL_SECONDS,
    )

    stack.wait_until_idle(PUBLISH_TIMEOUT)

    every_run = stack.runs({"createdAfter": stack.started_at - 60})
    launched_by = {tag_of(r, "dagster/sensor_name") for r in every_run}
    assert {DOWNSTREAM_AUTOMATION_SENSOR_NAME, ANALYST_COPY_SENSOR_NAME} <= launched_by
    assert {r["status"] for r in every_run if tag_of(r, "dagster/sensor_name")} == {"SUCCESS"}

    # Across every run the instance made: one step at a time in the pool (the killed run's
    # step never ended), no lock error.
    finished = [r for r in every_run if r["status"] in FINISHED]
    assert not overlapping_steps(finished, ignore=outside_the_pool())
    assert_no_lock_errors(stack, [r["runId"] for r in finished])

    data = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
    sensors = {s["name"]: s["sensorState"] for s in data["sensorsOrError"]["results"]}
    assert RUN_FAILURE_ALERT_SENSOR_NAME in sensors
    failed = {
        name: [t["error"] for t in state["ticks"] if t["status"] == "FAILURE"]
        for name, state in sensors.items()
    }
    assert not any(failed.values()), f"sensor ticks failed: {failed}"


def _day(day: date) -> dict[str, Any]:
    return {"key": "dagster/partition", "value": day.isoformat()}
