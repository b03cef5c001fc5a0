"""The instance's event log storage: Dagster's SQLite files, connections kept open."""

import os
import sqlite3
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage

from topo_pipeline.event_log import (
    EVENT_BATCH_SIZE_ENV,
    RUN_ENGINES_KEPT,
    PooledSqliteEventLogStorage,
)
from topo_pipeline.instance import prepare_dagster_home

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily(context: dg.AssetExecutionContext) -> None:
    for key in context.partition_keys:
        context.add_asset_metadata({"dagster/row_count": 3}, partition_key=key)


@dg.asset_check(asset=daily)
def daily_is_there() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def observed(context: dg.AssetExecutionContext) -> None:
    for key in context.partition_keys[::2]:
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=key))


WALL_CLOCK_COLUMNS = ("create_timestamp", "updated_timestamp", "migration_completed")
"""Columns the databases fill with the time of the write, not from the event."""


def _range_tags(keys: list[str]) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }


def _contents(folder: Path) -> dict[str, dict[str, list[tuple]]]:
    """Every row of every table of every database in the folder, but the rows' wall-clock stamps."""
    contents = {}
    for path in sorted(folder.glob("*.db")):
        with sqlite3.connect(path) as db:
            tables = [
                name
                for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            contents[path.name] = {}
            for table in tables:
                columns = [
                    name
                    for (_, name, *_) in db.execute(f'PRAGMA table_info("{table}")')
                    if name not in WALL_CLOCK_COLUMNS
                ]
                quoted = ", ".join(f'"{column}"' for column in columns)
                query = f'SELECT {quoted} FROM "{table}" ORDER BY {quoted}'
                contents[path.name][table] = db.execute(query).fetchall()
    return contents


def _entry(run_id: str, n: int) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message=f"message {n}",
        run_id=run_id,
        timestamp=time.time(),
    )


def _open_files_under(folder: Path) -> set[str]:
    fds = Path("/proc/self/fd")
    names = set()
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)):
            names.add(Path(target).name)
    return names


def test_the_committed_instance_keeps_events_where_dagsters_default_storage_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        keys = DAYS.get_partition_keys()[:30]
        result = dg.materialize([daily], instance=instance, tags=_range_tags(keys))
        assert result.success
        # Read back through the index database (cross-run asset queries) and the run's own.
        assert instance.get_materialized_partitions(daily.key) == set(keys)
        run_events = instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        assert len(run_events) == len(keys)
    runs = tmp_path / "home" / "history" / "runs"
    assert (runs / "index.db").is_file()
    assert (runs / f"{result.run_id}.db").is_file()
    # Dagster's own storage reads the same files.
    with dg.instance_for_test(
        overrides={
            "event_log_storage": {
                "module": "dagster._core.storage.event_log",
                "class": "SqliteEventLogStorage",
                "config": {"base_dir": str(runs)},
            }
        }
    ) as plain:
        assert plain.get_materialized_partitions(daily.key) == set(keys)


def test_a_batch_is_stored_as_its_events_would_be_one_by_one(tmp_path: Path) -> None:
    keys = DAYS.get_partition_keys()[:8]
    with dg.instance_for_test() as instance:
        # The second run updates the asset rows and check executions the first created.
        runs = [
            dg.materialize(
                [daily, daily_is_there, observed], instance=instance, tags=_range_tags(keys)
            ).run_id,
            dg.materialize([daily], instance=instance, tags=_range_tags(keys[2:5])).run_id,
        ]
        batches = [instance.all_logs(run_id) for run_id in runs]
    kinds = {event.dagster_event_type for event in batches[0]}
    assert {
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.ASSET_OBSERVATION,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.DagsterEventType.RUN_SUCCESS,
    } <= kinds
    one_by_one = PooledSqliteEventLogStorage(str(tmp_path / "one_by_one"))
    batched = PooledSqliteEventLogStorage(str(tmp_path / "batched"))
    try:
        for events in batches:
            for event in events:
                one_by_one.store_event(event)
            batched.store_event_batch(events)
        assert batched.get_materialized_partitions(daily.key) == set(keys)
    finally:
        one_by_one.dispose()
        batched.dispose()
    written = _contents(tmp_path / "one_by_one")
    assert written["index.db"]["asset_keys"]  # the asset rows the batch writes only once
    assert _contents(tmp_path / "batched") == written


