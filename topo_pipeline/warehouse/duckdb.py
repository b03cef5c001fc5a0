"""Opening the pipeline's DuckDB file.

:func:`connect` attaches it under the fixed catalog name :data:`CATALOG`, so every statement
qualifies its tables as ``warehouse.<schema>.<table>`` and any file name works; it waits,
with backoff, while another process holds the file's lock. :func:`transaction` runs a block
in one transaction. Why the alias and the wait: ``docs/design.md``, "One DuckDB file".
"""

from __future__ import annotations

import glob
import logging
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from topo_pipeline.warehouse.queries import load_sql

CATALOG = "warehouse"
"""The catalog alias the pipeline's file is attached under."""

DEFAULT_LOCK_TIMEOUT_SECONDS = 120.0

STORAGE_VERSION = "v1.4.0"
"""Storage format of the files the pipeline creates: the oldest DuckDB release that must open them.

The analyst copy has to open in DuckDB 1.4 (BI drivers lag DuckDB releases). The pipeline's
own file is created in the same format, so that publishing the copy is a copy of the file's
bytes instead of a rewrite of every row (:mod:`topo_pipeline.warehouse.analyst_copy`). A file
an older release created in DuckDB 2's format stays in it: DuckDB never lowers a file's
storage version.
"""

MEMORY_LIMIT = "48MiB"
"""DuckDB's memory limit on the pipeline's connections.

Without one DuckDB may take 80% of RAM, and its buffer pool keeps every block a query
read: the scan of ``topo.tasks``' ids that keeps them unique would then cache the whole
column, so a process's memory would grow with the table's history. Under the limit DuckDB
evicts read blocks and spills what does not fit to ``<path>.tmp``; the landing sets its
own limit for the rows in flight (:func:`topo_pipeline.warehouse.landing.landing_memory_limit`).
"""

ALLOCATOR_FLUSH_THRESHOLD = "8MiB"
"""After a task that allocated more than this, DuckDB hands freed memory back to the OS.

DuckDB's default, 128 MiB, lets each connection keep that much freed memory cached: a
year's range run (stage, landing, analytics) peaked about 20 MB higher with it, 446 and
452 MB against 419-440 MB (``bench/warehouse_bench.py``, measured before the client
bounded the pages it fetches ahead; the year now peaks at about 345 MB).
"""

log = logging.getLogger(__name__)


class WarehouseLockedError(RuntimeError):
    """Another process held the DuckDB file for longer than the lock timeout."""


def is_lock_error(error: BaseException) -> bool:
    """True when ``error`` is DuckDB refusing a file because another process holds it."""
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


@contextmanager
def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    config: Mapping[str, Any] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path`` attached as :data:`CATALOG`, in UTC, and close it on exit.

    The parent folder is created for a writable connection, and a new file is created in
    :data:`STORAGE_VERSION`'s format. The session ``TimeZone`` is
    UTC so ``TIMESTAMPTZ`` values print and compare the same on every host. DuckDB's
    memory is limited to :data:`MEMORY_LIMIT`; data it spills to disk goes to
    ``<path>.tmp`` beside the file (DuckDB's own default for a file database; with the
    in-memory catalog used here it would be ``.tmp`` in the current directory).

    Args:
        path: the DuckDB file.
        read_only: attach read-only (the file must exist).
        lock_timeout: seconds to keep retrying while another process holds the file.
        config: DuckDB settings for the connection (``threads``, ``memory_limit``, ...).

    Raises:
        WarehouseLockedError: if the file stayed locked for ``lock_timeout`` seconds.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config=dict(config or {}))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET temp_directory = $dir", {"dir": f"{path}.tmp"})
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET allocator_flush_threshold = '{ALLOCATOR_FLUSH_THRESHOLD}'")
        _attach_with_retry(con, path, read_only=read_only, lock_timeout=lock_timeout)
        con.execute(f"USE {CATALOG}")
        yield con
    finally:
        con.close()


