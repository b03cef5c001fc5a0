"""The warehouse's schema: every table and view, its version, and the migration of old files.

:data:`TABLES` and :data:`VIEWS` declare what a file of :data:`SCHEMA_VERSION` holds, and
:func:`ensure_schema` brings a file to that state before anything writes it: a new file gets
everything, an older one is migrated in one transaction with every row kept, a newer one is
refused (:class:`SchemaVersionError`). Adding a table, view or column is one declaration
here; only a change that is not an addition needs a step in :data:`MIGRATIONS` under a new
version. How versions, fingerprints and migrations work: ``docs/design.md``, "The schema".
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping

import duckdb

from topo_pipeline.api.models import TASK_SCHEMA, TaskField
from topo_pipeline.warehouse.analyst_views import ANALYST_VIEWS
from topo_pipeline.warehouse.builds import BUILDS
from topo_pipeline.warehouse.duckdb import CATALOG, transaction
from topo_pipeline.warehouse.pipeline_info import PIPELINE_INFO
from topo_pipeline.warehouse.queries import load_sql, render_sql
from topo_pipeline.warehouse.reference import ASSIGNEES
from topo_pipeline.warehouse.registry import ANALYTICS_TABLE_DECLARATIONS
from topo_pipeline.warehouse.sla_watch import TABLES as SLA_WATCH_TABLES
from topo_pipeline.warehouse.tables import Column, Table, View, identifier
from topo_pipeline.warehouse.task_sla import PARTITION_COMMENT, TASK_SLA

SCHEMA_VERSION = 3
"""The schema version this code writes."""

VERSIONS: Mapping[int, str] = {
    1: "The first release: topo.tasks and the five analytics tables, no version recorded.",
    2: "The version is recorded; topo.tasks and analytics.task_sla keep no PRIMARY KEY index "
    "(uniqueness of id is enforced by the landing and a blocking asset check), so a write "
    "no longer loads an index of every stored id.",
    3: "topo.task_history records every observed version of each task; a migrated file's "
    "history starts from its stored rows (one version per task, valid from its loaded_at).",
}
"""What each version brought (the documentation of :data:`MIGRATIONS`)."""

_SQL_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMPTZ"}


def _task_column(field: TaskField) -> Column:
    return Column(field.name, _SQL_TYPES[field.kind], field.description, not_null=field.strict)


TASK_COLUMNS: tuple[Column, ...] = tuple(_task_column(field) for field in TASK_SCHEMA)
"""The task object's fields as columns, in Topo's order: shared by the table and the stage."""

PARTITION_DATE = Column(
    "partition_date",
    "DATE",
    PARTITION_COMMENT,
    not_null=True,
)

TOPO_TASKS = Table(
    "topo",
    "tasks",
    "Topo tasks from GET /v1/tasks. One row per task id, holding its latest fetched state; "
    "partition_date is the day the task was created in the pipeline's timezone.",
    (
        *TASK_COLUMNS,
        PARTITION_DATE,
        Column("loaded_at", "TIMESTAMPTZ", "When this row was fetched from the API.", True),
        Column(
            "raw",
            "JSON",
            "The task object exactly as the API returned it, including fields added after "
            "this table was defined.",
            not_null=True,
            # Most of the table's bytes. With DuckDB's own choice, DICT_FSST, a year's JSON
            # (365,000 tasks, 167 MB of text) was written in 1.7 s into 74 MB; with zstd,
            # in 1.1 s into 32 MB. DuckDB reads zstd strings since 1.2.
            compression="zstd",
        ),
    ),
)

STAGED_TASKS = Table(
    "main",
    "staged_tasks",
    "Every task a run fetched, in arrival order, before it is landed in topo.tasks.",
    (
        Column("arrival", "BIGINT", "Arrival order; the tie-break between copies of an id.", True),
        *TASK_COLUMNS,
        PARTITION_DATE,
        Column("raw", "VARCHAR", "The task object as JSON text.", not_null=True),
    ),
)
"""The run-local stage (its own DuckDB file, not part of the warehouse; no comments there)."""

HISTORY_FIELDS: tuple[str, ...] = (
    "type",
    "priority",
    "status",
    "assignee_user_id",
    "disposition",
    "reopened_at",
    "reopen_reason",
    "skipped_at",
    "completed_at",
    "created_at",
)
"""The task fields ``topo.task_history`` keeps: a change in any of them is a new version."""

TASK_HISTORY = Table(
    "topo",
    "task_history",
    "Every observed version of each Topo task: one row per task per version, valid from the "
    "landing that first fetched it (valid_from) until the landing that fetched a different "
    "one or found the task gone (valid_to; NULL for the current version). A version with "
    "removed = true records that Topo no longer returned the task. Only the landing writes it; "
    "re-materializing a partition adds versions and never deletes any.",
    (
        Column("id", "VARCHAR", "Task id (UUID), as in topo.tasks.", not_null=True),
        PARTITION_DATE,
        Column(
            "version",
            "INTEGER",
            "1 for the first version observed of the task, then 2, 3, ... (unique per id).",
            not_null=True,
        ),
        Column(
            "valid_from",
            "TIMESTAMPTZ",
            "loaded_at of the landing that first fetched this version (for the first version "
            "of a file migrated from a release without history: the stored row's loaded_at).",
            not_null=True,
        ),
        Column(
            "valid_to",
            "TIMESTAMPTZ",
            "loaded_at of the landing that fetched a different version or found the task gone; "
            "NULL while this is the current version. The version held in [valid_from, valid_to).",
        ),
        Column(
            "removed",
            "BOOLEAN",
            "true: Topo no longer returned the task for its day (deleted or moved out of reach); "
            "the other fields repeat its last fetched values. A task that comes back gets a new "
            "version with removed = false.",
            not_null=True,
        ),
        *(
            Column(name, TOPO_TASKS.column(name).sql_type, TOPO_TASKS.column(name).comment)
            for name in HISTORY_FIELDS
        ),
    ),
)

TABLES: tuple[Table, ...] = (
    TOPO_TASKS,
    TASK_HISTORY,
    ASSIGNEES,
    *ANALYTICS_TABLE_DECLARATIONS,
    BUILDS,
    PIPELINE_INFO,
    *SLA_WATCH_TABLES,
)
"""Every table of the warehouse, in creation order."""

VIEWS: tuple[View, ...] = (
    *ANALYST_VIEWS,
    View(
        "analytics",
        "task_status_changes",
        "Every observed status change of a task, from topo.task_history: one row per version "
        "whose status differs from the task's previous version (REMOVED when Topo no longer "
        "returned the task), with the minutes between the two observations. Times are when "
        "the pipeline observed the change (landings), not when it happened in Topo.",
        load_sql("task_status_changes_view"),
        (
            ("id", "Task id (UUID), as in topo.tasks."),
            ("partition_date", PARTITION_DATE.comment),
            ("version", "The version of topo.task_history that showed the new status."),
            ("priority", "The task's priority in that version."),
            ("assignee_user_id", "The task's assignee in that version; NULL means unassigned."),
            ("from_status", "The status before the change (REMOVED: Topo had not returned it)."),
            (
                "to_status",
                "The status observed from changed_at on; REMOVED when Topo no longer returned "
                "the task.",
            ),
            ("from_status_since", "When from_status was first observed (a landing's loaded_at)."),
            ("changed_at", "When to_status was first observed (the landing's loaded_at)."),
            (
                "minutes_in_from_status",
                "changed_at - from_status_since in fractional minutes: the time between two "
                "observed status changes (the first one counted from the first observation).",
            ),
        ),
    ),
    View(
        "analytics",
        "task_reassignments",
        "Reassignments per task, from topo.task_history: one row per task ever landed, with "
        "its first and current assignee and how often the assignee changed between observed "
        "versions (0 if never).",
        load_sql("task_reassignments_view"),
        (
            ("id", "Task id (UUID), as in topo.tasks."),
            ("partition_date", PARTITION_DATE.comment),
            ("priority", "The task's priority in its latest version."),
            ("first_assignee_user_id", "Assignee of the first observed version; NULL: unassigned."),
            ("assignee_user_id", "Assignee of the latest version; NULL: unassigned."),
            (
                "reassignments",
                "Versions whose assignee differs from the version before (to or from "
                "unassigned included); 0 if the assignee never changed.",
            ),
            ("assignees", "Distinct users the task was observed assigned to."),
            ("last_reassigned_at", "When the latest reassignment was observed; NULL if none."),
            ("removed", "true when Topo no longer returns the task (its latest version)."),
            ("versions", "Versions of the task in topo.task_history."),
        ),
    ),
)
"""Every view of the warehouse, created (or replaced) after the tables."""

SCHEMA_VERSION_TABLE = Table(
    "main",
    "schema_version",
    "The version of the pipeline's table layout this file holds (one row); the pipeline "
    "migrates older files when it opens them and refuses newer ones.",
    (
        Column("version", "INTEGER", "Schema version (topo_pipeline.warehouse.schema).", True),
        Column(
            "declarations",
            "VARCHAR",
            "Fingerprint of the tables, columns, views and comments last applied to the file.",
        ),
    ),
)
_VERSION_TABLE = SCHEMA_VERSION_TABLE.qualified


class SchemaVersionError(RuntimeError):
    """The file was written by a newer version of the pipeline than this one."""


def _rebuild(table: Table) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """A step that recreates ``table`` as declared and copies every row over, by name.

    DuckDB cannot drop a constraint (a PRIMARY KEY, a NOT NULL) from an existing table.
    """

    def step(con: duckdb.DuckDBPyConnection) -> None:
        if not _table_exists(con, table.schema, table.name):
            return
        old = identifier(f"{table.name}_before_migration")
        con.execute(f"ALTER TABLE {table.qualified} RENAME TO {old}")
        con.execute(table.create_sql(if_not_exists=False))
        columns = ", ".join(
            name for name in table.column_names if name in _columns(con, table.schema, old)
        )
        con.execute(
            f"INSERT INTO {table.qualified} ({columns}) "
            f"SELECT {columns} FROM {CATALOG}.{table.schema}.{old}"
        )
        con.execute(f"DROP TABLE {CATALOG}.{table.schema}.{old}")

    return step


def _seed_task_history(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``topo.task_history`` with every stored task as its first version.

    Without it the first landing would have no earlier state to compare with, and the
    partitions not landed again would have no history at all.
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{identifier(TASK_HISTORY.schema)}")
    con.execute(TASK_HISTORY.create_sql())
    if _table_exists(con, TOPO_TASKS.schema, TOPO_TASKS.name):
        con.execute(render_sql("task_history_seed_all", fields=", ".join(HISTORY_FIELDS)))


MIGRATIONS: Mapping[int, tuple[Callable[[duckdb.DuckDBPyConnection], None], ...]] = {
    2: (_rebuild(TOPO_TASKS), _rebuild(TASK_SLA)),
    3: (_seed_task_history,),
}
"""Steps run to reach a version, before the declarations are applied (non-additive changes)."""


def declarations_fingerprint() -> str:
    """A digest of every declared table, column, view and comment (what a file should hold)."""
    statements = []
    for item in (*TABLES, *VIEWS, SCHEMA_VERSION_TABLE):
        statements += [item.create_sql(), *item.comment_sql()]
    return hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]


def _recorded(con: duckdb.DuckDBPyConnection) -> tuple[int, str | None]:
    """The file's version and the fingerprint of the declarations applied to it."""
    if _table_exists(con, "main", "schema_version"):
        cursor = con.execute(f"SELECT * FROM {_VERSION_TABLE} ORDER BY version DESC LIMIT 1")
        names = [column[0] for column in cursor.description]
        row = cursor.fetchone()
        if row is not None:
            recorded = dict(zip(names, row, strict=True))
            return int(recorded["version"]), recorded.get("declarations")
    if any(_table_exists(con, table.schema, table.name) for table in TABLES):
        return 1, None
    return 0, None