def test_a_range_runs_materializations_reach_the_storage_as_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    store_event_batch = PooledSqliteEventLogStorage.store_event_batch

    def counted(storage: PooledSqliteEventLogStorage, events: list[EventLogEntry]) -> None:
        if events[0].dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            batches.append(len(events))
        store_event_batch(storage, events)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event_batch", counted)
    keys = DAYS.get_partition_keys()[:12]
    for batch_size, expected in ((None, [12]), ("0", [])):  # unset: on; a user's 0: off
        monkeypatch.delenv(EVENT_BATCH_SIZE_ENV, raising=False)
        if batch_size is not None:
            monkeypatch.setenv(EVENT_BATCH_SIZE_ENV, batch_size)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / f"home_{batch_size}"))
        prepare_dagster_home()
        batches.clear()
        with dg.DagsterInstance.get() as instance:
            result = dg.materialize([daily], instance=instance, tags=_range_tags(keys))
            assert instance.get_materialized_partitions(daily.key) == set(keys)
        assert result.success
        assert batches == expected


def _schema(path: Path) -> tuple[list[tuple], list[tuple], str]:
    with sqlite3.connect(path) as db:
        return (
            db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
            db.execute("SELECT version_num FROM alembic_version").fetchall(),
            db.execute("PRAGMA journal_mode").fetchone()[0],
        )


def test_a_new_runs_database_is_the_one_dagster_creates(tmp_path: Path) -> None:
    run_id = "1" * 32
    ours = PooledSqliteEventLogStorage(str(tmp_path / "ours"))
    plain = SqliteEventLogStorage(str(tmp_path / "plain"))
    try:
        for storage in (ours, plain):
            storage.store_event(_entry(run_id, 1))
        assert [e.user_message for e in ours.get_logs_for_run(run_id)] == ["message 1"]
    finally:
        ours.dispose()
        plain.dispose()
    created = _schema(tmp_path / "ours" / f"{run_id}.db")
    assert created == _schema(tmp_path / "plain" / f"{run_id}.db")
    schema, stamped, journal = created
    assert schema
    assert stamped  # at Dagster's latest migration
    assert journal == "wal"
    assert not list((tmp_path / "ours").glob("*.new"))  # the copy's partial file is gone


def test_a_runs_database_another_process_created_is_kept(tmp_path: Path) -> None:
    run_id = "2" * 32
    other = PooledSqliteEventLogStorage(str(tmp_path))  # another process's storage
    this = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        other.store_event(_entry(run_id, 1))
        this.store_event(_entry(run_id, 2))
        assert [e.user_message for e in this.get_logs_for_run(run_id)] == [
            "message 1",
            "message 2",
        ]
    finally:
        other.dispose()
        this.dispose()


def test_a_watcher_in_another_storage_sees_every_event_as_it_is_written(tmp_path: Path) -> None:
    # The UI's live run view: the webserver watches the run's database file while the run
    # writes it through its own storage (another process; here another set of connections).
    writer = PooledSqliteEventLogStorage(str(tmp_path))
    watcher = PooledSqliteEventLogStorage(str(tmp_path))
    run_id = "0" * 32
    writer.store_event(_entry(run_id, 0))  # the run's database exists before it is watched
    seen: list[str] = []
    all_seen = threading.Event()

    def on_event(entry: EventLogEntry, _cursor: str) -> None:
        seen.append(entry.user_message)
        if len(seen) == 10:
            all_seen.set()

    watcher.watch(run_id, None, on_event)
    try:
        for n in range(1, 11):
            writer.store_event(_entry(run_id, n))
            time.sleep(0.05)  # events arrive over time, as a run writes them
        assert all_seen.wait(timeout=30), f"the watcher saw only {seen}"
    finally:
        watcher.end_watch(run_id, on_event)
        watcher.dispose()
        writer.dispose()
    assert seen[-10:] == [f"message {n}" for n in range(1, 11)]


def test_open_files_stay_bounded_however_many_runs_are_read(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    run_ids = [f"{n:032x}" for n in range(RUN_ENGINES_KEPT * 2)]
    try:
        for run_id in run_ids:
            storage.store_event(_entry(run_id, 1))
            assert len(storage.get_logs_for_run(run_id)) == 1
        open_dbs = {name for name in _open_files_under(tmp_path) if name.endswith(".db")}
        assert "index.db" in open_dbs
        assert len(open_dbs - {"index.db"}) <= RUN_ENGINES_KEPT
        assert f"{run_ids[-1]}.db" in open_dbs  # the most recent stay open
        # A wipe deletes the files the open connections were on; the storage starts afresh.
        storage.wipe()
        assert not (tmp_path / f"{run_ids[-1]}.db").exists()
        storage.store_event(_entry(run_ids[-1], 2))
        assert [e.user_message for e in storage.get_logs_for_run(run_ids[-1])] == ["message 2"]
    finally:
        storage.dispose()
    assert _open_files_under(tmp_path) == set()
