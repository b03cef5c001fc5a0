"""Rate limiters of the simulated Topo API, and the rate-limit headers they advertise.

:class:`TokenBucket` (``burst`` tokens, refilled continuously at the limit) and
:class:`SlidingWindow` (at most ``limit x window / 60`` requests in any trailing ``window``
seconds) decide at the moment a request is received; refused requests never use up the
budget, and :meth:`RateLimiter.set_limit` changes a running limiter's limit. Both describe
their state as :class:`LimitState`, from which the server writes the ``RateLimit-*`` (or
``X-RateLimit-*``) headers. How each behaves: ``simulator/README.md``, "Faults".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LimitState:
    """What a limiter tells a client about its budget, right after a decision.

    Attributes:
        limit: the quota (the bucket's capacity, or the window's allowance).
        remaining: whole requests that would be admitted now, back to back.
        reset_seconds: seconds until ``remaining`` is back at ``limit`` if nothing is sent
            (rounded up to whole seconds, as the header carries them).
    """

    limit: int
    remaining: int
    reset_seconds: int


class RateLimiter(Protocol):
    """A limiter the fault injector consults once per request."""

    def try_acquire(self, now: float) -> float:
        """Admit a request at ``now`` (return 0.0) or return seconds until one would be."""
        ...

    def set_limit(self, per_minute: float, now: float) -> None:
        """Change the sustained rate from ``now`` on."""
        ...

    def state(self, now: float) -> LimitState:
        """The budget at ``now``, for the rate-limit headers."""
        ...


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``per_minute / 60`` per second.

    A request is admitted if a whole token is available and then uses it. A client that
    starts one request every ``60 / per_minute`` seconds finds a token every time, and
    ``capacity - 1`` intervals of jitter are absorbed.
    """

    def __init__(self, per_minute: float, capacity: int, now: float) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(capacity)
        self._tokens = float(capacity)
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        self._updated = max(self._updated, now)

    def try_acquire(self, now: float) -> float:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def set_limit(self, per_minute: float, now: float) -> None:
        self._refill(now)  # tokens earned at the old rate are kept
        self._rate = per_minute / 60.0

    def state(self, now: float) -> LimitState:
        self._refill(now)
        missing = self._capacity - self._tokens
        return LimitState(
            limit=int(self._capacity),
            remaining=math.floor(self._tokens),
            reset_seconds=math.ceil(missing / self._rate) if missing > 1e-9 else 0,
        )


class SlidingWindow:
    """At most ``allowance`` admissions in any trailing ``window_seconds``.

    The allowance is ``per_minute x window_seconds / 60`` (at least 1), so a window of
    ``60 / per_minute`` seconds admits one request per interval: a strict limiter with no
    burst. Changing the limit keeps the window's length and changes the allowance.
    """

    def __init__(self, per_minute: float, window_seconds: float) -> None:
        self._window = window_seconds
        self._allowance = self._allowance_for(per_minute)
        self._admitted: deque[float] = deque()

    def _allowance_for(self, per_minute: float) -> int:
        return max(1, math.floor(per_minute * self._window / 60.0 + 1e-9))

    def _expire(self, now: float) -> None:
        while self._admitted and self._admitted[0] <= now - self._window:
            self._admitted.popleft()

    def try_acquire(self, now: float) -> float:
        self._expire(now)
        if len(self._admitted) < self._allowance:
            self._admitted.append(now)
            return 0.0
        # The oldest admissions that must leave before one more fits.
        oldest_to_leave = self._admitted[len(self._admitted) - self._allowance]
        return max(1e-6, oldest_to_leave + self._window - now)

    def set_limit(self, per_minute: float, now: float) -> None:
        self._expire(now)
        self._allowance = self._allowance_for(per_minute)

    def state(self, now: float) -> LimitState:
        self._expire(now)
        remaining = max(0, self._allowance - len(self._admitted))
        newest = self._admitted[-1] if self._admitted else None
        reset = 0.0 if newest is None else newest + self._window - now
        return LimitState(
            limit=self._allowance,
            remaining=remaining,
            reset_seconds=math.ceil(reset) if reset > 1e-9 else 0,
        )
