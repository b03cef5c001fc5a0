"""Landing a run's stage at once: one transaction into ``topo.tasks`` and its history.

Only when the fetch has finished (every window reconciled with Topo's ``total_count``)
does :func:`land_stage` land the :class:`~topo_pipeline.warehouse.staging.TaskStage`: in
one transaction on the warehouse it records in ``topo.task_history`` what changed against
the stored state (:mod:`topo_pipeline.warehouse.history`), deletes the run's partitions of
``topo.tasks`` and inserts the staged tasks, one copy of each id (the latest
``updated_at``, then the last arrival; see :mod:`topo_pipeline.warehouse.duplicates`),
then commits. A landing that fails part-way leaves every previous row of ``topo.tasks``
and of the history as it was.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from topo_pipeline.warehouse.duckdb import setting_for_block, single_threaded, transaction
from topo_pipeline.warehouse.history import HistoryChanges, record_task_history
from topo_pipeline.warehouse.queries import load_sql, render_sql
from topo_pipeline.warehouse.schema import STAGED_TASKS, TASK_COLUMNS
from topo_pipeline.warehouse.staging import TaskStage
from topo_pipeline.warehouse.tasks import DuplicateTaskIdError

STAGE_CATALOG = "stage"
"""The name a stage file is attached under while it is landed."""

log = logging.getLogger(__name__)

_LANDING_BASE_BYTES = 32 << 20
_HASHED_BYTES_PER_STAGED_TASK = 160
"""Per staged task: the hashes of its id the landing builds (copy that lands, stored ids)."""
_DUPLICATE_EXAMPLES = 5
_OUT_OF_MEMORY_PHRASES = ("could not allocate", "failed to allocate", "failed to pin")
"""How DuckDB's buffer manager words running out of memory (also inside a failed COMMIT)."""


@dataclass(frozen=True)
class Landing:
    """What one :func:`land_stage` wrote, in its one transaction."""

    rows: dict[date, int]
    """Rows of ``topo.tasks`` per partition date, for every window's date (0 for an empty
    day), in the order of the stage's windows."""
    history: HistoryChanges
    """The versions it recorded in ``topo.task_history``."""
    seconds: float
    """Wall time of the landing (attaching the stage to the commit)."""


def land_stage(
    con: duckdb.DuckDBPyConnection,
    stage: TaskStage,
    *,
    loaded_at: datetime,
    capped: bool = True,
) -> Landing:
    """Replace the rows of the stage's partitions with the staged tasks, in one transaction.

    Closes the stage (writing what is buffered), attaches its file read-only, and in one
    transaction records the versions that changed in ``topo.task_history``
    (:func:`~topo_pipeline.warehouse.history.record_task_history`), deletes every row of
    the stage's partition dates and inserts the staged tasks, one copy of each id (the
    latest ``updated_at``, then the last arrival), then commits. ``topo.tasks`` has no PRIMARY
    KEY (DuckDB would load its index of every stored id on each write): before inserting,
    the landing looks the staged ids up among the rows left, which all lie outside the
    run's partitions, and refuses the whole landing if one is there. A window with no tasks is a
    legitimate empty day: its old rows are deleted. Any failure rolls the whole
    transaction back, leaving every previous row as it was, and propagates.

    DuckDB keeps a transaction's new rows in memory until it commits, and by default lets
    that grow up to 80% of RAM: ~1.8 KB per task, 180 MB for a 100,000-task day. With
    ``capped``, the landing runs under :func:`landing_memory_limit`, so DuckDB spills
    those rows to its temporary folder instead; should the cap still prove too small,
    the rolled-back landing is run once more without it.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`, with
            ``topo.tasks`` already created and no open transaction.
        stage: the run's stage.
        loaded_at: when the tasks were fetched (aware); stored on every row.
        capped: land under a memory cap (see above).

    Returns:
        The rows landed per partition, and the versions recorded in the history.

    Raises:
        ValueError: for a naive ``loaded_at``.
        RuntimeError: if filling the stage failed (it is incomplete).
        DuplicateTaskIdError: (a ``duckdb.ConstraintException``) if a task id already
            sits in a partition outside the stage's windows.
        HistoryOrderError: if ``loaded_at`` is earlier than a version already recorded
            for the stage's partitions.
    """
    if loaded_at.tzinfo is None or loaded_at.utcoffset() is None:
        raise ValueError("loaded_at must be timezone-aware")
    stage.close()
    if stage.failed:
        raise RuntimeError(f"stage {stage.path} failed while it was filled; refusing to land it")
    started = time.monotonic()
    dates = [w.partition_date for w in stage.windows]
    con.execute(f"ATTACH ? AS {STAGE_CATALOG} (READ_ONLY)", [str(stage.path)])
    try:
        if capped:
            limit = landing_memory_limit(stage.staged)
            try:
                with _memory_capped(con, limit):
                    counts, changes = _land(con, dates, loaded_at)
                return _landing(dates, counts, changes, started)
            except (duckdb.OutOfMemoryException, duckdb.TransactionException) as error:
                # A failed COMMIT reports running out of memory as a TransactionException.
                if not _is_out_of_memory(error):
                    raise
                log.warning(
                    "landing %d staged tasks did not fit in %d MB (%s); rolled back, "
                    "landing again without a memory cap",
                    stage.staged,
                    limit >> 20,
                    str(error).splitlines()[0],
                )
        with _memory_capped(con, None):
            counts, changes = _land(con, dates, loaded_at)
        return _landing(dates, counts, changes, started)
    finally:
        # Only after COMMIT or ROLLBACK; best effort, it must never mask the real error.
        with suppress(duckdb.Error):
            con.execute(f"DETACH {STAGE_CATALOG}")


