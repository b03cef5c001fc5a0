"""Errors raised by the Topo client: cause, fix and Topo's ``request_id``; never the key.

TopoError
├── TopoConfigError          settings that cannot work (bad URL, missing key, bad number)
├── TopoApiError             Topo answered with an error status (api.answers builds it)
│   ├── TopoAuthError            401: the key is missing, malformed or rejected
│   ├── TopoPermissionError      403: the key lacks the tasks:read scope
│   ├── TopoRequestError         400 / 404 / 409 / 422 and other 4xx: not worth retrying
│   └── TopoUnavailableError     429 / 5xx that outlasted every retry
├── TopoTransportError       timeouts and dropped connections that outlasted every retry
├── TopoDataError            a body or task that breaks the documented contract
└── TopoReconciliationError  the tasks fetched for a window disagree with total_count
"""

from __future__ import annotations


class TopoError(Exception):
    """Base class of every error the Topo client raises."""


class TopoConfigError(TopoError):
    """The client's settings cannot work."""


class TopoApiError(TopoError):
    """Topo answered with an error status.

    Attributes:
        status_code: the HTTP status.
        error_type: Topo's ``type`` field (``ValidationIssue``, ``UnauthorizedIssue``, ...).
        request_id: Topo's ``request_id``, to quote to Topo support.
        api_message: Topo's human-readable ``message``.
    """

    def __init__(
        self,
        summary: str,
        *,
        status_code: int,
        error_type: str | None = None,
        request_id: str | None = None,
        api_message: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        self.api_message = api_message
        details = [f"HTTP {status_code}"]
        if error_type:
            details.append(error_type)
        if api_message:
            details.append(f"Topo says: {api_message}")
        details.append(f"request_id: {request_id or 'not given'}")
        super().__init__(f"{summary} ({'; '.join(details)})")


class TopoAuthError(TopoApiError):
    """401: the key is missing, malformed or was rejected."""


class TopoPermissionError(TopoApiError):
    """403: the key is valid but lacks the scope the endpoint needs."""


class TopoRequestError(TopoApiError):
    """A 4xx that retrying cannot fix (bad parameter, not found, business rule)."""


class TopoUnavailableError(TopoApiError):
    """429 or 5xx answers that continued through every retry."""


class TopoTransportError(TopoError):
    """Timeouts or dropped connections that continued through every retry."""


class TopoDataError(TopoError):
    """A response body or task object that breaks the documented contract."""


class TopoReconciliationError(TopoError):
    """The unique tasks fetched for a window do not match the API's ``total_count``.

    Attributes:
        expected: the API's ``total_count``.
        fetched: the number of unique task ids fetched.
    """

    def __init__(self, message: str, *, expected: int, fetched: int) -> None:
        self.expected = expected
        self.fetched = fetched
        super().__init__(message)
