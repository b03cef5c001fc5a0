"""The resources: the API key read when a step builds its client, and the warehouse, a
dagster_duckdb.DuckDBResource with the pipeline's connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.defs.resources import TopoApiResource, WarehouseResource
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.simulator import make_task
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.tasks import PartitionWindow, ensure_tasks_table
from topo_pipeline_tests.api_harness import SECRET_KEY, Serve, fetch_window
from topo_pipeline_tests.duckdb_holder import hold_duckdb

DAY = datetime(2025, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "TOPO_API_KEY is not set: the pipeline needs a Topo API key"),
        ("", "TOPO_API_KEY is set but empty"),
        ("   ", "TOPO_API_KEY is set but empty"),
    ],
)
def test_a_missing_or_empty_key_fails_when_a_step_builds_its_client(
    value: str | None, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(API_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(API_KEY_ENV, value)
    # Building the resource (what loading the code location does) needs no key.
    resource = TopoApiResource(base_url="http://127.0.0.1:9/v1")

    with pytest.raises(TopoConfigError, match=message), resource.client():
        pass


def test_the_key_is_read_from_the_named_variable_and_shown_nowhere(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = serve([make_task(created_at=DAY)], api_keys={SECRET_KEY: frozenset({"tasks:read"})})
    monkeypatch.setenv("MY_TOPO_KEY", SECRET_KEY)
    resource = TopoApiResource(api_key_env="MY_TOPO_KEY", base_url=api.base_url)

    with resource.client() as client:
        window = PartitionWindow(DAY.date(), DAY, DAY + timedelta(days=1))
        tasks, _ = fetch_window(client, window)

    assert len(tasks) == 1  # the simulator accepted the key from MY_TOPO_KEY
    assert SECRET_KEY not in repr(resource)
    assert resource.api_key_env == "MY_TOPO_KEY"  # what the UI shows: the name only


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
