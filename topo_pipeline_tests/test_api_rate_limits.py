"""The client at its defaults against each kind of rate limit the simulator enforces.

Real HTTP on loopback, no pacing configured (the defaults a new user gets): the client
must find the limit itself. Assertions are on what the simulator recorded (counts of
429s, and that no request was sent again before its ``Retry-After`` had passed) and on
the tasks fetched, never on how long anything took.
"""

from __future__ import annotations

import collections
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from topo_pipeline.api.client import TopoClient
from topo_pipeline.api.config import ClientConfig
from topo_pipeline.api.errors import TopoUnavailableError
from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.api.windows import Window
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    FaultPlan,
    RequestRecord,
    SimulatedTopoApi,
    generate_dataset,
    make_task,
)
from topo_pipeline_tests.api_harness import Serve, default_client, fetch_window, make_window

pytestmark = pytest.mark.waits

DAY = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def day_of_tasks() -> tuple[list[dict[str, Any]], Window]:
    """3,000 tasks on one day: 30 pages."""
    spec = DatasetSpec(seed=11, start_date=DAY.date(), days=1, tasks_per_day=[3000])
    return generate_dataset(spec).tasks, make_window(*spec.day_bounds(DAY.date()))


def early_retries(records: list[RequestRecord]) -> tuple[int, int]:
    """(requests sent again after a 429, those that came before its Retry-After passed)."""
    by_request: dict[tuple[str, ...], list[RequestRecord]] = collections.defaultdict(list)
    for record in records:
        by_request[(record.params["created_at_after"][0], record.params["page"][0])].append(record)
    retried = early = 0
    for attempts in by_request.values():
        attempts.sort(key=lambda r: r.received_at)
        for earlier, later in itertools.pairwise(attempts):
            if earlier.status == 429:
                assert earlier.retry_after is not None
                retried += 1
                early += later.received_at < earlier.answered_at + earlier.retry_after
    return retried, early


def fetch_all(api: SimulatedTopoApi, window: Window, **overrides: Any) -> tuple[set[str], Any]:
    with default_client(api, **overrides) as client:
        tasks, result = fetch_window(client, window)
        rate = client.rate.adaptive_requests_per_minute
        stats = client.stats
    ids = [t.id for t in tasks]
    assert len(ids) == len(set(ids))
    assert result.in_window == len(ids)
    return set(ids), (stats, rate)


def ids_in(tasks: list[dict[str, Any]], window: Window) -> set[str]:
    return {t["id"] for t in tasks if window.start <= parse_timestamp(t["created_at"]) < window.end}


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(rate_limit_per_minute=2400, rate_limit_burst=5),
        # 10 per 0.5 s; the window of one request per interval is on the fake clock
        # (test_api_pacing.py), where its slow climb from a 1 s Retry-After costs no time.
        FaultPlan(
            rate_limit_per_minute=1200,
            rate_limiter="sliding_window",
            rate_limit_window_seconds=0.5,
        ),
        FaultPlan(
            rate_limit_per_minute=6000, rate_limit_burst=5, rate_limit_schedule=((0.3, 1200.0),)
        ),
    ],
    ids=["token bucket", "sliding window", "falling limit"],
)
def test_each_limiter_is_found_and_respected_at_the_defaults(
    serve: Serve, day_of_tasks: tuple[list[dict[str, Any]], Window], plan: FaultPlan
) -> None:
    tasks, window = day_of_tasks
    api = serve(tasks, plan)
    ids, (stats, rate) = fetch_all(api, window)

    assert ids == ids_in(tasks, window)
    records = api.requests
    refused = sum(1 for r in records if r.status == 429)
    assert refused >= 1  # the limit did bite (an unpaced burst of 8 would)
    assert stats.rate_limited == refused
    assert stats.pages == 30
    assert stats.requests == len(records) == 30 + refused
    retried, early = early_retries(records)
    assert retried == refused
    assert early == 0
    # The client slowed down to a finite rate instead of hammering at full concurrency.
    assert rate is not None
    assert refused < stats.pages


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(rate_limit_per_minute=1200, rate_limit_burst=10, rate_limit_headers="ratelimit"),
        FaultPlan(
            rate_limit_per_minute=600,
            rate_limiter="sliding_window",
            rate_limit_window_seconds=2.0,
            rate_limit_headers="x-ratelimit",
        ),
    ],
    ids=["RateLimit-* on a token bucket", "X-RateLimit-* on a sliding window"],
)
def test_rate_limit_headers_are_paced_on_before_any_429(
    serve: Serve, day_of_tasks: tuple[list[dict[str, Any]], Window], plan: FaultPlan
) -> None:
    tasks, window = day_of_tasks
    api = serve(tasks, plan)
    ids, (stats, rate) = fetch_all(api, window)
    assert ids == ids_in(tasks, window)
    assert [r.status for r in api.requests] == [200] * 30
    assert stats.rate_limited == 0
    assert rate is None  # no 429, so the adaptive rate never engaged


