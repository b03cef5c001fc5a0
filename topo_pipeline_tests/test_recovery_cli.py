"""No daemon: CLI runs killed with SIGKILL inside their pool step do not wedge the next run.

``dagster asset materialize`` runs the recovery tests' code location
(:mod:`topo_pipeline_tests.recovery_defs`: Dagster's in-process executor, the pipeline's
warehouse resource) against a temporary ``DAGSTER_HOME`` holding the repository's
``dagster.yaml``. A run that holds the ``duckdb`` slot is killed with SIGKILL; nothing
else runs (no daemon, no ``make recover``). The next CLI run must mark the dead run
failed, free its slot and succeed: when it starts after the kill, and when it was
already waiting for the slot at the kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest

from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests import recovery_defs
from topo_pipeline_tests.processes import deployment_env, instance_at, venv_executable

pytestmark = pytest.mark.slow

DEFS_FILE = Path(recovery_defs.__file__)
WAIT_SECONDS = 180.0

T = TypeVar("T")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = deployment_env(tmp_path / "dagster_home")
    environment["TOPO_DUCKDB_PATH"] = str(tmp_path / "data" / "pipeline.duckdb")
    return environment


@pytest.fixture
def instance(env: Mapping[str, str]) -> Iterator[dg.DagsterInstance]:
    with instance_at(env["DAGSTER_HOME"]) as opened:
        yield opened


@pytest.fixture
def hold(tmp_path: Path) -> Path:
    """While this file exists, a run started with it keeps the duckdb slot."""
    path = tmp_path / "hold"
    path.touch()
    return path


def materialize(
    env: Mapping[str, str], log: Path, hold: Path | None = None
) -> subprocess.Popen[bytes]:
    run_env = dict(env)
    if hold is not None:
        run_env[recovery_defs.HOLD_ENV] = str(hold)
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - fixed argv
            [
                venv_executable("dagster"),
                *("asset", "materialize", "-f", str(DEFS_FILE), "--select", "held"),
            ],
            cwd=log.parent,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(what: str, check: Callable[[], T | None], process: subprocess.Popen[bytes]) -> T:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = check()
        if value is not None:
            return value
        assert process.poll() is None, f"the process ended ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def slot_holders(instance: dg.DagsterInstance) -> list[str]:
    info = instance.event_log_storage.get_concurrency_info("duckdb")
    return [slot.run_id for slot in info.claimed_slots]


def holding_run(instance: dg.DagsterInstance, process: subprocess.Popen[bytes]) -> str:
    """The run of ``process`` once its step holds the duckdb slot (its row written)."""

    def holding() -> str | None:
        holders = slot_holders(instance)
        if holders and recovery_defs.HOLDING in run_log(instance, holders[0]):
            return holders[0]
        return None

    return wait_for("the run's step to hold the duckdb slot", holding, process)


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def run_log(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.message for entry in instance.all_logs(run_id)]


def finished(process: subprocess.Popen[bytes], log: Path) -> None:
    assert process.wait(timeout=WAIT_SECONDS) == 0, log.read_text(errors="replace")


def landed_rows(env: Mapping[str, str]) -> int:
    with connect(env["TOPO_DUCKDB_PATH"], read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM held_runs").fetchone() or (0,)
    return rows


@pytest.mark.timeout(600)
def test_the_next_cli_run_fails_a_run_killed_inside_its_pool_step_and_goes_on(
    env: dict[str, str], instance: dg.DagsterInstance, hold: Path, tmp_path: Path
) -> None:
    killed = materialize(env, tmp_path / "killed.log", hold)
    try:
        dead = holding_run(instance, killed)
    finally:
        kill(killed)
    assert status(instance, dead) == dg.DagsterRunStatus.STARTED  # what a kill -9 leaves
    assert slot_holders(instance) == [dead]

    nxt = materialize(env, tmp_path / "next.log")
    finished(nxt, tmp_path / "next.log")

    assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
    assert slot_holders(instance) == []
    (run,) = instance.get_runs(limit=1)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    lines = run_log(instance, run.run_id)
    assert any(
        line.startswith(f"marked run {dead} failed: its process (pid {killed.pid} on ")
        for line in lines
    ), lines
    assert f"freed the pool slots of run {dead}" in (tmp_path / "next.log").read_text()
    (failure,) = [
        entry.message for entry in instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
    ]
    assert "is gone" in failure
    assert landed_rows(env) == 2


@pytest.mark.timeout(600)
def test_a_cli_run_waiting_for_the_slot_frees_it_when_its_holder_is_killed(
    env: dict[str, str], instance: dg.DagsterInstance, hold: Path, tmp_path: Path
) -> None:
    holder = materialize(env, tmp_path / "holder.log", hold)
    waiting: subprocess.Popen[bytes] | None = None
    try:
        held = holding_run(instance, holder)
        waiting = materialize(env, tmp_path / "waiting.log")

        def wait_described() -> str | None:
            for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
                if run.run_id != held and any(
                    "is waiting for a slot of pool 'duckdb'" in line
                    for line in run_log(instance, run.run_id)
                ):
                    return run.run_id
            return None

        assert waiting is not None
        waiter = wait_for("the waiting run to say who holds the slot", wait_described, waiting)
        lines = run_log(instance, waiter)
        assert any(f"held by run {held} (job __ASSET_JOB, step held, STARTED)" in x for x in lines)
        kill(holder)
        finished(waiting, tmp_path / "waiting.log")
    finally:
        for process in (holder, waiting):
            if process is not None and process.poll() is None:
                kill(process)

    assert status(instance, held) == dg.DagsterRunStatus.FAILURE
    assert status(instance, waiter) == dg.DagsterRunStatus.SUCCESS
    assert any(
        line.startswith(f"marked run {held} failed: its process (pid {holder.pid} on ")
        for line in run_log(instance, waiter)
    )
    assert slot_holders(instance) == []
