"""What a run does about runs that died holding a pool slot: :func:`guard_run`.

:class:`~topo_pipeline.defs.resources.WarehouseResource` enters :func:`guard_run` when a run
initialises it: under the in-process executor, in the run's own process, before any step
claims a pool slot. The guard tags the run with its host and process
(:func:`topo_pipeline.recovery.run_tags`); then, at once and every
:data:`WATCH_INTERVAL_SECONDS` until the run ends, it fails the dead runs holding or waiting
for a pool slot and frees the slots of ended runs (:func:`topo_pipeline.recovery.recover`),
logging each action and which run holds the slot a step waits for. Why only the run's own
process: ``docs/design.md``, "Dead runs".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from topo_pipeline.recovery import dead_run_reason, executing_pid, recover, run_tags

WATCH_INTERVAL_SECONDS = 10.0
"""How often a run looks again at the runs holding the slots it may wait for."""

WAIT_REPEAT_SECONDS = 300.0
"""A wait that does not change is described again after this long."""

_LOGGER = logging.getLogger(__name__)


@contextmanager
def guard_run(
    instance: dg.DagsterInstance | None, run: dg.DagsterRun | None, log: logging.Logger | None
) -> Iterator[None]:
    """Tag ``run``, recover from dead slot holders now and while the block runs.

    Does nothing outside a run (``run`` is ``None``: a sensor or a test building the
    resource) and in a process that does not execute the run's steps.
    """
    if instance is None or run is None or executing_pid(instance, run.run_id)[0] != os.getpid():
        yield
        return
    instance.add_run_tags(run.run_id, run_tags())
    watch = _Watch(instance, run.run_id, log or _LOGGER)
    watch.look()
    if not instance.event_log_storage.supports_global_concurrency_limits:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=watch.loop, args=(stop,), name=f"run-guard-{run.run_id[:8]}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=WATCH_INTERVAL_SECONDS)


class _Watch:
    """The looks of one run at the pools: recovery, and a line about a wait."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, log: logging.Logger) -> None:
        self.instance = instance
        self.run_id = run_id
        self.log = log
        self.last_wait = ""
        self.last_wait_at = 0.0

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(WATCH_INTERVAL_SECONDS):
            self.look()

    def look(self) -> None:
        """Recover from dead slot holders; describe a wait; never raise (the run goes on)."""
        try:
            for line in recover(self.instance, slot_holders_only=True).lines():
                self.log.warning("%s; it held or waited for a pool slot this run may need", line)
            self.describe_wait()
        except Exception as error:  # noqa: BLE001 - a failed look must not fail the run
            self.log.warning("could not check the pools for runs that died: %r", error)

    def describe_wait(self) -> None:
        text = describe_pool_waits(self.instance, self.run_id)
        now = time.monotonic()
        if not text:
            self.last_wait = ""
            return
        if text != self.last_wait or now - self.last_wait_at >= WAIT_REPEAT_SECONDS:
            self.log.info("%s", text)
            self.last_wait, self.last_wait_at = text, now


def describe_pool_waits(instance: dg.DagsterInstance, run_id: str) -> str:
    """One line per step of ``run_id`` waiting for a pool slot, naming who holds the slots.

    Empty when no step of the run waits.
    """
    storage = instance.event_log_storage
    infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
    lines = []
    for pool, info in infos.items():
        waiting = [
            step.step_key
            for step in info.pending_steps
            if step.run_id == run_id and step.assigned_timestamp is None
        ]
        if not waiting:
            continue
        holders = [
            _describe_holder(instance, slot.run_id, slot.step_key) for slot in info.claimed_slots
        ]
        limit = info.limit if info.limit is not None else info.slot_count
        text = f"step {', '.join(waiting)} is waiting for a slot of pool {pool!r} (limit {limit})"
        if holders:
            text += f", held by {'; '.join(holders)}"
        lines.append(text)
    return "\n".join(lines)


def _describe_holder(instance: dg.DagsterInstance, run_id: str, step_key: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (step {step_key}; the run no longer exists)"
    state = run.status.value
    reason = dead_run_reason(instance, run)
    if reason is not None:
        state = f"{state}, but {reason}"
    return f"run {run_id} (job {run.job_name}, step {step_key}, {state})"
