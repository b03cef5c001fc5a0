"""Opening the pipeline's DuckDB file: its storage format, and settings changed for a block."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from topo_pipeline.warehouse.duckdb import (
    STORAGE_VERSION,
    connect,
    setting_for_block,
    single_threaded,
    storage_version,
)


def threads(con: duckdb.DuckDBPyConnection) -> int:
    (count,) = con.execute("SELECT current_setting('threads')").fetchone()
    return count


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


def test_single_threaded_gives_the_connection_its_threads_back(tmp_path: Path) -> None:
    with connect(tmp_path / "p.duckdb", config={"threads": 3}) as con:
        with single_threaded(con):
            assert threads(con) == 1
        assert threads(con) == 3
        with pytest.raises(duckdb.CatalogException), single_threaded(con):
            con.execute("SELECT * FROM warehouse.main.missing")
        assert threads(con) == 3


def test_only_the_pipelines_own_settings_are_changed_for_a_block(tmp_path: Path) -> None:
    with connect(tmp_path / "p.duckdb") as con:
        with setting_for_block(con, "memory_limit", "100MiB"):
            assert con.execute("SELECT current_setting('memory_limit')").fetchone() == (
                "100.0 MiB",
            )
        assert con.execute("SELECT current_setting('memory_limit')").fetchone() == ("48.0 MiB",)
        with (
            pytest.raises(ValueError, match="not a setting"),
            setting_for_block(con, "TimeZone; DROP", "UTC"),
        ):
            pass
