"""Topo's error answer: the :class:`ApiError` a request earns and its JSON body.

Every error the simulated API answers carries Topo's error body (``topo-api.md``,
section 10), with a fresh gateway-style ``request_id``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


class ApiError(Exception):
    """An error answer with Topo's error body."""

    def __init__(
        self, status: int, issue: str, message: str, data: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.issue = issue
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        """The JSON error body, with a fresh ``request_id``."""
        body: dict[str, Any] = {
            "status_code": self.status,
            "type": self.issue,
            "message": self.message,
        }
        if self.data is not None:
            body["data"] = dict(self.data)
        body["request_id"] = new_request_id()
        return body


def new_request_id() -> str:
    """A gateway-style request id: ``req_`` + 26 lowercase Crockford base32 characters.

    Like a ULID: 10 characters of millisecond time, then 16 of randomness.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(secrets.token_bytes(10))
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "req_" + "".join(reversed(chars))