def landing_memory_limit(staged_tasks: int) -> int:
    """Bytes of DuckDB memory to land ``staged_tasks``, whatever the table's size.

    A fixed allowance for the rows in flight (the rest spill to disk), plus the hashes of
    the staged ids (the copy of each that lands, and the look-up of ids stored elsewhere).
    ``topo.tasks`` keeps no index of its ids, so nothing grows with the rows stored.
    """
    return _LANDING_BASE_BYTES + _HASHED_BYTES_PER_STAGED_TASK * staged_tasks


def _land_sql() -> str:
    staged = ",\n    ".join(
        f"s.{c.name}" for c in (*TASK_COLUMNS, STAGED_TASKS.column("partition_date"))
    )
    return render_sql(
        "insert_topo_tasks_from_stage",
        staged_columns=staged,
        latest_arrivals=load_sql("staged_latest_arrivals"),
    )


def _landing(
    dates: list[date], counts: dict[date, int], changes: HistoryChanges, started: float
) -> Landing:
    return Landing(
        rows={d: int(counts.get(d, 0)) for d in dates},
        history=changes,
        seconds=time.monotonic() - started,
    )


def _land(
    con: duckdb.DuckDBPyConnection, dates: list[date], loaded_at: datetime
) -> tuple[dict[date, int], HistoryChanges]:
    with single_threaded(con), transaction(con):
        # Compared with the stored state, so before the partitions are replaced.
        changes = record_task_history(con, dates, loaded_at)
        con.execute(load_sql("delete_topo_tasks_partitions"), {"partition_dates": dates})
        # What a PRIMARY KEY would refuse, checked without one: what remains after the
        # delete lies outside the run's partitions, so a staged id found there is a clash.
        stored = con.execute(
            load_sql("stored_ids_of_stage"), {"limit": _DUPLICATE_EXAMPLES}
        ).fetchall()
        if stored:
            raise DuplicateTaskIdError(stored)
        con.execute(_land_sql(), {"loaded_at": loaded_at})
        log.info(
            "recorded %d task versions in topo.task_history (%d tasks no longer returned)",
            changes.versions,
            changes.removed,
        )
        counts = con.execute(
            load_sql("count_topo_tasks_by_partition"), {"partition_dates": dates}
        ).fetchall()
        return dict(counts), changes


def _memory_capped(
    con: duckdb.DuckDBPyConnection, limit_bytes: int | None
) -> AbstractContextManager[None]:
    """Run the block with DuckDB's memory limit at ``limit_bytes`` (``None``: DuckDB's
    default, 80% of RAM), then put back the limit the connection had."""
    return setting_for_block(
        con, "memory_limit", None if limit_bytes is None else f"{int(limit_bytes)}B"
    )


def _is_out_of_memory(error: duckdb.Error) -> bool:
    if isinstance(error, duckdb.OutOfMemoryException):
        return True
    text = str(error)
    return any(phrase in text for phrase in _OUT_OF_MEMORY_PHRASES)
