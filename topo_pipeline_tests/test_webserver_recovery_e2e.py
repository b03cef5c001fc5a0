"""Runs that die, end to end: runs killed inside their pool step (a UI run under the
daemon, a CLI run no code server watches) do not wedge the runs after them.

On a stack of its own (:mod:`topo_pipeline_tests.webserver_stack`), so it runs beside the
other UI test modules on another worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from typing import Any

import pytest

from topo_pipeline.liveness import parse_owner
from topo_pipeline.recovery import PROCESS_TAG
from topo_pipeline.simulator import FaultPlan
from topo_pipeline_tests.processes import venv_executable
from topo_pipeline_tests.webserver_stack import (
    FINISHED,
    POLL_SECONDS,
    POOL_QUERY,
    PUBLISH_TIMEOUT,
    RUN_TIMEOUT,
    TASKS_KEY,
    UI_DAYS,
    Stack,
    asset_nodes,
    tag_of,
    ui_materialize_one_partition,
)

pytestmark = pytest.mark.slow


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
