"""Client-side request pacing shared by every thread of one client.

Requests are spaced evenly at ``60 / requests_per_minute`` seconds (no bursts), so a client
configured at or under the API's limit never provokes a 429 from a sliding-window limiter.
A 429 pauses every thread, not just the one that received it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestPacer:
    """Hands out evenly spaced request slots to any number of threads.

    Args:
        requests_per_minute: the most requests to start in any minute; ``None`` or ``0``
            means unpaced.
        clock: monotonic clock (injectable for tests).
        sleep: sleep function (injectable for tests).
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0

    @property
    def interval(self) -> float:
        """Seconds between two request starts (0 when unpaced)."""
        return self._interval

    def acquire(self) -> float:
        """Block until this caller may send a request; return the seconds waited.

        A pause that starts while the caller waits for its slot is honoured too: the
        caller then takes a new slot after the pause.
        """
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + self._interval
            if slot > now:
                self._sleep(slot - now)
            with self._lock:
                if self._clock() >= self._paused_until:
                    return self._clock() - started

    def pause_for(self, seconds: float) -> None:
        """Hold every request (already queued or new) for at least ``seconds`` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
