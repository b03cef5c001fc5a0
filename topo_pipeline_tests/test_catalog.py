"""The catalog at definition time: table names, column schemas, owners, code references, URI."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY
from topo_pipeline.defs.assets.history import TASK_HISTORY_KEY
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.assets.report import REPORT_KEY
from topo_pipeline.defs.jobs import REFRESH_SELECTION
from topo_pipeline.defs.location import build_defs
from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.schema import ensure_schema

SPELLED_OUT = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
"""How DuckDB spells out the declared types it describes."""


@pytest.fixture
def graph(tmp_path: Path) -> dg.AssetGraph:
    settings = Settings(
        duckdb_path=tmp_path / "p.duckdb",
        analyst_duckdb_path=tmp_path / "copy" / "a.duckdb",
        asset_owners=("team:revops", "ops@example.com"),
    )
    return build_defs(settings).resolve_asset_graph()


def test_every_table_asset_names_its_table_and_columns_before_any_run(
    graph: dg.AssetGraph, tmp_path: Path
) -> None:
    # What the pipeline's own file holds once its schema is in place.
    with connect(tmp_path / "real.duckdb") as con:
        ensure_schema(con)
        described = con.execute(
            "SELECT schema_name || '.' || table_name, column_name, data_type, comment, "
            "is_nullable "
            "FROM duckdb_columns() WHERE database_name = 'warehouse' AND schema_name <> 'main' "
            "ORDER BY schema_name, table_name, column_index"
        ).fetchall()
    expected: dict[str, list[tuple[str, str, str | None, bool]]] = {}
    for table, name, data_type, comment, nullable in described:
        expected.setdefault(table, []).append((name, data_type, comment, nullable))

    found = {}
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata
        if "dagster/table_name" not in metadata:
            continue
        table = metadata["dagster/table_name"]
        assert table == ".".join(key.path)  # topo/tasks is topo.tasks, analytics/x is analytics.x
        schema = metadata["dagster/column_schema"]
        found[table] = [
            (c.name, SPELLED_OUT.get(c.type, c.type), c.description, c.constraints.nullable)
            for c in schema.columns
        ]

    # Every pipeline table asset (the file also holds tables and views that are no asset).
    pipeline_tables = {
        ".".join(k.path)
        for k in graph.get_all_asset_keys()
        if k not in (ANALYST_COPY_KEY, REPORT_KEY)
    }
    assert set(found) == pipeline_tables
    assert found == {table: expected[table] for table in found}
    assert "topo.tasks" in found
    assert all(comment for columns in found.values() for _, _, comment, _ in columns)


def test_every_asset_has_owners_code_references_and_a_description_stating_its_grain(
    graph: dg.AssetGraph,
) -> None:
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:revops", "ops@example.com"], key
        references = node.metadata["dagster/code_references"].code_references
        assert references, key
        assert all(Path(ref.file_path).is_file() for ref in references), key
        # The UI's "Source code" link opens the module defining the asset, at its function.
        (reference,) = references
        source = Path(reference.file_path)
        assert source.parent.name == "assets", (key, source)
        lines = source.read_text().splitlines()
        definition = lines[reference.line_number - 1].lstrip()
        assert definition.startswith(("def ", "@dg.asset", "@dg.multi_asset")), (key, reference)
        description = (node.description or "").lower()
        if key == ANALYST_COPY_KEY:
            assert "every topo, reference and analytics table" in description
        else:  # "one row per task id", "per creation day and priority", ...
            assert " per " in description, (key, description)


def test_the_history_is_a_table_of_the_lineage_the_analyst_copy_depends_on(
    graph: dg.AssetGraph,
) -> None:
    history = graph.get(TASK_HISTORY_KEY)

    assert history.parent_keys == {TASKS_KEY}
    assert TASK_HISTORY_KEY in graph.get(ANALYST_COPY_KEY).parent_keys
    assert history.metadata["dagster/table_name"] == "topo.task_history"
    assert "one row per task per version" in (history.description or "")
    # Written in the landing's transaction, reported once per run: no event per day.
    assert history.partitions_def is None
    assert graph.get(TASKS_KEY).partitions_def is not None
    assert REFRESH_SELECTION.resolve(graph) >= {TASKS_KEY, TASK_HISTORY_KEY, ANALYST_COPY_KEY}


def test_the_analyst_copy_has_its_uri(graph: dg.AssetGraph, tmp_path: Path) -> None:
    metadata = graph.get(ANALYST_COPY_KEY).metadata

    assert metadata["dagster/uri"] == (tmp_path / "copy" / "a.duckdb").resolve().as_uri()


def test_bad_owners_are_refused() -> None:
    with pytest.raises(Exception, match="TOPO_ASSET_OWNERS"):
        Settings.from_env({"TOPO_ASSET_OWNERS": "team:revops, somebody"})