def ensure_schema(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the attached file to :data:`SCHEMA_VERSION` and the current declarations.

    A no-op (two catalog queries) when the file is current. Call it on a connection with no
    transaction open (it opens its own).

    Returns:
        The version the file had (0 for a new file).

    Raises:
        SchemaVersionError: if the file's version is newer than this code's; nothing is
            changed.
        duckdb.Error: if a migration step fails; the transaction is rolled back, so the file
            stays at its old version with every row.
    """
    found, applied = _recorded(con)
    fingerprint = declarations_fingerprint()
    if found == SCHEMA_VERSION and applied == fingerprint:
        return found
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the pipeline's DuckDB file has schema version {found}, newer than the "
            f"{SCHEMA_VERSION} this version of topo_pipeline knows: upgrade topo_pipeline to "
            "open it (the file was left unchanged)"
        )
    with transaction(con):
        if found > 0:
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for step in MIGRATIONS.get(version, ()):
                    step(con)
        _apply_declarations(con)
        con.execute(f"DELETE FROM {_VERSION_TABLE}")
        con.execute(
            f"INSERT INTO {_VERSION_TABLE} (version, declarations) VALUES ($version, $applied)",
            {"version": SCHEMA_VERSION, "applied": fingerprint},
        )
    return found


def _apply_declarations(con: duckdb.DuckDBPyConnection) -> None:
    """Create every missing schema, table, column and view; set every comment."""
    for schema in dict.fromkeys([*(t.schema for t in TABLES), *(v.schema for v in VIEWS)]):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{identifier(schema)}")
    for table in (SCHEMA_VERSION_TABLE, *TABLES):
        con.execute(table.create_sql())
        present = _columns(con, table.schema, table.name)
        for column in table.columns:
            if column.name not in present:
                # Added as nullable: the rows already there have no value for it.
                added = dataclasses.replace(column, not_null=False)
                con.execute(f"ALTER TABLE {table.qualified} ADD COLUMN {added.definition()}")
        for statement in table.comment_sql():
            con.execute(statement)
    for view in VIEWS:
        con.execute(view.create_sql())
        for statement in view.comment_sql():
            con.execute(statement)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = $catalog AND schema_name = $schema AND table_name = $name",
        {"catalog": CATALOG, "schema": schema, "name": name},
    ).fetchone()
    return bool(row and row[0])


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE database_name = $catalog AND schema_name = $schema AND table_name = $table",
        {"catalog": CATALOG, "schema": schema, "table": table},
    ).fetchall()
    return {name for (name,) in rows}
