"""The Topo client: :class:`TopoClient` reads the tasks of created-at windows from
``GET /v1/tasks``, every task exactly once, or says loudly that it could not.

The names a caller needs beside it (its configuration, windows, results and page
handlers) are importable from here too. ``api/README.md`` describes how it works.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from topo_pipeline.api.config import DEFAULT_BASE_URL, ClientConfig, validate_base_url
from topo_pipeline.api.stats import FetchStats
from topo_pipeline.api.tasks import fetch_windows
from topo_pipeline.api.transport import TopoSession
from topo_pipeline.api.windows import PageHandler, Window, WindowResult

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "FetchStats",
    "PageHandler",
    "TopoClient",
    "Window",
    "WindowResult",
    "validate_base_url",
]


class TopoClient:
    """Reads tasks from Topo. Thread-safe; use as a context manager or call :meth:`close`.

    Args:
        api_key: the bearer key (scope ``tasks:read``). It appears in no repr, message,
            log line or statistic.
        config: tuning; defaults are production-safe.
        transport: an ``httpx`` transport (tests use it to reach an in-process server).

    Attributes:
        config: the configuration in force.
        stats: what the client's requests cost so far.
        rate: the rate controller every request asks (``rate.rate_in_force``).

    Raises:
        TopoConfigError: if the key is empty or could not be sent as a header, or the base
            URL is refused (see :func:`validate_base_url`).
    """

    def __init__(
        self,
        api_key: str,
        config: ClientConfig | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        self.stats = FetchStats()
        self._tasks_url = validate_base_url(self.config.base_url) + "/tasks"
        self._session = TopoSession(api_key, self.config, self.stats, transport=transport)
        self.rate = self._session.rate

    def __repr__(self) -> str:
        return f"TopoClient(base_url={self.config.base_url!r})"

    def __enter__(self) -> TopoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def fetch_windows(self, windows: Sequence[Window], on_page: PageHandler) -> list[WindowResult]:
        """Fetch several windows concurrently, handing each page to ``on_page``.

        See :func:`topo_pipeline.api.tasks.fetch_windows`.

        Returns:
            One :class:`WindowResult` per window, in the order given.

        Raises:
            TopoReconciliationError: a window's ids still disagreed with ``total_count``
                after every re-read.
            TopoError: any other failure of a request.
            ValueError: a window is given twice.
        """
        return fetch_windows(
            self._session,
            self._tasks_url,
            windows,
            on_page,
            config=self.config,
            stats=self.stats,
        )
