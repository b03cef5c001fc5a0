"""The instance's event log: Dagster's SQLite event log, its connections kept open.

Dagster's :class:`~dagster._core.storage.event_log.SqliteEventLogStorage` builds a new
SQLAlchemy engine for every event it stores or reads, and disposes of it afterwards: each
event pays for the engine, its connection, SQLAlchemy's statement compilation (the
compiled-statement cache lives on the engine) and, when that last connection closes, a
WAL checkpoint; and for every materialization it asks, through yet another engine,
whether the index has its tags table. A range run writes one event per partition of
every asset, so a year of nine assets is thousands of them; at 10-20 ms each that was
most of the run after the fetch (``bench/warehouse_bench.py``).

:class:`PooledSqliteEventLogStorage` is the same storage, same files and same schema,
with one engine per database file kept for the life of the process: the index database
and the most recently used run databases (:data:`RUN_ENGINES_KEPT`), so a long-lived
webserver that reads many runs keeps a bounded number of files open. Every transaction is
still one SQLite transaction under the storage's lock, with Dagster's busy timeout, so
several processes (daemon, webserver, runs) share the files as before, and a write to a
run's database is checkpointed into its file at once, as the closing connection did,
because that file is what the UI's live run view watches. A table found is remembered
(migrations only add tables). ``dagster.yaml``
selects it; without a ``base_dir`` it uses ``$DAGSTER_HOME/history/runs``, where Dagster's
default storage keeps the event logs, so an existing instance keeps its history.

It also writes a batch of events in one transaction per database. Dagster hands a storage
batches (a range's materializations of one output, a run's planned events) only when
``DAGSTER_EVENT_BATCH_SIZE`` is set, and its SQLite storage would still store them one by
one; this one turns the setting on for its process (:data:`EVENT_BATCH_SIZE`, unless the
variable is already set) and implements :meth:`~PooledSqliteEventLogStorage.store_event_batch`.
And it creates a new run's database as a copy of a blank one that Dagster's own
``_initdb`` made once in the process, instead of loading Dagster's migration scripts for
every run.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    EVENT_TYPE_TO_PIPELINE_RUN_STATUS,
    DagsterEventType,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

from topo_pipeline.instance import DAGSTER_HOME_ENV

RUN_ENGINES_KEPT = 8
"""Run databases whose engine stays open (least recently used out first); the index's always is."""

_MIRRORED_EVENTS = frozenset(
    ASSET_EVENTS | ASSET_CHECK_EVENTS | EVENT_TYPE_TO_PIPELINE_RUN_STATUS.keys()
)
"""Event types :meth:`SqliteEventLogStorage.store_event` also writes to the index database."""

EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = 1000
"""Events Dagster buffers before it hands them to a storage's ``store_event_batch`` (default 0)."""


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` with one long-lived engine per database file.

    Args:
        base_dir: the folder of the run and index databases (default:
            ``$DAGSTER_HOME/history/runs``, Dagster's own default).
        inst_data: set by Dagster when it loads the class from ``dagster.yaml``.
    """

    _blank_run_file: ClassVar[bytes | None] = None
    """A new run database's file (:meth:`_blank_run_database`); the same for every instance."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_found: set[str] = set()
        self._asset_key_columns_found: set[str] = set()
        # Read by Dagster at every event, so setting it here reaches this process's runs.
        os.environ.setdefault(EVENT_BATCH_SIZE_ENV, str(EVENT_BATCH_SIZE))
        super().__init__(base_dir or default_base_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # The parent's contract: one transaction at a time per process, under its lock, the
        # database created on first use.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                if shard == INDEX_SHARD_NAME or not self._copy_blank_run_database(shard):
                    self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                sqlite = conn.connection.dbapi_connection
                changes = sqlite.total_changes  # type: ignore[union-attr]
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and sqlite.total_changes != changes:  # type: ignore[union-attr]
                    # Watchers (the UI's live run log) follow a run's ``.db`` file itself,
                    # which a WAL write leaves untouched until a checkpoint: Dagster's own
                    # storage got one when it closed the connection, this one asks for it.
                    sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]

    def _engine(self, shard: str) -> Engine:
        if self._engines_pid != os.getpid():
            # A forked child must not use its parent's open connections: start afresh.
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=2,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            self._engines[shard] = engine
            runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
            for evicted in runs[: max(0, len(runs) - RUN_ENGINES_KEPT)]:
                self._engines.pop(evicted).dispose()
        self._engines.move_to_end(shard)
        return engine

    def _copy_blank_run_database(self, run_id: str) -> bool:
        """Create a new run's database as a copy of a blank one; False if it already exists.

        Dagster's ``_initdb`` loads its ~200 migration scripts, twice, to create and stamp
        each new run database (some 60 ms a run); the copy is of one it made the same way.
        A database another process created meanwhile is never overwritten: False, and
        ``_initdb`` checks it as usual (as it does where hard links are not supported).
        """
        path = self.path_for_shard(run_id)
        if os.path.exists(path):
            return False
        partial = f"{path}.{os.getpid()}-{threading.get_ident()}.new"
        try:
            Path(partial).write_bytes(self._blank_run_database())
            os.link(partial, path)  # unlike a rename, fails if the path exists
        except OSError:
            return False
        finally:
            with suppress(FileNotFoundError):
                os.remove(partial)
        return True

    def _blank_run_database(self) -> bytes:
        """The file of a run database as ``_initdb`` creates it, made once per process."""
        cls = type(self)
        if cls._blank_run_file is None:
            with tempfile.TemporaryDirectory() as folder:
                engine = create_engine(
                    f"sqlite:///{os.path.join(folder, 'blank.db')}", poolclass=NullPool
                )
                try:
                    self._initdb(engine)
                finally:
                    engine.dispose()  # the last connection closed: the WAL is in the file
                cls._blank_run_file = Path(folder, "blank.db").read_bytes()
        return cls._blank_run_file

    def has_table(self, table_name: str) -> bool:
        # Asked for every materialization (does the index have asset_event_tags?), each time
        # through an engine of its own. Migrations only ever add tables, so a yes is kept.
        parent = super()
        return _kept_if_found(self._tables_found, table_name, lambda: parent.has_table(table_name))

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        # Asked for every asset event, by inspecting the table; a column, once there, stays.
        parent = super()
        return _kept_if_found(
            self._asset_key_columns_found,
            column_name,
            lambda: parent._has_asset_key_col_on_connection(conn, column_name),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store events as :meth:`store_event` would one by one, in a transaction per database.

        Each event is serialised once. The index comes first, in one transaction: its
        mirrored rows (asset, asset check and run status events), the asset events' tags
        and, per asset, only the last event of each kind, which is what one-by-one writes
        leave in its row (the postgres storage does the same). Every process writes the
        index, so it is the database likeliest to stay busy past the timeout; should it
        fail, nothing is stored yet, and Dagster stores the batch again one event at a time.
        Then each run database gets its rows in one statement, and the asset check events
        are stored one by one, as :meth:`store_event` does.
        """
        rows = [(event, self._event_to_row(event)) for event in events]
        mirrored = [(event, row) for event, row in rows if _mirrored(event)]
        ids = self._store_in_index(mirrored) if mirrored else []
        for run_id in dict.fromkeys(event.run_id for event in events):
            with self.run_connection(run_id) as conn:
                conn.execute(
                    SqlEventLogStorageTable.insert(),
                    [row for event, row in rows if event.run_id == run_id],
                )
        for event, event_id in ids:
            if event.get_dagster_event().event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)

    def _store_in_index(
        self, mirrored: Sequence[tuple[EventLogEntry, dict[str, Any]]]
    ) -> list[tuple[EventLogEntry, int]]:
        """The index's part of :meth:`store_event_batch`; the events with their index ids."""
        insert = SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
        )
        with self.index_transaction() as conn:
            stored = conn.execute(insert, [row for _, row in mirrored]).scalars().all()
            ids = [(event, event_id) for (event, _), event_id in zip(mirrored, stored, strict=True)]
            assets = [(e, i) for e, i in ids if e.get_dagster_event().event_type in ASSET_EVENTS]
            if any(event_id is None for _, event_id in assets):
                raise dg.DagsterInvariantViolationError(
                    "Cannot store asset event tags for null event id."
                )
            self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
            for event, event_id in _last_of_each_kind(assets):
                self._store_asset_event(conn, event, event_id)
        return ids

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # the files are deleted: no connection may stay open on them
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


def _kept_if_found(found: set[str], name: str, look_up: Callable[[], bool]) -> bool:
    """``look_up()``, asked only until it first says yes (``found`` keeps the names)."""
    if name in found:
        return True
    if look_up():
        found.add(name)
        return True
    return False


def _mirrored(event: EventLogEntry) -> bool:
    """Whether :meth:`SqliteEventLogStorage.store_event` copies the event into the index."""
    return event.is_dagster_event and event.get_dagster_event().event_type in _MIRRORED_EVENTS


def _last_of_each_kind(
    events: Sequence[tuple[EventLogEntry, int]],
) -> list[tuple[EventLogEntry, int]]:
    """The last event of each (asset, event type), in the order written.

    An asset's row takes each column from the last event of a kind that writes it, so
    writing only these leaves the row as writing every event in turn would.
    """
    last: dict[tuple[dg.AssetKey, DagsterEventType], int] = {}
    for position, (event, _) in enumerate(events):
        dagster_event = event.get_dagster_event()
        key = dagster_event.asset_key  # hashable as is (to_string() JSON-encodes the path)
        if key is None:  # written nowhere (``_store_asset_event``)
            continue
        last[(key, dagster_event.event_type)] = position
    return [events[position] for position in sorted(last.values())]


def default_base_dir() -> str:
    """Where Dagster's default SQLite storage keeps the event logs of ``$DAGSTER_HOME``."""
    home = os.environ.get(DAGSTER_HOME_ENV, "").strip()
    if not home:
        raise dg.DagsterInvariantViolationError(
            f"{PooledSqliteEventLogStorage.__name__} finds its files through {DAGSTER_HOME_ENV}: "
            f"set it to the instance folder (as Dagster's CLI, webserver and daemon need), or "
            f"give the storage a base_dir in dagster.yaml"
        )
    return os.path.join(home, "history", "runs")
