"""What DuckDB calls a file's catalog, and views that resolve when that name is a schema's.

A client that opens a DuckDB file without an alias gets a catalog named after the file
(:func:`catalog_name`: ``topo.duckdb`` is catalog ``topo``); when that is also a schema's
name (:func:`clashes`), a two-part name such as ``topo.tasks`` is ambiguous.
:func:`name_catalog_in_views` re-creates an analyst copy's views to name that catalog, so
they resolve there. How, and why the pipeline itself never depends on it:
``docs/design.md``, "File names". Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb

from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.tables import View, identifier, literal, quoted

_RESERVED = frozenset({"main", "temp", "system"})
"""Catalog names DuckDB keeps for itself; a file with one of them gets ``_db`` appended."""


def catalog_name(path: str | Path) -> str:
    """The catalog name DuckDB gives the file at ``path`` when it opens it without an alias.

    DuckDB's rule: the file's name up to its first dot (leading dots skipped), so
    ``topo.duckdb`` and ``topo.backup.duckdb`` are both ``topo``; the reserved names
    ``main``, ``temp`` and ``system`` get ``_db`` appended.
    """
    parts = [part for part in Path(path).name.split(".") if part]
    name = parts[0] if parts else Path(path).name
    return f"{name}_db" if name.lower() in _RESERVED else name


def clashes(catalog: str, schemas: Iterable[str]) -> bool:
    """Whether the catalog name ``catalog`` is one of ``schemas`` (DuckDB ignores case)."""
    return catalog.lower() in {schema.lower() for schema in schemas}


def name_catalog_in_views(
    con: duckdb.DuckDBPyConnection, alias: str, catalog: str, views: Sequence[View]
) -> list[View]:
    """Re-create ``views`` in the file attached as ``alias`` to read their tables from ``catalog``.

    For a file that clients open under the catalog name ``catalog`` (see the module's
    docstring). The views keep their comments and their columns'. Views of ``views`` the
    file does not hold are left out. Run it on a connection with no transaction open.

    Args:
        con: a connection where the file is attached writable as ``alias``, and no catalog
            is called ``catalog``.
        alias: the file's alias in ``con``.
        catalog: the name the file's catalog will have when it is opened.
        views: the declared views to re-create.

    Returns:
        The views re-created.
    """
    present = {
        (schema, name)
        for schema, name in con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = $catalog AND NOT internal",
            {"catalog": alias},
        ).fetchall()
    }
    chosen = [view for view in views if (view.schema, view.name) in present]
    if not chosen:
        return []
    comments = _comments_of(con, alias, chosen)
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = $catalog AND NOT internal ORDER BY ALL",
        {"catalog": alias},
    ).fetchall()
    stand_in = quoted(catalog)
    source = identifier(alias)
    con.execute(f"ATTACH ':memory:' AS {stand_in}")
    try:
        for schema in sorted({schema for schema, _ in tables}):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {stand_in}.{quoted(schema)}")
        for schema, table in tables:
            name = f"{quoted(schema)}.{quoted(table)}"
            con.execute(f"CREATE TABLE {stand_in}.{name} AS FROM {source}.{name} LIMIT 0")
        for view in chosen:
            con.execute(view.create_sql(catalog=alias, tables_in=catalog))
    finally:
        con.execute(f"DETACH {stand_in}")
    for statement in comments:
        con.execute(statement)
    return chosen


def _comments_of(con: duckdb.DuckDBPyConnection, alias: str, views: Sequence[View]) -> list[str]:
    """``COMMENT ON`` statements that restore the comments ``views`` have in ``alias`` now.

    Taken from the file, not the declarations: a publish names the time zone in them.
    """
    rows = con.execute(
        load_sql("view_comments"),
        {"catalog": alias, "views": [view.display_name for view in views]},
    ).fetchall()
    statements = []
    for schema, view, column, comment in rows:
        if comment is None:
            continue
        target = f"{identifier(alias)}.{quoted(schema)}.{quoted(view)}"
        if column is None:
            statements.append(f"COMMENT ON VIEW {target} IS {literal(comment)}")
        else:
            statements.append(f"COMMENT ON COLUMN {target}.{quoted(column)} IS {literal(comment)}")
    return statements
