"""A client for Topo's ``GET /v1/tasks`` that fetches created-at windows completely.

The one job of this module is to return every task Topo has for a window ``[start, end)``,
exactly once, or to say loudly that it could not:

- **Strict bounds.** Topo's ``created_at_after`` / ``created_at_before`` are exclusive, so
  the query asks for ``(start - 1 s, end)`` and tasks before ``start`` are dropped locally.
  A task created exactly at ``start`` therefore lands, and one at ``end`` does not.
- **Stable paging.** ``size=100`` and ``sort_by=created_at``; duplicates across pages are
  removed by ``id`` by the consumer, keeping the latest ``updated_at``
  (:class:`WindowCollector` does it; the warehouse's stage too, and reports them).
- **Reconciliation.** The unique ids fetched must equal ``total_count`` with one
  ``total_count`` across every page of a read. Otherwise the window is read again (ids
  accumulate across reads that all saw the same ``total_count``, which also heals unstable
  ordering of ties; when the total moves, earlier ids are dropped and the page handler is
  told to discard the window's tasks), a bounded number of times, and then
  :class:`TopoReconciliationError` reports the gap. When the total held steady and tasks
  sharing one ``created_at`` straddle a page boundary, only the pages around those ties
  are read again first (the order within a tie is what Topo may vary between requests),
  which is far cheaper than reading the whole window again.
- **Concurrency and rate.** Page 1 of every window is requested first; the remaining
  pages are requested concurrently (at most ``concurrency`` requests in flight, and at
  most :data:`PAGES_AHEAD_PER_WORKER` per worker requested ahead of the page handler, so
  fetched pages never pile up in memory behind a slow handler). Every
  request asks one :class:`~topo_pipeline.api.pacing.RateController` when it may start:
  full concurrency while Topo answers normally, slower for every thread after a 429 (then
  probing back up), paced by ``RateLimit-*`` / ``X-RateLimit-*`` headers where Topo sends
  them, and never faster than ``requests_per_minute`` when that cap is set.
- **Retries.** 429, 5xx, timeouts, dropped connections and malformed bodies are retried
  with capped, jittered exponential backoff, waiting at least ``Retry-After`` (seconds or
  an HTTP date); a ``Retry-After`` beyond ``max_retry_after_seconds`` fails at once instead.
  400 / 401 / 403 / 404 / 422 fail at once with an actionable message and Topo's
  ``request_id``.

- **A hostile or broken server** cannot hang, exhaust or mislead a run: every request has
  an overall deadline (``request_deadline_seconds``, not only a timeout between bytes), a
  ``total_count`` beyond ``max_tasks_per_window`` fails the window at once, timestamps
  without a UTC offset are refused (see :mod:`topo_pipeline.api.models`), and tasks
  outside the requested bounds are counted (:attr:`WindowResult.out_of_bounds`), logged
  and not landed, so the reconciliation against ``total_count`` flags the day.

The API key is kept in the ``Authorization`` header of the underlying ``httpx.Client``
only; it is never logged and appears in no repr, message or statistic. A server message
that quotes it is scrubbed before it reaches an error, and a base URL with a user name or
password is refused without being repeated.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpcore
import httpx

from topo_pipeline.api.errors import (
    TopoApiError,
    TopoAuthError,
    TopoConfigError,
    TopoDataError,
    TopoPermissionError,
    TopoReconciliationError,
    TopoRequestError,
    TopoTransportError,
    TopoUnavailableError,
)
from topo_pipeline.api.models import Task, TaskPage, format_timestamp
from topo_pipeline.api.pacing import Budget, Outcome, RateController

DEFAULT_BASE_URL = "https://api.topo.io/v1"
PAGE_SIZE = 100  # Topo's hard maximum: fewest requests per window
BOUND_MARGIN = timedelta(seconds=1)  # widens the exclusive lower bound so `start` itself lands
PAGES_AHEAD_PER_WORKER = 4
"""Requests handed to the thread pool per worker, and so fetched pages not yet handed over."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Tuning of a :class:`TopoClient`. Every field has a production-safe default.

    Field names are the settings' names (:class:`topo_pipeline.settings.Settings`), so one
    knob has one name from the environment variable to the client.

    Attributes:
        base_url: API root as Topo documents it (``/tasks`` is appended). ``https`` only,
            except for a loopback host.
        requests_per_minute: a hard cap on the request rate, on top of the adaptive rate
            control; ``None`` or ``0``: no cap (the default).
        concurrency: most requests in flight at once (pages and windows together).
        connect_timeout_seconds: to establish a connection.
        request_timeout_seconds: the longest wait for the next bytes of an answer (a read
            timeout: it restarts with every byte).
        max_attempts: tries per request, the first included.
        backoff_base_seconds: first backoff step (doubles each retry).
        backoff_cap_seconds: longest single backoff (``Retry-After`` may exceed it).
        max_retry_after_seconds: the longest ``Retry-After`` the client waits; a longer one
            fails the fetch at once with an error naming the wait.
        request_deadline_seconds: the longest one request may take in all, connecting and
            reading included.
        max_tasks_per_window: the largest ``total_count`` believed for one window; a
            larger one fails the fetch naming it instead of requesting its pages.
        max_rereads: extra reads of a window whose ids do not reconcile with ``total_count``.
        max_tie_rereads: rounds of re-reading only the pages around ties that straddle a
            page boundary, tried before a whole window is read again.
    """

    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: float | None = None
    concurrency: int = 8
    connect_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 60.0
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 60.0
    max_retry_after_seconds: float = 300.0
    request_deadline_seconds: float = 120.0
    max_tasks_per_window: int = 1_000_000
    max_rereads: int = 3
    max_tie_rereads: int = 20

    def __post_init__(self) -> None:
        validate_base_url(self.base_url)
        if self.requests_per_minute is not None and self.requests_per_minute < 0:
            raise TopoConfigError("requests_per_minute must not be negative (0: no cap)")
        if self.max_retry_after_seconds < 0:
            raise TopoConfigError("max_retry_after_seconds must not be negative")
        if self.concurrency < 1:
            raise TopoConfigError("concurrency must be at least 1")
        if self.max_attempts < 1:
            raise TopoConfigError("max_attempts must be at least 1")
        if self.max_rereads < 0 or self.max_tie_rereads < 0:
            raise TopoConfigError("max_rereads and max_tie_rereads must not be negative")
        if (
            min(
                self.connect_timeout_seconds,
                self.request_timeout_seconds,
                self.request_deadline_seconds,
            )
            <= 0
        ):
            raise TopoConfigError("timeouts and the request deadline must be positive")
        if self.max_tasks_per_window < 1:
            raise TopoConfigError("max_tasks_per_window must be at least 1")


def validate_base_url(url: str) -> str:
    """Return ``url`` without a trailing slash if it is an acceptable API root.

    Plain ``http`` is refused unless the host is loopback: the key travels in a header.

    Raises:
        TopoConfigError: if the URL is not ``https://host/...`` (or ``http://`` on loopback).
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Not repeated: whatever precedes the @ may be a password.
        raise TopoConfigError(
            "TOPO_API_BASE_URL must not carry a user name or password (user:password@host): "
            "the API key belongs in TOPO_API_KEY. Set TOPO_API_BASE_URL to the API root "
            f"alone, such as {DEFAULT_BASE_URL}"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TopoConfigError(
            f"TOPO_API_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, got {url!r}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise TopoConfigError(
            f"TOPO_API_BASE_URL {url!r} uses plain http; https is required except on a "
            "loopback host (127.0.0.1, ::1, localhost)"
        )
    if parts.query or parts.fragment:
        raise TopoConfigError(f"TOPO_API_BASE_URL must not carry a query or fragment: {url!r}")
    return url.rstrip("/")


def _checked_api_key(api_key: str) -> str:
    """The key without surrounding whitespace, if it can travel in an HTTP header.

    A key with whitespace, a control character or a non-ASCII character inside would make
    ``httpx`` / ``h11`` fail with an error that quotes the whole header (and so the key),
    on every request; refuse it up front, without echoing it.

    Raises:
        TopoConfigError: if the key is empty or holds such a character.
    """
    key = (api_key or "").strip()
    if not key:
        raise TopoConfigError("no Topo API key: set TOPO_API_KEY to a key with tasks:read")
    for position, char in enumerate(key, start=1):
        if not "!" <= char <= "~":
            raise TopoConfigError(
                "TOPO_API_KEY holds a character an HTTP header cannot carry (whitespace, a "
                f"control character or non-ASCII, at position {position} of the key): set it "
                "to the key exactly as Topo showed it"
            )
    return key


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class FetchStats:
    """What fetching cost; summed over every request of a fetch.

    Attributes:
        requests: HTTP requests sent (retries included).
        pages: pages received and accepted.
        retries: requests sent again after a retriable failure.
        rate_limited: 429 answers received.
        server_errors: 5xx answers received.
        transport_errors: timeouts and dropped connections.
        malformed_bodies: 200 answers whose body was not a valid page.
        rereads: extra reads of windows that did not reconcile at first.
        tie_rereads: rounds of re-reading only the pages around ties that straddle a page
            boundary (each round requests a few pages, not the window).
        wait_seconds: time spent waiting for the rate controller and backoff.
        api_seconds: time spent waiting for the API to answer.
    """

    requests: int = 0
    pages: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    malformed_bodies: int = 0
    rereads: int = 0
    tie_rereads: int = 0
    wait_seconds: float = 0.0
    api_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: float) -> None:
        """Add to counters; safe to call from several threads."""
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict (for metadata and logs)."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


