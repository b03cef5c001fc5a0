"""The analyst copy: a published, read-only snapshot of the pipeline's DuckDB file.

:func:`publish_analyst_copy` copies the ``topo``, ``reference`` and ``analytics`` tables and
views of ``TOPO_DUCKDB_PATH`` to ``TOPO_ANALYST_DUCKDB_PATH`` in five steps: (1) attach the
pipeline's file, let it describe itself (:mod:`topo_pipeline.warehouse.pipeline_info`) and
checkpoint it; (2) write the copy beside the target under a temporary name
(:func:`publishing_path`), as the file's bytes or row by row; (3) make its views name its
catalog where that clashes with a schema (:mod:`topo_pipeline.warehouse.file_names`); (4)
check it against the source (:class:`AnalystCopyError`); (5) rename it over the target.
Why each step is so: ``docs/design.md``, "The analyst copy". The ``publish/analyst_copy``
asset calls it; nothing here imports Dagster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb

from topo_pipeline.liveness import current_owner, is_alive, parse_owner
from topo_pipeline.warehouse.duckdb import (
    CATALOG,
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    STORAGE_VERSION,
    connect,
    storage_version,
    wal_files,
)
from topo_pipeline.warehouse.file_names import catalog_name, clashes, name_catalog_in_views
from topo_pipeline.warehouse.pipeline_info import PipelineInfo, describe_pipeline
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.schema import VIEWS, ensure_schema
from topo_pipeline.warehouse.tables import quoted

PUBLISHED_SCHEMAS = ("topo", "reference", "analytics")
"""Schemas whose tables analysts read."""

COPY_CATALOG = "analyst_copy"
"""Alias the copy being built is attached under, next to the source's ``warehouse``."""

STALE_BUILD_SECONDS = 6 * 3600
"""A temporary file without an owner in its name (an older release's) is left over after this."""

log = logging.getLogger(__name__)


class AnalystCopyError(RuntimeError):
    """The copy did not match the pipeline's file; the published copy was left as it was."""


@dataclass(frozen=True)
class PublishedTable:
    """One table of the copy."""

    schema: str
    name: str
    rows: int

    @property
    def qualified_name(self) -> str:
        """``schema.table``, as analysts write it."""
        return f"{self.schema}.{self.name}"


