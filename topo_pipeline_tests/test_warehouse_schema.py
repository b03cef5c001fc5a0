"""The warehouse schema: declared once, created with comments, migrated from older files."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from topo_pipeline.api.models import TASK_FIELDS, TASK_SCHEMA, Task
from topo_pipeline.warehouse import landing, schema
from topo_pipeline.warehouse.analytics import (
    DEFAULT_SLA_TARGET_MINUTES,
    ROLLUP_TABLES,
    replace_task_sla,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.history import HistoryChanges
from topo_pipeline.warehouse.registry import ROLLUPS_BY_TABLE
from topo_pipeline.warehouse.schema import (
    SCHEMA_VERSION,
    STAGED_TASKS,
    TABLES,
    TOPO_TASKS,
    SchemaVersionError,
    ensure_schema,
)
from topo_pipeline.warehouse.tables import Column, Table
from topo_pipeline.warehouse.task_sla import TASK_SLA
from topo_pipeline_tests.warehouse_seed import day_window, replace_task_partitions

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "schema_v1.sql"
DAY = date(2025, 3, 14)
LOADED_AT = datetime(2025, 3, 20, 12, tzinfo=UTC)
V1_ROLLUPS = (
    "sla_by_priority",
    "sla_by_assignee",
    "completion_rate_by_priority",
    "completion_rate_by_assignee",
)


def declared_columns(con: duckdb.DuckDBPyConnection, table: Table) -> list[tuple[str, str, str]]:
    return con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() "
        "WHERE database_name = 'warehouse' AND schema_name = $schema AND table_name = $name "
        "ORDER BY column_index",
        {"schema": table.schema, "name": table.name},
    ).fetchall()


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The version the file records; a first-release file records none (1); 0: a new file."""
    tables = {
        (schema_name, name)
        for schema_name, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'warehouse'"
        ).fetchall()
    }
    if ("main", "schema_version") in tables:
        (version,) = con.execute(
            "SELECT max(version) FROM warehouse.main.schema_version"
        ).fetchone() or (None,)
        if version is not None:
            return int(version)
    return 1 if ("topo", "tasks") in tables else 0


def constraints(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT table_name, constraint_type FROM duckdb_constraints() "
        "WHERE database_name = 'warehouse' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchall()


def some_tasks(count: int = 6) -> list[Task]:
    start = datetime.combine(DAY, datetime.min.time(), UTC)
    return [
        Task.from_api(
            {
                "id": f"t{n}",
                "organization_id": "org",
                "type": "CALL",
                "priority": ("HOT", "TODAY", "EXTRA")[n % 3],
                "status": ("PENDING", "COMPLETED")[n % 2],
                "sequence_id": "seq",
                "assignee_user_id": f"user-{n % 2}",
                "created_at": (start + timedelta(hours=n)).isoformat(),
                "completed_at": (start + timedelta(hours=n, minutes=30)).isoformat(),
                "updated_at": start.isoformat(),
            }
        )
        for n in range(count)
    ]


# -- the task schema, declared once ------------------------------------------------------


def test_the_task_record_and_both_tables_follow_the_task_schema() -> None:
    task_attributes = [f.name for f in dataclasses.fields(Task)]
    assert task_attributes == [*TASK_FIELDS, "raw"]
    types = {"string": "VARCHAR", "timestamp": "TIMESTAMPTZ"}
    for table, before, after in (
        (TOPO_TASKS, [], ["partition_date", "loaded_at", "raw"]),
        (STAGED_TASKS, ["arrival"], ["partition_date", "raw"]),
    ):
        assert list(table.column_names) == [*before, *TASK_FIELDS, *after], table.name
        for field in TASK_SCHEMA:
            column = table.column(field.name)
            assert column.sql_type == types[field.kind]
            assert column.comment == field.description
            assert column.not_null == field.strict  # id and created_at


def test_a_new_file_gets_every_declared_table_with_its_types_and_comments(tmp_path: Path) -> None:
    with connect(tmp_path / "new.duckdb") as con:
        assert ensure_schema(con) == 0
        assert schema_version(con) == SCHEMA_VERSION
        for table in TABLES:
            assert declared_columns(con, table) == [
                (c.name, _duckdb_type(c.sql_type), c.comment) for c in table.columns
            ], table.display_name
        tasks_comment = con.execute(
            "SELECT comment FROM duckdb_tables() "
            "WHERE schema_name = 'topo' AND table_name = 'tasks'"
        ).fetchone()
        assert tasks_comment == (TOPO_TASKS.comment,)
        # No index over every stored id: DuckDB would load it on every write (memory
        # growing with the table); the landing and the unique_ids check keep ids unique.
        assert constraints(con) == []
        fingerprint = con.execute("SELECT declarations FROM warehouse.main.schema_version")
        assert fingerprint.fetchall() == [(schema.declarations_fingerprint(),)]
        assert ensure_schema(con) == SCHEMA_VERSION  # current: nothing to do


def test_columns_are_stored_with_their_declared_compression(tmp_path: Path) -> None:
    compressed = [(t, c) for t in TABLES for c in t.columns if c.compression is not None]
    assert [(t.display_name, c.name) for t, c in compressed] == [("topo.tasks", "raw")]
    with connect(tmp_path / "new.duckdb") as con:
        ensure_schema(con)
        replace_task_partitions(con, [day_window(DAY)], some_tasks(), loaded_at=LOADED_AT)
        con.execute("CHECKPOINT warehouse")
        stored = con.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('warehouse.topo.tasks') "
            "WHERE column_name = 'raw' AND segment_type <> 'VALIDITY'"
        ).fetchall()
    assert stored == [("ZSTD",)]


