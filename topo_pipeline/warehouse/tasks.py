"""Landing Topo tasks in ``warehouse.topo.tasks``, one daily partition at a time.

A partition is the tasks created in ``[day start, next day start)`` of the pipeline's
timezone. :func:`replace_task_partitions` swaps whole partitions in one transaction: it
deletes their rows and inserts the freshly fetched tasks, so a re-run shows status changes,
drops tasks the API no longer returns, and a failure part-way leaves the old rows intact.

Rows go in as columnar batches (a pandas frame registered with DuckDB and inserted
``BY NAME`` with explicit casts), never row by row: a busy day holds ~100,000 tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice, pairwise

import duckdb
import numpy as np
import pandas as pd

from topo_pipeline.api.models import Task
from topo_pipeline.warehouse.duckdb import transaction
from topo_pipeline.warehouse.queries import load_sql

BATCH_SIZE = 10_000
"""Tasks per insert: large enough to be fast, small enough to keep a streamed run's memory flat."""

_BATCH_VIEW = "topo_tasks_batch"
"""Name the batch frame is registered under; ``insert_topo_tasks_batch.sql`` reads it."""

# Built once: json.dumps with options builds a new encoder per call, a visible cost at 100k rows.
# Compact, non-ASCII kept as is; NaN/Infinity refused because they are not JSON.
_RAW_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STRING_FIELDS = (
    "id",
    "organization_id",
    "type",
    "priority",
    "status",
    "sequence_id",
    "assignee_user_id",
    "disposition",
    "reopen_reason",
)
_OPTIONAL_TIMESTAMP_FIELDS = ("reopened_at", "skipped_at", "completed_at", "updated_at")


@dataclass(frozen=True)
class PartitionWindow:
    """The created-at window of one daily partition: ``[start, end)``.

    ``start`` and ``end`` are aware datetimes in any timezone (usually the partition's own,
    as Dagster hands them over); comparisons are made in UTC, so a DST day is simply 23 or
    25 hours long.

    Raises:
        ValueError: on construction, if a bound is naive or ``start`` is not before ``end``.
    """

    partition_date: date
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if isinstance(self.partition_date, datetime) or not isinstance(self.partition_date, date):
            raise ValueError(f"partition_date must be a date, got {self.partition_date!r}")
        for name in ("start", "end"):
            if not _is_aware(getattr(self, name)):
                raise ValueError(f"partition {self.partition_date}: {name} must be timezone-aware")
        if not self.start_utc < self.end_utc:
            raise ValueError(
                f"partition {self.partition_date}: start {self.start.isoformat()} is not "
                f"before end {self.end.isoformat()}"
            )

    @property
    def start_utc(self) -> datetime:
        """``start`` converted to UTC."""
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        """``end`` converted to UTC."""
        return self.end.astimezone(UTC)

    def contains(self, ts: datetime) -> bool:
        """Whether ``start <= ts < end``.

        Raises:
            ValueError: if ``ts`` is naive.
        """
        if not _is_aware(ts):
            raise ValueError("cannot place a naive datetime in a partition window")
        # Both sides in UTC: aware datetimes sharing one tzinfo compare by wall clock,
        # which is wrong across a DST change.
        return self.start_utc <= ts.astimezone(UTC) < self.end_utc


