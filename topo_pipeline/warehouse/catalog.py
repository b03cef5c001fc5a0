"""What the pipeline's tables look like, without opening the pipeline's file.

:func:`table_catalog` creates every table the pipeline writes in an empty in-memory
database, with the same DDL the pipeline runs on its file, and reads back each table's
columns (type and ``COMMENT``) and its own comment. So the column schemas the Dagster
catalog shows before any run are derived from the one definition of the tables, never a
copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import duckdb

from topo_pipeline.warehouse.analytics import ensure_analytics_tables
from topo_pipeline.warehouse.duckdb import CATALOG
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.tasks import ensure_tasks_table


@dataclass(frozen=True)
class Column:
    """One column: its name, DuckDB type and ``COMMENT``."""

    name: str
    data_type: str
    comment: str | None


@dataclass(frozen=True)
class Table:
    """One table the pipeline writes, as ``schema.name``, with its comment and columns."""

    schema: str
    name: str
    comment: str | None
    columns: tuple[Column, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@cache
def table_catalog() -> dict[str, Table]:
    """Every table the pipeline writes, by ``schema.name`` (computed once per process)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH ':memory:' AS {CATALOG}")
        con.execute(f"USE {CATALOG}")
        ensure_tasks_table(con)
        ensure_analytics_tables(con)
        columns: dict[tuple[str, str], list[Column]] = {}
        for schema, table, name, data_type, comment in con.execute(
            load_sql("catalog_columns"), {"catalog": CATALOG}
        ).fetchall():
            columns.setdefault((schema, table), []).append(Column(name, data_type, comment))
        tables = {}
        for schema, table, comment in con.execute(
            load_sql("catalog_tables"), {"catalog": CATALOG}
        ).fetchall():
            entry = Table(schema, table, comment, tuple(columns.get((schema, table), ())))
            tables[entry.qualified_name] = entry
        return tables
    finally:
        con.close()
