"""Switchable faults of the simulated Topo API, decided per request from a seeded RNG.

A :class:`FaultPlan` says *what* may go wrong, from what a well-meaning API does (latency,
5xx, drops, 429s) to what a hostile or broken one does, for tests of the client's defences;
a :class:`FaultInjector` holds the state that makes it happen and decides, once per request
and in arrival order, which fault that request gets. For a given ``seed`` and request order
the sequence of faults is always the same. The fields and their precedence:
``simulator/README.md``, "Faults".
"""

from __future__ import annotations

import json
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Literal

from topo_pipeline.simulator.contract import format_timestamp, parse_timestamp
from topo_pipeline.simulator.limits import LimitState, RateLimiter, SlidingWindow, TokenBucket

LimiterKind = Literal["token_bucket", "sliding_window"]
HeaderStyle = Literal["ratelimit", "x-ratelimit"]
RetryAfterFormat = Literal["seconds", "http-date"]
RepeatKind = Literal["identical", "conflicting", "stale"]

_PRIORITY_CYCLE = ("HOT", "TODAY", "EXTRA")
"""A repeated task's next priority under :func:`repeat_first_task` (a fixed order)."""

#: The 5xx statuses a server-error fault picks from, uniformly.
SERVER_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the simulated API does wrong; the default plan is a healthy API.

    Assign a new plan to a running server (``api.faults = FaultPlan(...)``) to switch
    faults at runtime; assigning restarts the fault RNG from ``seed``, builds a fresh rate
    limiter (a full bucket, an empty window), restarts the limit schedule and arms a new
    429 storm. ``api.set_rate_limit(n)`` changes the limit without any of that.

    Attributes:
        latency_seconds: delay added before every response (dropped ones included).
        rate_limit_per_minute: sustained requests per minute the API accepts; ``None``
            means unlimited. Requests over the limit get 429 with ``Retry-After`` (whole
            seconds, at least 1); refused requests do not use up the budget.
        rate_limiter: ``token_bucket`` (bursts of ``rate_limit_burst``, then the rate) or
            ``sliding_window`` (at most ``limit x window / 60`` requests in any trailing
            ``rate_limit_window_seconds``).
        rate_limit_burst: token bucket capacity; ``None`` means one minute's worth.
        rate_limit_window_seconds: the sliding window's length; ``None`` means
            ``60 / limit`` (one request per interval: no burst at all).
        rate_limit_schedule: ``(seconds, per_minute)`` pairs: the limit becomes
            ``per_minute`` that many seconds after the first request under this plan.
        rate_limit_headers: also send the limiter's budget on every answer, as
            ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (``"ratelimit"``, reset in
            seconds) or ``X-RateLimit-*`` (``"x-ratelimit"``, reset as a Unix time).
        error_5xx_rate: probability that a request gets a 500, 502 or 503.
        drop_rate: probability that the connection is closed without any response.
        malformed_rate: probability that a successful answer's body is cut short
            (status 200, invalid JSON).
        force_429_count: the next this-many requests get 429, whatever the rate limit
            (a "429 storm").
        retry_after_seconds: the ``Retry-After`` that storm answers carry.
        retry_after_format: ``seconds`` (``Retry-After: 2``) or ``http-date``
            (``Retry-After: Tue, 01 Dec 2026 14:00:02 GMT``), for every 429.
        unstable_tie_order: rows that tie on the sort field come back in a new random
            order on every request, as from an API whose ``ORDER BY`` has no tiebreaker.
        drip_seconds_per_byte: write every answer one byte at a time, this long apart
            (a server that keeps a connection alive without ever finishing).
        total_count_override: report this ``total_count`` (and matching
            ``total_pages``) whatever the query matched.
        naive_timestamps: send every task timestamp without its offset (``Z`` removed).
        leak_outside_bounds_seconds: serve tasks created up to this long before
            ``created_at_after`` too, counted in ``total_count`` (a broken filter).
        echo_key_in_401: answer every request 401 with a message that quotes the key
            the request carried.
        repeat_first_task: serve the first task of every query a second time, at the end
            of the query's last page (when that page has room): ``identical``, the same
            object; ``conflicting``, another priority under the same ``updated_at`` (two
            states for one instant); ``stale``, the stored object after a newer one (the
            first task is served everywhere else with another priority and an
            ``updated_at`` a minute later). Counts and pages are unchanged.
        reject_parameter: answer every authorized request with Topo's 400
            ``ValidationIssue`` naming this query parameter (as when Topo stops accepting
            a value the client sends).
        seed: seed of the fault RNG.
    """

    latency_seconds: float = 0.0
    rate_limit_per_minute: float | None = None
    rate_limiter: LimiterKind = "token_bucket"
    rate_limit_burst: int | None = None
    rate_limit_window_seconds: float | None = None
    rate_limit_schedule: tuple[tuple[float, float], ...] = field(default=())
    rate_limit_headers: HeaderStyle | None = None
    error_5xx_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    force_429_count: int = 0
    retry_after_seconds: int = 1
    retry_after_format: RetryAfterFormat = "seconds"
    unstable_tie_order: bool = False
    drip_seconds_per_byte: float = 0.0
    total_count_override: int | None = None
    naive_timestamps: bool = False
    leak_outside_bounds_seconds: float = 0.0
    echo_key_in_401: bool = False
    repeat_first_task: RepeatKind | None = None
    reject_parameter: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency_seconds < 0 or self.drip_seconds_per_byte < 0:
            raise ValueError("latency_seconds and drip_seconds_per_byte must not be negative")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute <= 0:
            raise ValueError("rate_limit_per_minute must be positive (or None for unlimited)")
        if self.rate_limiter not in ("token_bucket", "sliding_window"):
            raise ValueError("rate_limiter must be 'token_bucket' or 'sliding_window'")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be at least 1 (or None)")
        if self.rate_limit_window_seconds is not None and self.rate_limit_window_seconds <= 0:
            raise ValueError("rate_limit_window_seconds must be positive (or None)")
        for seconds, per_minute in self.rate_limit_schedule:
            if seconds < 0 or per_minute <= 0:
                raise ValueError("rate_limit_schedule takes (seconds >= 0, per_minute > 0)")
        if self.rate_limit_schedule and self.rate_limit_per_minute is None:
            raise ValueError("rate_limit_schedule needs a rate_limit_per_minute to start from")
        if self.rate_limit_headers not in (None, "ratelimit", "x-ratelimit"):
            raise ValueError("rate_limit_headers must be None, 'ratelimit' or 'x-ratelimit'")
        if self.retry_after_format not in ("seconds", "http-date"):
            raise ValueError("retry_after_format must be 'seconds' or 'http-date'")
        for name in ("error_5xx_rate", "drop_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1")
        if self.force_429_count < 0:
            raise ValueError("force_429_count must not be negative")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")
        if self.total_count_override is not None and self.total_count_override < 0:
            raise ValueError("total_count_override must not be negative")
        if self.leak_outside_bounds_seconds < 0:
            raise ValueError("leak_outside_bounds_seconds must not be negative")
        if self.repeat_first_task not in (None, "identical", "conflicting", "stale"):
            raise ValueError(
                "repeat_first_task must be None, 'identical', 'conflicting' or 'stale'"
            )

    def new_limiter(self, per_minute: float, now: float) -> RateLimiter:
        """A fresh limiter of this plan's kind at ``per_minute``."""
        if self.rate_limiter == "sliding_window":
            return SlidingWindow(per_minute, self.rate_limit_window_seconds or 60.0 / per_minute)
        capacity = self.rate_limit_burst or max(1, math.floor(per_minute))
        return TokenBucket(per_minute, capacity, now)


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
        limit_state: the limiter's budget right after this decision, when the plan sends
            rate-limit headers (``None`` otherwise).
        malformed: cut the body short if the normal answer is a 200.
        latency_seconds: delay before answering.
        tie_seed: seed for shuffling tied rows; ``None`` keeps the stable order.
    """

    kind: FaultKind = FaultKind.NONE
    status: int | None = None
    retry_after: int | None = None
    limit_per_minute: float | None = None
    limit_state: LimitState | None = None
    malformed: bool = False
    latency_seconds: float = 0.0
    tie_seed: int | None = None


class FaultInjector:
    """Decides the faults of each request under one :class:`FaultPlan`; thread-safe."""

    def __init__(self, plan: FaultPlan, now: float) -> None:
        self._lock = threading.Lock()
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._storm_left = plan.force_429_count
        self._limit = plan.rate_limit_per_minute
        self._limiter: RateLimiter | None = None
        if self._limit is not None:
            self._limiter = plan.new_limiter(self._limit, now)
        self._schedule = sorted(plan.rate_limit_schedule)
        self._first_request: float | None = None

    @property
    def limit_per_minute(self) -> float | None:
        """The limit in force (``None``: unlimited)."""
        with self._lock:
            return self._limit

    def set_limit(self, per_minute: float | None, now: float) -> None:
        """Change the limit from ``now`` on; ``None`` lifts it.

        A running limiter keeps what it admitted (a bucket its tokens, a window its log);
        a limit set on an unlimited API starts a fresh limiter of the plan's kind.
        """
        with self._lock:
            self._set_limit(per_minute, now)

    def _set_limit(self, per_minute: float | None, now: float) -> None:
        if per_minute is not None and per_minute <= 0:
            raise ValueError("a rate limit must be positive (or None for unlimited)")
        self._limit = per_minute
        if per_minute is None:
            self._limiter = None
        elif self._limiter is None:
            self._limiter = self.plan.new_limiter(per_minute, now)
        else:
            self._limiter.set_limit(per_minute, now)

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

            if self._first_request is None:
                self._first_request = now
            while self._schedule and now >= self._first_request + self._schedule[0][0]:
                self._set_limit(self._schedule.pop(0)[1], now)

            kind, status, retry_after = FaultKind.NONE, None, None
            if drop_draw < plan.drop_rate:
                kind = FaultKind.DROP
            elif self._storm_left > 0:
                self._storm_left -= 1
                kind, status, retry_after = FaultKind.RATE_LIMITED, 429, plan.retry_after_seconds
            elif self._limiter is not None:
                wait = self._limiter.try_acquire(now)
                if wait > 0:
                    kind, status = FaultKind.RATE_LIMITED, 429
                    retry_after = max(1, math.ceil(wait))
            state = None
            if plan.rate_limit_headers and self._limiter is not None:
                state = self._limiter.state(now)
            common = {
                "latency_seconds": plan.latency_seconds,
                "limit_per_minute": self._limit,
                "limit_state": state,
            }
        if kind is not FaultKind.NONE:
            return FaultDecision(kind=kind, status=status, retry_after=retry_after, **common)
        if error_draw < plan.error_5xx_rate:
            return FaultDecision(kind=FaultKind.SERVER_ERROR, status=error_status, **common)
        return FaultDecision(
            malformed=malformed_draw < plan.malformed_rate,
            tie_seed=tie_seed if plan.unstable_tie_order else None,
            **common,
        )


def repeat_first_task(
    items: list[bytes], first: bytes, kind: RepeatKind, *, last_page: bool, room: bool
) -> list[bytes]:
    """The JSON items of one page under the plan's ``repeat_first_task`` fault.

    Args:
        items: the page's items as the store serves them.
        first: the JSON of the query's first task, in the store's stable order.
        kind: see :attr:`FaultPlan.repeat_first_task`.
        last_page: the page is the query's last one (it holds the last task).
        room: the page holds fewer items than the page size.
    """
    if kind == "stale":
        newer = _altered(first, minutes_later=1)
        items = [newer if item == first else item for item in items]
    if last_page and room:
        items = [*items, _altered(first, minutes_later=0) if kind == "conflicting" else first]
    return items


def _altered(encoded: bytes, *, minutes_later: int) -> bytes:
    """``encoded`` with the next priority, and ``updated_at`` moved on that many minutes."""
    task = json.loads(encoded)
    current = task.get("priority")
    task["priority"] = _PRIORITY_CYCLE[
        (_PRIORITY_CYCLE.index(current) + 1) % 3 if current in _PRIORITY_CYCLE else 0
    ]
    if minutes_later and task.get("updated_at"):
        updated = parse_timestamp(task["updated_at"]) + timedelta(minutes=minutes_later)
        task["updated_at"] = format_timestamp(updated)
    return json.dumps(task, separators=(",", ":")).encode()
