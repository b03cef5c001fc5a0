"""What a fetch cost: :class:`FetchStats`, the counters a client adds to from every thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


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