def test_a_cap_applies_on_top_of_an_api_without_limit(serve: Serve) -> None:
    api = serve([make_task(created_at=DAY)], FaultPlan())
    with default_client(api, requests_per_minute=None) as client:
        assert client.rate.rate_in_force is None
    config = ClientConfig(base_url=api.base_url, requests_per_minute=600)
    with TopoClient(DEMO_API_KEY, config) as client:
        for _ in range(4):
            fetch_window(client, make_window(DAY, DAY.replace(hour=1)))
        assert client.rate.rate_in_force == pytest.approx(600)
    arrivals = [r.received_at for r in api.requests]
    assert len(arrivals) == 4
    # Spaced 0.1 s apart when sent; allow a little jitter between sending and arriving.
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(arrivals))
    assert arrivals[-1] - arrivals[0] >= 0.3 - 0.02


@pytest.mark.parametrize("retry_after_format", ["seconds", "http-date"])
def test_retry_after_is_honoured_in_seconds_and_as_an_http_date(
    serve: Serve, retry_after_format: str
) -> None:
    plan = FaultPlan(
        force_429_count=2, retry_after_seconds=1, retry_after_format=retry_after_format
    )
    api = serve([make_task(created_at=DAY)], plan)
    ids, (stats, _) = fetch_all(api, make_window(DAY, DAY.replace(hour=1)))
    assert len(ids) == 1
    assert [r.status for r in api.requests] == [429, 429, 200]
    assert early_retries(api.requests) == (2, 0)
    assert stats.wait_seconds >= 2.0


@pytest.mark.parametrize(
    ("retry_after_format", "seconds", "named"),
    [("seconds", 86400, "24.0 h (86400 s)"), ("http-date", 3600, "60 min")],
)
def test_a_retry_after_beyond_the_maximum_fails_at_once_naming_the_wait(
    serve: Serve, retry_after_format: str, seconds: int, named: str
) -> None:
    plan = FaultPlan(
        force_429_count=5, retry_after_seconds=seconds, retry_after_format=retry_after_format
    )
    api = serve([make_task(created_at=DAY)], plan)
    with default_client(api) as client, pytest.raises(TopoUnavailableError) as caught:
        fetch_window(client, make_window(DAY, DAY.replace(hour=1)))
    assert len(api.requests) == 1  # no sleeping, no retry
    message = str(caught.value)
    assert named in message
    assert "TOPO_API_MAX_RETRY_AFTER_SECONDS" in message
    assert caught.value.status_code == 429


def test_the_maximum_retry_after_is_configurable(serve: Serve) -> None:
    plan = FaultPlan(force_429_count=1, retry_after_seconds=2)
    api = serve([make_task(created_at=DAY)], plan)
    with (
        default_client(api, max_retry_after_seconds=1.0) as client,
        pytest.raises(TopoUnavailableError),
    ):
        fetch_window(client, make_window(DAY, DAY.replace(hour=1)))
    api.faults = plan
    ids, _ = fetch_all(api, make_window(DAY, DAY.replace(hour=1)), max_retry_after_seconds=2.0)
    assert len(ids) == 1