class TimeWindow(Protocol):
    """What the client needs of a created-at window ``[start, end)``.

    :class:`Window` is one; so is the pipeline's ``PartitionWindow``. Implementations must
    be hashable (windows key the results) and compare ``contains`` by instant.
    """

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...

    def contains(self, moment: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class Window:
    """A created-at window ``[start, end)``; both ends are aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end.timestamp() <= self.start.timestamp():
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")

    def contains(self, moment: datetime) -> bool:
        """True if ``start <= moment < end``."""
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The outcome of fetching one window.

    Attributes:
        window: the window fetched.
        api_total: Topo's ``total_count`` for the query, which starts 1 s before the window.
        in_window: unique tasks fetched whose ``created_at`` is inside the window.
        reads: how many times the window was read (1 unless it had to be re-read).
        pages: pages requested for the window over every read.
        before_window: unique tasks fetched from the second before the window, which the
            query includes so that a task at the window's start lands (they belong to the
            day before).
        out_of_bounds: unique tasks fetched that the query's bounds exclude: Topo should
            not have sent them. They are not landed.
    """

    window: TimeWindow
    api_total: int
    in_window: int
    reads: int
    pages: int
    before_window: int = 0
    out_of_bounds: int = 0

    @property
    def expected_in_window(self) -> int:
        """Tasks Topo reports for the window itself: ``total_count`` less the second before.

        Equal to :attr:`in_window` unless Topo sent tasks outside the bounds it counted.
        """
        return self.api_total - self.before_window


T = TypeVar("T")

PageHandler = Callable[[TimeWindow, list[Task]], None]
"""Receives the in-window tasks of each page as it arrives (always on the calling thread).

A handler may also have a ``discard(window)`` method. It is called, before the window is
read afresh, when the window's set of tasks changed while it was being read (its
``total_count`` moved): tasks handed over earlier may then include one Topo no longer has.
:class:`WindowCollector` has it; a handler without it keeps what it was given.

A handler may also have a ``window_done(result)`` method, called with the
:class:`WindowResult` once a window is fetched and reconciled (for progress reports).
"""


class TopoClient:
    """Reads tasks from Topo. Thread-safe; use as a context manager or call :meth:`close`.

    Args:
        api_key: the bearer key (scope ``tasks:read``).
        config: tuning; defaults are production-safe.
        transport: an ``httpx`` transport (tests use it to reach an in-process server).

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
        api_key = _checked_api_key(api_key)
        self._redact = _redactor(api_key)
        self.config = config or ClientConfig()
        self.stats = FetchStats()
        self._tasks_url = validate_base_url(self.config.base_url) + "/tasks"
        self.rate = RateController(
            self.config.concurrency, cap_per_minute=self.config.requests_per_minute
        )
        """The client's rate controller (``rate.rate_in_force`` is the rate in force)."""
        limits = httpx.Limits(
            max_connections=self.config.concurrency,
            max_keepalive_connections=self.config.concurrency,
        )
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(
                self.config.request_timeout_seconds, connect=self.config.connect_timeout_seconds
            ),
            limits=limits,
            transport=transport or DeadlineTransport(self.config.request_deadline_seconds, limits),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"TopoClient(base_url={self.config.base_url!r})"

    def __enter__(self) -> TopoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- windows ---------------------------------------------------------------------------

    def fetch_window(self, window: Window) -> tuple[list[Task], WindowResult]:
        """Fetch every task created in ``window``, de-duplicated by id.

        Raises:
            TopoError: any subclass; see the module docstring.
        """
        collector = WindowCollector()
        results = self.fetch_windows([window], collector)
        return collector.tasks(window), results[0]

    def fetch_windows(
        self, windows: Sequence[TimeWindow], on_page: PageHandler
    ) -> list[WindowResult]:
        """Fetch several windows concurrently, handing each page to ``on_page``.

        ``on_page`` is called on this thread, one page at a time, with the page's tasks that
        fall inside its window. The same task may be handed over more than once (ties that
        move between pages, re-reads): consumers keep the latest per id, and drop a
        window's tasks when ``on_page.discard(window)`` is called (see :data:`PageHandler`).

        Returns:
            One :class:`WindowResult` per window, in the order given.

        Raises:
            TopoReconciliationError: a window's ids still disagreed with ``total_count``
                after every re-read. No further pages are handed over once raised.
            TopoError: any other failure of a request; see the module docstring.
            ValueError: a window is given twice.
        """
        if len(set(windows)) != len(windows):
            raise ValueError("each window may be fetched only once per call")
        reads = [_WindowRead(window, self.config.max_tasks_per_window) for window in windows]
        with ThreadPoolExecutor(
            max_workers=self.config.concurrency, thread_name_prefix="topo-page"
        ) as pool:
            pending: dict[Future[TaskPage], tuple[_WindowRead, int]] = {}
            queued: deque[tuple[_WindowRead, int]] = deque()

            def submit(read: _WindowRead, page: int) -> None:
                queued.append((read, page))

            def start_queued() -> None:
                # A page fetched waits, parsed, until this thread hands it over; behind a
                # slow handler (the stage's writes) such pages would pile up by the
                # thousand. So only a few more than the workers' own are requested ahead.
                while queued and len(pending) < PAGES_AHEAD_PER_WORKER * self.config.concurrency:
                    read, page = queued.popleft()
                    pending[pool.submit(self._get_page, read.window, page)] = (read, page)

            for read in reads:
                submit(read, 1)
            start_queued()
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        start_queued()  # the workers keep going while pages are handed over
                        read, page_number = pending.pop(future)
                        page = future.result()
                        on_page(read.window, read.accept(page_number, page))
                        if page_number == 1 and not read.partial:
                            for number in range(2, read.page_count + 1):
                                submit(read, number)
                        if read.complete:
                            if read.reconciled():
                                _window_done(on_page, read.finish())
                                continue
                            tie_pages = read.tie_pages(self.config.max_tie_rereads)
                            if tie_pages:
                                self.stats.add(tie_rereads=1)
                                for number in tie_pages:
                                    submit(read, number)
                                continue
                            if self._reread_or_fail(read):
                                _discard(on_page, read.window)
                            self.stats.add(rereads=1)
                            submit(read, 1)
                    start_queued()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return [read.result() for read in reads]

    def _reread_or_fail(self, read: _WindowRead) -> bool:
        """Prepare ``read`` to read its window again, or raise if it may not.

        Returns:
            True if the ids of earlier reads were dropped (the task set changed).
        """
        if read.reads > self.config.max_rereads:
            raise TopoReconciliationError(
                f"tasks created in {read.window.start.isoformat()} .. "
                f"{read.window.end.isoformat()}: fetched {len(read.ids)} unique ids but Topo "
                f"reports total_count {read.total} (read {read.reads} times; page totals seen "
                f"{sorted(read.totals_seen)}). The window was not landed; retry the "
                "partition later.",
                expected=read.total,
                fetched=len(read.ids),
            )
        log.warning(
            "window %s..%s: %d unique ids for total_count %d; reading it again",
            read.window.start.isoformat(),
            read.window.end.isoformat(),
            len(read.ids),
            read.total,
        )
        return read.restart()

    # -- one page --------------------------------------------------------------------------

    def _get_page(self, window: TimeWindow, page: int) -> TaskPage:
        params = {
            "page": page,
            "size": PAGE_SIZE,
            "sort_by": "created_at",
            "sort_order": "asc",
            "created_at_after": format_timestamp(window.start - BOUND_MARGIN),
            "created_at_before": format_timestamp(window.end),
        }
        return self.get(self._tasks_url, params, TaskPage.from_api)

    def get(self, url: str, params: Mapping[str, Any], parse: Callable[[Any], T]) -> T:
        """GET ``url`` with retries; return ``parse`` of the JSON body of the 200 answer.

        A body that is not JSON, or that ``parse`` rejects with :class:`TopoDataError`, is
        retried like a 5xx (a truncated or garbled answer is usually transient).

        Raises:
            TopoAuthError, TopoPermissionError, TopoRequestError: at once, on 4xx.
            TopoUnavailableError: 429 / 5xx through every attempt.
            TopoTransportError: timeouts / dropped connections through every attempt.
            TopoDataError: malformed bodies through every attempt.
        """
        last_failure: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            if attempt > 1:
                self.stats.add(retries=1)
            ticket, waited = self.rate.acquire()
            self.stats.add(wait_seconds=waited)
            sent = time.monotonic()
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as error:  # timeouts included
                self.rate.finish(ticket, time.monotonic(), Outcome.LOST)
                elapsed = time.monotonic() - sent
                self.stats.add(requests=1, transport_errors=1, api_seconds=elapsed)
                if elapsed >= self.config.request_deadline_seconds:
                    detail = (
                        f"no complete answer within {self.config.request_deadline_seconds:g} s "
                        "(TOPO_API_REQUEST_DEADLINE_SECONDS)"
                    )
                else:
                    detail = self._redact(f"{type(error).__name__}: {error}")
                last_failure = TopoTransportError(
                    f"could not reach Topo at {self.config.base_url}: {detail}"
                )
                self._backoff(attempt, retry_after=None, reason=type(error).__name__)
                continue
            answered = time.monotonic()
            self.stats.add(requests=1, api_seconds=answered - sent)
            retry_after = _retry_after_seconds(response)
            self.rate.finish(
                ticket,
                answered,
                Outcome.RATE_LIMITED if response.status_code == 429 else Outcome.ACCEPTED,
                retry_after=retry_after,
                budget=_budget(response.headers),
            )

            if response.status_code == 200:
                try:
                    parsed = parse(response.json())
                except (json.JSONDecodeError, UnicodeDecodeError, TopoDataError) as error:
                    self.stats.add(malformed_bodies=1)
                    last_failure = TopoDataError(
                        self._redact(f"Topo sent a malformed page body: {error}")
                    )
                    self._backoff(attempt, retry_after=None, reason="malformed body")
                    continue
                self.stats.add(pages=1)
                return parsed

            failure = _api_error(response, self._redact)
            if response.status_code == 429 or response.status_code >= 500:
                if response.status_code == 429:
                    self.stats.add(rate_limited=1)
                else:
                    self.stats.add(server_errors=1)
                if retry_after is not None and retry_after > self.config.max_retry_after_seconds:
                    raise _too_long_a_wait(
                        failure, retry_after, self.config.max_retry_after_seconds
                    )
                last_failure = failure
                self._backoff(
                    attempt, retry_after=retry_after, reason=f"HTTP {response.status_code}"
                )
                continue
            raise failure

        assert last_failure is not None  # noqa: S101 - the loop ran at least once
        raise last_failure

    def _backoff(self, attempt: int, *, retry_after: float | None, reason: str) -> None:
        if attempt >= self.config.max_attempts:
            return
        ceiling = min(
            self.config.backoff_cap_seconds, self.config.backoff_base_seconds * 2 ** (attempt - 1)
        )
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
            self.config.max_attempts,
            delay,
        )
        self.stats.add(wait_seconds=delay)
        time.sleep(delay)


