"""Dagster resources: they only build the plain-Python clients the assets use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from topo_pipeline.api.client import DEFAULT_BASE_URL, ClientConfig, TopoClient
from topo_pipeline.defs.progress import DEFAULT_INTERVAL_SECONDS
from topo_pipeline.warehouse.duckdb import DEFAULT_LOCK_TIMEOUT_SECONDS, connect

_CLIENT_DEFAULTS = ClientConfig()


class TopoApiResource(dg.ConfigurableResource):
    """Access to Topo's API. Bind ``api_key`` to ``dg.EnvVar("TOPO_API_KEY")`` so the key is
    resolved at run time and the UI shows only the variable's name."""

    api_key: str = Field(
        repr=False, description="Bearer key with tasks:read; bind to EnvVar('TOPO_API_KEY')."
    )
    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: float | None = _CLIENT_DEFAULTS.requests_per_minute
    concurrency: int = _CLIENT_DEFAULTS.concurrency
    timeout_seconds: float = _CLIENT_DEFAULTS.read_timeout
    max_attempts: int = _CLIENT_DEFAULTS.max_attempts
    max_retry_after_seconds: float = _CLIENT_DEFAULTS.max_retry_after
    request_deadline_seconds: float = _CLIENT_DEFAULTS.request_deadline
    max_tasks_per_window: int = _CLIENT_DEFAULTS.max_tasks_per_window
    progress_interval_seconds: float = Field(
        default=DEFAULT_INTERVAL_SECONDS,
        description="Shortest gap between two progress lines of a fetch in the run log.",
    )

    @contextmanager
    def client(self) -> Iterator[TopoClient]:
        """A :class:`TopoClient` for one step, closed afterwards."""
        config = ClientConfig(
            base_url=self.base_url,
            requests_per_minute=self.requests_per_minute,
            concurrency=self.concurrency,
            read_timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
            max_retry_after=self.max_retry_after_seconds,
            request_deadline=self.request_deadline_seconds,
            max_tasks_per_window=self.max_tasks_per_window,
        )
        with TopoClient(self.api_key, config) as client:
            yield client


class WarehouseResource(DuckDBResource):
    """The pipeline's DuckDB file (``TOPO_DUCKDB_PATH``); only the pipeline writes it.

    A ``dagster_duckdb.DuckDBResource`` (``database`` is the file, ``connection_config``
    DuckDB's settings), whose :meth:`get_connection` adds what the pipeline needs:
    read-only access, a wait of up to ``lock_timeout_seconds`` for a lock another process
    holds (the stock resource gives up after about 100 s and always opens read-write), the
    file attached under the catalog alias ``warehouse`` so any file name works, the session
    in UTC, and a connection closed even when the block fails (so no lock outlives a
    failed step).

    When a run initialises it (once per run, before any step claims a slot of pool
    ``duckdb``), it also guards the run against runs that died holding that slot: it tags
    the run with its process, and marks failed and frees the slots of dead holders, now
    and while the run goes on (:mod:`topo_pipeline.defs.run_guard`).
    """

    lock_timeout_seconds: float = Field(
        default=DEFAULT_LOCK_TIMEOUT_SECONDS,
        description="How long a step waits for the DuckDB file lock before failing.",
    )

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[WarehouseResource]:
        """Dagster's resource lifecycle, inside :func:`~topo_pipeline.defs.run_guard.guard_run`."""
        from topo_pipeline.defs.run_guard import guard_run

        with (
            guard_run(context.instance, context.run, context.log),
            super().yield_for_execution(context) as resource,
        ):
            yield resource

    @contextmanager
    def get_connection(  # type: ignore[override]
        self, *, read_only: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the file attached as catalog ``warehouse``; closed afterwards."""
        with connect(
            self.database,
            read_only=read_only,
            lock_timeout=self.lock_timeout_seconds,
            config=self.connection_config,
        ) as con:
            yield con
