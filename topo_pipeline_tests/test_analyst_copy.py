"""The analyst copy: a complete, commented, DuckDB-1.4-readable copy, swapped in atomically.

The last test is the operator's story end to end against the simulated API: the daily
schedule's run request is executed, ``analyst_copy_sensor`` asks for a publish and the
publish job runs; then, while an analyst's session (another process) holds the copy open,
``open_tasks_sensor`` reads the copy and re-requests a day, that run and the next publish
succeed, the open session keeps its old data and a new session sees the change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time as time_module
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from topo_pipeline import __version__
from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.analyst_copy_sensor import ANALYST_COPY_SENSOR_NAME
from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.jobs import REFRESH_JOB_NAME, REFRESH_SELECTION
from topo_pipeline.defs.open_tasks_sensor import build_open_tasks_sensor
from topo_pipeline.defs.schedules import DAILY_REFRESH_SCHEDULE_NAME
from topo_pipeline.liveness import owner_of
from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
    make_task,
)
from topo_pipeline.warehouse.analyst_copy import (
    COPY_CATALOG,
    AnalystCopyError,
    _verify_copy,
    publish_analyst_copy,
)
from topo_pipeline.warehouse.duckdb import (
    STORAGE_VERSION,
    WarehouseLockedError,
    connect,
    storage_version,
    wal_files,
)
from topo_pipeline.warehouse.pipeline_info import PipelineInfo
from topo_pipeline_tests.duckdb_holder import hold_duckdb
from topo_pipeline_tests.harness import fresh_instance
from topo_pipeline_tests.processes import killed_process_owner
from topo_pipeline_tests.warehouse_seed import seed_tasks

LOADED_AT = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
DAY = date(2025, 3, 14)


def some_tasks(day: date = DAY, n: int = 12) -> list[dict]:
    statuses = ["PENDING", "IN_PROGRESS", "COMPLETED", "SKIPPED"]
    start = datetime.combine(day, time(8), UTC)
    return [
        make_task(
            created_at=start + timedelta(minutes=17 * i),
            status=statuses[i % 4],
            priority=["HOT", "TODAY", "EXTRA"][i % 3],
            assignee_user_id=None if i % 5 == 0 else f"user-{i % 3}",
        )
        for i in range(n)
    ]


def catalog_snapshot(path: Path) -> dict[str, object]:
    """Tables, comments, constraints and every row of the file, for comparison."""
    with connect(path, read_only=True) as con:
        tables = con.execute(
            "SELECT schema_name, table_name, comment FROM duckdb_tables() "
            "WHERE database_name = 'warehouse' ORDER BY ALL"
        ).fetchall()
        columns = con.execute(
            "SELECT schema_name, table_name, column_name, data_type, comment "
            "FROM duckdb_columns() WHERE database_name = 'warehouse' ORDER BY ALL"
        ).fetchall()
        constraints = con.execute(
            "SELECT schema_name, table_name, constraint_type, constraint_text "
            "FROM duckdb_constraints() WHERE database_name = 'warehouse' ORDER BY ALL"
        ).fetchall()
        rows = {
            f"{schema}.{table}": con.execute(
                f'SELECT * FROM warehouse."{schema}"."{table}" ORDER BY ALL'
            ).fetchall()
            for schema, table, _ in tables
        }
    return {"tables": tables, "columns": columns, "constraints": constraints, "rows": rows}


def file_format(path: Path) -> str:
    with connect(path, read_only=True) as con:
        return storage_version(con)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline file with two days of tasks and their analytics, made once."""
    path = tmp_path_factory.mktemp("seeded") / "pipeline.duckdb"
    seed_tasks(path, some_tasks(DAY) + some_tasks(DAY + timedelta(days=1), 7), loaded_at=LOADED_AT)
    return path


@pytest.fixture
def source(seeded: Path, tmp_path: Path) -> Path:
    """A copy of the ``seeded`` file, for one test to publish and change."""
    return shutil.copyfile(seeded, tmp_path / "pipeline.duckdb")