class _WindowRead:
    """Progress of reading one window: pages seen, ids accumulated, totals observed."""

    def __init__(self, window: TimeWindow, max_tasks: int) -> None:
        self.window = window
        self.max_tasks = max_tasks
        self.ids: set[str] = set()
        self.in_window_ids: set[str] = set()
        self.before_window_ids: set[str] = set()
        self.out_of_bounds_ids: set[str] = set()
        self.reads = 0
        self.pages_requested = 0
        self.total = 0
        self.totals_seen: set[int] = set()
        # The one total_count every read since the ids were last cleared has seen.
        self.steady_total: int | None = None
        # created_at of the first and last task of each page, as last received.
        self.page_edges: dict[int, tuple[datetime, datetime]] = {}
        self.tie_rounds = 0
        self.partial = False  # re-reading only the pages around ties
        self._finished: WindowResult | None = None
        self.restart()

    def restart(self) -> bool:
        """Prepare the next read; return whether the ids of earlier reads were dropped.

        Ids are kept across reads while every read sees one and the same total: with an
        unchanged set each read can only add ids (healing ties ordered differently between
        requests). If the total moved, within a read or between reads, the set changed
        under us and earlier ids may be stale (a deleted task among them, or counted in
        place of one missed), so start afresh.
        """
        dropped = False
        if self.totals_seen:  # a read has finished
            if len(self.totals_seen) == 1 and self.steady_total in (None, self.total):
                self.steady_total = self.total
            else:
                self.ids.clear()
                self.in_window_ids.clear()
                self.before_window_ids.clear()
                self.out_of_bounds_ids.clear()
                self.steady_total = None
                dropped = True
        self.reads += 1
        self.totals_seen = set()
        self.page_count = 1
        self.pending_pages = {1}
        self.page_edges = {}
        self.partial = False
        return dropped

    def tie_pages(self, max_rounds: int) -> list[int]:
        """Start a round of re-reading the pages around straddling ties; return them.

        Only when the finished read saw one steady total (the task set did not change)
        and fewer than ``max_rounds`` rounds ran: then the missing ids can only be tasks
        whose position within a tie moved between requests. Returns ``[]`` otherwise, or
        when no tie straddles a page boundary.
        """
        steady = len(self.totals_seen) == 1 and self.steady_total in (None, self.total)
        if not steady or self.tie_rounds >= max_rounds:
            return []
        pages: set[int] = set()
        for number in range(1, self.page_count):
            before, after = self.page_edges.get(number), self.page_edges.get(number + 1)
            if before and after and before[1] == after[0]:
                pages.update((number, number + 1))
        if not pages:
            return []
        self.tie_rounds += 1
        self.partial = True
        self.pending_pages = set(pages)
        return sorted(pages)

    def accept(self, number: int, page: TaskPage) -> list[Task]:
        if page.total_count > self.max_tasks or len(page.items) > PAGE_SIZE:
            raise TopoDataError(
                f"Topo reported total_count {page.total_count:,} with {len(page.items)} items "
                f"on page {number} for tasks created in {self.window.start.isoformat()} .. "
                f"{self.window.end.isoformat()}: more than the {self.max_tasks:,} tasks a "
                f"window may hold (TOPO_API_MAX_TASKS_PER_WINDOW) or more than {PAGE_SIZE} "
                "items on a page. Refusing to request its pages; if a day really holds that "
                "many tasks, raise TOPO_API_MAX_TASKS_PER_WINDOW."
            )
        self.pages_requested += 1
        self.totals_seen.add(page.total_count)
        self.total = page.total_count
        if number == 1 and not self.partial:
            self.page_count = page.page_count_for(PAGE_SIZE)
            self.pending_pages = set(range(2, self.page_count + 1))
        else:
            self.pending_pages.discard(number)
        tasks = []
        created = []
        lower = self.window.start - BOUND_MARGIN  # the query's exclusive lower bound
        for item in page.items:
            task = Task.from_api(item)
            created.append(task.created_at)
            self.ids.add(task.id)
            if self.window.contains(task.created_at):
                self.in_window_ids.add(task.id)
                tasks.append(task)
            elif lower < task.created_at < self.window.start:
                self.before_window_ids.add(task.id)
            elif task.id not in self.out_of_bounds_ids:
                self.out_of_bounds_ids.add(task.id)
                if len(self.out_of_bounds_ids) == 1:
                    log.warning(
                        "Topo sent task %s created at %s for the window %s .. %s, outside the "
                        "bounds requested; such tasks are counted, not landed, and the "
                        "count_matches_api_total check will flag the day",
                        task.id,
                        task.created_at.isoformat(),
                        self.window.start.isoformat(),
                        self.window.end.isoformat(),
                    )
        if created:
            self.page_edges[number] = (created[0], created[-1])
        return tasks

    @property
    def complete(self) -> bool:
        return not self.pending_pages

    def reconciled(self) -> bool:
        return (
            len(self.totals_seen) == 1
            and self.steady_total in (None, self.total)
            and len(self.ids) == self.total
        )

    def finish(self) -> WindowResult:
        """The result of the reconciled window; its ids are let go.

        A range run reads hundreds of windows before it returns, and each window's id sets
        hold a day of ids (about 150 bytes per task); a finished window needs only counts.
        """
        self._finished = self.result()
        self.ids, self.in_window_ids = set(), set()
        self.before_window_ids, self.out_of_bounds_ids = set(), set()
        return self._finished

    def result(self) -> WindowResult:
        if self._finished is not None:
            return self._finished
        return WindowResult(
            window=self.window,
            api_total=self.total,
            in_window=len(self.in_window_ids),
            before_window=len(self.before_window_ids),
            out_of_bounds=len(self.out_of_bounds_ids),
            reads=self.reads,
            pages=self.pages_requested,
        )


