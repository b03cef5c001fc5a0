"""Runs whose process died: recognised, marked failed, their pool slots freed.

A run killed with ``kill -9`` (an out-of-memory kill, a node restart) cannot report its
own end: Dagster keeps it ``STARTED`` and keeps the slot of pool ``duckdb`` its step
held, so every later run would wait for that slot forever. This module judges runs and
recovers from dead ones, with Dagster's public instance methods only:

* Every run tags itself with its host and process (:func:`run_tags`: :data:`HOST_TAG`,
  :data:`PROCESS_TAG`) when it initialises the warehouse
  (:mod:`topo_pipeline.defs.run_guard`). :func:`dead_run_reason` reads them back and
  says whether that process is gone; a run tagged with another host is never judged.
* :func:`recover` marks dead runs failed (``DagsterInstance.report_run_failed``) and
  frees the pool slots of runs that have ended
  (``event_log_storage.free_concurrency_slots_for_run``). Every run does this for the
  runs holding pool slots before it claims one and while it waits
  (:mod:`topo_pipeline.defs.run_guard`); under the daemon a sensor does it for every run
  (:mod:`topo_pipeline.defs.recovery_sensor`). No manual step is needed.
* By hand, as a tool (``make recover``)::

      python -m topo_pipeline.recovery [--dry-run]

  also removes stage folders and analyst-copy temporary files whose process is gone.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from topo_pipeline.liveness import current_owner, is_alive, parse_owner, pid_alive_since

PROCESS_TAG = "topo_pipeline/process"
"""Run tag: the :class:`~topo_pipeline.liveness.Owner` token of the process executing the run."""

HOST_TAG = "topo_pipeline/host"
"""Run tag: the host that process runs on."""

FREE_SLOTS_AFTER_END_SECONDS = 10.0
"""Slots of a run that has ended are freed this long after its end (at once when its
process is known to be gone), as run monitoring's ``free_slots_after_run_end_seconds``."""

_JUDGED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
"""Statuses of runs that should have a live process."""


def this_host() -> str:
    """The host name runs are tagged with."""
    return socket.gethostname()


def run_tags() -> dict[str, str]:
    """The tags naming this process as the one executing a run."""
    return {HOST_TAG: this_host(), PROCESS_TAG: current_owner().token()}


def dead_run_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why ``run``'s process is known to be gone, or ``None`` (alive, or not known).

    Only a ``STARTED`` or ``CANCELING`` run has a process to judge. The process is the
    one tagged :data:`PROCESS_TAG`; a run without the tag falls back to the process id
    Dagster records when the run's steps start (:func:`executing_pid`). A run tagged
    with another host is never judged.
    """
    if run.status not in _JUDGED:
        return None
    return process_gone_reason(instance, run)


def process_gone_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """:func:`dead_run_reason` whatever the run's status."""
    host = run.tags.get(HOST_TAG)
    if host is not None and host != this_host():
        return None
    owner = parse_owner(run.tags.get(PROCESS_TAG, ""))
    if owner is not None:
        if is_alive(owner):
            return None
        return f"its process (pid {owner.pid} on {host or 'this host'}) is gone"
    pid, since = executing_pid(instance, run.run_id)
    if pid is None or pid_alive_since(pid, since):
        return None
    return f"its process (pid {pid}) is gone"


def executing_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int | None, float]:
    """The process executing ``run_id``'s steps as Dagster's engine events record it, and when.

    The last run-level engine event carrying a ``pid`` ("Started process for run",
    "Executing steps in process", ...). Events of a step (a multiprocess executor's step
    processes) are left out: their process ends with the step, not with the run.
    """
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    for entry in reversed(entries):
        event = entry.dagster_event
        if event is None or entry.step_key is not None:
            continue
        data = event.engine_event_data
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None and str(pid.value).isdigit():
            return int(str(pid.value)), entry.timestamp
    return None, 0.0


@dataclass
class RecoveryReport:
    """What :func:`recover` did (or, in a dry run, would do)."""

    failed_runs: list[tuple[str, str]] = field(default_factory=list)
    """``(run id, reason)`` of each run marked failed."""
    freed_runs: list[str] = field(default_factory=list)
    """Runs whose pool slots (or places in a pool's queue) were freed."""
    removed_files: list[str] = field(default_factory=list)
    """Stage folders and analyst-copy temporary files of dead processes."""

    def lines(self) -> list[str]:
        """One line per action, for the console or a log."""
        out = [f"marked run {run_id} failed: {reason}" for run_id, reason in self.failed_runs]
        out += [f"freed the pool slots of run {run_id}" for run_id in self.freed_runs]
        out += [f"removed {path}" for path in self.removed_files]
        return out


