"""Which days still hold open tasks: the open-task sensor's view of ``topo.tasks``.

The sensor reads the *analyst copy*, not the pipeline's own file: a read-only open of the
pipeline's file from the sensor's process would block runs from writing it, while the
copy is a separate file that is replaced, never written in place. The copy is republished
after every run that changed tables, so it lags the pipeline's file by one publish at most.

Nothing here imports Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.queries import load_sql

READ_LOCK_TIMEOUT_SECONDS = 5.0
"""How long a reader waits for a lock on the copy (only a misused read-write session
holds one) before giving up."""


@dataclass(frozen=True)
class OpenTaskPartition:
    """One day of ``topo.tasks`` with tasks still PENDING or IN_PROGRESS."""

    partition_date: date
    open_tasks: int
    loaded_at: datetime | None
    """When the day was last fetched (the newest ``loaded_at`` of its rows)."""


class OpenTasksUnavailableError(RuntimeError):
    """The file to read open tasks from does not exist (nothing was published yet)."""


def read_open_task_partitions(
    path: str | Path,
    oldest: date,
    *,
    lock_timeout: float = READ_LOCK_TIMEOUT_SECONDS,
) -> list[OpenTaskPartition]:
    """Days from ``oldest`` on whose tasks include PENDING or IN_PROGRESS ones.

    Opens ``path`` read-only only for this one query.

    Args:
        path: a DuckDB file holding ``topo.tasks`` (the analyst copy).
        oldest: the first day to consider.
        lock_timeout: seconds to wait while another process holds the file read-write.

    Raises:
        OpenTasksUnavailableError: if ``path`` does not exist.
        WarehouseLockedError: if the file stayed locked for ``lock_timeout`` seconds.
        duckdb.Error: if the file cannot be read (e.g. it holds no ``topo.tasks``).
    """
    path = Path(path)
    if not path.is_file():
        raise OpenTasksUnavailableError(f"{path} does not exist (not published yet)")
    with connect(path, read_only=True, lock_timeout=lock_timeout) as con:
        rows = con.execute(load_sql("open_tasks_by_partition"), {"oldest_date": oldest}).fetchall()
    return [OpenTaskPartition(day, int(count), loaded_at) for day, count, loaded_at in rows]
