"""Adaptive rate control: :class:`RateController`, asked by every thread of one client
before it sends a request.

Topo publishes no limit, so the controller finds it: slow start, a rate learnt from 429s
and probed back up, the budget of rate-limit headers, and an optional hard cap, the
strictest of which applies. The rules and their reasons are in ``api/README.md``. The
decisions take the time as an argument, so they are tested on a fake clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)

SAFETY = 0.98
"""The rate set after a 429, as a share of the estimated server rate."""
BACKOFF = 0.95
"""A 429 leaves the rate at most this share of the rate that drew it."""
LONG_QUIET_BACKOFF = 0.85
"""A 429 after a long quiet period, with no earlier rate set, cuts the rate to this share."""
TRUSTED_EPOCH_SECONDS = 10.0
"""Two 429s at most this far apart give a trusted estimate of the server's rate."""
HOLD_SECONDS = (10.0, 60.0)
"""How long the rate is held after a 429 before probing: first, and at most."""
PROBE_GROWTH = 0.05
"""Rate increase per second while probing, up to the step's ceiling."""
PROBE_STEP = 0.2
"""A probe raises the rate at most this share above the rate that held; doubles per step."""
PROBE_STEP_SECONDS = 5.0
"""A step that holds this long at its ceiling becomes the rate that held."""
UNLIMITED_ABOVE = 200.0
"""Requests per second above which the adaptive rate is dropped (unlimited)."""
UNUSED_RATE_SECONDS = 30.0
"""A probed rate that held no request back this long is dropped (unlimited)."""
MIN_RATE = 1 / 60
"""The adaptive rate never falls below one request a minute."""
DEFAULT_PAUSE_SECONDS = 1.0
"""Pause of every thread after a 429 that carries no Retry-After."""


class Outcome(Enum):
    """How a request ended, as far as rate control is concerned."""

    ACCEPTED = "accepted"  # any answer that is not a 429 (the server took the request)
    RATE_LIMITED = "rate_limited"  # 429
    LOST = "lost"  # no answer: a timeout or a dropped connection


@dataclass(frozen=True, slots=True)
class Ticket:
    """A permission to send one request; hand it back to :meth:`RateController.finish`."""

    seq: int
    started_at: float


@dataclass(frozen=True, slots=True)
class Budget:
    """A rate-limit header reading: ``remaining`` of ``limit`` until ``reset_in`` seconds."""

    limit: int
    remaining: int
    reset_in: float


@dataclass(slots=True)
class _Snapshot:
    limit: int
    remaining: int
    reset_at: float
    seq: int  # requests sent when it was taken (later ones are not counted in it)