class WindowCollector:
    """A :data:`PageHandler` that keeps the latest version of each task per window, in memory.

    Of two copies of a task, the one with the later ``updated_at`` is kept (it changed while
    the window was read), the one handed over last among equals: the rule the warehouse
    lands by (:mod:`topo_pipeline.warehouse.duplicates`).
    """

    def __init__(self) -> None:
        self._tasks: dict[TimeWindow, dict[str, Task]] = {}

    def __call__(self, window: TimeWindow, tasks: list[Task]) -> None:
        by_id = self._tasks.setdefault(window, {})
        for task in tasks:
            kept = by_id.get(task.id)
            if kept is None or not _older(task, kept):
                by_id[task.id] = task

    def discard(self, window: TimeWindow) -> None:
        """Forget the window's tasks (it is about to be read afresh)."""
        self._tasks.pop(window, None)

    def tasks(self, window: TimeWindow) -> list[Task]:
        """The window's tasks, ordered by ``created_at`` then ``id``."""
        return sorted(self._tasks.get(window, {}).values(), key=lambda t: (t.created_at, t.id))

    def all_tasks(self) -> Iterable[Task]:
        """Every collected task, window by window."""
        for by_id in self._tasks.values():
            yield from by_id.values()


def _older(task: Task, than: Task) -> bool:
    """Whether ``task`` was updated before ``than`` (a missing ``updated_at`` is oldest)."""
    if task.updated_at is None:
        return than.updated_at is not None
    return than.updated_at is not None and task.updated_at < than.updated_at


