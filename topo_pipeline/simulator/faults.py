"""Switchable faults of the simulated Topo API, decided per request from a seeded RNG.

A :class:`FaultPlan` says *what* may go wrong; a :class:`FaultInjector` holds the state
that makes it happen (the fault RNG, the rate limiter's bucket, the rest of a 429 storm)
and decides, once per request and in the order requests arrive, which fault that request
gets. Every request draws the same number of random values whatever happens to it, so
for a given ``seed`` and request order the sequence of faults is always the same.

Precedence for one request: a dropped connection, then a forced 429 (storm), then the
rate limiter's 429, then a 5xx. A malformed body only replaces a successful (200) answer.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from enum import Enum

#: The 5xx statuses a server-error fault picks from, uniformly.
SERVER_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the simulated API does wrong; the default plan is a healthy API.

    Assign a new plan to a running server (``api.faults = FaultPlan(...)``) to switch
    faults at runtime; assigning restarts the fault RNG from ``seed``, refills the rate
    limiter and arms a new 429 storm.

    Attributes:
        latency_seconds: delay added before every response (dropped ones included).
        rate_limit_per_minute: sustained requests per minute the API accepts; ``None``
            means unlimited. Enforced by a token bucket refilled continuously at this
            rate, so a client that spaces its requests at ``60 / limit`` seconds is never
            refused. Requests over the limit get 429 with ``Retry-After``; refused
            requests do not use up the budget.
        rate_limit_burst: requests that may arrive back to back before the rate applies
            (the bucket's capacity); ``None`` means one minute's worth of the limit.
        error_5xx_rate: probability that a request gets a 500, 502 or 503.
        drop_rate: probability that the connection is closed without any response.
        malformed_rate: probability that a successful answer's body is cut short
            (status 200, invalid JSON).
        force_429_count: the next this-many requests get 429, whatever the rate limit
            (a "429 storm").
        retry_after_seconds: the ``Retry-After`` that storm answers carry.
        unstable_tie_order: rows that tie on the sort field come back in a new random
            order on every request, as from an API whose ``ORDER BY`` has no tiebreaker.
        seed: seed of the fault RNG.
    """

    latency_seconds: float = 0.0
    rate_limit_per_minute: float | None = None
    rate_limit_burst: int | None = None
    error_5xx_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    force_429_count: int = 0
    retry_after_seconds: int = 1
    unstable_tie_order: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must not be negative")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute <= 0:
            raise ValueError("rate_limit_per_minute must be positive (or None for unlimited)")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be at least 1 (or None)")
        for name in ("error_5xx_rate", "drop_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1")
        if self.force_429_count < 0:
            raise ValueError("force_429_count must not be negative")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")


class FaultKind(Enum):
    """What a request gets instead of (or on top of) its normal answer."""

    NONE = "none"
    DROP = "drop"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """The faults one request gets.

    Attributes:
        kind: the fault that replaces the normal answer, if any.
        status: the HTTP status of a 429 or 5xx answer (``None`` otherwise).
        retry_after: whole seconds for a 429's ``Retry-After`` header.
        limit_per_minute: the rate limit in force, for a 429 body's ``data``.
        malformed: cut the body short if the normal answer is a 200.
        latency_seconds: delay before answering.
        tie_seed: seed for shuffling tied rows; ``None`` keeps the stable order.
    """

    kind: FaultKind = FaultKind.NONE
    status: int | None = None
    retry_after: int | None = None
    limit_per_minute: float | None = None
    malformed: bool = False
    latency_seconds: float = 0.0
    tie_seed: int | None = None


class TokenBucket:
    """A rate limiter: ``capacity`` tokens, refilled continuously at ``rate_per_second``.

    A request is admitted if a whole token is available and then uses it. A client that
    starts one request every ``1 / rate_per_second`` seconds finds a token every time,
    and ``capacity - 1`` intervals of jitter are absorbed.
    """

    def __init__(self, rate_per_second: float, capacity: int, now: float) -> None:
        self._rate = rate_per_second
        self._capacity = float(capacity)
        self._tokens = float(capacity)
        self._updated = now

    def try_acquire(self, now: float) -> float:
        """Take a token if one is available at ``now``.

        Returns:
            0.0 if the request is admitted, else the seconds until a token is available.
        """
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class FaultInjector:
    """Decides the faults of each request under one :class:`FaultPlan`; thread-safe."""

    def __init__(self, plan: FaultPlan, now: float) -> None:
        self._lock = threading.Lock()
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._storm_left = plan.force_429_count
        self._bucket: TokenBucket | None = None
        if plan.rate_limit_per_minute is not None:
            capacity = plan.rate_limit_burst or max(1, math.floor(plan.rate_limit_per_minute))
            self._bucket = TokenBucket(plan.rate_limit_per_minute / 60.0, capacity, now)

    def decide(self, now: float) -> FaultDecision:
        """The faults of the request received at monotonic time ``now``."""
        plan = self.plan
        with self._lock:
            # Always draw the same values, in the same order, so one request's fate does
            # not shift the random sequence of the requests after it.
            drop_draw = self._rng.random()
            error_draw = self._rng.random()
            error_status = self._rng.choice(SERVER_ERROR_STATUSES)
            malformed_draw = self._rng.random()
            tie_seed = self._rng.getrandbits(64)

            common = {
                "latency_seconds": plan.latency_seconds,
                "limit_per_minute": plan.rate_limit_per_minute,
            }
            if drop_draw < plan.drop_rate:
                return FaultDecision(kind=FaultKind.DROP, **common)
            if self._storm_left > 0:
                self._storm_left -= 1
                return FaultDecision(
                    kind=FaultKind.RATE_LIMITED,
                    status=429,
                    retry_after=plan.retry_after_seconds,
                    **common,
                )
            if self._bucket is not None:
                wait = self._bucket.try_acquire(now)
                if wait > 0:
                    return FaultDecision(
                        kind=FaultKind.RATE_LIMITED,
                        status=429,
                        retry_after=max(1, math.ceil(wait)),
                        **common,
                    )
        if error_draw < plan.error_5xx_rate:
            return FaultDecision(kind=FaultKind.SERVER_ERROR, status=error_status, **common)
        return FaultDecision(
            malformed=malformed_draw < plan.malformed_rate,
            tie_seed=tie_seed if plan.unstable_tie_order else None,
            **common,
        )
