"""``make dev`` (``python -m topo_pipeline.dev``) as a user runs it: start, use, Ctrl-C.

The first tests stand a script in for ``dg dev`` (it stops on SIGINT as ``dg dev`` does),
so Ctrl-C's handling is tested in seconds, in a terminal under make too; the last one runs
the real UI.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from topo_pipeline.instance import INSTANCE_YAML, REPO_ROOT
from topo_pipeline.simulator import DEMO_API_KEY
from topo_pipeline_tests.processes import (
    free_port,
    group_alive,
    pids_using_home,
    shell_env,
    stop_groups,
)

SIM_DAYS = 4
READY_TIMEOUT = 240.0
STOP_TIMEOUT = 120.0

STATUS_QUERY = """
query DevStatus {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            repositories {
              sensors { name sensorState { status } }
              schedules { name scheduleState { status } }
            }
          }
          ... on PythonError { message }
        }
      }
    }
  }
  assetNodes(assetKeys: [{path: ["topo", "tasks"]}]) { partitionKeys }
}
"""


@dataclass
class DevSession:
    process: subprocess.Popen[bytes]
    log_path: Path
    home: Path
    data: Path
    port: int

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output())
            if match:
                return match
            assert self.process.poll() is None, (
                f"make dev exited ({self.process.returncode}) before printing {pattern!r}:\n"
                + self.output()[-4000:]
            )
            assert time.monotonic() < deadline, f"no {pattern!r} after {timeout:.0f}s"
            time.sleep(0.5)


FAKE_DG_DEV = """
import signal, sys, time
def stop(*_):
    print("fake dg dev: stopping", flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
print("fake dg dev: running", flush=True)
time.sleep(120)
sys.exit(3)
"""

DEV_WITH_FAKE_DG_DEV = f"""
import sys
import topo_pipeline.dev as dev
dev._dagster_dev_command = lambda host, port: [sys.executable, "-c", {FAKE_DG_DEV!r}]
sys.exit(dev.main(sys.argv[1:]))
"""


def dev_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell without Topo settings, with its own state folders (no make above)."""
    env = {k: v for k, v in shell_env().items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    env["TOPO_DUCKDB_PATH"] = str(tmp_path / "data" / "pipeline.duckdb")
    env["TOPO_ANALYST_DUCKDB_PATH"] = str(tmp_path / "data" / "analyst.duckdb")
    return env


def fake_dev_argv(tmp_path: Path) -> list[str]:
    """``python -m topo_pipeline.dev`` with a stand-in for ``dg dev``, as an argv."""
    script = tmp_path / "dev_with_fake_dg_dev.py"
    script.write_text(DEV_WITH_FAKE_DG_DEV)
    return [sys.executable, str(script), "--port", str(free_port()), "--sim-days", "1"]


def test_ctrl_c_stops_dev_with_status_0(tmp_path: Path) -> None:
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, a fixed script
            fake_dev_argv(tmp_path),
            cwd=REPO_ROOT,
            env=dev_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's foreground job, without the terminal
        )
    session = DevSession(process, log_path, tmp_path / "dagster_home", tmp_path / "data", 0)
    try:
        session.wait_for_output("fake dg dev: running", 120)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0, session.output()
    finally:
        stop_groups([process], session.home, first=signal.SIGKILL, grace=10)
    output = session.output()
    assert "fake dg dev: stopping" in output  # Ctrl-C was passed on to dg dev
    assert "Stopped" in output


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_ctrl_c_in_a_terminal_ends_make_dev_without_an_error(tmp_path: Path) -> None:
    # make dev's recipe, with the stand-in for dg dev, run by make in a terminal.
    command = " ".join(f"'{arg}'" for arg in fake_dev_argv(tmp_path))
    (tmp_path / "Makefile").write_text(f"dev:\n\t{command}\n")
    env = dev_env(tmp_path)
    make = shutil.which("make")
    assert make is not None
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a terminal session whose foreground job is make
        try:
            os.chdir(REPO_ROOT)
            os.execve(make, [make, "-f", str(tmp_path / "Makefile"), "dev"], env)  # noqa: S606
        finally:
            os._exit(127)
    output = b""
    try:
        output = _read_until(terminal, b"fake dg dev: running", 120)
        os.write(terminal, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground
        output += _read_until(terminal, None, 60)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(terminal)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "fake dg dev: stopping" in text
    assert "Stopped" in text
    assert "***" not in text  # no "make: *** [Makefile:2: dev] Interrupt" / "Error 130"


def _read_until(terminal: int, marker: bytes | None, timeout: float) -> bytes:
    """What ``terminal`` prints until ``marker`` (``None``: until it closes)."""
    deadline = time.monotonic() + timeout
    read = b""
    while marker is None or marker not in read:
        remaining = deadline - time.monotonic()
        assert remaining > 0, (
            f"no {marker!r} after {timeout:.0f}s:\n{read.decode(errors='replace')}"
        )
        ready, _, _ = select.select([terminal], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: every process of the terminal's session is gone
            chunk = b""
        if not chunk:
            assert marker is None, f"the terminal closed before {marker!r}:\n{read.decode()}"
            return read
        read += chunk
    return read


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevSession]:
    # A user's shell without Topo credentials or settings, with its own state folders.
    env = shell_env()
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    env["TOPO_DUCKDB_PATH"] = str(tmp_path / "data" / "pipeline.duckdb")
    env["TOPO_ANALYST_DUCKDB_PATH"] = str(tmp_path / "data" / "analyst.duckdb")
    port = free_port()
    log_path = tmp_path / "make_dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                sys.executable,
                *("-m", "topo_pipeline.dev", "--port", str(port), "--sim-days", str(SIM_DAYS)),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, like a terminal's foreground job: Ctrl-C is a SIGINT
            # to the whole group.
            start_new_session=True,
        )
    session = DevSession(process, log_path, Path(env["DAGSTER_HOME"]), tmp_path / "data", port)
    try:
        yield session
    finally:
        stop_groups([process], session.home, first=signal.SIGKILL, grace=10)


@pytest.mark.slow
def test_make_dev_serves_the_ui_on_the_simulator_and_stops_cleanly_on_ctrl_c(
    dev: DevSession,
) -> None:
    first_day = dev.wait_for_output(
        r"simulated Topo API at (http://127\.0\.0\.1:\d+/v1) with \d+ tasks from "
        r"(\d{4}-\d\d-\d\d) to now",
        READY_TIMEOUT,
    )
    sim_url, first = first_day.group(1), date.fromisoformat(first_day.group(2))
    dev.wait_for_output(rf"Dagster UI ready: http://127\.0\.0\.1:{dev.port}\b", READY_TIMEOUT)

    # DAGSTER_HOME prepared with the repository's instance settings.
    assert (dev.home / "dagster.yaml").read_bytes() == INSTANCE_YAML.read_bytes()
    # The simulator answers with the key make dev handed to Dagster.
    response = httpx.get(
        f"{sim_url}/tasks",
        params={"size": 1},
        headers={"Authorization": f"Bearer {DEMO_API_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["total_count"] > 0

    # The UI serves the code location with the simulator's days as its partitions, and
    # the schedule and sensors are on.
    with httpx.Client(base_url=f"http://127.0.0.1:{dev.port}", timeout=60) as client:

        def status() -> dict:
            body = client.post("/graphql", json={"query": STATUS_QUERY}).json()
            assert not body.get("errors"), body
            return body["data"]

        deadline = time.monotonic() + READY_TIMEOUT
        data = status()
        while data["workspaceOrError"]["locationEntries"][0]["loadStatus"] != "LOADED":
            assert time.monotonic() < deadline, "the code location did not load"
            time.sleep(1)
            data = status()
    location = data["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    repository = location["repositories"][0]
    states = [s["sensorState"]["status"] for s in repository["sensors"]]
    states += [s["scheduleState"]["status"] for s in repository["schedules"]]
    assert states, "no schedule or sensor"
    assert set(states) == {"RUNNING"}
    keys = data["assetNodes"][0]["partitionKeys"]
    assert keys[0] == first.isoformat()  # TOPO_START_DATE set to the first simulated day
    assert len(keys) >= SIM_DAYS - 1  # every complete simulated day

    # Ctrl-C in the terminal: SIGINT to the foreground process group.
    os.killpg(dev.process.pid, signal.SIGINT)
    try:
        returncode = dev.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("make dev did not stop within 120 s of Ctrl-C:\n" + dev.output()[-4000:])
    assert returncode == 0, dev.output()[-4000:]  # a stop asked for is no failure
    deadline = time.monotonic() + 30
    while group_alive(dev.process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(dev.process.pid), "processes of make dev outlived it"
    assert not pids_using_home(dev.home)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{sim_url}/tasks", timeout=5)  # the simulator stopped too

    output = dev.output()
    assert "Stopping Dagster" in output
    assert DEMO_API_KEY not in output  # make dev never prints a key
    # It runs the current CLI (dg dev), so Dagster warns of no superseded command.
    assert "superseded" not in output.lower(), output[-4000:]