def _discard(handler: PageHandler, window: TimeWindow) -> None:
    discard = getattr(handler, "discard", None)
    if callable(discard):
        discard(window)


def _window_done(handler: PageHandler, result: WindowResult) -> None:
    done = getattr(handler, "window_done", None)
    if callable(done):
        done(result)


# -- error answers -------------------------------------------------------------------------


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _api_error(response: httpx.Response, redact: Callable[[str], str]) -> TopoApiError:
    """Turn an error answer into the exception a user can act on (the key scrubbed out)."""
    body = _error_body(response)
    status = response.status_code
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    message = _str_or_none(body.get("message"))
    fields: dict[str, Any] = {
        "status_code": status,
        "error_type": _str_or_none(body.get("type")),
        "request_id": _str_or_none(body.get("request_id")) or response.headers.get("x-request-id"),
        "api_message": None if message is None else redact(message),
    }
    if status == 401:
        return TopoAuthError(
            "the Topo API key was rejected (missing, malformed or revoked): check "
            "TOPO_API_KEY, or create a key under Settings → Developers → API Keys",
            **fields,
        )
    if status == 403:
        return TopoPermissionError(
            "the Topo API key lacks the tasks:read scope needed to list tasks: create a key "
            "with tasks:read and set TOPO_API_KEY to it",
            **fields,
        )
    if status == 400:
        detail = f" ({redact(_describe(data))})" if data else ""
        return TopoRequestError(f"Topo refused a request parameter{detail}", **fields)
    if status == 404:
        return TopoRequestError(
            "Topo answered 404 Not Found: check TOPO_API_BASE_URL (it should be the API root "
            f"ending in /v1, such as {DEFAULT_BASE_URL})",
            **fields,
        )
    if status == 422:
        return TopoRequestError("Topo refused the request under a business rule", **fields)
    if status == 429:
        return TopoUnavailableError(
            "Topo kept rate-limiting the pipeline (429) through every retry, although every "
            "request slowed down: set TOPO_API_REQUESTS_PER_MINUTE below Topo's limit, or "
            "lower TOPO_API_CONCURRENCY",
            **fields,
        )
    if status >= 500:
        return TopoUnavailableError(
            "Topo kept failing with server errors through every retry; try again later",
            **fields,
        )
    return TopoRequestError(f"Topo answered HTTP {status}", **fields)


