"""No daemon: a CLI run killed inside its pool step, then ``python -m topo_pipeline.recovery``.

``dagster asset materialize`` runs against a temporary ``DAGSTER_HOME`` holding the
repository's ``dagster.yaml`` and a simulated API whose every request hangs, so the run
sits in ``topo/tasks`` holding the ``duckdb`` slot with its stage folder open; it is
killed with SIGKILL. Nothing else would ever free that slot. The recovery command
(what ``make recover`` runs) must fail the run, free the slot and remove the stage
folder, and the next CLI run must then succeed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from topo_pipeline.recovery import main as recovery_main
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    FaultPlan,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.processes import deployment_env, instance_at, venv_executable

pytestmark = pytest.mark.slow

DAY = date(2025, 2, 3)
WAIT_SECONDS = 180.0


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], SimulatedTopoApi]]:
    dataset = generate_dataset(DatasetSpec(seed=5, start_date=DAY, days=1, tasks_per_day=[30]))
    env = deployment_env(tmp_path / "dagster_home")
    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api:
        env.update(
            {
                "TOPO_API_BASE_URL": api.base_url,
                "TOPO_API_KEY": DEMO_API_KEY,
                "TOPO_DUCKDB_PATH": str(tmp_path / "data" / "pipeline.duckdb"),
                "TOPO_ANALYST_DUCKDB_PATH": str(tmp_path / "data" / "analyst.duckdb"),
                "TOPO_START_DATE": DAY.isoformat(),
                "TOPO_API_REQUESTS_PER_MINUTE": "0",
            }
        )
        yield env, api


def materialize(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - fixed argv
            [
                venv_executable("dagster"),
                *("asset", "materialize", "-m", "topo_pipeline.definitions"),
                *("--select", "topo/tasks", "--partition", DAY.isoformat()),
            ],
            cwd=log.parent,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def slot_holders(instance: dg.DagsterInstance) -> list[str]:
    info = instance.event_log_storage.get_concurrency_info("duckdb")
    return [slot.run_id for slot in info.claimed_slots]


@pytest.mark.timeout(600)
def test_the_recovery_command_frees_a_cli_run_killed_inside_its_pool_step(
    cli_env: tuple[dict[str, str], SimulatedTopoApi],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env, api = cli_env
    data = Path(env["TOPO_DUCKDB_PATH"]).parent
    api.faults = FaultPlan(latency_seconds=WAIT_SECONDS)
    killed = materialize(env, tmp_path / "killed.log")
    with instance_at(env["DAGSTER_HOME"]) as instance:
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while not slot_holders(instance) or not list(data.glob(".topo-stage-*")):
                assert killed.poll() is None, (tmp_path / "killed.log").read_text()
                assert time.monotonic() < deadline, "the run never took the duckdb slot"
                time.sleep(0.5)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
        (run_id,) = slot_holders(instance)
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.STARTED  # what a kill -9 leaves behind
        api.faults = FaultPlan()

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert recovery_main([]) == 0

        printed = capsys.readouterr().out
        assert f"marked run {run_id} failed: its process (pid {killed.pid}" in printed
        assert f"freed the pool slots of run {run_id}" in printed
        assert "removed " in printed
        assert "/.topo-stage-" in printed
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert slot_holders(instance) == []
        assert list(data.glob(".topo-stage-*")) == []

        # The next run takes the slot and lands the day.
        assert materialize(env, tmp_path / "next.log").wait(timeout=WAIT_SECONDS) == 0
        assert recovery_main([]) == 0
        assert capsys.readouterr().out.startswith("nothing to recover")
    with connect(env["TOPO_DUCKDB_PATH"], read_only=True) as con:
        (landed,) = con.execute("SELECT count(*) FROM topo.tasks").fetchone() or (0,)
    assert landed == 30
