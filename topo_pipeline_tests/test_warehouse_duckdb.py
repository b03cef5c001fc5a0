"""Opening the pipeline's DuckDB file: its storage format."""

from __future__ import annotations

from pathlib import Path

import duckdb

from topo_pipeline.warehouse.duckdb import STORAGE_VERSION, connect


def storage_version(con: duckdb.DuckDBPyConnection) -> str:
    (version,) = con.execute(
        "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'warehouse'"
    ).fetchone()
    return version


def test_a_new_file_is_in_the_format_duckdb_1_4_opens(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    with connect(path) as con:
        assert storage_version(con) == f"{STORAGE_VERSION}+"
    with connect(path) as con:  # opened again, it is not converted
        assert storage_version(con) == f"{STORAGE_VERSION}+"


def test_a_file_in_duckdb_2s_format_opens_and_keeps_it(tmp_path: Path) -> None:
    # As an older release created it: without a storage version, DuckDB 2's own.
    path = tmp_path / "older.duckdb"
    duckdb.connect(str(path)).close()
    with connect(path) as con:
        older = storage_version(con)
        con.execute("CREATE TABLE warehouse.main.t AS SELECT 1 AS x")
    assert older != f"{STORAGE_VERSION}+"
    with connect(path, read_only=True) as con:
        assert storage_version(con) == older
        assert con.execute("SELECT x FROM warehouse.main.t").fetchall() == [(1,)]
