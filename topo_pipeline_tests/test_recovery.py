"""Recovering from runs whose process died, on a real (temporary) Dagster instance.

The dead processes are real: a child process started and killed with SIGKILL. The
end-to-end versions (a run killed inside its pool step, under the daemon and with the
recovery command) are in ``test_webserver_recovery_e2e.py`` and ``test_recovery_cli.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from topo_pipeline.defs.executor import describe_pool_wait

from topo_pipeline.liveness import Owner, current_owner, is_alive
from topo_pipeline.recovery import HOST_TAG, PROCESS_TAG, recover, this_host
from topo_pipeline_tests.processes import killed_process_owner

POOL = "duckdb"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    overrides = {
        "concurrency": {"pools": {"default_limit": 1}},
        "run_launcher": {"module": "topo_pipeline.recovery", "class": "MonitoredRunLauncher"},
    }
    with dg.instance_for_test(overrides=overrides) as test_instance:
        # What a run's first claim does: the pool gets dagster.yaml's default limit.
        test_instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
        yield test_instance


@pytest.fixture
def dead_owner() -> Owner:
    owner = killed_process_owner()
    assert not is_alive(owner)
    return owner


def started_run(instance: dg.DagsterInstance, owner: Owner | None) -> dg.DagsterRun:
    tags = {HOST_TAG: this_host(), PROCESS_TAG: owner.token()} if owner else {}
    run = instance.add_run(
        dg.DagsterRun(
            job_name="topo_refresh_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags=tags,
        )
    )
    return run


def status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRunStatus:
    found = instance.get_run_by_id(run.run_id)
    assert found is not None
    return found.status


def claimed(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [(slot.run_id, slot.step_key) for slot in info.claimed_slots]


def test_recover_fails_a_dead_run_and_frees_its_slot_for_the_run_waiting(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    storage = instance.event_log_storage
    dead = started_run(instance, dead_owner)
    alive = started_run(instance, current_owner())
    assert storage.claim_concurrency_slot(POOL, dead.run_id, "topo__tasks").is_claimed
    waiting = storage.claim_concurrency_slot(POOL, alive.run_id, "topo__tasks")
    assert not waiting.is_claimed

    # The launcher tells the daemon's run monitoring which run is dead.
    launcher = instance.run_launcher
    assert launcher.supports_check_run_worker_health
    assert launcher.check_run_worker_health(dead).status == WorkerStatus.FAILED
    assert launcher.check_run_worker_health(alive).status == WorkerStatus.RUNNING

    dry = recover(instance, dry_run=True)
    assert [run_id for run_id, _ in dry.failed_runs] == [dead.run_id]
    assert status(instance, dead) == dg.DagsterRunStatus.STARTED
    assert claimed(instance) == [(dead.run_id, "topo__tasks")]

    report = recover(instance)

    assert [run_id for run_id, _ in report.failed_runs] == [dead.run_id]
    assert f"pid {dead_owner.pid}" in report.failed_runs[0][1]
    assert report.freed_runs == [dead.run_id]
    assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
    assert status(instance, alive) == dg.DagsterRunStatus.STARTED
    # The waiting step now gets the slot; the live run was not touched.
    assert storage.claim_concurrency_slot(POOL, alive.run_id, "topo__tasks").is_claimed
    assert claimed(instance) == [(alive.run_id, "topo__tasks")]
    assert recover(instance).lines() == []


def test_recover_frees_slots_left_by_a_run_that_was_already_marked_failed(
    instance: dg.DagsterInstance,
) -> None:
    # What Dagster's code server does when a run's process dies: the run fails, the slot stays.
    run = started_run(instance, current_owner())
    instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "analytics_tables")
    instance.report_run_failed(run, "Run execution process unexpectedly exited")

    report = recover(instance)

    assert report.failed_runs == []
    assert report.freed_runs == [run.run_id]
    assert claimed(instance) == []


def test_a_run_without_tags_is_judged_by_the_pid_dagster_recorded(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    dead = started_run(instance, None)
    instance.report_engine_event(
        f"Executing steps in process (pid: {dead_owner.pid})",
        dead,
        EngineEventData.in_process(dead_owner.pid),
    )
    unknown = started_run(instance, None)  # no process recorded yet: not judged

    report = recover(instance)

    assert [run_id for run_id, _ in report.failed_runs] == [dead.run_id]
    assert status(instance, unknown) == dg.DagsterRunStatus.STARTED


def test_runs_of_another_host_and_live_processes_are_never_judged(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    elsewhere = instance.add_run(
        dg.DagsterRun(
            job_name="topo_refresh_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={HOST_TAG: f"not-{this_host()}", PROCESS_TAG: dead_owner.token()},
        )
    )
    # The same id as a live process but another start time: the id was reused.
    reused = started_run(instance, Owner(os.getpid(), current_owner().start_ticks + 1))

    report = recover(instance)

    assert status(instance, elsewhere) == dg.DagsterRunStatus.STARTED
    assert [run_id for run_id, _ in report.failed_runs] == [reused.run_id]


def test_a_blocked_step_is_told_which_run_holds_the_slot_and_that_it_is_dead(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    dead = started_run(instance, dead_owner)
    instance.event_log_storage.claim_concurrency_slot(POOL, dead.run_id, "topo__tasks")

    text = describe_pool_wait(instance, POOL, "analytics_tables")

    assert text.startswith("step analytics_tables is waiting for a slot of pool 'duckdb'")
    assert f"held by run {dead.run_id} (job topo_refresh_job, step topo__tasks" in text
    assert f"its process (pid {dead_owner.pid}" in text
    assert "make recover" in text

    recover(instance)
    assert "no run holds one" in describe_pool_wait(instance, POOL, "analytics_tables")
