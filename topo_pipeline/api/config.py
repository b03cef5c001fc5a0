"""The Topo client's configuration: :class:`ClientSettings`, :class:`ClientConfig`, and the
checks of its URL and key.

:class:`ClientSettings` declares each knob of the client that the environment sets, once
(:func:`~topo_pipeline.declarations.setting`: name, variable, default, bounds, meaning).
The client's :class:`ClientConfig`, the pipeline's
:class:`~topo_pipeline.settings.Settings` and Dagster's ``TopoApiResource`` inherit these
fields, so one knob has one name from the environment variable to the client, and a knob
declared here reaches all three.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.declarations import SETTINGS_CONFIG, DeclaredSettings, setting

DEFAULT_BASE_URL = "https://api.topo.io/v1"


class ClientSettings(BaseModel):
    """The client's settings that the environment sets; every default is production-safe.

    A plain pydantic model (no Dagster) that :class:`ClientConfig`, ``Settings`` and
    ``TopoApiResource`` inherit.
    """

    model_config = SETTINGS_CONFIG

    base_url: str = setting(
        DEFAULT_BASE_URL,
        env="TOPO_API_BASE_URL",
        meaning="API root as Topo documents it (/tasks is appended); https, or http on a "
        "loopback host",
    )
    requests_per_minute: float | None = setting(
        None,
        env="TOPO_API_REQUESTS_PER_MINUTE",
        ge=0,
        meaning="a hard cap on the request rate, on top of the adaptive rate control; unset "
        "or 0: no cap",
    )
    concurrency: int = setting(
        8,
        env="TOPO_API_CONCURRENCY",
        ge=1,
        meaning="most requests in flight at once (pages and windows together)",
    )
    request_timeout_seconds: float = setting(
        60.0,
        env="TOPO_API_TIMEOUT_SECONDS",
        gt=0,
        meaning="the longest wait for the next bytes of an answer (a read timeout: it restarts "
        "with every byte)",
    )
    request_deadline_seconds: float = setting(
        120.0,
        env="TOPO_API_REQUEST_DEADLINE_SECONDS",
        gt=0,
        meaning="the longest one request may take in all, connecting and reading included",
    )
    max_attempts: int = setting(
        8, env="TOPO_API_MAX_ATTEMPTS", ge=1, meaning="tries per request, the first included"
    )
    max_retry_after_seconds: float = setting(
        300.0,
        env="TOPO_API_MAX_RETRY_AFTER_SECONDS",
        ge=0,
        meaning="the longest Retry-After the client waits; a longer one fails the fetch at "
        "once, naming the wait",
    )
    max_tasks_per_window: int = setting(
        1_000_000,
        env="TOPO_API_MAX_TASKS_PER_WINDOW",
        ge=1,
        meaning="the largest total_count believed for one day; a larger one fails the fetch "
        "instead of requesting its pages",
    )

    @field_validator("base_url")
    @classmethod
    def refuse_unsafe_base_url(cls, url: str) -> str:
        """:func:`validate_base_url`; the URL is kept as given."""
        try:
            validate_base_url(url)
        except TopoConfigError as error:
            raise ValueError(str(error)) from None
        return url

    @field_validator("requests_per_minute")
    @classmethod
    def zero_is_no_cap(cls, rate: float | None) -> float | None:
        """``0`` means no cap, as unset does."""
        return rate or None

    def client_config(self) -> ClientConfig:
        """A :class:`ClientConfig` with these settings (the other knobs at their defaults)."""
        return ClientConfig(**{name: getattr(self, name) for name in ClientSettings.model_fields})


class ClientConfig(DeclaredSettings, ClientSettings):
    """Tuning of a :class:`~topo_pipeline.api.client.TopoClient`: its settings
    (:class:`ClientSettings`) and knobs no variable sets; every default is production-safe.

    Raises:
        TopoConfigError: on construction, for a refused base URL or an impossible number,
            naming the variable.
    """

    connect_timeout_seconds: float = Field(
        10.0, gt=0, description="the longest wait to establish a connection"
    )
    backoff_base_seconds: float = Field(
        0.5, ge=0, description="first backoff step (doubles each retry)"
    )
    backoff_cap_seconds: float = Field(
        60.0, ge=0, description="longest single backoff (Retry-After may exceed it)"
    )
    max_rereads: int = Field(
        3, ge=0, description="extra reads of a window whose ids do not reconcile with total_count"
    )
    max_tie_rereads: int = Field(
        20,
        ge=0,
        description="rounds of re-reading only the pages around ties that straddle a page "
        "boundary, tried before a whole window is read again",
    )


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
