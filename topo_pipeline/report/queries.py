"""The report's SQL, kept as ``.sql`` files in ``topo_pipeline/report/sql`` (one statement each).

Values are bound as parameters (``$name``); tables are qualified with the catalog
``warehouse`` that :func:`topo_pipeline.warehouse.duckdb.connect` attaches any file under.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import duckdb


@cache
def report_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``.

    Raises:
        FileNotFoundError: if no such file is bundled.
    """
    return resources.files("topo_pipeline.report").joinpath("sql", f"{name}.sql").read_text()


def relation_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """Whether ``schema.name`` is a table or view of the attached file."""
    row = con.execute(report_sql("relation_exists"), {"schema": schema, "name": name}).fetchone()
    return bool(row and row[0])
