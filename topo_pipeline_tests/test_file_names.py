"""Any file name works for the pipeline's file and the analyst copy, views included.

DuckDB names a file's catalog after the file, so ``topo.duckdb`` is catalog ``topo`` and a
plain ``topo.tasks`` in it is ambiguous (catalog or schema). Each case lands tasks twice
(so the history views have changes), builds the analytics, publishes, and reads every view
of both files: the pipeline's file as the pipeline opens it, the copy as analysts do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from topo_pipeline.simulator import make_task
from topo_pipeline.warehouse.analyst_copy import publish_analyst_copy
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.file_names import catalog_name
from topo_pipeline.warehouse.pipeline_info import PipelineInfo
from topo_pipeline.warehouse.schema import VIEWS
from topo_pipeline_tests.warehouse_seed import seed_tasks

DAY = date(2025, 3, 14)
FIRST_LOAD = datetime(2025, 3, 15, 6, 0, tzinfo=UTC)
SECOND_LOAD = datetime(2025, 3, 16, 6, 0, tzinfo=UTC)
INFO = PipelineInfo(
    timezone="UTC",
    start_date=DAY,
    version="test",
    sla_target_minutes={"HOT": 60, "TODAY": 1440, "EXTRA": 4320},
)


def tasks(*, worked: bool) -> list[dict[str, Any]]:
    """Eight tasks of two days; ``worked``: later, half of them done, one reassigned."""
    start = datetime.combine(DAY, time(8), UTC)
    listed = []
    for i in range(8):
        status = "PENDING"
        if worked and i % 2:
            status = "COMPLETED" if i % 4 == 1 else "SKIPPED"
        listed.append(
            make_task(
                id=f"00000000-0000-4000-8000-00000000000{i}",
                created_at=start + timedelta(days=i % 2, minutes=45 * i),
                priority=("HOT", "TODAY", "EXTRA")[i % 3],
                status=status,
                assignee_user_id="user-b" if worked and i == 0 else f"user-{'a' if i % 2 else 'c'}",
            )
        )
    return listed


def read(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[Any, ...]]:
    # minutes_overdue follows now(): compare the rest.
    exclude = " EXCLUDE (minutes_overdue)" if name.endswith("open_tasks_past_due") else ""
    return con.execute(f"SELECT *{exclude} FROM {name} ORDER BY ALL").fetchall()


@pytest.mark.parametrize(
    "catalog",
    [
        "topo.duckdb",
        "Topo.duckdb",
        "analytics.backup.duckdb",
        ".hidden.duckdb",
        "main",
        "temp.db",
        "SYSTEM.duckdb",
        "memory.db",
        "a b.duckdb",
        "topo_analytics.duckdb",
    ],
)
def test_catalog_name_is_the_one_duckdb_gives(catalog: str, tmp_path: Path) -> None:
    path = tmp_path / catalog
    with duckdb.connect(str(path)) as con:
        (opened_as,) = con.execute("SELECT current_database()").fetchone() or ("",)
    assert catalog_name(path) == opened_as


@pytest.mark.parametrize(
    ("pipeline_name", "copy_name"),
    [
        ("topo.duckdb", "analytics.duckdb"),
        ("analytics.duckdb", "topo.duckdb"),
        ("topo.duckdb", "topo.duckdb"),
        ("analytics.duckdb", "analytics.duckdb"),
        ("reference.duckdb", "Topo.duckdb"),
        ("pipeline.duckdb", "topo_analytics.duckdb"),
    ],
)
def test_every_view_resolves_in_both_files_whatever_their_names(
    pipeline_name: str, copy_name: str, tmp_path: Path
) -> None:
    pipeline = tmp_path / "pipeline" / pipeline_name
    copy = tmp_path / "published" / copy_name
    seed_tasks(pipeline, tasks(worked=False), loaded_at=FIRST_LOAD)
    seed_tasks(pipeline, tasks(worked=True), loaded_at=SECOND_LOAD)

    publish_analyst_copy(pipeline, copy, info=INFO)

    with connect(pipeline, read_only=True) as con:
        in_pipeline = {view.display_name: read(con, view.qualified) for view in VIEWS}
        comments = view_comments(con, "warehouse")
    # Every view has rows to compare; the history views saw the second landing's changes.
    assert all(in_pipeline.values()), {name: len(rows) for name, rows in in_pipeline.items()}
    assert len(in_pipeline["analytics.task_status_changes"]) == 4

    # The copy, opened the way analysts open it: its catalog is named after the file.
    with duckdb.connect(str(copy), read_only=True) as con:
        (catalog,) = con.execute("SELECT current_database()").fetchone() or ("",)
        assert catalog == catalog_name(copy)
        for view in VIEWS:
            assert read(con, f'"{catalog}".{view.display_name}') == in_pipeline[view.display_name]
        assert view_comments(con, catalog) == comments
        (count,) = con.execute(f'SELECT count(*) FROM "{catalog}".topo.tasks').fetchone() or (0,)
        assert count == 8
        if catalog.lower() not in ("topo", "analytics"):
            # Analysts write plain schema.table where the file's name is no schema's.
            for view in VIEWS:
                assert read(con, view.display_name) == in_pipeline[view.display_name]


def test_a_copy_whose_name_is_no_schemas_keeps_views_that_work_under_any_alias(
    tmp_path: Path,
) -> None:
    pipeline, copy = tmp_path / "pipeline.duckdb", tmp_path / "topo_analytics.duckdb"
    seed_tasks(pipeline, tasks(worked=False), loaded_at=FIRST_LOAD)
    publish_analyst_copy(pipeline, copy, info=INFO)
    with duckdb.connect() as con:
        con.execute("ATTACH ? AS somewhere_else (READ_ONLY)", [str(copy)])
        for view in VIEWS:
            read(con, f"somewhere_else.{view.display_name}")
        definitions = con.execute(
            "SELECT sql FROM duckdb_views() WHERE database_name = 'somewhere_else' AND NOT internal"
        ).fetchall()
    assert definitions
    assert not [sql for (sql,) in definitions if "topo_analytics" in sql]


def view_comments(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[Any, ...]]:
    """The comments of every view and view column of ``catalog``."""
    return con.execute(
        "SELECT schema_name, view_name, NULL, comment FROM duckdb_views() "
        "WHERE database_name = $catalog AND NOT internal "
        "UNION ALL "
        "SELECT c.schema_name, c.table_name, c.column_name, c.comment "
        "FROM duckdb_columns() AS c JOIN duckdb_views() AS v "
        "ON v.database_name = c.database_name AND v.schema_name = c.schema_name "
        "AND v.view_name = c.table_name "
        "WHERE c.database_name = $catalog AND NOT v.internal ORDER BY ALL",
        {"catalog": catalog},
    ).fetchall()