def ensure_tasks_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema ``topo`` and table ``topo.tasks`` with their comments, if missing.

    Idempotent: safe to run at the start of every write.
    """
    con.execute(load_sql("create_topo_tasks"))


def replace_task_partitions(
    con: duckdb.DuckDBPyConnection,
    windows: Sequence[PartitionWindow],
    tasks: Iterable[Task],
    *,
    loaded_at: datetime,
) -> dict[date, int]:
    """Replace the rows of the given partitions with ``tasks``, in one transaction.

    Deletes every row whose ``partition_date`` is one of the windows' dates, then inserts
    ``tasks`` in batches of :data:`BATCH_SIZE` as they are drawn from the iterable, then
    commits. Each task lands in the partition whose window holds its ``created_at``. A
    window with no tasks is a legitimate empty day: its old rows are deleted.

    Any failure (a task outside every window, a duplicate id, ``raw`` that is not JSON, a
    constraint violation, an exception raised by ``tasks`` itself) rolls the whole
    transaction back, leaving every previous row as it was, and propagates.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`, with
            ``topo.tasks`` already created (:func:`ensure_tasks_table`) and no open
            transaction.
        windows: the partitions to replace; their dates must be distinct and their windows
            must not overlap.
        tasks: the tasks of those windows, each id once. May be a generator.
        loaded_at: when the tasks were fetched (aware); stored on every row.

    Returns:
        The rows landed per partition date, for every window's date (0 for an empty day),
        in the order of ``windows``.

    Raises:
        ValueError: for a naive ``loaded_at``, overlapping or repeated windows, a task whose
            ``created_at`` lies in no window, a task id given twice, or a ``raw`` that
            cannot be written as JSON. The message names the task id.
        duckdb.ConstraintException: if a task id already sits in a partition outside
            ``windows``.
    """
    if not _is_aware(loaded_at):
        raise ValueError("loaded_at must be timezone-aware")
    index = WindowIndex(windows)
    dates = [w.partition_date for w in windows]
    try:
        with transaction(con):
            con.execute(load_sql("delete_topo_tasks_partitions"), {"partition_dates": dates})
            insert_sql = load_sql("insert_topo_tasks_batch")
            seen_ids: set[str] = set()
            for batch in _batches(tasks, BATCH_SIZE):
                frame = task_frame(batch, index, seen_ids)
                con.register(_BATCH_VIEW, frame)
                try:
                    con.execute(insert_sql, {"loaded_at": loaded_at})
                except duckdb.ConstraintException as error:
                    # Ids within the run were checked above, so a duplicate key clashes
                    # with a row of a partition this run does not replace.
                    explain_duplicate_key(error)
                    raise
                con.unregister(_BATCH_VIEW)
            counts = dict(
                con.execute(
                    load_sql("count_topo_tasks_by_partition"), {"partition_dates": dates}
                ).fetchall()
            )
    finally:
        # Only after COMMIT or ROLLBACK: in an aborted transaction DuckDB refuses even this.
        # Best effort (a no-op when the view is gone); it must never mask the real error.
        with suppress(duckdb.Error):
            con.unregister(_BATCH_VIEW)
    return {d: int(counts.get(d, 0)) for d in dates}


class WindowIndex:
    """Windows sorted by start, as UTC epoch microseconds, to place tasks vectorised.

    Raises:
        ValueError: on construction, if a date is given twice or two windows overlap.
    """

    def __init__(self, windows: Sequence[PartitionWindow]) -> None:
        ordered = sorted(windows, key=lambda w: w.start_utc)
        seen: set[date] = set()
        for window in ordered:
            if window.partition_date in seen:
                raise ValueError(f"partition {window.partition_date} is given twice")
            seen.add(window.partition_date)
        for before, after in pairwise(ordered):
            if after.start_utc < before.end_utc:
                raise ValueError(
                    f"partition windows {before.partition_date} and {after.partition_date} overlap"
                )
        self.starts = np.array([_micros(w.start_utc) for w in ordered], dtype=np.int64)
        self.ends = np.array([_micros(w.end_utc) for w in ordered], dtype=np.int64)
        self.dates = np.array([w.partition_date for w in ordered], dtype="datetime64[D]")
        self.labels = ", ".join(str(w.partition_date) for w in windows) or "none"

    def locate(self, created_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of each timestamp's window, and a mask of those inside one."""
        if len(self.starts) == 0:
            empty = np.zeros(len(created_us), dtype=np.intp)
            return empty, np.zeros(len(created_us), dtype=bool)
        position = np.searchsorted(self.starts, created_us, side="right") - 1
        clipped = np.clip(position, 0, None)
        inside = (position >= 0) & (created_us < self.ends[clipped])
        return clipped, inside


def explain_duplicate_key(error: duckdb.ConstraintException) -> None:
    """Add a note saying what a duplicate-key clash on ``topo.tasks`` means, if it is one.

    A run's own ids are de-duplicated before they are inserted, so a clash is with a row
    stored under a partition the run does not replace.
    """
    if "Duplicate key" in str(error):
        error.add_note(
            "A task of this run is already stored under a partition outside "
            "the run's windows (did its created_at or TOPO_TIMEZONE change?). "
            "Nothing was changed."
        )


def task_frame(
    batch: list[Task], index: WindowIndex, seen_ids: set[str] | None = None
) -> pd.DataFrame:
    """One batch as a frame of the table's columns (``loaded_at`` is bound in SQL).

    Each task is placed in the partition whose window holds its ``created_at``.

    Args:
        batch: the tasks.
        index: the run's windows.
        seen_ids: ids of earlier batches; given, an id seen twice is refused (and added).

    Raises:
        ValueError: for a task in no window, an id seen twice, or a ``raw`` that is not JSON.
    """
    if seen_ids is not None:
        for task in batch:
            if task.id in seen_ids:
                raise ValueError(f"task {task.id} is given twice; de-duplicate before landing")
            seen_ids.add(task.id)

    # Microsecond unit: DuckDB's precision, and unlike nanoseconds it spans years 1-9999,
    # so an absurd timestamp in the data is stored as sent rather than overflowing.
    created_at = pd.DatetimeIndex([t.created_at for t in batch], dtype="datetime64[us, UTC]")
    position, inside = index.locate(created_at.asi8)
    if not inside.all():
        stray = batch[int(np.flatnonzero(~inside)[0])]
        raise ValueError(
            f"task {stray.id}: created_at {stray.created_at.isoformat()} lies in none of this "
            f"run's partition windows ({index.labels}); refusing to land it"
        )

    columns: dict[str, object] = {
        name: pd.array([getattr(t, name) for t in batch], dtype="string") for name in _STRING_FIELDS
    }
    for name in _OPTIONAL_TIMESTAMP_FIELDS:
        columns[name] = pd.array([getattr(t, name) for t in batch], dtype="datetime64[us, UTC]")
    columns["created_at"] = created_at
    columns["partition_date"] = index.dates[position]
    columns["raw"] = pd.array([_raw_json(t) for t in batch], dtype="string")
    return pd.DataFrame(columns)


def _raw_json(task: Task) -> str:
    """``task.raw`` as JSON text, refusing values JSON cannot hold (NaN, non-JSON types)."""
    try:
        raw = task.raw if isinstance(task.raw, dict) else dict(task.raw)
        return _RAW_ENCODER.encode(raw)
    except (TypeError, ValueError) as error:
        raise ValueError(f"task {task.id}: raw object cannot be stored as JSON: {error}") from None


def _batches(tasks: Iterable[Task], size: int) -> Iterator[list[Task]]:
    iterator = iter(tasks)
    while batch := list(islice(iterator, size)):
        yield batch


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICROSECOND


def _is_aware(ts: datetime) -> bool:
    return isinstance(ts, datetime) and ts.tzinfo is not None and ts.utcoffset() is not None
