"""Dagster assets that land Topo tasks in DuckDB and build SLA and completion-rate tables."""

__version__ = "0.1.0"
