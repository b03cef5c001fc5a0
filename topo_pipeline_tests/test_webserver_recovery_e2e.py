"""Under the daemon: runs killed with SIGKILL inside their pool step are failed and their
slots freed with no manual step and no other run starting.

``dagster-webserver`` and ``dagster-daemon`` run the recovery tests' code location
(:mod:`topo_pipeline_tests.recovery_defs`: Dagster's in-process executor and run
launcher, the pipeline's warehouse resource, the dead-run sensor) on a temporary
``DAGSTER_HOME`` holding the repository's ``dagster.yaml``. A run launched from the UI
and a CLI run, each killed while it holds the ``duckdb`` slot, are marked failed and the
slot freed by the daemon (the dead-run sensor; for the UI run its code server and run
monitoring may get there first); then the next UI run succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx
import pytest

from topo_pipeline.liveness import parse_owner
from topo_pipeline.recovery import PROCESS_TAG
from topo_pipeline_tests import recovery_defs
from topo_pipeline_tests.processes import (
    deployment_env,
    free_port,
    instance_at,
    pids_using_home,
    stop_groups,
    venv_executable,
)
from topo_pipeline_tests.webserver_stack import (
    DAEMON_HEALTH_QUERY,
    LAUNCH_PIPELINE_EXECUTION,
    WORKSPACE_QUERY,
)

pytestmark = pytest.mark.slow

DEFS_FILE = str(Path(recovery_defs.__file__))
STARTUP_TIMEOUT = 240.0
RUN_TIMEOUT = 240.0
# The dead-run sensor ticks every 30 s; the daemon may start a tick a little late.
RECOVERY_TIMEOUT = 150.0

T = TypeVar("T")


@dataclass
class Daemon:
    """The webserver and daemon on one instance, and what the test reads them with."""

    env: dict[str, str]
    hold: Path
    client: httpx.Client
    instance: dg.DagsterInstance
    services: list[tuple[str, subprocess.Popen[bytes], Path]]
    location: str = ""
    repository: str = ""

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while True:
            for name, process, log in self.services:
                assert process.poll() is None, (
                    f"{name} exited while waiting for {what}:\n"
                    + (log.read_text(errors="replace")[-4000:])
                )
            value = check()
            if value is not None:
                return value
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s: {what}"
            time.sleep(1.0)

    def launch(self) -> str:
        """What the UI's "Launch run" of ``held_job`` sends; the run id."""
        params = {
            "mode": "default",
            "runConfigData": "{}",
            "executionMetadata": {"tags": [{"key": "dagster/from_ui", "value": "true"}]},
            "selector": {
                "repositoryLocationName": self.location,
                "repositoryName": self.repository,
                "pipelineName": recovery_defs.JOB_NAME,
            },
        }
        result = self.graphql(LAUNCH_PIPELINE_EXECUTION, {"executionParams": params})
        launched = result["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["id"]

    def slot_holders(self) -> list[str]:
        info = self.instance.event_log_storage.get_concurrency_info("duckdb")
        return [slot.run_id for slot in info.claimed_slots]

    def run(self, run_id: str) -> dg.DagsterRun:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        return run

    def holding(self) -> str:
        """The run whose step holds the duckdb slot, once it does."""

        def holder() -> str | None:
            holders = self.slot_holders()
            if holders and any(
                entry.message == recovery_defs.HOLDING
                for entry in self.instance.all_logs(holders[0])
            ):
                return holders[0]
            return None

        return self.wait_for("a run's step to hold the duckdb slot", holder, RUN_TIMEOUT)

    def recovered(self, run_id: str) -> str:
        """Wait until the daemon failed ``run_id`` and freed its slot; the failure message."""

        def done() -> bool | None:
            failed = self.run(run_id).status == dg.DagsterRunStatus.FAILURE
            return True if failed and not self.slot_holders() else None

        self.wait_for(f"the daemon to recover run {run_id}", done, RECOVERY_TIMEOUT)
        (failure,) = [
            entry.message
            for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        ]
        return failure


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    env = deployment_env(tmp_path / "dagster_home")
    hold = tmp_path / "hold"
    env["TOPO_DUCKDB_PATH"] = str(tmp_path / "data" / "pipeline.duckdb")
    env[recovery_defs.HOLD_ENV] = str(hold)
    port = free_port()
    argvs = {
        "webserver": [
            venv_executable("dagster-webserver"),
            *("-h", "127.0.0.1", "-p", str(port), "-f", DEFS_FILE),
        ],
        "daemon": [venv_executable("dagster-daemon"), "run", "-f", DEFS_FILE],
    }
    services = []
    for name, argv in argvs.items():
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        services.append((name, process, log))
    home = Path(env["DAGSTER_HOME"])
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client,
            instance_at(home) as instance,
        ):
            running = Daemon(env, hold, client, instance, services)
            _wait_until_ready(running)
            yield running
    finally:
        stragglers = stop_groups([process for _, process, _ in services], home)
    assert not stragglers, f"processes outlived their webserver/daemon: {stragglers}"
    assert not pids_using_home(home)


