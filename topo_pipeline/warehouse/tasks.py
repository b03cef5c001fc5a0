"""Landing Topo tasks in ``warehouse.topo.tasks``, one daily partition at a time.

A partition is the tasks created in ``[day start, next day start)`` of the pipeline's
timezone. This module holds the table (:func:`ensure_tasks_table`; its columns are declared
in :mod:`topo_pipeline.warehouse.schema`; :func:`preview_tasks` reads a few rows), the windows
(:class:`PartitionWindow`, :class:`WindowIndex`) and the columnar form of a batch of tasks
(:func:`task_frame`); :mod:`topo_pipeline.warehouse.staging` stages fetched tasks in that
form and swaps whole partitions in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import duckdb
import numpy as np
import pandas as pd

from topo_pipeline.api.models import TASK_SCHEMA, Task
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.schema import ensure_schema

# Built once: json.dumps with options builds a new encoder per call, a visible cost at 100k rows.
# Compact, non-ASCII kept as is; NaN/Infinity refused because they are not JSON.
_RAW_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STRING_FIELDS = tuple(f.name for f in TASK_SCHEMA if f.kind == "string")
_OPTIONAL_TIMESTAMP_FIELDS = tuple(
    f.name for f in TASK_SCHEMA if f.kind == "timestamp" and f.name != "created_at"
)


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


def ensure_tasks_table(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the file's schema up to date (``topo.tasks`` included); see :mod:`.schema`.

    Idempotent and cheap once the file is current: safe to run at the start of every write.
    """
    ensure_schema(con)


def preview_tasks(
    con: duckdb.DuckDBPyConnection, partition_dates: Sequence[date], limit: int
) -> tuple[list[str], list[tuple[object, ...]]]:
    """The first ``limit`` rows of ``partition_dates`` (by ``created_at``, then id) in a few
    columns: the column names and the rows."""
    cursor = con.execute(
        load_sql("preview_topo_tasks"), {"partition_dates": list(partition_dates), "limit": limit}
    )
    return [column[0] for column in cursor.description], cursor.fetchall()


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


class DuplicateTaskIdError(duckdb.ConstraintException):
    """A task of the run is already stored under a partition outside the run's windows."""

    def __init__(self, stored: list[tuple[str, date]]) -> None:
        examples = ", ".join(f"{task_id} (in {day})" for task_id, day in stored)
        super().__init__(f"Duplicate key: task id already stored in topo.tasks: {examples}")
        self.add_note(
            "A task of this run is already stored under a partition outside "
            "the run's windows (did its created_at or TOPO_TIMEZONE change?). "
            "Nothing was changed."
        )


def task_frame(batch: list[Task], index: WindowIndex) -> pd.DataFrame:
    """One batch as a frame of the table's columns (``loaded_at`` is bound in SQL).

    Each task is placed in the partition whose window holds its ``created_at``.

    Args:
        batch: the tasks.
        index: the run's windows.

    Raises:
        ValueError: for a task in no window, or a ``raw`` that is not JSON.
    """
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


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICROSECOND


def _is_aware(ts: datetime) -> bool:
    return isinstance(ts, datetime) and ts.tzinfo is not None and ts.utcoffset() is not None
