"""Dagster resources: they only build the plain-Python clients the assets use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from topo_pipeline.api.client import DEFAULT_BASE_URL, ClientConfig, TopoClient
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.defs.progress import DEFAULT_INTERVAL_SECONDS
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.warehouse.duckdb import DEFAULT_LOCK_TIMEOUT_SECONDS, connect

_CLIENT_DEFAULTS = ClientConfig()


class TopoApiResource(dg.ConfigurableResource):
    """Access to Topo's API.

    The key is read from the environment variable ``api_key_env`` (``TOPO_API_KEY``) when
    a step builds its client, so it never enters definitions, run config or the UI, and
    a missing or empty key fails that step with a :class:`TopoConfigError` naming the
    variable (Dagster's ``dg.EnvVar`` would instead fail the whole run's config with its
    own error). ``api_key`` gives the key directly instead (tests, embedding).
    """

    api_key: str | None = Field(
        default=None,
        repr=False,
        description="The bearer key itself; unset (the usual way) to read it from api_key_env.",
    )
    api_key_env: str = Field(
        default=API_KEY_ENV,
        description="Environment variable holding the bearer key (scope tasks:read), read "
        "when a step starts.",
    )
    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: float | None = _CLIENT_DEFAULTS.requests_per_minute
    concurrency: int = _CLIENT_DEFAULTS.concurrency
    timeout_seconds: float = _CLIENT_DEFAULTS.request_timeout_seconds
    max_attempts: int = _CLIENT_DEFAULTS.max_attempts
    max_retry_after_seconds: float = _CLIENT_DEFAULTS.max_retry_after_seconds
    request_deadline_seconds: float = _CLIENT_DEFAULTS.request_deadline_seconds
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
            request_timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            max_retry_after_seconds=self.max_retry_after_seconds,
            request_deadline_seconds=self.request_deadline_seconds,
            max_tasks_per_window=self.max_tasks_per_window,
        )
        key = self.api_key if self.api_key is not None else read_api_key(self.api_key_env)
        with TopoClient(key, config) as client:
            yield client


def read_api_key(variable: str) -> str:
    """The API key in environment variable ``variable``.

    Raises:
        TopoConfigError: naming the variable (never a value) when it is unset or empty.
    """
    key = os.environ.get(variable)
    if key is None:
        raise TopoConfigError(
            f"{variable} is not set: the pipeline needs a Topo API key with the tasks:read "
            f"scope. Set {variable} in the environment of the process that runs Dagster (the "
            "shell of `dagster asset materialize` or `dg launch`, or the one that starts "
            "`make dev` for the UI and daemon); Topo issues keys under Settings → Developers "
            "→ API Keys"
        )
    if not key.strip():
        raise TopoConfigError(
            f"{variable} is set but empty: set it to a Topo API key with the tasks:read scope "
            "(Topo: Settings → Developers → API Keys)"
        )
    return key


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