def slot_run_ids(instance: dg.DagsterInstance) -> set[str]:
    """Runs holding a slot of any pool, or waiting in a pool's queue."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    run_ids = set(storage.get_concurrency_run_ids())
    for info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).values():
        run_ids.update(slot.run_id for slot in info.claimed_slots)
    return run_ids


def recover(
    instance: dg.DagsterInstance, *, dry_run: bool = False, slot_holders_only: bool = False
) -> RecoveryReport:
    """Mark runs whose process died failed and free the pool slots of ended runs.

    Safe while other runs are going: a run whose process is alive (or not known to be
    dead) is not touched, and only slots of runs that have ended (or no longer exist)
    are freed: at once when the run's process is gone, else
    :data:`FREE_SLOTS_AFTER_END_SECONDS` after its end.

    Args:
        instance: the Dagster instance.
        dry_run: report only; change nothing.
        slot_holders_only: judge only the runs holding or waiting for a pool slot (what
            a run does before it claims one), not every ``STARTED`` run.
    """
    report = RecoveryReport()
    holders = slot_run_ids(instance)
    if slot_holders_only:
        # Dagster refuses a RunsFilter with an empty list of run ids: no holder, no query.
        filters = dg.RunsFilter(run_ids=sorted(holders), statuses=_JUDGED) if holders else None
        judged = instance.get_runs(filters=filters) if filters is not None else []
    else:
        judged = instance.get_runs(filters=dg.RunsFilter(statuses=_JUDGED))
    failing = set()
    for run in judged:
        reason = dead_run_reason(instance, run)
        if reason is None:
            continue
        failing.add(run.run_id)
        if not dry_run:
            current = instance.get_run_by_id(run.run_id)
            if current is None or current.status not in _JUDGED:
                continue  # someone else (another run, the sensor) got there first
            instance.report_run_failed(
                current, f"Marked failed by topo_pipeline.recovery: {reason} (killed or crashed)."
            )
        report.failed_runs.append((run.run_id, reason))
    records = {
        record.dagster_run.run_id: record
        for record in (
            instance.get_run_records(dg.RunsFilter(run_ids=sorted(holders))) if holders else []
        )
    }
    now = time.time()
    for run_id in sorted(holders):
        record = records.get(run_id)
        if record is not None and run_id not in failing:
            run = record.dagster_run
            if not run.is_finished:
                continue
            # A run that has just ended may still be leaving its step (a canceled run).
            ended = record.end_time or record.update_timestamp.timestamp()
            recent = now - ended < FREE_SLOTS_AFTER_END_SECONDS
            if recent and process_gone_reason(instance, run) is None:
                continue
        report.freed_runs.append(run_id)
        if not dry_run:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m topo_pipeline.recovery``: recover ``$DAGSTER_HOME`` and the data folder."""
    parser = argparse.ArgumentParser(
        prog="python -m topo_pipeline.recovery",
        description=(
            "Mark runs whose process died (kill -9, out of memory, a restart) failed, free "
            "the pool slots they held, and remove their stage folders and analyst-copy "
            "temporary files. Runs that are alive are never touched. Runs and the daemon "
            "do this by themselves; this is for a look, or a clean-up, by hand."
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    args = parser.parse_args(argv)

    with dg.DagsterInstance.get() as instance:
        report = recover(instance, dry_run=args.dry_run)
    report.removed_files += _remove_file_leftovers(dry_run=args.dry_run)
    lines = report.lines()
    prefix = "would have " if args.dry_run else ""
    for line in lines:
        print(prefix + line)  # noqa: T201 - console output of a command
    if not lines:
        print("nothing to recover: no dead run, no slot held by a finished run, no leftovers")  # noqa: T201
    return 0


def _remove_file_leftovers(*, dry_run: bool) -> list[str]:
    """Stage folders and analyst-copy temporary files of dead processes (settings: the env)."""
    # Imported here: the sensor and the warehouse resource import this module, and need
    # neither the settings nor the warehouse modules.
    from topo_pipeline.settings import Settings
    from topo_pipeline.warehouse.analyst_copy import (
        dead_publishing_leftovers,
        remove_dead_publishing_leftovers,
    )
    from topo_pipeline.warehouse.staging import dead_stages, remove_dead_stages

    settings = Settings.from_env()
    folder, copy = settings.duckdb_path.parent, settings.analyst_duckdb_path
    if dry_run:
        found = [*dead_stages(folder), *dead_publishing_leftovers(copy)]
    else:
        found = [*remove_dead_stages(folder), *remove_dead_publishing_leftovers(copy)]
    return [str(path) for path in found]


if __name__ == "__main__":
    sys.exit(main())
