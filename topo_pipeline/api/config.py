"""The Topo client's configuration: :class:`ClientConfig`, and the checks of its URL and key.

Field names are the settings' names (:class:`topo_pipeline.settings.Settings`), so one
knob has one name from the environment variable to the client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from topo_pipeline.api.errors import TopoConfigError

DEFAULT_BASE_URL = "https://api.topo.io/v1"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Tuning of a :class:`~topo_pipeline.api.client.TopoClient`; every default is production-safe.

    Attributes:
        base_url: API root as Topo documents it (``/tasks`` is appended). ``https`` only,
            except for a loopback host.
        requests_per_minute: a hard cap on the request rate, on top of the adaptive rate
            control; ``None`` or ``0``: no cap (the default).
        concurrency: most requests in flight at once (pages and windows together).
        connect_timeout_seconds: to establish a connection.
        request_timeout_seconds: the longest wait for the next bytes of an answer (a read
            timeout: it restarts with every byte).
        request_deadline_seconds: the longest one request may take in all, connecting and
            reading included.
        max_attempts: tries per request, the first included.
        backoff_base_seconds: first backoff step (doubles each retry).
        backoff_cap_seconds: longest single backoff (``Retry-After`` may exceed it).
        max_retry_after_seconds: the longest ``Retry-After`` the client waits; a longer one
            fails the fetch at once with an error naming the wait.
        max_tasks_per_window: the largest ``total_count`` believed for one window; a
            larger one fails the fetch naming it instead of requesting its pages.
        max_rereads: extra reads of a window whose ids do not reconcile with ``total_count``.
        max_tie_rereads: rounds of re-reading only the pages around ties that straddle a
            page boundary, tried before a whole window is read again.

    Raises:
        TopoConfigError: on construction, for a refused base URL or an impossible number.
    """

    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: float | None = None
    concurrency: int = 8
    connect_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 60.0
    request_deadline_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 60.0
    max_retry_after_seconds: float = 300.0
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
        timeouts = (
            self.connect_timeout_seconds,
            self.request_timeout_seconds,
            self.request_deadline_seconds,
        )
        if min(timeouts) <= 0:
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


def checked_api_key(api_key: str) -> str:
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
