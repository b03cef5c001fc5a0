"""``deploy/postgres/dagster.yaml`` is the repository's ``dagster.yaml`` on PostgreSQL storage.

The two files cannot drift apart: every section but the storage must be equal, so a
change to the run queue, the pools, the run log or run monitoring is made in both. Runs
against a real server: ``test_postgres_instance.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from topo_pipeline.instance import INSTANCE_YAML
from topo_pipeline_tests.postgres_server import PG_URL_ENV, POSTGRES_INSTANCE_YAML

STORAGE_SECTIONS = {"storage", "run_storage", "event_log_storage", "schedule_storage"}
"""Where a ``dagster.yaml`` says where Dagster keeps its state (SQLite files by default)."""


def _load(path: Any) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a mapping"
    return loaded


def _modules(node: Any) -> list[str]:
    """Every ``module:`` value in a loaded YAML tree (the classes it names)."""
    if isinstance(node, dict):
        found = [node["module"]] if isinstance(node.get("module"), str) else []
        return found + [m for value in node.values() for m in _modules(value)]
    if isinstance(node, list):
        return [m for value in node for m in _modules(value)]
    return []


def test_the_storage_is_postgresql_at_the_url_in_dagster_pg_url() -> None:
    settings = _load(POSTGRES_INSTANCE_YAML)

    assert settings["storage"] == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    # One section for runs, event log and schedules: none of them stays on SQLite.
    assert STORAGE_SECTIONS & settings.keys() == {"storage"}


def test_everything_but_the_storage_is_the_repository_settings() -> None:
    default = {
        key: value for key, value in _load(INSTANCE_YAML).items() if key not in STORAGE_SECTIONS
    }
    postgres = {
        key: value
        for key, value in _load(POSTGRES_INSTANCE_YAML).items()
        if key not in STORAGE_SECTIONS
    }

    assert postgres == default


def test_only_dagsters_own_classes_are_named() -> None:
    settings = _load(POSTGRES_INSTANCE_YAML)

    # None at all today: the storage is named by its key, `postgres`.
    assert [m for m in _modules(settings) if not m.startswith("dagster")] == []


def test_the_url_names_psycopg2_the_driver_dagster_postgres_installs() -> None:
    # SQLAlchemy 2.1 reads a plain postgresql:// URL as psycopg 3, which is not installed:
    # every Dagster process would fail at start with "No module named 'psycopg'".
    assert make_url("postgresql+psycopg2://dagster@db:5432/dagster").get_dialect().import_dbapi()
    with pytest.raises(ModuleNotFoundError, match="psycopg"):
        make_url("postgresql://dagster@db:5432/dagster").get_dialect().import_dbapi()
    assert "DAGSTER_PG_URL=postgresql+psycopg2://" in POSTGRES_INSTANCE_YAML.read_text()
