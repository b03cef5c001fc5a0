"""What the benchmarks share: each measured run is a child process of the benchmark's own
script, so its peak RSS is its own, and it hands its figures back as one line on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULT_MARKER = "BENCH-RESULT "


def run_child(script: str, command: str, spec: Any, log_path: Path) -> dict[str, Any]:
    """Run ``python script command <spec as JSON>`` from the repository; return its figures.

    The child's stderr goes to ``log_path``. Raises ``RuntimeError`` with the log's tail
    if the child reported no figures (it failed).
    """
    with log_path.open("w") as log:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, script, command, json.dumps(asdict(spec))],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=REPO,
            check=False,
        )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = log_path.read_text()[-4000:]
    raise RuntimeError(f"{command} failed (exit {done.returncode}); log tail:\n{tail}")


def report(result: Any) -> None:
    """Hand a child's figures (a dataclass) back to :func:`run_child`."""
    print(RESULT_MARKER + json.dumps(asdict(result)), flush=True)


@dataclass(frozen=True)
class CliRun:
    """One ``dagster asset materialize`` of the code location, timed."""

    started_at: float
    """Wall clock (seconds since the epoch, as the run's event timestamps) at its start."""
    ended_at: float
    """Wall clock at its exit."""
    seconds: float
    """Its wall time, on the monotonic clock."""


def materialize_with_the_cli(selection: list[str], env: dict[str, str], cwd: Path) -> CliRun:
    """Run ``dagster asset materialize -m topo_pipeline.definitions`` with ``selection``
    (``--select`` and partition options) in ``env``; raise if it fails."""
    started = time.monotonic()
    started_at = time.time()
    subprocess.run(  # noqa: S603 - the venv's own dagster CLI
        [
            str(Path(sys.executable).parent / "dagster"),
            *("asset", "materialize", "-m", "topo_pipeline.definitions"),
            *selection,
        ],
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    return CliRun(started_at, time.time(), time.monotonic() - started)


def tasks_metadata(logs: list[Any]) -> dict[str, Any]:
    """The metadata of the run's ``topo/tasks`` materialization (the one with the fetch's
    figures), read from the run's event log entries."""
    return next(
        {key: value.value for key, value in m.metadata.items()}
        for m in (
            entry.dagster_event.step_materialization_data.materialization
            for entry in logs
            if entry.dagster_event is not None
            and entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        )
        if "fetch_wall_seconds" in m.metadata
    )