class RateController:
    """Decides when each request may start; shared by every thread of one client.

    Args:
        concurrency: most requests in flight once slow start is over.
        cap_per_minute: a hard cap on the request rate; ``None`` for none.
        clock: monotonic clock of :meth:`acquire` (the other methods take ``now``).
    """

    def __init__(
        self,
        concurrency: int,
        *,
        cap_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._concurrency = concurrency
        self._cap_interval = 60.0 / cap_per_minute if cap_per_minute else 0.0
        self._clock = clock
        self._cond = threading.Condition()
        self._window = 1
        self._in_flight = 0
        self._seq = 0
        self._first_start: float | None = None
        self._next_cap_slot = 0.0
        self._next_rate_slot = 0.0
        self._paused_until = 0.0
        # The adaptive rate (requests per second; None: unlimited) and its history.
        self._rate: float | None = None
        self._rate_set: float | None = None  # the rate the last 429 set (it held until a probe)
        self._decrease_seq = 0
        self._epoch_started: float | None = None
        self._epoch_accepted = 0
        self._accepted = 0
        self._hold_until = 0.0
        self._hold = HOLD_SECONDS[0]
        self._probe_started: float | None = None
        self._last_growth: float | None = None
        self._step = PROBE_STEP
        self._at_ceiling_since: float | None = None
        self._throttled = False
        self._last_throttled = 0.0
        self._logged_rate: float | None = None
        self._snapshot: _Snapshot | None = None

    # -- what others read -----------------------------------------------------------------

    @property
    def rate_in_force(self) -> float | None:
        """The request rate in force, in requests per minute (the adaptive rate or the
        cap, whichever is lower); ``None``: unlimited."""
        with self._cond:
            rates = [r for r in (self._rate, self._cap_rate) if r is not None]
            return min(rates) * 60.0 if rates else None

    @property
    def adaptive_requests_per_minute(self) -> float | None:
        """The rate learnt from 429s (``None`` until the first one, or once lifted again)."""
        with self._cond:
            return None if self._rate is None else self._rate * 60.0

    @property
    def _cap_rate(self) -> float | None:
        return 1.0 / self._cap_interval if self._cap_interval else None

    # -- the blocking form ------------------------------------------------------------------

    def acquire(self) -> tuple[Ticket, float]:
        """Block until a request may start; return its ticket and the seconds waited."""
        started = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                decision = self.try_start(now)
                if isinstance(decision, Ticket):
                    return decision, now - started
                # Woken early by finish() when a slot frees or the limits change.
                self._cond.wait(timeout=min(decision, 1.0))

    # -- the decisions --------------------------------------------------------------------

    def try_start(self, now: float) -> Ticket | float:
        """A ticket if a request may start at ``now``, else the seconds to wait first.

        When only the number of requests in flight holds it back, the wait returned is a
        short poll interval: :meth:`finish` frees the slot.
        """
        with self._cond:
            if self._in_flight >= min(self._window, self._concurrency):
                return 0.05
            delay = max(
                self._paused_until - now,
                self._next_cap_slot - now,
                self._header_delay(now),
            )
            rate_delay = self._next_rate_slot - now
            if rate_delay > 0 and rate_delay >= delay:
                self._throttled = True  # the adaptive rate is what holds requests back
                self._last_throttled = now
            delay = max(delay, rate_delay)
            if delay > 0:
                return delay
            self._seq += 1
            self._in_flight += 1
            if self._first_start is None:
                self._first_start = now
                self._epoch_started = now
            if self._cap_interval:
                self._next_cap_slot = max(now, self._next_cap_slot) + self._cap_interval
            if self._rate is not None:
                self._next_rate_slot = max(now, self._next_rate_slot) + 1.0 / self._rate
            return Ticket(self._seq, now)

    def finish(
        self,
        ticket: Ticket,
        now: float,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        budget: Budget | None = None,
    ) -> None:
        """Record how the request of ``ticket`` ended, at ``now``.

        Args:
            ticket: from :meth:`try_start` or :meth:`acquire`.
            now: when the answer arrived.
            outcome: accepted, rate-limited (429) or lost.
            retry_after: the seconds a 429 (or 503) asked to wait.
            budget: the answer's rate-limit headers, if it had them.
        """
        with self._cond:
            self._in_flight -= 1
            if budget is not None:
                self._read_budget(now, budget)
            if outcome is Outcome.ACCEPTED:
                self._accepted += 1
                self._epoch_accepted += 1
                self._window = min(self._concurrency, self._window + 1)
                self._grow(now)
            elif outcome is Outcome.RATE_LIMITED:
                pause = DEFAULT_PAUSE_SECONDS if retry_after is None else retry_after
                self._paused_until = max(self._paused_until, now + pause)
                if ticket.seq > self._decrease_seq:
                    self._decrease(now, pause)
            self._cond.notify_all()

    # -- the adaptive rate ----------------------------------------------------------------

    def _decrease(self, now: float, pause: float) -> None:
        assert self._epoch_started is not None  # noqa: S101 - set by the first start
        first = self._decrease_seq == 0
        elapsed = now - self._epoch_started + (pause if first else 0.0)
        estimate = max(1, self._epoch_accepted) / max(elapsed, 1e-3)
        new_rate = SAFETY * estimate
        if self._rate is not None:
            if elapsed > TRUSTED_EPOCH_SECONDS:
                # A probe step went too far: back to the rate that held before it (or
                # what this long period got through, if more).
                held = self._rate_set or LONG_QUIET_BACKOFF * self._rate
                new_rate = max(new_rate, held)
            new_rate = min(BACKOFF * self._rate, new_rate)
            # 429s that agree mean a steady limit: probe it less and less often.
            previous = self._rate_set
            agree = previous is not None and abs(new_rate - previous) <= 0.1 * previous
            self._hold = min(HOLD_SECONDS[1], self._hold * 2) if agree else HOLD_SECONDS[0]
        self._rate = self._rate_set = max(MIN_RATE, new_rate)
        self._decrease_seq = self._seq
        self._epoch_started = now
        self._epoch_accepted = 0
        self._hold_until = max(now, self._paused_until) + self._hold
        self._probe_started = None
        self._last_growth = None
        # A probe step that drew this 429 was too big: the next probe starts with half.
        self._step = self._step / 2 if self._probing_step_failed(elapsed) else PROBE_STEP
        self._at_ceiling_since = None
        self._throttled = False
        self._next_rate_slot = max(self._next_rate_slot, self._paused_until)
        log.warning(
            "Topo answered 429 (rate limited): pausing every request for %.1fs, then "
            "pacing at %.0f requests/min (estimated server rate %.0f/min)",
            pause,
            self._rate * 60.0,
            estimate * 60.0,
        )
        self._logged_rate = self._rate

    def _probing_step_failed(self, elapsed: float) -> bool:
        return self._probe_started is not None and elapsed > TRUSTED_EPOCH_SECONDS

    def _grow(self, now: float) -> None:
        if self._rate is None or now < self._hold_until:
            return
        if self._probe_started is None or self._last_growth is None:
            self._probe_started = self._last_growth = now
            return
        elapsed = now - self._last_growth
        self._last_growth = now
        if self._throttled:
            self._throttled = False
            ceiling = (self._rate_set or self._rate) * (1 + self._step)
            self._rate = min(ceiling, self._rate * math.exp(PROBE_GROWTH * elapsed))
            if self._rate >= ceiling:
                if self._at_ceiling_since is None:
                    self._at_ceiling_since = now
                elif now - self._at_ceiling_since >= PROBE_STEP_SECONDS:
                    # The step held: it is the rate to fall back to, and the next is bigger.
                    self._rate_set = self._rate
                    self._step *= 2
                    self._at_ceiling_since = None
        # else the rate is not what limits the client: raising it would prove nothing.
        unused = now - max(self._last_throttled, self._probe_started) > UNUSED_RATE_SECONDS
        if self._rate > UNLIMITED_ABOVE or unused:
            self._rate = None
            self._next_rate_slot = 0.0
            log.info("Topo answered without 429s for a while: no longer pacing requests")
            self._logged_rate = None
        elif self._logged_rate is not None and self._rate > 1.2 * self._logged_rate:
            log.info("no 429s from Topo: pacing raised to %.0f requests/min", self._rate * 60.0)
            self._logged_rate = self._rate

    # -- rate-limit headers ---------------------------------------------------------------

    def _read_budget(self, now: float, budget: Budget) -> None:
        # Answers come back out of order, and the reading does not count requests the
        # server decides after it: count every request still in flight against it.
        reading = _Snapshot(
            limit=max(budget.limit, budget.remaining),
            remaining=budget.remaining - self._in_flight,
            reset_at=now + max(0.0, budget.reset_in),
            seq=self._seq,
        )
        current = self._snapshot
        if current is None or now >= current.reset_at:
            self._snapshot = reading
            return
        # Within a reset period a reading may only lower the budget (a rise may be stale),
        # and the quota is back only when every reading says so.
        left = current.remaining - (self._seq - current.seq)
        if reading.remaining < left:
            current.remaining, current.seq = reading.remaining, reading.seq
        current.limit = reading.limit
        if current.reset_at == math.inf:  # counting down from a reset: now it is known
            current.reset_at = reading.reset_at
        else:
            current.reset_at = max(current.reset_at, reading.reset_at)

    def _header_delay(self, now: float) -> float:
        snapshot = self._snapshot
        if snapshot is None:
            return 0.0
        if now >= snapshot.reset_at:
            # The quota is back, less what requests still in flight may use of it.
            snapshot.remaining = snapshot.limit - self._in_flight
            snapshot.seq = self._seq
            snapshot.reset_at = math.inf  # until an answer tells more
        if snapshot.remaining - (self._seq - snapshot.seq) > 0:
            return 0.0
        return snapshot.reset_at - now if snapshot.reset_at != math.inf else 0.05