def _duckdb_type(sql_type: str) -> str:
    return {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(sql_type, sql_type)


# -- migrations ---------------------------------------------------------------------------


def first_release_file(path: Path) -> dict[str, list[tuple]]:
    """A file as the first release left it (its DDL, from git), with rows in every table."""
    with connect(path) as con:
        con.execute(FIXTURE_V1.read_text())
        assert schema_version(con) == 1
        assert ("tasks", "PRIMARY KEY") in constraints(con)
        # The first release's landing and analytics SQL still fit its tables: land with them.
        with pytest.MonkeyPatch.context() as patch:
            current = (SCHEMA_VERSION, schema.declarations_fingerprint())
            patch.setattr(schema, "_recorded", lambda con: current)  # no migration yet
            nothing = HistoryChanges(versions=0, removed=0)
            patch.setattr(landing, "record_task_history", lambda *args: nothing)  # nor history
            replace_task_partitions(con, [day_window(DAY)], some_tasks(), loaded_at=LOADED_AT)
            # The business-hours columns came later: present while the SLA is computed only.
            added = [c for c in TASK_SLA.columns if c.name.startswith("business_")]
            for column in added:
                con.execute(
                    f"ALTER TABLE warehouse.analytics.task_sla ADD COLUMN {column.definition()}"
                )
            replace_task_sla(con, [DAY], as_of=LOADED_AT, sla_targets=DEFAULT_SLA_TARGET_MINUTES)
            for column in added:
                con.execute(f"ALTER TABLE warehouse.analytics.task_sla DROP COLUMN {column.name}")
            for table in V1_ROLLUPS:
                first_release_rollup(con, table)
        return every_row(con)


def first_release_rollup(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """A rollup's rows as the first release built them: its columns, without names or teams."""
    rollup = ROLLUPS_BY_TABLE[table]
    # Business-hours measures came later too.
    kept = [m for m in rollup.family.measures if not m.column.name.startswith("business_")]
    names = ["partition_date", rollup.group.name, *(m.column.name for m in kept)]
    measures = ", ".join(f"{m.expression} AS {m.column.name}" for m in kept)
    con.execute(
        f"INSERT INTO warehouse.analytics.{table} ({', '.join(names)}) "
        f"SELECT partition_date, {rollup.group.name}, {measures} "
        f"FROM warehouse.analytics.task_sla GROUP BY partition_date, {rollup.group.name}"
    )


def every_row(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    names = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = 'warehouse' AND schema_name IN ('topo', 'analytics') ORDER BY ALL"
    ).fetchall()
    return {
        f"{s}.{t}": con.execute(f"SELECT * FROM warehouse.{s}.{t} ORDER BY ALL").fetchall()
        for s, t in names
    }


def test_a_file_of_the_first_release_is_migrated_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    before = first_release_file(path)
    assert len(before["topo.tasks"]) == 6
    assert all(before.values()), "every table of the old file holds rows"

    with connect(path) as con:
        assert ensure_schema(con) == 1
        assert schema_version(con) == SCHEMA_VERSION
        after = every_row(con)
        # Every row kept; columns declared since (names and teams) are added, NULL.
        width = {name: len(rows[0]) for name, rows in before.items()}
        assert {name: [row[: width[name]] for row in after[name]] for name in before} == before
        assert all(set(row[width[name] :]) <= {None} for name in before for row in after[name])
        # Tables declared since are there, empty until their partitions are built; the
        # history starts from the stored rows.
        added = set(after) - set(before) - {"topo.task_history"}
        assert added == {
            *(f"analytics.{t}" for t in ROLLUP_TABLES if t not in V1_ROLLUPS),
            "topo.pipeline_info",  # filled by the first publish
            "analytics.builds",  # by the first build
            "analytics.sla_watch_settings",  # filled by the first run of the SLA alerts
            "analytics.sla_alerts_sent",
        }
        assert not any(after[name] for name in added)
        assert con.execute(
            "SELECT id, version, valid_from, valid_to, removed, status "
            "FROM warehouse.topo.task_history ORDER BY id"
        ).fetchall() == [(task.id, 1, LOADED_AT, None, False, task.status) for task in some_tasks()]
        assert constraints(con) == []
        for table in TABLES:
            assert declared_columns(con, table) == [
                (c.name, _duckdb_type(c.sql_type), c.comment) for c in table.columns
            ], table.display_name
        # The migrated file takes the next landing like a new one.
        moved = replace_task_partitions(con, [day_window(DAY)], some_tasks(3), loaded_at=LOADED_AT)
        assert moved == {DAY: 3}


def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v1.duckdb"
    before = first_release_file(path)

    def breaks(con: duckdb.DuckDBPyConnection) -> None:
        raise duckdb.InvalidInputException("a step that fails half-way")

    steps = schema.MIGRATIONS[2]
    monkeypatch.setitem(schema.MIGRATIONS, 2, (*steps, breaks))  # after the rebuilds
    with connect(path) as con:
        with pytest.raises(duckdb.InvalidInputException, match="half-way"):
            ensure_schema(con)
        assert schema_version(con) == 1
        assert every_row(con) == before
        assert ("tasks", "PRIMARY KEY") in constraints(con)  # the rebuild was rolled back


def test_a_file_newer_than_the_code_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    with connect(path) as con:
        ensure_schema(con)
        con.execute("UPDATE warehouse.main.schema_version SET version = $v", {"v": 99})
    with connect(path) as con:
        with pytest.raises(SchemaVersionError, match="schema version 99, newer than the"):
            ensure_schema(con)
        with pytest.raises(SchemaVersionError, match="upgrade topo_pipeline"):  # any writer
            replace_task_sla(con, [DAY], as_of=LOADED_AT, sla_targets=DEFAULT_SLA_TARGET_MINUTES)
        assert schema_version(con) == 99
        assert con.execute("SELECT count(*) FROM warehouse.topo.tasks").fetchone() == (0,)


def test_a_declared_column_and_table_reach_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "current.duckdb"
    with connect(path) as con:
        ensure_schema(con)
        replace_task_partitions(con, [day_window(DAY)], some_tasks(), loaded_at=LOADED_AT)
        before = every_row(con)

    # What a later release declares: one more column of topo.tasks and one more table.
    extra = Column("owner_team", "VARCHAR", "Team owning the task.", compression="zstd")
    tasks = dataclasses.replace(TOPO_TASKS, columns=(*TOPO_TASKS.columns, extra))
    directory = Table(
        "topo",
        "assignees",
        "Workspace users tasks are assigned to.",
        (Column("id", "VARCHAR", "User id.", True), Column("name", "VARCHAR", "Full name.")),
    )
    # Declaring them is all it takes: no version bump, no migration step.
    monkeypatch.setattr(schema, "TABLES", (tasks, *TABLES[1:], directory))

    with connect(path) as con:
        assert ensure_schema(con) == SCHEMA_VERSION
        assert schema_version(con) == SCHEMA_VERSION
        assert declared_columns(con, tasks)[-1] == ("owner_team", "VARCHAR", extra.comment)
        (definition,) = con.execute(
            "SELECT sql FROM duckdb_tables() WHERE schema_name = 'topo' AND table_name = 'tasks'"
        ).fetchone()
        assert "owner_team VARCHAR USING COMPRESSION ZSTD" in definition
        rows = con.execute(
            "SELECT * EXCLUDE (owner_team) FROM warehouse.topo.tasks ORDER BY ALL"
        ).fetchall()
        assert rows == before["topo.tasks"]
        assert declared_columns(con, directory) == [
            ("id", "VARCHAR", "User id."),
            ("name", "VARCHAR", "Full name."),
        ]