def test_the_copy_holds_every_table_row_comment_and_constraint(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "analyst.duckdb"
    result = publish_analyst_copy(source, target)

    expected = catalog_snapshot(source)
    assert catalog_snapshot(target) == expected
    # The snapshot really covers both schemas, with comments on tables and columns.
    schemas = {schema for schema, _, _ in expected["tables"]}
    assert schemas == {"topo", "reference", "analytics", "main"}  # main: the schema version
    assert all(comment for _, _, comment in expected["tables"])
    assert all(column[-1] for column in expected["columns"])
    # The published (and verified) tables: schemas topo and analytics.
    assert {t.qualified_name: t.rows for t in result.tables} == {
        name: len(rows) for name, rows in expected["rows"].items() if not name.startswith("main.")
    }
    assert {t.qualified_name: t.rows for t in result.tables}["topo.tasks"] == 19
    assert result.path == target
    assert result.size_bytes == target.stat().st_size


def test_the_copy_is_written_for_duckdb_1_4_clients(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "analyst.duckdb"
    result = publish_analyst_copy(source, target)
    assert STORAGE_VERSION == "v1.4.0"
    assert result.storage_version == "v1.4.0+"
    assert file_format(target) == "v1.4.0+"
    # The pipeline creates its own file in that format too, so the copy is its bytes.
    assert file_format(source) == "v1.4.0+"
    assert result.copy_method == "file"
    assert target.read_bytes() == source.read_bytes()


def test_a_file_in_duckdb_2s_format_is_copied_row_by_row_into_1_4s(tmp_path: Path) -> None:
    # As an older release created it: attached without a storage version, DuckDB 2's own.
    source = tmp_path / "pipeline.duckdb"
    con = duckdb.connect(str(source))
    con.close()
    seed_tasks(source, some_tasks(), loaded_at=LOADED_AT)
    assert file_format(source) not in ("v1.4.0+", "unknown")

    target = tmp_path / "analyst.duckdb"
    result = publish_analyst_copy(source, target)

    assert result.copy_method == "rows"
    assert file_format(target) == result.storage_version == "v1.4.0+"
    assert catalog_snapshot(target) == catalog_snapshot(source)
    assert file_format(source) != "v1.4.0+"  # DuckDB never lowers a file's format

    # docs/operating.md's way to the fast path: the copy put in the pipeline file's place.
    shutil.copyfile(target, source)
    seed_tasks(source, some_tasks(DAY + timedelta(days=2), 3), loaded_at=LOADED_AT)
    again = publish_analyst_copy(source, target, info=NEW_YORK)
    assert again.copy_method == "file"
    assert catalog_snapshot(target) == catalog_snapshot(source)
    assert {t.qualified_name: t.rows for t in again.tables}["topo.tasks"] == 12 + 3


def leave_a_commit_in_the_wal(path: Path) -> None:
    """A writer killed after its commit: the commit is in the WAL beside ``path`` only."""
    killed_writer = (
        "import os, sys, duckdb\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"DELETE FROM topo.tasks WHERE status = 'SKIPPED'\")\n"
        "os._exit(0)\n"
    )
    subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", killed_writer, str(path)], check=True
    )
    assert [wal.stat().st_size > 0 for wal in wal_files(path)] == [True]


def skipped_tasks(path: Path) -> int:
    with connect(path, read_only=True) as con:
        (count,) = con.execute(
            "SELECT count(*) FROM warehouse.topo.tasks WHERE status = 'SKIPPED'"
        ).fetchone()
    return count


@pytest.mark.parametrize(
    ("writable", "copy_method"),
    [(True, "file"), (False, "rows")],
    ids=["writable: checkpointed, then copied", "read-only: rows rewritten"],
)
def test_a_commit_left_in_the_write_ahead_log_reaches_the_copy(
    source: Path, tmp_path: Path, writable: bool, copy_method: str
) -> None:
    # The file's bytes alone lack that commit: a publish given the settings checkpoints it
    # into the file first; a read-only one cannot, and copies the rows instead.
    assert skipped_tasks(source) > 0
    leave_a_commit_in_the_wal(source)

    target = tmp_path / "analyst.duckdb"
    result = publish_analyst_copy(source, target, info=NEW_YORK if writable else None)

    assert result.copy_method == copy_method
    assert skipped_tasks(target) == 0
    assert catalog_snapshot(target) == catalog_snapshot(source)


@pytest.mark.parametrize(
    ("source_name", "target_name"),
    [
        ("topo.duckdb", "analytics.duckdb"),
        ("analytics.duckdb", "topo.duckdb"),
        ("warehouse.duckdb", "analyst_copy.duckdb"),
        ("analyst_copy.duckdb", "warehouse.duckdb"),
        ("memory.db", "main"),
    ],
)
def test_any_file_names_work(source_name: str, target_name: str, tmp_path: Path) -> None:
    src = tmp_path / "in" / source_name
    src.parent.mkdir()
    seed_tasks(src, some_tasks(), loaded_at=LOADED_AT)
    target = tmp_path / "out" / target_name  # the folder is created
    publish_analyst_copy(src, target)
    assert catalog_snapshot(target) == catalog_snapshot(src)
    assert sorted(p.name for p in target.parent.iterdir()) == [target_name]


def test_republishing_replaces_the_copy_and_leaves_no_temporary_files(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "analyst.duckdb"
    publish_analyst_copy(source, target)
    seed_tasks(source, some_tasks(DAY + timedelta(days=3), 5), loaded_at=LOADED_AT)
    publish_analyst_copy(source, target)
    assert catalog_snapshot(target) == catalog_snapshot(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analyst.duckdb", "pipeline.duckdb"]


def test_files_left_by_an_interrupted_publish_are_removed_later(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "analyst.duckdb"
    stale = tmp_path / ".analyst.duckdb.0123abcd.publishing"
    stale_wal = tmp_path / ".analyst.duckdb.0123abcd.publishing.wal"
    recent = tmp_path / ".analyst.duckdb.4567cdef.publishing"  # maybe still being built
    for path in (stale, stale_wal, recent):
        path.write_bytes(b"partial")
    day_ago = time_module.time() - 24 * 3600
    for path in (stale, stale_wal):
        os.utime(path, (day_ago, day_ago))
    publish_analyst_copy(source, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [recent.name, "analyst.duckdb", "pipeline.duckdb"]
    )


def test_a_killed_publishers_files_go_at_the_next_publish_a_live_ones_stay(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "analyst.duckdb"
    dead = killed_process_owner()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        try:
            live = owner_of(child.pid)
            assert live is not None
            killed = tmp_path / f".analyst.duckdb.{dead.token()}.0123abcd.publishing"
            killed_wal = killed.with_name(killed.name + ".wal")
            building = tmp_path / f".analyst.duckdb.{live.token()}.4567cdef.publishing"
            for path in (killed, killed_wal, building):
                path.write_bytes(b"partial")  # just written: age says nothing

            publish_analyst_copy(source, target)

            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                [building.name, "analyst.duckdb", "pipeline.duckdb"]
            )
        finally:
            child.kill()
            child.wait()
    # Once its process is gone, the next publish removes that one too.
    publish_analyst_copy(source, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analyst.duckdb", "pipeline.duckdb"]


def test_a_missing_pipeline_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialize topo/tasks"):
        publish_analyst_copy(tmp_path / "nothing.duckdb", tmp_path / "analyst.duckdb")
    assert list(tmp_path.iterdir()) == []


def test_the_copy_must_be_another_file(source: Path) -> None:
    with pytest.raises(ValueError, match="different file"):
        publish_analyst_copy(source, source.parent / "." / source.name)


def test_a_publish_that_cannot_read_the_pipeline_file_keeps_the_old_copy(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "analyst.duckdb"
    publish_analyst_copy(source, target)
    before = catalog_snapshot(target)
    # Another process writing the pipeline's file holds its lock for longer than we wait.
    with (
        hold_duckdb(source, read_only=False),
        pytest.raises(WarehouseLockedError, match="stayed locked"),
    ):
        publish_analyst_copy(source, target, lock_timeout=0.3)
    assert catalog_snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analyst.duckdb", "pipeline.duckdb"]


def test_a_copy_that_differs_from_the_source_is_refused(source: Path, tmp_path: Path) -> None:
    # COPY FROM DATABASE does not drift on its own, so check the guard directly: a copy
    # catalog with rows missing is refused before anything is swapped in.
    short = tmp_path / "short.duckdb"
    seed_tasks(short, some_tasks(DAY), loaded_at=LOADED_AT)  # lacks the second day
    with connect(source, read_only=True) as con:
        con.execute(f"ATTACH ? AS {COPY_CATALOG} (READ_ONLY)", [str(short)])
        with pytest.raises(
            AnalystCopyError, match=r"the analyst copy holds \d+ rows, the pipeline's file \d+"
        ):
            _verify_copy(con)
        con.execute(f"DETACH {COPY_CATALOG}")
        # Same rows but a table missing: refused as well.
        seed_tasks(
            tmp_path / "no_analytics.duckdb",
            some_tasks(),
            loaded_at=LOADED_AT,
            with_analytics=False,
        )
        with connect(tmp_path / "no_analytics.duckdb") as lacking:
            lacking.execute("DROP TABLE warehouse.analytics.sla_by_assignee")
        con.execute(
            f"ATTACH ? AS {COPY_CATALOG} (READ_ONLY)", [str(tmp_path / "no_analytics.duckdb")]
        )
        with pytest.raises(AnalystCopyError, match="tables or table comments differ"):
            _verify_copy(con)


# --- end to end: a run and a publish while an analyst holds the copy ------------------

START = date(2026, 3, 2)
SPEC = DatasetSpec(seed=5, start_date=START, days=3, tasks_per_day=[70, 40, 55], tie_group_size=0)


@pytest.fixture
def api() -> Iterator[SimulatedTopoApi]:
    data = generate_dataset(SPEC)
    with SimulatedTopoApi(TaskStore(data.tasks, data.sequence_templates)) as server:
        yield server


@pytest.mark.slow  # a schedule, a sensor and runs, end to end
def test_runs_publish_while_an_analyst_session_holds_the_copy(
    api: SimulatedTopoApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, DEMO_API_KEY)
    settings = Settings(
        base_url=api.base_url,
        duckdb_path=tmp_path / "pipeline.duckdb",
        analyst_duckdb_path=tmp_path / "analyst.duckdb",
        start_date=START,
        requests_per_minute=None,
        open_tasks_max_age_days=3650,  # the data set's days are in the past
    )
    defs = build_defs(settings)
    refresh_job = defs.resolve_job_def(REFRESH_JOB_NAME)
    schedule = defs.resolve_schedule_def(DAILY_REFRESH_SCHEDULE_NAME)
    sensor = defs.resolve_sensor_def(ANALYST_COPY_SENSOR_NAME)

    with fresh_instance() as instance:

        def nothing_left_to_publish() -> None:
            """The run published: the sensor, the safety net, finds nothing to do."""
            tick = sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, definitions=defs)
            )
            assert not tick.run_requests

        # The schedule's tick after the third day: one run over all three days.
        tick_time = datetime.combine(START + timedelta(days=3), time(0, 30), UTC)
        scheduled = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time)
        )
        (request,) = scheduled.run_requests
        first = refresh_job.execute_in_process(instance=instance, tags=request.tags)
        assert first.success
        materialized = {
            (e.asset_key, e.partition) for e in first.get_asset_materialization_events()
        }
        # One run: topo/tasks for each of the three days, everything downstream of it (the
        # analytics tables, then the analyst copy) once.
        pipeline_keys = REFRESH_SELECTION.resolve(defs.resolve_asset_graph())
        assert {TASKS_KEY, ANALYST_COPY_KEY} < pipeline_keys
        days = [str(START + timedelta(days=i)) for i in range(3)]
        assert materialized == {(TASKS_KEY, day) for day in days} | {
            (key, None) for key in pipeline_keys - {TASKS_KEY}
        }
        nothing_left_to_publish()
        assert catalog_snapshot(settings.analyst_duckdb_path) == catalog_snapshot(
            settings.duckdb_path
        )

        old_rows = len(api.store.all())
        with hold_duckdb(settings.analyst_duckdb_path, read_only=True) as analyst:
            assert analyst.first[0] == old_rows
            # The open-task sensor reads the published copy and asks for a day still open.
            open_tasks = build_open_tasks_sensor(
                settings, clock=lambda: datetime.now(UTC) + timedelta(hours=2)
            )
            with dg.build_sensor_context(definitions=defs, resources=defs.resources) as context:
                ticked = open_tasks.evaluate_tick(context)
            request = ticked.run_requests[0]
            day = date.fromisoformat(request.partition_key)
            # Meanwhile in Topo: an open task of that day is completed, and one is added.
            changed = next(
                t
                for t in api.store.all()
                if t["status"] == "PENDING" and parse_timestamp(t["created_at"]).date() == day
            )
            api.store.upsert(
                {**changed, "status": "COMPLETED", "completed_at": changed["created_at"]}
            )
            api.store.upsert(make_task(created_at=datetime.combine(day, time(9), UTC)))
            second = refresh_job.execute_in_process(
                instance=instance, partition_key=request.partition_key, tags=request.tags
            )
            assert second.success
            # The run published while the analyst's session held the old copy open.
            assert ANALYST_COPY_KEY in {
                e.asset_key for e in second.get_asset_materialization_events()
            }
            nothing_left_to_publish()

            # The open session still reads the copy it opened; new sessions see the new one.
            assert analyst.read() == analyst.first
        with hold_duckdb(settings.analyst_duckdb_path, read_only=True) as fresh:
            assert fresh.first[0] == old_rows + 1
            assert fresh.first != analyst.first
        with connect(settings.analyst_duckdb_path, read_only=True) as con:
            (status,) = con.execute(
                "SELECT status FROM warehouse.topo.tasks WHERE id = ?", [changed["id"]]
            ).fetchone()
        assert status == "COMPLETED"
        assert catalog_snapshot(settings.analyst_duckdb_path) == catalog_snapshot(
            settings.duckdb_path
        )
        nothing_left_to_publish()


# --- the file describes itself: topo.pipeline_info and the time zone in comments ---------

NEW_YORK = PipelineInfo(
    timezone="America/New_York",
    start_date=date(2025, 3, 1),
    version=__version__,
    sla_target_minutes={"HOT": 30, "TODAY": 720, "EXTRA": 4320},
)


def pipeline_info_rows(path: Path) -> list[dict[str, object]]:
    with connect(path, read_only=True) as con:
        cursor = con.execute("SELECT * FROM warehouse.topo.pipeline_info")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def comments(path: Path) -> list[tuple[str, str, str | None, str]]:
    """(schema, table or view, column or None, comment) of every commented object."""
    with connect(path, read_only=True) as con:
        return con.execute(
            "SELECT schema_name, table_name, NULL, comment FROM duckdb_tables() "
            "WHERE database_name = 'warehouse' AND comment IS NOT NULL "
            "UNION ALL SELECT schema_name, view_name, NULL, comment FROM duckdb_views() "
            "WHERE database_name = 'warehouse' AND NOT internal AND comment IS NOT NULL "
            "UNION ALL SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = 'warehouse' AND comment IS NOT NULL ORDER BY ALL"
        ).fetchall()


def test_the_copy_says_when_it_was_published_and_what_it_holds(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "analyst.duckdb"
    before = datetime.now(UTC)
    publish_analyst_copy(source, target, info=NEW_YORK)
    after = datetime.now(UTC)

    (row,) = pipeline_info_rows(target)
    assert before <= row.pop("published_at") <= after
    assert row == {
        "partition_timezone": "America/New_York",
        "sla_target_minutes": {"HOT": 30, "TODAY": 720, "EXTRA": 4320},
        "start_date": date(2025, 3, 1),
        "first_partition_date": DAY,
        "last_partition_date": DAY + timedelta(days=1),
        "partition_days": 2,
        "tasks": 19,
        "last_loaded_at": LOADED_AT,
        "pipeline_version": __version__,
    }
    # The pipeline's own file holds the same table, and the copy is still a true copy.
    assert pipeline_info_rows(source) == pipeline_info_rows(target)
    assert catalog_snapshot(target) == catalog_snapshot(source)
    with connect(target, read_only=True) as con:
        (table_comment,) = con.execute(
            "SELECT comment FROM duckdb_tables() WHERE table_name = 'pipeline_info'"
        ).fetchone()
        undocumented = con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE table_name = 'pipeline_info' AND comment IS NULL"
        ).fetchall()
    assert "America/New_York" in table_comment
    assert undocumented == []


def test_comments_that_depend_on_the_time_zone_name_it(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "analyst.duckdb"
    unstated = [c for c in comments(source) if "time zone" in c[3] or "timezone" in c[3]]
    assert unstated, "the tables' comments speak of the pipeline's time zone"
    assert not [c for c in unstated if "America/New_York" in c[3]]

    publish_analyst_copy(source, target, info=NEW_YORK)
    stated = comments(target)
    assert stated == comments(source)
    zone_dependent = [c for c in stated if "TOPO_TIMEZONE" in c[3] or c[2] == "partition_date"]
    # Every partition_date column of every table and view, and the tables' descriptions.
    assert {(s, t) for s, t, column, _ in zone_dependent if column == "partition_date"} >= {
        ("topo", "tasks"),
        ("analytics", "task_sla"),
        ("analytics", "sla_by_priority"),
        ("analytics", "daily_by_priority"),
    }
    missing = [c for c in zone_dependent if "America/New_York" not in c[3]]
    assert missing == []

    # The zone changes (a new deployment of the same file): the comments follow.
    publish_analyst_copy(source, target, info=replace(NEW_YORK, timezone="Europe/Berlin"))
    restated = comments(target)
    assert not [c for c in restated if "America/New_York" in c[3]]
    assert len([c for c in restated if "Europe/Berlin" in c[3]]) == len(zone_dependent)
    assert pipeline_info_rows(target)[0]["partition_timezone"] == "Europe/Berlin"