def _wait_until_ready(daemon: Daemon) -> None:
    def location_loaded() -> dict[str, Any] | None:
        try:
            data = daemon.graphql(WORKSPACE_QUERY)
        except httpx.HTTPError:
            return None
        entries = data["workspaceOrError"]["locationEntries"]
        if not entries or entries[0]["loadStatus"] != "LOADED":
            return None
        location = entries[0]["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        return location

    location = daemon.wait_for("the code location to load", location_loaded, STARTUP_TIMEOUT)
    daemon.location = location["name"]
    daemon.repository = location["repositories"][0]["name"]

    def daemons_healthy() -> bool | None:
        statuses = daemon.graphql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]
        required = [s for s in statuses["allDaemonStatuses"] if s["required"]]
        return True if required and all(s["healthy"] for s in required) else None

    daemon.wait_for("every required daemon to report healthy", daemons_healthy, STARTUP_TIMEOUT)


@pytest.mark.timeout(1200)
def test_the_daemon_recovers_runs_killed_inside_the_pool_step(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.hold.touch()

    # 1. A run launched from the UI (started by the daemon, through a code server).
    ui_run = daemon.launch()
    assert daemon.holding() == ui_run
    owner = parse_owner(daemon.run(ui_run).tags.get(PROCESS_TAG, ""))
    assert owner is not None, f"run {ui_run} has no {PROCESS_TAG} tag"
    os.kill(owner.pid, signal.SIGKILL)
    # Its code server sees its child die and marks it failed (or the sensor does, first);
    # the slot is freed by the sensor or by run monitoring (free_slots_after_run_end_seconds).
    daemon.recovered(ui_run)

    # 2. A CLI run, which no code server watches.
    log = tmp_path / "cli.log"
    with log.open("wb") as out:
        cli = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                venv_executable("dagster"),
                *("asset", "materialize", "-f", DEFS_FILE, "--select", "held"),
            ],
            cwd=tmp_path,
            env=daemon.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        cli_run = daemon.holding()
    finally:
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()
    failure = daemon.recovered(cli_run)
    # No code server watches a CLI run and nothing but the daemon ran since: the sensor did it.
    assert f"its process (pid {cli.pid} on " in failure, failure
    assert "topo_pipeline.recovery" in failure
    assert {run.run_id for run in daemon.instance.get_runs()} == {ui_run, cli_run}
    assert {run.run_id for run in daemon.instance.get_runs()} == {ui_run, cli_run}

    # 3. The next run takes the slot and succeeds.
    daemon.hold.unlink()
    last = daemon.launch()

    def ended() -> dg.DagsterRunStatus | None:
        run = daemon.run(last)
        return run.status if run.is_finished else None

    assert daemon.wait_for("the next run", ended, RUN_TIMEOUT) == dg.DagsterRunStatus.SUCCESS
    assert daemon.slot_holders() == []
