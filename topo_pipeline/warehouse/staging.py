"""Staging a run's fetched tasks on disk while pages arrive, for landing them at once.

A range run can fetch hundreds of thousands of tasks. Holding them all as Python objects
until the last page arrives costs a few KB each; instead every page goes into a
:class:`TaskStage` as it arrives: a run-local DuckDB file (never the pipeline's own file,
so fetching holds no lock on the warehouse), filled in columnar batches of
:data:`STAGE_BATCH_SIZE` tasks. Memory stays flat whatever the size of the run. Once the
fetch has finished, :func:`~topo_pipeline.warehouse.landing.land_stage` lands it.

Each task lands in the partition whose window holds its ``created_at`` (compared in UTC,
so DST days are 23 or 25 hours), a task in no window is refused when it is staged, and an
empty window is a legitimate empty day.

A stage folder carries its process's :class:`~topo_pipeline.liveness.Owner` in its name;
:func:`task_stage` first removes the folders of processes that died (a run killed with
``kill -9`` cannot remove its own), never one whose process is still running.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import duckdb
import numpy as np

from topo_pipeline.api.models import Task
from topo_pipeline.api.windows import Window, WindowResult
from topo_pipeline.liveness import current_owner, is_alive, parse_owner
from topo_pipeline.warehouse.duckdb import ALLOCATOR_FLUSH_THRESHOLD
from topo_pipeline.warehouse.duplicates import DuplicateReport, staged_duplicates
from topo_pipeline.warehouse.queries import load_sql, render_sql
from topo_pipeline.warehouse.schema import STAGED_TASKS
from topo_pipeline.warehouse.task_checks import MAX_EXAMPLES
from topo_pipeline.warehouse.tasks import PartitionWindow, WindowIndex, task_frame

STAGE_BATCH_SIZE = 2_000
"""Tasks buffered before they are written to the stage (20 pages: ~6 MB of objects)."""

STAGE_FILE_NAME = "stage.duckdb"

STAGE_FOLDER_PREFIX = ".topo-stage-"
"""Stage folders are ``<prefix><owner token>-<random>`` (see :func:`task_stage`)."""

OWNERLESS_STAGE_MAX_AGE_SECONDS = 24 * 3600
"""A stage folder without an owner in its name (an older release's) is left over after this."""

log = logging.getLogger(__name__)

_BATCH_VIEW = "staged_tasks_batch"
"""Name the batch frame is registered under; ``insert_staged_tasks_batch.sql`` reads it."""

_STAGE_MEMORY_LIMIT = "32MB"
"""DuckDB memory of the staging connection; beyond it DuckDB writes blocks to disk."""


class TaskStage:
    """A run's fetched tasks, appended in arrival order to a DuckDB file at ``path``.

    Feed it with :meth:`add`, or hand it to :meth:`TopoClient.fetch_windows` as the page
    handler (it is a :class:`~topo_pipeline.api.windows.PageHandler`), then
    land it with :func:`~topo_pipeline.warehouse.landing.land_stage`. The same task may be added
    several times; landing keeps the copy with the latest ``updated_at`` (the last one added
    among equals), and :meth:`duplicates` reports them. Not thread-safe: add from one thread.

    Args:
        path: the stage file; it must not exist yet.
        windows: the run's partitions; their dates must be distinct and their windows
            must not overlap.
        batch_size: tasks buffered before a batch is written.

    Raises:
        ValueError: on construction, for repeated or overlapping windows.
    """

    def __init__(
        self,
        path: str | Path,
        windows: Sequence[PartitionWindow],
        *,
        batch_size: int = STAGE_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.path = Path(path)
        self.windows = list(windows)
        self._index = WindowIndex(self.windows)
        self._batch_size = batch_size
        self._buffer: list[Task] = []
        self._arrivals = 0
        self._failed = False
        if self.path.exists():
            raise FileExistsError(f"stage file {self.path} already exists")
        self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(str(self.path))
        try:
            self._con.execute("SET TimeZone = 'UTC'")
            self._con.execute(f"SET memory_limit = '{_STAGE_MEMORY_LIMIT}'")
            self._con.execute(f"SET allocator_flush_threshold = '{ALLOCATOR_FLUSH_THRESHOLD}'")
            self._con.execute(STAGED_TASKS.create_sql(qualified=STAGED_TASKS.name))
        except BaseException:
            self.close()
            raise

    @property
    def staged(self) -> int:
        """Tasks added so far (a task added twice counts twice)."""
        return self._arrivals + len(self._buffer)

    @property
    def failed(self) -> bool:
        """True once writing a batch failed: the stage is incomplete and cannot be landed."""
        return self._failed

    def add(self, tasks: Iterable[Task]) -> None:
        """Append ``tasks``; they are written once a batch is full.

        Raises:
            ValueError: if a task lies in none of the windows, or its ``raw`` cannot be
                stored as JSON (raised when its batch is written).
            RuntimeError: if the stage is closed or failed earlier.
        """
        self._writable()
        self._buffer.extend(tasks)
        if len(self._buffer) >= self._batch_size:
            self.flush()

    def __call__(self, window: Window, tasks: list[Task]) -> None:
        """:meth:`add`, as the page handler the client feeds."""
        self.add(tasks)

    def flush(self) -> None:
        """Write the buffered tasks to the stage file.

        Raises:
            ValueError: as :meth:`add`; the stage is then failed.
            RuntimeError: if the stage is closed or failed earlier.
        """
        con = self._writable()
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            frame = task_frame(batch, self._index)
            first = self._arrivals
            frame["arrival"] = np.arange(first, first + len(batch), dtype=np.int64)
            con.register(_BATCH_VIEW, frame)
            try:
                con.execute(_insert_batch_sql())
            finally:
                con.unregister(_BATCH_VIEW)
        except BaseException:
            self._failed = True
            raise
        self._arrivals += len(batch)

    def close(self) -> None:
        """Write what is buffered (unless the stage failed) and close the file. Idempotent.

        Raises:
            ValueError: as :meth:`add`, for the last batch; the file is closed anyway.
        """
        if self._con is None:
            return
        try:
            if not self._failed:
                self.flush()
        finally:
            self._buffer = []
            self._con.close()
            self._con = None

    def discard(self, window: Window) -> None:
        """Drop every task added so far whose ``created_at`` is in ``[start, end)``.

        The client calls this when a window's set of tasks changed while it was being
        read, before reading it afresh: a task handed over earlier may be gone from Topo.

        Raises:
            RuntimeError: if the stage is closed or failed earlier.
        """
        con = self._writable()
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        self._buffer = [t for t in self._buffer if not start <= t.created_at < end]
        con.execute(load_sql("delete_staged_tasks_in_window"), {"start": start, "end": end})

    def window_done(self, result: WindowResult) -> None:
        """Nothing to do: the stage holds tasks, not progress (the page handler's last call)."""

    def duplicates(self, max_examples: int = MAX_EXAMPLES) -> DuplicateReport:
        """The ids added more than once and how their copies differ (identical, older
        versions, conflicts); see :mod:`topo_pipeline.warehouse.duplicates`.

        Writes what is buffered first; call it before landing (landing closes the stage).

        Raises:
            ValueError: as :meth:`add`, for the buffered batch.
            RuntimeError: if the stage is closed or failed earlier.
        """
        self.flush()
        return staged_duplicates(self._writable(), max_examples)

    def abandon(self) -> None:
        """Close the file without writing what is buffered; it can no longer be landed."""
        self._failed = self._failed or bool(self._buffer)
        self._buffer = []
        self.close()

    def _writable(self) -> duckdb.DuckDBPyConnection:
        if self._failed:
            raise RuntimeError(f"stage {self.path} failed earlier; it cannot take more tasks")
        if self._con is None:
            raise RuntimeError(f"stage {self.path} is closed")
        return self._con

    def __enter__(self) -> TaskStage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def task_stage(
    windows: Sequence[PartitionWindow],
    *,
    directory: str | Path | None = None,
    batch_size: int = STAGE_BATCH_SIZE,
) -> Iterator[TaskStage]:
    """A :class:`TaskStage` in a fresh temporary folder, removed with the stage on exit.

    Folders in ``directory`` left behind by stages whose process died are removed
    first (:func:`remove_dead_stages`).

    Args:
        windows: the run's partitions.
        directory: where the temporary folder goes (default: the system's temp folder).
        batch_size: tasks buffered before a batch is written.
    """
    remove_dead_stages(directory)
    prefix = f"{STAGE_FOLDER_PREFIX}{current_owner().token()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=directory) as folder:
        stage = TaskStage(Path(folder) / STAGE_FILE_NAME, windows, batch_size=batch_size)
        try:
            yield stage
        except BaseException:
            # Only closed, not flushed: that could raise again and hide the first error.
            stage.abandon()
            raise
        stage.close()


def dead_stages(directory: str | Path | None = None) -> list[Path]:
    """The stage folders in ``directory`` whose process is no longer running.

    A folder named for a live process never is, whatever its age; one without an owner
    in its name is once it is :data:`OWNERLESS_STAGE_MAX_AGE_SECONDS` old.

    Args:
        directory: where stages are made (default: the system's temp folder).
    """
    folder = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    dead = []
    for candidate in sorted(folder.glob(f"{STAGE_FOLDER_PREFIX}*")):
        if not candidate.is_dir():
            continue
        owner = parse_owner(candidate.name[len(STAGE_FOLDER_PREFIX) :])
        if owner is not None:
            if not is_alive(owner):
                dead.append(candidate)
            continue
        try:
            age = time.time() - candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= OWNERLESS_STAGE_MAX_AGE_SECONDS:
            dead.append(candidate)
    return dead


def remove_dead_stages(directory: str | Path | None = None) -> list[Path]:
    """Remove the :func:`dead_stages` of ``directory``; returns the folders removed."""
    removed = []
    for candidate in dead_stages(directory):
        shutil.rmtree(candidate, ignore_errors=True)
        if not candidate.exists():
            removed.append(candidate)
            log.info("removed %s, the stage of a run whose process is gone", candidate)
    return removed


def _insert_batch_sql() -> str:
    casts = ",\n    ".join(
        f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in STAGED_TASKS.columns
    )
    return render_sql("insert_staged_tasks_batch", casts=casts)