CopyMethod = Literal["file", "rows"]
"""How a copy was written: the pipeline's file copied as it is, or its rows rewritten."""


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish_analyst_copy` published."""

    path: Path
    tables: tuple[PublishedTable, ...]
    storage_version: str
    size_bytes: int
    copy_method: CopyMethod


def publish_analyst_copy(
    source: str | Path,
    target: str | Path,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    info: PipelineInfo | None = None,
) -> PublishResult:
    """Publish the tables of :data:`PUBLISHED_SCHEMAS` of ``source`` to ``target`` atomically.

    The whole database is copied; only the published schemas' tables are checked and
    reported.

    Args:
        source: the pipeline's DuckDB file.
        target: the analyst copy to create or replace. Its folder is created if needed.
        lock_timeout: seconds to keep retrying while another process holds ``source``.
        info: the pipeline's settings. Given, ``source`` is first described with them
            (``topo.pipeline_info``'s row, the time zone in comments), so the copy describes
            itself; without, ``source`` is copied as it is (read-only).

    Returns:
        The published tables with their row counts, the storage version, the file size and
        how the copy was written.

    Raises:
        FileNotFoundError: if ``source`` does not exist (nothing was materialized yet).
        WarehouseLockedError: if ``source`` stayed locked for ``lock_timeout`` seconds.
        AnalystCopyError: if the copy differs from the source; ``target`` is unchanged.
        duckdb.Error: if DuckDB fails; ``target`` is unchanged.
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(
            f"the pipeline's DuckDB file {source} does not exist yet: materialize topo/tasks "
            "before publishing the analyst copy"
        )
    if source.resolve() == target.resolve():
        raise ValueError("the analyst copy must be a different file from the pipeline's")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_publishing_leftovers(target)
    building = publishing_path(target)
    try:
        with connect(source, read_only=info is None, lock_timeout=lock_timeout) as con:
            if info is not None:
                ensure_schema(con)
                describe_pipeline(con, info, published_at=datetime.now(UTC))
                con.execute(f"CHECKPOINT {CATALOG}")
            copy_method = _write_copy(con, source, building)
            checked_as = _name_a_clashing_catalog(con, building, catalog_name(target))
            con.execute(f"ATTACH ? AS {quoted(checked_as)} (READ_ONLY)", [str(building)])
            try:
                tables = _verify_copy(con, checked_as)
                copy_version = storage_version(con, checked_as)
            finally:
                con.execute(f"DETACH {quoted(checked_as)}")
        os.replace(building, target)
    finally:
        _remove_leftovers(building)
    log.info(
        "published %d tables to the analyst copy %s (%s)",
        len(tables),
        target,
        describe_copy_method(copy_method),
    )
    return PublishResult(
        path=target,
        tables=tables,
        storage_version=copy_version,
        size_bytes=target.stat().st_size,
        copy_method=copy_method,
    )


def describe_copy_method(copy_method: CopyMethod) -> str:
    """How the copy was written, in words for a log line."""
    if copy_method == "file":
        return "the pipeline's file copied as it is"
    return (
        f"rows rewritten: the pipeline's file is not in the {STORAGE_VERSION} format, or has a WAL"
    )


PUBLISHING_SUFFIX = ".publishing"
"""Suffix of the temporary file a publish builds (see :func:`publishing_path`)."""


def publishing_path(target: Path) -> Path:
    """A new temporary file name for building a copy of ``target``.

    Same folder, so the final rename never crosses file systems; hidden and unique, so
    nobody opens it by accident and two publishers never share one; named for this
    process (:func:`~topo_pipeline.liveness.current_owner`), so the file of a publisher
    that was killed can be told from one still being built. DuckDB may add a ``.wal``
    beside it. :func:`publishing_leftovers` finds them again.
    """
    owner = current_owner().token()
    return target.with_name(f".{target.name}.{owner}.{uuid.uuid4().hex}{PUBLISHING_SUFFIX}")


def publishing_leftovers(target: Path) -> list[Path]:
    """Every temporary file (and its WAL) that publishes of ``target`` built beside it."""
    return sorted(target.parent.glob(f".{target.name}.*{PUBLISHING_SUFFIX}*"))


def published_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str, str]]:
    """``(schema, table, comment)`` of every table of :data:`PUBLISHED_SCHEMAS` in ``catalog``."""
    rows = con.execute(
        load_sql("published_tables"), {"catalog": catalog, "schemas": list(PUBLISHED_SCHEMAS)}
    ).fetchall()
    return [(schema, table, comment) for schema, table, comment in rows]


def table_row_count(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> int:
    """Rows in ``catalog.schema.table`` (the name is passed as a bound string, not as SQL)."""
    name = ".".join(quoted(part) for part in (catalog, schema, table))
    (count,) = con.execute(load_sql("count_table_rows"), {"table": name}).fetchone() or (0,)
    return int(count)


def _write_copy(con: duckdb.DuckDBPyConnection, source: Path, building: Path) -> CopyMethod:
    """Write the copy of the attached ``source`` to ``building``, as step 2 of the module says."""
    if storage_version(con) == f"{STORAGE_VERSION}+" and not wal_files(source):
        shutil.copyfile(source, building)
        with building.open("rb+") as copied:
            os.fsync(copied.fileno())
        return "file"
    con.execute(
        f"ATTACH ? AS {COPY_CATALOG} (STORAGE_VERSION '{STORAGE_VERSION}')", [str(building)]
    )
    try:
        con.execute(f"COPY FROM DATABASE {CATALOG} TO {COPY_CATALOG}")
    finally:
        con.execute(f"DETACH {COPY_CATALOG}")
    return "rows"


def _name_a_clashing_catalog(con: duckdb.DuckDBPyConnection, building: Path, opened_as: str) -> str:
    """Step 3 of the module: the alias to check the copy under.

    ``opened_as`` is the catalog name analysts will see. Where it is a published schema's,
    the copy's views are re-created to name it, and the copy is checked under it;
    otherwise under :data:`COPY_CATALOG`.
    """
    if not clashes(opened_as, PUBLISHED_SCHEMAS):
        return COPY_CATALOG
    con.execute(f"ATTACH ? AS {COPY_CATALOG}", [str(building)])
    try:
        views = name_catalog_in_views(con, COPY_CATALOG, opened_as, VIEWS)
        con.execute(f"CHECKPOINT {COPY_CATALOG}")
    finally:
        con.execute(f"DETACH {COPY_CATALOG}")
    log.info(
        "the analyst copy opens as catalog %r, the name of one of its schemas: its %d views "
        "name that catalog, and analysts write %s.topo.tasks",
        opened_as,
        len(views),
        opened_as,
    )
    return opened_as


def _verify_copy(
    con: duckdb.DuckDBPyConnection, copy_catalog: str = COPY_CATALOG
) -> tuple[PublishedTable, ...]:
    source_tables = published_tables(con, CATALOG)
    copy_tables = published_tables(con, copy_catalog)
    if source_tables != copy_tables:
        raise AnalystCopyError(
            "the analyst copy's tables or table comments differ from the pipeline's: "
            f"expected {_names(source_tables)}, got {_names(copy_tables)}"
        )
    params = {"schemas": list(PUBLISHED_SCHEMAS)}
    source_columns = con.execute(
        load_sql("published_column_comments"), {**params, "catalog": CATALOG}
    ).fetchall()
    copy_columns = con.execute(
        load_sql("published_column_comments"), {**params, "catalog": copy_catalog}
    ).fetchall()
    if source_columns != copy_columns:
        raise AnalystCopyError(
            "the analyst copy's columns or column comments differ from the pipeline's"
        )
    published = []
    for schema, table, _comment in source_tables:
        expected = table_row_count(con, CATALOG, schema, table)
        copied = table_row_count(con, copy_catalog, schema, table)
        if copied != expected:
            raise AnalystCopyError(
                f"{schema}.{table}: the analyst copy holds {copied} rows, the pipeline's "
                f"file {expected}"
            )
        published.append(PublishedTable(schema=schema, name=table, rows=copied))
    _check_views_resolve(con, copy_catalog)
    return tuple(published)


def _check_views_resolve(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """Raise :class:`AnalystCopyError` if a view of the published schemas does not bind."""
    views = con.execute(
        load_sql("published_views"), {"catalog": catalog, "schemas": list(PUBLISHED_SCHEMAS)}
    ).fetchall()
    for schema, view in views:
        name = ".".join(quoted(part) for part in (catalog, schema, view))
        try:
            con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()
        except duckdb.Error as error:
            raise AnalystCopyError(
                f"view {schema}.{view} of the analyst copy does not resolve: {error}"
            ) from error


def _names(tables: Sequence[tuple[str, str, str]]) -> list[str]:
    return [f"{schema}.{table}" for schema, table, _ in tables]


def dead_publishing_leftovers(target: Path) -> list[Path]:
    """The :func:`publishing_leftovers` of ``target`` whose publisher is no longer running.

    A publisher killed mid-copy (SIGKILL, out of memory) cannot clean up after itself. A
    file named for a live process never counts, whatever its age (a large copy takes
    long); one without an owner in its name does once it is :data:`STALE_BUILD_SECONDS` old.
    """
    prefix = f".{Path(target).name}."
    cutoff = time.time() - STALE_BUILD_SECONDS
    dead = []
    for leftover in publishing_leftovers(Path(target)):
        owner = parse_owner(leftover.name[len(prefix) :])
        if owner is not None:
            if not is_alive(owner):
                dead.append(leftover)
            continue
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                dead.append(leftover)
    return dead


def remove_dead_publishing_leftovers(target: Path) -> list[Path]:
    """Remove the :func:`dead_publishing_leftovers` of ``target``; returns those removed."""
    removed = []
    for stale in dead_publishing_leftovers(target):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
            log.info("removed %s, left over from a publish whose process is gone", stale)
    return removed


def _remove_leftovers(building: Path) -> None:
    # After a successful rename only a WAL could be left; after a failure, the file too.
    for leftover in (building, *wal_files(building)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
