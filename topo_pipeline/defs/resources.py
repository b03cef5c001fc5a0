"""Dagster resources: they only build the plain-Python clients the assets use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from topo_pipeline.api.client import TopoClient
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.settings import API_KEY_ENV, FetchSettings, Settings, WarehouseSettings
from topo_pipeline.warehouse.duckdb import connect


class TopoApiResource(dg.ConfigurableResource, FetchSettings):
    """Access to Topo's API.

    Its config is :class:`~topo_pipeline.settings.FetchSettings` (the client's settings and
    the fetch's progress lines), inherited field by field: the same names, defaults,
    bounds and descriptions as the ``TOPO_API_*`` settings. :meth:`from_settings` copies
    them from :class:`~topo_pipeline.settings.Settings`.

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

    @classmethod
    def from_settings(cls, settings: FetchSettings) -> TopoApiResource:
        """The resource configured with every fetch setting of ``settings``."""
        return cls(**{name: getattr(settings, name) for name in FetchSettings.model_fields})

    @contextmanager
    def client(self) -> Iterator[TopoClient]:
        """A :class:`TopoClient` for one step, closed afterwards."""
        key = self.api_key if self.api_key is not None else read_api_key(self.api_key_env)
        with TopoClient(key, self.client_config()) as client:
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


_ANALYST_COPY = Settings.model_fields["analyst_duckdb_path"]
"""The declaration of ``TOPO_ANALYST_DUCKDB_PATH``, whose default and meaning
``WarehouseResource.analyst_database`` takes."""


class WarehouseResource(DuckDBResource, WarehouseSettings):
    """The pipeline's DuckDB file (``TOPO_DUCKDB_PATH``, written by the pipeline alone) and
    its analyst copy (``TOPO_ANALYST_DUCKDB_PATH``: the publish writes it, the open-task
    sensor reads it).

    A ``dagster_duckdb.DuckDBResource`` (``database`` is the file, ``connection_config``
    DuckDB's settings), whose :meth:`get_connection` adds what the pipeline needs:
    read-only access, a wait of up to ``lock_timeout_seconds`` for a lock another process
    holds (the stock resource gives up after about 100 s and always opens read-write), the
    file attached under the catalog alias ``warehouse`` so any file name works, the session
    in UTC, and a connection closed even when the block fails (so no lock outlives a
    failed step). The rest of its config is
    :class:`~topo_pipeline.settings.WarehouseSettings`, inherited field by field.

    When a run initialises it (once per run, before any step claims a slot of pool
    ``duckdb``), it also guards the run against runs that died holding that slot: it tags
    the run with its process, and marks failed and frees the slots of dead holders, now
    and while the run goes on (:mod:`topo_pipeline.defs.run_guard`).
    """

    analyst_database: str = Field(
        default=str(_ANALYST_COPY.default), description=_ANALYST_COPY.description
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> WarehouseResource:
        """The resource for the files and every warehouse setting of ``settings``."""
        return cls(
            database=str(settings.duckdb_path),
            analyst_database=str(settings.analyst_duckdb_path),
            **{name: getattr(settings, name) for name in WarehouseSettings.model_fields},
        )

    @property
    def analyst_copy_uri(self) -> str:
        """The analyst copy's ``file://`` URI, as the catalog shows it."""
        return Path(self.analyst_database).resolve().as_uri()

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
