"""Recovering from runs whose process died, on a real (temporary) Dagster instance.

The dead processes are real: child processes killed with SIGKILL. Runs are executed
in-process (``dg.materialize``), as Dagster's in-process executor runs them, with the
warehouse resource whose initialisation guards the run. The end-to-end versions (runs
killed inside their pool step, from the CLI and under the daemon) are in
``test_recovery_cli.py`` and ``test_webserver_recovery_e2e.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from topo_pipeline import recovery
from topo_pipeline.defs import run_guard
from topo_pipeline.defs.recovery_sensor import build_dead_run_sensor
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.defs.run_guard import describe_pool_waits, guard_run
from topo_pipeline.liveness import Owner, current_owner, is_alive, owner_of
from topo_pipeline.recovery import HOST_TAG, PROCESS_TAG, main, recover, this_host
from topo_pipeline_tests.processes import killed_process_owner

POOL = "duckdb"
STEP = "topo__tasks"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as test:
        # What a run's first claim does: the pool gets dagster.yaml's default limit.
        test.event_log_storage.initialize_concurrency_limit_to_default(POOL)
        yield test


@pytest.fixture
def dead_owner() -> Owner:
    owner = killed_process_owner()
    assert not is_alive(owner)
    return owner


def started_run(instance: dg.DagsterInstance, owner: Owner | None) -> dg.DagsterRun:
    tags = {HOST_TAG: this_host(), PROCESS_TAG: owner.token()} if owner else {}
    return instance.add_run(
        dg.DagsterRun(
            job_name="topo_refresh_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags=tags,
        )
    )


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    found = instance.get_run_by_id(run_id)
    assert found is not None
    return found.status


def claimed(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [(slot.run_id, slot.step_key) for slot in info.claimed_slots]


def hold_slot(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    assert instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, STEP).is_claimed


@dg.asset(pool=POOL)
def in_pool(warehouse: WarehouseResource) -> None:
    with warehouse.get_connection() as con:
        con.execute("SELECT 1").fetchall()


def materialize(instance: dg.DagsterInstance, tmp_path: Path) -> dg.ExecuteInProcessResult:
    """Run ``in_pool`` in-process, as a run of the code location runs its steps."""
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    return dg.materialize([in_pool], instance=instance, resources={"warehouse": warehouse})


def messages(instance: dg.DagsterInstance, run_id: str, level: int) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id) if entry.level == level]


def test_recover_fails_a_dead_run_and_frees_its_slot_for_the_run_waiting(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    storage = instance.event_log_storage
    dead = started_run(instance, dead_owner)
    alive = started_run(instance, current_owner())
    hold_slot(instance, dead)
    assert not storage.claim_concurrency_slot(POOL, alive.run_id, STEP).is_claimed

    dry = recover(instance, dry_run=True)
    assert [run_id for run_id, _ in dry.failed_runs] == [dead.run_id]
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.STARTED
    assert claimed(instance) == [(dead.run_id, STEP)]

    report = recover(instance)

    assert [run_id for run_id, _ in report.failed_runs] == [dead.run_id]
    assert f"pid {dead_owner.pid} on {this_host()}" in report.failed_runs[0][1]
    assert report.freed_runs == [dead.run_id]
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.FAILURE
    assert status(instance, alive.run_id) == dg.DagsterRunStatus.STARTED
    # The waiting step now gets the slot; the live run was not touched.
    assert storage.claim_concurrency_slot(POOL, alive.run_id, STEP).is_claimed
    assert claimed(instance) == [(alive.run_id, STEP)]
    assert recover(instance).lines() == []


def test_recover_frees_slots_left_by_a_run_that_was_already_marked_failed(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    # What a code server does when a UI run's process dies: the run fails, the slot stays.
    run = started_run(instance, dead_owner)
    hold_slot(instance, run)
    instance.report_run_failed(run, "Run execution process unexpectedly exited")

    report = recover(instance, slot_holders_only=True)

    assert report.failed_runs == []
    assert report.freed_runs == [run.run_id]
    assert claimed(instance) == []


def test_a_run_that_just_ended_keeps_its_slot_while_its_process_may_leave_its_step(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = started_run(instance, current_owner())  # its process is alive
    hold_slot(instance, run)
    instance.report_run_canceled(run, "Canceled by a user")

    assert recover(instance).freed_runs == []
    assert claimed(instance) == [(run.run_id, STEP)]

    monkeypatch.setattr(recovery, "FREE_SLOTS_AFTER_END_SECONDS", 0.0)
    assert recover(instance).freed_runs == [run.run_id]
    assert claimed(instance) == []


def test_only_slot_holders_are_judged_when_asked(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    holder = started_run(instance, dead_owner)
    elsewhere = started_run(instance, dead_owner)  # dead, but holds no slot
    hold_slot(instance, holder)

    report = recover(instance, slot_holders_only=True)

    assert [run_id for run_id, _ in report.failed_runs] == [holder.run_id]
    assert status(instance, elsewhere.run_id) == dg.DagsterRunStatus.STARTED
    assert [run_id for run_id, _ in recover(instance).failed_runs] == [elsewhere.run_id]


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
    alive = started_run(instance, current_owner())
    # The same id as a live process but another start time: the id was reused.
    reused = started_run(instance, Owner(os.getpid(), current_owner().start_ticks + 1))
    untagged = started_run(instance, None)  # no process recorded yet: not judged

    report = recover(instance)

    assert [run_id for run_id, _ in report.failed_runs] == [reused.run_id]
    for run in (elsewhere, alive, untagged):
        assert status(instance, run.run_id) == dg.DagsterRunStatus.STARTED


def test_a_run_frees_the_slot_of_a_dead_holder_before_its_step_claims_one(
    instance: dg.DagsterInstance, dead_owner: Owner, tmp_path: Path
) -> None:
    dead = started_run(instance, dead_owner)
    hold_slot(instance, dead)

    result = materialize(instance, tmp_path)

    assert result.success
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.FAILURE
    assert claimed(instance) == []
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.tags[HOST_TAG] == this_host()
    assert run.tags[PROCESS_TAG] == current_owner().token()
    warnings = messages(instance, result.run_id, logging.WARNING)
    assert any(f"marked run {dead.run_id} failed: its process" in text for text in warnings)
    (failure,) = [
        entry.message
        for entry in instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    ]
    assert f"pid {dead_owner.pid}" in failure
    assert "killed or crashed" in failure


@pytest.mark.timeout(120)
def test_a_waiting_run_says_who_holds_the_slot_and_frees_it_when_the_holder_dies(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_guard, "WATCH_INTERVAL_SECONDS", 0.25)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) as child:
        owner = owner_of(child.pid)
        assert owner is not None
        holder = started_run(instance, owner)
        hold_slot(instance, holder)

        def kill_the_holder_once_a_step_waits() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pending = instance.event_log_storage.get_concurrency_info(POOL).pending_steps
                if any(step.assigned_timestamp is None for step in pending):
                    time.sleep(1.0)  # a few looks of the waiting run's guard
                    break
                time.sleep(0.1)
            child.send_signal(signal.SIGKILL)
            child.wait()

        killer = threading.Thread(target=kill_the_holder_once_a_step_waits)
        killer.start()
        try:
            result = materialize(instance, tmp_path)
        finally:
            killer.join()

    assert result.success
    assert status(instance, holder.run_id) == dg.DagsterRunStatus.FAILURE
    infos = messages(instance, result.run_id, logging.INFO)
    assert (
        f"step in_pool is waiting for a slot of pool 'duckdb' (limit 1), held by run "
        f"{holder.run_id} (job topo_refresh_job, step {STEP}, STARTED)"
    ) in infos
    warnings = messages(instance, result.run_id, logging.WARNING)
    assert any(
        f"marked run {holder.run_id} failed: its process (pid {child.pid}" in text
        for text in warnings
    )


def test_a_blocked_step_is_told_which_run_holds_the_slot_and_that_it_is_dead(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    dead = started_run(instance, dead_owner)
    waiting = started_run(instance, current_owner())
    hold_slot(instance, dead)
    assert describe_pool_waits(instance, waiting.run_id) == ""
    instance.event_log_storage.claim_concurrency_slot(POOL, waiting.run_id, "analytics_tables")

    text = describe_pool_waits(instance, waiting.run_id)

    assert text.startswith("step analytics_tables is waiting for a slot of pool 'duckdb' (limit 1)")
    assert f"held by run {dead.run_id} (job topo_refresh_job, step {STEP}, STARTED, but" in text
    assert f"its process (pid {dead_owner.pid}" in text


def test_the_guard_does_nothing_outside_the_process_executing_the_run(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    dead = started_run(instance, dead_owner)
    hold_slot(instance, dead)
    other = started_run(instance, None)  # Dagster recorded no process of this one here

    with guard_run(instance, None, None), guard_run(instance, other, None):
        pass

    run = instance.get_run_by_id(other.run_id)
    assert run is not None
    assert PROCESS_TAG not in run.tags
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.STARTED


def test_the_sensor_fails_dead_runs_and_frees_their_slots(
    instance: dg.DagsterInstance, dead_owner: Owner
) -> None:
    sensor = build_dead_run_sensor()
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    dead = started_run(instance, dead_owner)
    hold_slot(instance, dead)

    result = sensor(dg.build_sensor_context(instance=instance))

    assert isinstance(result, dg.SkipReason)
    assert f"marked run {dead.run_id} failed" in (result.skip_message or "")
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.FAILURE
    assert claimed(instance) == []
    again = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(again, dg.SkipReason)
    assert again.skip_message == "no dead run, no slot held by an ended run"


def test_the_recovery_command_reports_then_recovers(
    instance: dg.DagsterInstance,
    dead_owner: Owner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TOPO_DUCKDB_PATH", str(tmp_path / "data" / "pipeline.duckdb"))
    monkeypatch.setenv("TOPO_ANALYST_DUCKDB_PATH", str(tmp_path / "data" / "analyst.duckdb"))
    dead = started_run(instance, dead_owner)
    hold_slot(instance, dead)

    assert main(["--dry-run"]) == 0
    assert f"would have marked run {dead.run_id} failed" in capsys.readouterr().out
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.STARTED

    assert main([]) == 0
    printed = capsys.readouterr().out
    assert f"marked run {dead.run_id} failed: its process (pid {dead_owner.pid}" in printed
    assert f"freed the pool slots of run {dead.run_id}" in printed
    assert status(instance, dead.run_id) == dg.DagsterRunStatus.FAILURE
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("nothing to recover")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_run_without_tags_is_judged_by_the_process_dagster_recorded(
    instance: dg.DagsterInstance,
) -> None:
    # A run that opens no warehouse is not tagged; Dagster still records its process.
    script = (
        "import time, dagster as dg\n"
        "@dg.asset(pool='duckdb')\n"
        "def stuck() -> None:\n"
        "    time.sleep(120)\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    dg.materialize([stuck], instance=instance)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script]) as child:  # noqa: S603 - fixed argv
        try:
            deadline = time.monotonic() + 90
            while not claimed(instance):
                assert child.poll() is None, "the run's process ended early"
                assert time.monotonic() < deadline, "the run never took the duckdb slot"
                time.sleep(0.2)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    ((run_id, _),) = claimed(instance)
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert PROCESS_TAG not in run.tags

    report = recover(instance, slot_holders_only=True)

    assert report.failed_runs == [(run_id, f"its process (pid {child.pid}) is gone")]
    assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    assert claimed(instance) == []
