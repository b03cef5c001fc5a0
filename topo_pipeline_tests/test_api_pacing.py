"""The adaptive rate controller on a fake clock.

Each test runs a small discrete-event simulation: ``workers`` threads that each send one
request at a time, a server that answers after ``latency`` seconds and decides at receipt
with one of the simulator's own rate limiters, and the controller deciding when each
request may start. Time is simulated, so nothing here depends on the machine's speed:
the assertions are on counts, orderings and simulated times.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from topo_pipeline.api.pacing import Budget, Outcome, RateController, Ticket
from topo_pipeline.simulator.limits import RateLimiter, SlidingWindow, TokenBucket


@dataclass
class Answer:
    status: int
    retry_after: float | None = None
    budget: Budget | None = None


@dataclass
class FakeServer:
    """Answers at receipt from a limiter (or always 200), optionally with budget headers."""

    limiter: RateLimiter | None = None
    headers: bool = False
    forced_429: Callable[[float, int], float | None] = lambda now, n: None
    received: int = 0

    def decide(self, now: float) -> Answer:
        self.received += 1
        forced = self.forced_429(now, self.received)
        if forced is not None:
            return Answer(429, forced)
        if self.limiter is None:
            return Answer(200)
        wait = self.limiter.try_acquire(now)
        budget = None
        if self.headers:
            state = self.limiter.state(now)
            budget = Budget(state.limit, state.remaining, state.reset_seconds)
        if wait > 0:
            return Answer(429, max(1, math.ceil(wait)), budget)
        return Answer(200, None, budget)


@dataclass
class Trace:
    starts: list[tuple[float, int]] = field(default_factory=list)  # (time, status)
    rates: list[tuple[float, float | None]] = field(default_factory=list)  # after each answer
    # Per 429: (request started, answer arrived, rate before, rate after), requests/min.
    decreases: list[tuple[float, float, float | None, float | None]] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (429 at, retry after)
    max_in_flight: int = 0
    end: float = 0.0

    @property
    def rate_limited(self) -> int:
        return sum(1 for _, status in self.starts if status == 429)

    @property
    def requests(self) -> int:
        return len(self.starts)


def simulate(
    controller: RateController,
    server: FakeServer,
    requests: int,
    *,
    workers: int = 8,
    latency: float = 0.08,
    events: list[tuple[float, Callable[[], None]]] | None = None,
) -> Trace:
    """Send ``requests`` requests (each retried until accepted); return what happened."""
    trace = Trace()
    now = 0.0
    remaining = requests
    in_flight: list[tuple[float, int, Ticket, Answer]] = []
    order = itertools.count()
    scheduled = sorted(events or [], key=lambda e: e[0])
    while remaining or in_flight:
        while scheduled and scheduled[0][0] <= now:
            scheduled.pop(0)[1]()
        wake = math.inf
        while remaining and len(in_flight) < workers:
            decision = controller.try_start(now)
            if not isinstance(decision, Ticket):
                wake = now + decision
                break
            answer = server.decide(now)
            trace.starts.append((now, answer.status))
            heapq.heappush(in_flight, (now + latency, next(order), decision, answer))
            remaining -= 1
            trace.max_in_flight = max(trace.max_in_flight, len(in_flight))
        now = min(in_flight[0][0] if in_flight else math.inf, wake)
        assert now < 100_000, "the simulation did not finish"
        while in_flight and in_flight[0][0] <= now:
            _, _, ticket, answer = heapq.heappop(in_flight)
            before = controller.adaptive_requests_per_minute
            if answer.status == 429:
                remaining += 1
                trace.pauses.append((now, answer.retry_after or 0.0))
                outcome = Outcome.RATE_LIMITED
            else:
                outcome = Outcome.ACCEPTED
            controller.finish(
                ticket, now, outcome, retry_after=answer.retry_after, budget=answer.budget
            )
            after = controller.adaptive_requests_per_minute
            trace.rates.append((now, after))
            if answer.status == 429:
                trace.decreases.append((ticket.started_at, now, before, after))
    trace.end = now
    return trace


def bucket(per_minute: float, burst: int) -> TokenBucket:
    return TokenBucket(per_minute, burst, now=0.0)


def strict(per_minute: float) -> SlidingWindow:
    return SlidingWindow(per_minute, window_seconds=60.0 / per_minute)


def accepted_span(trace: Trace) -> float:
    """From the first request to the last accepted one (the API span, without latency)."""
    accepted = [t for t, status in trace.starts if status != 429]
    return accepted[-1] - trace.starts[0][0]


# -- without a limit ---------------------------------------------------------------------


def test_an_unlimited_api_gets_full_concurrency_after_slow_start() -> None:
    trace = simulate(RateController(8), FakeServer(), 800)
    assert trace.rate_limited == 0
    assert trace.max_in_flight == 8
    # Slow start: 1, then 2, then 4 requests in flight before the full 8.
    first = [t for t, _ in trace.starts[:7]]
    assert first == pytest.approx([0.0, 0.08, 0.08, 0.16, 0.16, 0.16, 0.16])
    latency_bound = 0.08 * 800 / 8
    assert trace.end <= 1.05 * latency_bound


# -- the adaptive rate -------------------------------------------------------------------


def test_it_converges_on_a_token_bucket_with_few_429s() -> None:
    controller = RateController(8)
    trace = simulate(controller, FakeServer(bucket(300, burst=10)), 600)
    assert trace.rate_limited <= 0.03 * trace.requests
    bound = (600 - 10) / 5.0  # what the bucket allows: the burst, then 5 a second
    assert accepted_span(trace) <= 1.05 * bound
    rate = controller.adaptive_requests_per_minute
    assert rate is not None
    assert 0.9 * 300 <= rate <= 1.2 * 300  # at most one probe step above the limit


def test_it_converges_on_a_strict_sliding_window_with_few_429s() -> None:
    controller = RateController(8)
    trace = simulate(controller, FakeServer(strict(120)), 300)
    assert trace.rate_limited <= 0.05 * trace.requests
    rate = controller.adaptive_requests_per_minute
    assert rate is not None
    assert 0.8 * 120 <= rate <= 1.2 * 120  # at most one probe step above the limit


def test_it_follows_a_limit_that_falls_mid_run() -> None:
    limiter = bucket(600, burst=10)
    controller = RateController(8)
    falls = [(20.0, lambda: limiter.set_limit(120, 20.0))]
    trace = simulate(controller, FakeServer(limiter), 400, events=falls)
    assert trace.rate_limited <= 0.05 * trace.requests
    before_fall = [r for t, r in trace.rates if 10.0 < t < 20.0 and r is not None]
    assert min(before_fall) >= 0.8 * 600
    rate = controller.adaptive_requests_per_minute
    assert rate is not None
    assert 0.8 * 120 <= rate <= 1.2 * 120  # at most one probe step above the limit


def test_every_429_from_a_request_sent_at_the_current_rate_lowers_it() -> None:
    # Every 25th request is refused, whatever the rate.
    server = FakeServer(forced_429=lambda now, n: 1.0 if n % 25 == 0 else None)
    trace = simulate(RateController(8), server, 300)
    assert trace.rate_limited == 12
    lowered_at = -1.0
    lowered = 0
    for started, answered, before, after in trace.decreases:
        assert after is not None
        if started > lowered_at:  # sent at the rate in force: lowers it
            assert before is None or after < before
            lowered_at = answered
            lowered += 1
        else:  # sent before the last decrease: the same signal, not a new one
            assert after == before
    assert lowered >= 6


def test_a_429_pauses_every_thread_for_its_retry_after_then_requests_resume() -> None:
    server = FakeServer(forced_429=lambda now, n: 30.0 if n == 20 else None)
    trace = simulate(RateController(8), server, 200)
    ((refused_at, retry_after),) = trace.pauses
    assert retry_after == 30.0
    starts_after = [t for t, _ in trace.starts if t > refused_at - 0.08]
    # Requests already in flight finish; nothing new starts during the pause.
    new_starts = [t for t in starts_after if t >= refused_at]
    assert new_starts
    assert min(new_starts) >= refused_at + retry_after
    assert trace.requests == 201


def test_the_rate_probes_back_up_to_unlimited_once_the_limit_is_lifted() -> None:
    limiter = bucket(120, burst=5)
    server = FakeServer(limiter)
    controller = RateController(8)

    def lift() -> None:
        server.limiter = None

    trace = simulate(controller, server, 20000, events=[(30.0, lift)])
    assert controller.adaptive_requests_per_minute is None  # unlimited again
    # It got there by probing: the rate rose after the lift, in steps, without 429s.
    after_lift = [r for t, r in trace.rates if t > 30.0]
    assert trace.rate_limited == sum(1 for t, s in trace.starts if s == 429 and t < 30.0)
    assert None in after_lift
    finite = [r for r in after_lift if r is not None]
    assert finite == sorted(finite)


def test_a_rate_that_holds_nothing_back_is_not_raised_and_then_dropped() -> None:
    controller = RateController(8)
    ticket = controller.try_start(0.0)
    assert isinstance(ticket, Ticket)
    controller.finish(ticket, 0.1, Outcome.RATE_LIMITED, retry_after=1.0)
    rate = controller.adaptive_requests_per_minute
    assert rate is not None
    interval = 60.0 / rate
    now, rates = 1.1, []
    while now < 200.0:
        # A client slower than the rate: each request starts long after its slot.
        ticket = controller.try_start(now)
        assert isinstance(ticket, Ticket)
        controller.finish(ticket, now + 0.1, Outcome.ACCEPTED)
        rates.append(controller.adaptive_requests_per_minute)
        now += 3 * interval
    assert rates[0] == rate
    assert set(rates) == {rate, None}  # never raised; dropped once unused for long
    assert rates[-1] is None


# -- the hard cap ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server",
    [FakeServer(), FakeServer(bucket(600, burst=20)), FakeServer(strict(30))],
    ids=["unlimited", "a looser bucket", "a stricter window"],
)
def test_the_cap_is_never_exceeded(server: FakeServer) -> None:
    trace = simulate(RateController(8, cap_per_minute=120), server, 150)
    starts = [t for t, _ in trace.starts]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.5 - 1e-9


def test_the_rate_in_force_is_the_lower_of_cap_and_adaptive_rate() -> None:
    controller = RateController(8, cap_per_minute=120)
    assert controller.rate_in_force == pytest.approx(120)
    assert controller.adaptive_requests_per_minute is None
    simulate(controller, FakeServer(strict(30)), 40)
    adaptive = controller.adaptive_requests_per_minute
    assert adaptive is not None
    assert adaptive < 120
    assert controller.rate_in_force == pytest.approx(adaptive)
    assert RateController(8).rate_in_force is None


# -- rate-limit headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limiter", "requests"),
    [(bucket(300, burst=10), 300), (strict(120), 100), (bucket(300, burst=60), 300)],
    ids=["bucket with burst 10", "strict window", "bucket with a minute's burst"],
)
def test_rate_limit_headers_avoid_429s_altogether(limiter: RateLimiter, requests: int) -> None:
    controller = RateController(8)
    trace = simulate(controller, FakeServer(limiter, headers=True), requests)
    assert trace.rate_limited == 0
    assert controller.adaptive_requests_per_minute is None  # never needed
    assert trace.requests == requests


def test_headers_keep_a_bucket_near_its_rate() -> None:
    trace = simulate(RateController(8), FakeServer(bucket(300, burst=10), headers=True), 300)
    bound = (300 - 10) / 5.0
    assert accepted_span(trace) <= 1.1 * bound


def test_a_budget_reading_counts_requests_in_flight_and_only_lowers_until_reset() -> None:
    controller = RateController(8)
    for _ in range(8):  # past slow start
        ticket = controller.try_start(0.0)
        assert isinstance(ticket, Ticket)
        controller.finish(ticket, 0.1, Outcome.ACCEPTED)
    tickets = [controller.try_start(0.1) for _ in range(2)]
    one, two = (t for t in tickets if isinstance(t, Ticket))
    # 3 left, but the other request is still in flight: 2 may start.
    controller.finish(one, 0.2, Outcome.ACCEPTED, budget=Budget(10, 3, 5.0))
    assert isinstance(controller.try_start(0.2), Ticket)
    assert isinstance(controller.try_start(0.2), Ticket)
    assert controller.try_start(0.2) == pytest.approx(5.0)  # spent until the reset
    # A later answer saying more is left (decided earlier, say) does not raise it.
    controller.finish(two, 0.3, Outcome.ACCEPTED, budget=Budget(10, 8, 5.0))
    assert controller.try_start(0.3) == pytest.approx(5.0)  # and the reset moved out
    assert isinstance(controller.try_start(5.3), Ticket)  # the quota is back