def _describe(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(data.items()))[:300]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _redactor(api_key: str) -> Callable[[str], str]:
    """A function that removes ``api_key`` from a text (a server may echo what it got)."""

    def redact(text: str) -> str:
        return text.replace(api_key, "[API key removed]")

    return redact


def _too_long_a_wait(failure: TopoApiError, wait: float, most: float) -> TopoUnavailableError:
    """The error for a ``Retry-After`` longer than the client is willing to sleep."""
    return TopoUnavailableError(
        f"Topo asked the pipeline to wait {_duration(wait)} before trying again "
        f"(Retry-After), longer than the {_duration(most)} it waits at most "
        "(TOPO_API_MAX_RETRY_AFTER_SECONDS): stopping instead of sleeping. Run it again "
        "later, or raise TOPO_API_MAX_RETRY_AFTER_SECONDS",
        status_code=failure.status_code,
        error_type=failure.error_type,
        request_id=failure.request_id,
        api_message=failure.api_message,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ({seconds:.0f} s)"
    return f"{seconds / 3600:.1f} h ({seconds:.0f} s)"


def _budget(headers: httpx.Headers) -> Budget | None:
    """The rate-limit budget an answer advertises (``RateLimit-*`` or ``X-RateLimit-*``).

    ``Reset`` is read as seconds from now, or as a Unix time when it is that large (the
    ``X-RateLimit-Reset`` of GitHub and others). A header that does not parse is ignored.
    """
    for prefix in ("ratelimit-", "x-ratelimit-"):
        remaining = _leading_number(headers.get(prefix + "remaining"))
        if remaining is None:
            continue
        limit = _leading_number(headers.get(prefix + "limit"))
        reset = _leading_number(headers.get(prefix + "reset"))
        if reset is None:
            reset = 1.0
        elif reset > 1e9:
            reset = reset - time.time()
        return Budget(
            limit=int(limit if limit is not None else remaining),
            remaining=int(remaining),
            reset_in=max(0.0, reset),
        )
    return None


def _leading_number(value: str | None) -> float | None:
    """The number a header value starts with (``"100"``, ``"100, 100;w=60"``), if any."""
    if value is None:
        return None
    head = value.split(",", 1)[0].split(";", 1)[0].strip()
    try:
        number = float(head)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


# -- an overall deadline per request ---------------------------------------------------------


class DeadlineTransport(httpx.BaseTransport):
    """httpx's default HTTP/1.1 transport, each request ending by ``deadline_seconds``.

    It owns an ``httpcore.ConnectionPool`` whose connections read and write no later than
    the deadline of the request using them, and maps ``httpx.Request`` to the pool and its
    answer back, as ``httpx.HTTPTransport`` does (httpcore's errors become httpx's). A
    request past its deadline fails with ``httpx.ConnectTimeout``, ``httpx.WriteTimeout``
    or ``httpx.ReadTimeout``.

    Args:
        deadline_seconds: the longest one request may take, its answer's body included.
        limits: connection pool limits.
    """

    def __init__(self, deadline_seconds: float, limits: httpx.Limits) -> None:
        self._deadline_seconds = deadline_seconds
        self._pool = httpcore.ConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the pool; its answer's body is read under the same deadline."""
        deadline = time.monotonic() + self._deadline_seconds
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("DeadlineTransport serves synchronous requests only")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _until(deadline), _httpx_errors():
            answer = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_BodyStream(answer, deadline),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()


@cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``).

    Built once per process and shared by every client (tests' own ``httpx`` clients too):
    loading the CA bundle takes about 20 ms.
    """
    return httpx.create_ssl_context()


class _BodyStream(httpx.SyncByteStream):
    """An answer's body, each chunk read under the request's deadline and error mapping."""

    def __init__(self, answer: httpcore.Response, deadline: float) -> None:
        self._answer = answer
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._answer.iter_stream()
        while True:
            with _until(self._deadline), _httpx_errors():
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        with _httpx_errors():
            self._answer.close()


# httpcore's errors and httpx's public equivalents, the most specific first (the mapping
# of httpx's own HTTPTransport).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Raise httpcore's errors as the httpx errors callers of an httpx client expect."""
    try:
        yield
    except Exception as error:
        for core_error, httpx_error in _ERRORS:
            if isinstance(error, core_error):
                raise httpx_error(str(error)) from error
        raise


class _Deadline(threading.local):
    """The monotonic time by which this thread's current request must be complete."""

    at: float | None = None


_DEADLINE = _Deadline()


@contextmanager
def _until(deadline: float) -> Iterator[None]:
    """Make ``deadline`` the one this thread's connections honour, within the block."""
    previous, _DEADLINE.at = _DEADLINE.at, deadline
    try:
        yield
    finally:
        _DEADLINE.at = previous


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of this thread's deadline."""
    at = _DEADLINE.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the calling thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own network backend, with :class:`_DeadlineStream` connections."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)
