"""Recovering from runs whose process died: failed runs, freed pool slots, no leftovers.

A run killed with ``kill -9`` (an out-of-memory kill, a node restart) cannot report its
own end: Dagster keeps it ``STARTED`` and, worse, keeps the slot of pool ``duckdb`` its
step held, so every later run waits for that slot forever. Three pieces fix that:

* Every run records which process executes its steps: the code location's executor
  (:mod:`topo_pipeline.defs.executor`) tags the run with its host and
  :class:`~topo_pipeline.liveness.Owner` when it starts (:data:`PROCESS_TAG`,
  :data:`HOST_TAG`). :func:`dead_run_reason` reads them back and says whether that
  process is gone.
* Under the daemon, Dagster's run monitoring (``run_monitoring`` in ``dagster.yaml``)
  asks the run launcher about every ``STARTED`` run; :class:`MonitoredRunLauncher` is
  Dagster's default launcher answering with :func:`dead_run_reason`, so a dead run is
  marked failed at the next monitoring pass, and monitoring frees the pool slots of
  finished runs (``free_slots_after_run_end_seconds``). Nothing to do by hand.
* Without a daemon (CLI runs, cron), one command does the same at once::

      make recover        # or: python -m topo_pipeline.recovery [--dry-run]

  It marks every dead run failed, frees the slots held by runs that have finished, and
  removes stage folders and analyst-copy temporary files whose process is gone.

Only runs of this machine are judged: a run tagged with another host is left alone.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from topo_pipeline.liveness import is_alive, parse_owner, pid_alive_since

PROCESS_TAG = "topo_pipeline/process"
"""Run tag: the :class:`~topo_pipeline.liveness.Owner` token of the process executing the run."""

HOST_TAG = "topo_pipeline/host"
"""Run tag: the host that process runs on."""

_JUDGED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
"""Statuses of runs that should have a live process."""


def this_host() -> str:
    """The host name runs are tagged with."""
    return socket.gethostname()


def dead_run_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why ``run``'s process is known to be gone, or ``None`` (alive, or not known).

    Only a ``STARTED`` or ``CANCELING`` run has a process to judge. The process is the
    one tagged :data:`PROCESS_TAG`; a run without the tag (its steps have not started
    yet, or it ran under another executor) falls back to the process id Dagster records
    when steps start. A run tagged with another host is never judged.
    """
    if run.status not in _JUDGED:
        return None
    host = run.tags.get(HOST_TAG)
    if host is not None and host != this_host():
        return None
    owner = parse_owner(run.tags.get(PROCESS_TAG, ""))
    if owner is not None:
        if is_alive(owner):
            return None
        return f"its process (pid {owner.pid} on {host or 'this host'}) is gone"
    pid, since = _recorded_pid(instance, run.run_id)
    if pid is None or pid_alive_since(pid, since):
        return None
    return f"its process (pid {pid}) is gone"


def _recorded_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int | None, float]:
    """The last process id Dagster's engine events name for ``run_id``, and when."""
    for entry in reversed(instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)):
        event = entry.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None and str(pid.value).isdigit():
            return int(str(pid.value)), entry.timestamp
    return None, 0.0


class MonitoredRunLauncher(DefaultRunLauncher):
    """Dagster's default run launcher, able to tell run monitoring that a run's process died.

    Configured in ``dagster.yaml`` (``run_launcher``); runs are launched exactly as by
    ``DefaultRunLauncher``. With ``run_monitoring`` enabled the daemon calls
    :meth:`check_run_worker_health` for every ``STARTED`` run, CLI runs included, and
    marks the run failed when it answers ``FAILED``.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        reason = dead_run_reason(self._instance, run)
        if reason is None:
            # Unknown counts as running: only a process known to be gone fails a run.
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run {run.run_id}: {reason}")


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
        """One line per action, for the console."""
        out = [f"marked run {run_id} failed: {reason}" for run_id, reason in self.failed_runs]
        out += [f"freed the pool slots of run {run_id}" for run_id in self.freed_runs]
        out += [f"removed {path}" for path in self.removed_files]
        return out


def recover(instance: dg.DagsterInstance, *, dry_run: bool = False) -> RecoveryReport:
    """Mark runs whose process died failed and free the pool slots of finished runs.

    Safe while other runs are going: a run whose process is alive (or not known to be
    dead) is not touched, and only slots of runs that have finished are freed.

    Args:
        instance: the Dagster instance (``$DAGSTER_HOME``).
        dry_run: report only; change nothing.
    """
    report = RecoveryReport()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_JUDGED)):
        reason = dead_run_reason(instance, run)
        if reason is None:
            continue
        report.failed_runs.append((run.run_id, reason))
        if not dry_run:
            instance.report_run_failed(
                run, f"Marked failed by topo_pipeline.recovery: {reason} (killed or crashed)."
            )
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        failing = {run_id for run_id, _ in report.failed_runs}
        for run_id in sorted(storage.get_concurrency_run_ids()):
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished or run_id in failing:
                report.freed_runs.append(run_id)
                if not dry_run:
                    storage.free_concurrency_slots_for_run(run_id)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m topo_pipeline.recovery``: recover ``$DAGSTER_HOME`` and the data folder."""
    parser = argparse.ArgumentParser(
        prog="python -m topo_pipeline.recovery",
        description=(
            "Mark runs whose process died (kill -9, out of memory, a restart) failed, free "
            "the pool slots they held, and remove their stage folders and analyst-copy "
            "temporary files. Runs that are alive are never touched."
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
    # Imported here: the launcher above is loaded by every Dagster process, which need
    # neither the settings nor DuckDB.
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