def _attach_with_retry(
    con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool, lock_timeout: float
) -> None:
    if read_only:
        options = " (READ_ONLY)"
    elif not path.exists():
        options = f" (STORAGE_VERSION '{STORAGE_VERSION}')"
    else:
        options = ""
    started = time.monotonic()
    deadline = started + lock_timeout
    delay = 0.05
    waited = False
    while True:
        try:
            con.execute(f"ATTACH ? AS {CATALOG}{options}", [str(path)])
            if waited:
                log.info(
                    "DuckDB file %s: lock acquired after %.1fs", path, time.monotonic() - started
                )
            return
        except duckdb.IOException as error:
            if not is_lock_error(error) or time.monotonic() >= deadline:
                if is_lock_error(error):
                    raise WarehouseLockedError(
                        f"{path} stayed locked by another process for {lock_timeout:.0f}s: "
                        "close other DuckDB sessions on the pipeline's file (analysts should "
                        "open the analyst copy instead)"
                    ) from error
                raise
            if not waited:
                # Once per wait: the retries below come every few seconds.
                log.warning(
                    "DuckDB file %s is locked by another process; waiting up to %.0fs for it",
                    path,
                    lock_timeout,
                )
                waited = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter


_SETTINGS_FOR_A_BLOCK = frozenset({"memory_limit", "threads"})
"""The DuckDB settings :func:`setting_for_block` changes: names from code, never input."""


@contextmanager
def setting_for_block(
    con: duckdb.DuckDBPyConnection, name: str, value: str | int | None
) -> Iterator[None]:
    """Run the block with DuckDB's setting ``name`` at ``value``, then put back what it was.

    ``None`` runs the block at DuckDB's default. The setting holds for the whole DuckDB
    instance behind ``con``. Afterwards the setting is reset, and set again only if the
    value it had differs from the default (so a default is not pinned as a rounded
    number). Putting it back never masks the block's own error.
    """
    if name not in _SETTINGS_FOR_A_BLOCK:
        raise ValueError(f"{name!r} is not a setting the pipeline changes for a block")
    read = f"SELECT current_setting('{name}')"
    previous = con.execute(read).fetchone()
    assert previous is not None  # noqa: S101 - a SELECT without FROM returns one row
    try:
        if value is None:
            con.execute(f"RESET {name}")
        else:
            con.execute(f"SET {name} = $value", {"value": value})
        yield
    finally:
        with suppress(duckdb.Error):
            con.execute(f"RESET {name}")
            if con.execute(read).fetchone() != previous:
                con.execute(f"SET {name} = $value", {"value": previous[0]})


def single_threaded(con: duckdb.DuckDBPyConnection) -> AbstractContextManager[None]:
    """Run the block on one DuckDB thread, then give the connection its threads back.

    For bulk inserts into the pipeline's file. Inserting on several threads, DuckDB leaves
    rows in row groups that the next checkpoint (at the latest when the connection
    closes) writes again. Measured on a year's landing (365,000 tasks, with the explicit
    JSON cast it then had): 1.4 s of insert and 1.0 s of that checkpoint on two threads,
    1.8 s and 0.01 s on one.
    """
    return setting_for_block(con, "threads", 1)


def storage_version(con: duckdb.DuckDBPyConnection, catalog: str = CATALOG) -> str:
    """The format of the file attached as ``catalog``, as DuckDB tags it: the first release
    that reads it and a "+", e.g. ``v1.4.0+`` for :data:`STORAGE_VERSION`'s."""
    row = con.execute(load_sql("database_storage_version"), {"catalog": catalog}).fetchone()
    return str(row[0]) if row and row[0] is not None else "unknown"


def wal_files(path: Path) -> list[Path]:
    """The write-ahead log files beside the DuckDB file ``path`` (``.wal`` and its kin)."""
    return sorted(path.parent.glob(f"{glob.escape(path.name)}.wal*"))


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: commit on success, roll back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
