"""GET requests to Topo: :class:`TopoSession`, an httpx client with the key, timeouts and an
overall deadline per request, paced by a rate controller, retrying what is worth retrying
and honouring ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from topo_pipeline.api.answers import (
    api_error,
    is_retriable,
    rate_limit_budget,
    retry_after_seconds,
    too_long_a_wait,
)
from topo_pipeline.api.config import ClientConfig, checked_api_key
from topo_pipeline.api.deadline import DeadlineTransport
from topo_pipeline.api.errors import TopoDataError, TopoTransportError
from topo_pipeline.api.pacing import Outcome, RateController
from topo_pipeline.api.stats import FetchStats

T = TypeVar("T")

log = logging.getLogger(__name__)


class TopoSession:
    """Sends GET requests to Topo, each paced, retried and accounted for. Thread-safe.

    The key lives in the ``Authorization`` header of the underlying ``httpx.Client`` only;
    any text that could quote it (a server's message, a transport error) is scrubbed.

    Args:
        api_key: the bearer key.
        config: timeouts, deadline, attempts, backoff and the rate cap.
        stats: counters to add every request to.
        transport: an ``httpx`` transport to use instead of a :class:`DeadlineTransport`
            (tests reach an in-process server with one).

    Raises:
        TopoConfigError: if the key is empty or could not be sent as a header.
    """

    def __init__(
        self,
        api_key: str,
        config: ClientConfig,
        stats: FetchStats,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        api_key = checked_api_key(api_key)
        self._redact = _redactor(api_key)
        self._config = config
        self._stats = stats
        self.rate = RateController(config.concurrency, cap_per_minute=config.requests_per_minute)
        """Decides when each request may start (shared by every thread)."""
        limits = httpx.Limits(
            max_connections=config.concurrency,
            max_keepalive_connections=config.concurrency,
        )
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(
                config.request_timeout_seconds, connect=config.connect_timeout_seconds
            ),
            limits=limits,
            transport=transport or DeadlineTransport(config.request_deadline_seconds, limits),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"TopoSession(base_url={self._config.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(self, url: str, params: Mapping[str, Any], parse: Callable[[Any], T]) -> T:
        """GET ``url`` with retries; return ``parse`` of the JSON body of the 200 answer.

        429, 5xx, timeouts and dropped connections are retried with capped, jittered
        exponential backoff that waits at least ``Retry-After``; a body that is not JSON,
        or that ``parse`` rejects with :class:`TopoDataError`, is retried like a 5xx (a
        truncated or garbled answer is usually transient).

        Raises:
            TopoAuthError, TopoPermissionError, TopoRequestError: at once, on 4xx.
            TopoUnavailableError: 429 / 5xx through every attempt, or a ``Retry-After``
                beyond ``max_retry_after_seconds`` (at once).
            TopoTransportError: timeouts / dropped connections through every attempt.
            TopoDataError: malformed bodies through every attempt.
        """
        config = self._config
        last_failure: Exception | None = None
        for attempt in range(1, config.max_attempts + 1):
            if attempt > 1:
                self._stats.add(retries=1)
            ticket, waited = self.rate.acquire()
            self._stats.add(wait_seconds=waited)
            sent = time.monotonic()
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as error:  # timeouts included
                self.rate.finish(ticket, time.monotonic(), Outcome.LOST)
                elapsed = time.monotonic() - sent
                self._stats.add(requests=1, transport_errors=1, api_seconds=elapsed)
                if elapsed >= config.request_deadline_seconds:
                    detail = (
                        f"no complete answer within {config.request_deadline_seconds:g} s "
                        "(TOPO_API_REQUEST_DEADLINE_SECONDS)"
                    )
                else:
                    detail = self._redact(f"{type(error).__name__}: {error}")
                last_failure = TopoTransportError(
                    f"could not reach Topo at {config.base_url}: {detail}"
                )
                self._backoff(attempt, retry_after=None, reason=type(error).__name__)
                continue
            answered = time.monotonic()
            self._stats.add(requests=1, api_seconds=answered - sent)
            retry_after = retry_after_seconds(response)
            self.rate.finish(
                ticket,
                answered,
                Outcome.RATE_LIMITED if response.status_code == 429 else Outcome.ACCEPTED,
                retry_after=retry_after,
                budget=rate_limit_budget(response.headers),
            )

            if response.status_code == 200:
                try:
                    parsed = parse(response.json())
                except (json.JSONDecodeError, UnicodeDecodeError, TopoDataError) as error:
                    self._stats.add(malformed_bodies=1)
                    last_failure = TopoDataError(
                        self._redact(f"Topo sent a malformed page body: {error}")
                    )
                    self._backoff(attempt, retry_after=None, reason="malformed body")
                    continue
                self._stats.add(pages=1)
                return parsed

            failure = api_error(response, self._redact)
            if not is_retriable(response.status_code):
                raise failure
            if response.status_code == 429:
                self._stats.add(rate_limited=1)
            else:
                self._stats.add(server_errors=1)
            if retry_after is not None and retry_after > config.max_retry_after_seconds:
                raise too_long_a_wait(failure, retry_after, config.max_retry_after_seconds)
            last_failure = failure
            self._backoff(attempt, retry_after=retry_after, reason=f"HTTP {response.status_code}")

        assert last_failure is not None  # noqa: S101 - the loop ran at least once
        raise last_failure

    def _backoff(self, attempt: int, *, retry_after: float | None, reason: str) -> None:
        config = self._config
        if attempt >= config.max_attempts:
            return
        ceiling = min(config.backoff_cap_seconds, config.backoff_base_seconds * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
        if retry_after is not None:
            delay = max(delay, retry_after + random.uniform(0, 0.1))  # noqa: S311
        # Rate limiting is the API pacing the client, expected now and then; the others are
        # faults worth a warning.
        log.log(
            logging.INFO if reason == "HTTP 429" else logging.WARNING,
            "Topo request failed (%s, attempt %d of %d); retrying in %.2fs",
            reason,
            attempt,
            config.max_attempts,
            delay,
        )
        self._stats.add(wait_seconds=delay)
        time.sleep(delay)


def _redactor(api_key: str) -> Callable[[str], str]:
    """A function that removes ``api_key`` from a text (a server may echo what it got)."""

    def redact(text: str) -> str:
        return text.replace(api_key, "[API key removed]")

    return redact
