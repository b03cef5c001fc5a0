"""What the benchmarks share: each measured run is a child process of the benchmark's own
script, so its peak RSS is its own, and it hands its figures back as one line on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
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
