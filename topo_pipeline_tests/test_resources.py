"""The warehouse resource: a dagster_duckdb.DuckDBResource with the pipeline's connection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.tasks import ensure_tasks_table
from topo_pipeline_tests.duckdb_holder import hold_duckdb


def test_it_is_a_duckdb_resource_attaching_any_file_name_under_the_catalog_alias(
    tmp_path: Path,
) -> None:
    # A file called topo.duckdb would make bare topo.tasks ambiguous without the alias.
    resource = WarehouseResource(database=str(tmp_path / "topo.duckdb"))
    assert isinstance(resource, DuckDBResource)

    with resource.get_connection() as con:
        ensure_tasks_table(con)
        assert con.execute("SELECT count(*) FROM warehouse.topo.tasks").fetchone() == (0,)
        assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)


def test_read_only_connections_refuse_writes(tmp_path: Path) -> None:
    resource = WarehouseResource(database=str(tmp_path / "p.duckdb"))
    with resource.get_connection() as con:
        ensure_tasks_table(con)

    with resource.get_connection(read_only=True) as con, pytest.raises(duckdb.Error):
        con.execute("DELETE FROM warehouse.topo.tasks")


def test_connection_config_reaches_duckdb(tmp_path: Path) -> None:
    resource = WarehouseResource(
        database=str(tmp_path / "p.duckdb"), connection_config={"threads": 1}
    )
    with resource.get_connection() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone() == (1,)


def test_a_lock_held_past_the_deadline_fails_naming_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    resource = WarehouseResource(database=str(path), lock_timeout_seconds=0.5)
    with resource.get_connection() as con:
        ensure_tasks_table(con)

    with (
        hold_duckdb(path, read_only=False),
        pytest.raises(WarehouseLockedError, match="stayed locked"),
        resource.get_connection(),
    ):
        pass
