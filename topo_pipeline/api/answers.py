"""What Topo's answers mean: an error answer as the exception a user can act on, and the
waits and budgets its headers ask for (``Retry-After``, ``RateLimit-*``).

Every message of an error answer is built here, once; the API key is scrubbed from
whatever Topo quotes back.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from topo_pipeline.api.config import DEFAULT_BASE_URL
from topo_pipeline.api.errors import (
    TopoApiError,
    TopoAuthError,
    TopoPermissionError,
    TopoRequestError,
    TopoUnavailableError,
)
from topo_pipeline.api.pacing import Budget

Redact = Callable[[str], str]
"""Removes the API key from a text."""


def is_retriable(status_code: int) -> bool:
    """Whether an error answer is worth sending again: 429 and 5xx (other 4xx are not)."""
    return status_code == 429 or status_code >= 500


def api_error(response: httpx.Response, redact: Redact) -> TopoApiError:
    """The exception for an error answer: its cause and fix, and Topo's ``request_id``.

    Args:
        response: an answer with a status other than 200.
        redact: removes the API key from what Topo's body quotes.
    """
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


def too_long_a_wait(failure: TopoApiError, wait: float, most: float) -> TopoUnavailableError:
    """The error for a ``Retry-After`` of ``wait`` seconds, longer than the ``most`` allowed."""
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


def retry_after_seconds(response: httpx.Response) -> float | None:
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


def rate_limit_budget(headers: httpx.Headers) -> Budget | None:
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


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _describe(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(data.items()))[:300]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ({seconds:.0f} s)"
    return f"{seconds / 3600:.1f} h ({seconds:.0f} s)"


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
