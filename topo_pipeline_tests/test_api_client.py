"""The Topo client against the simulated Topo API, over real HTTP on loopback.

No part of the API is mocked: every test starts a :class:`SimulatedTopoApi`, points a
:class:`TopoClient` at it and checks what the client returns against the simulator's
store, and how the client behaved against the simulator's record of the requests it
received (``api.requests``: params, status and a monotonic ``received_at``).

Backoff and pacing are configured small, so that faults cost milliseconds, not seconds;
only ``Retry-After`` (whole seconds in the simulator) makes a test take a second or two.
"""

from __future__ import annotations

import collections
import itertools
import logging
import re
import time
import traceback
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from topo_pipeline.api.client import TopoClient
from topo_pipeline.api.config import ClientConfig, validate_base_url
from topo_pipeline.api.errors import (
    TopoAuthError,
    TopoConfigError,
    TopoPermissionError,
    TopoReconciliationError,
    TopoRequestError,
    TopoTransportError,
    TopoUnavailableError,
)
from topo_pipeline.api.models import Task, TaskPage, parse_timestamp
from topo_pipeline.api.stats import FetchStats
from topo_pipeline.api.tasks import PAGES_AHEAD_PER_WORKER
from topo_pipeline.api.transport import TopoSession
from topo_pipeline.api.windows import Window
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    NO_SCOPE_API_KEY,
    DatasetSpec,
    FaultPlan,
    RequestRecord,
    SimulatedTopoApi,
    generate_dataset,
    make_task,
)
from topo_pipeline_tests.api_harness import (
    SECRET_KEY,
    OnEachPage,
    Serve,
    WindowCollector,
    fetch_window,
    make_window,
)

REQUEST_ID = re.compile(r"req_[0-9a-hjkmnp-tv-z]{26}")
DAY = datetime(2024, 3, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def fast_config(api: SimulatedTopoApi, **overrides: Any) -> ClientConfig:
    """Production logic with test-sized waits: no pacing, millisecond backoff."""
    settings: dict[str, Any] = {
        "base_url": api.base_url,
        "requests_per_minute": None,
        "backoff_base_seconds": 0.005,
        "backoff_cap_seconds": 0.02,
        "connect_timeout_seconds": 5.0,
        "request_timeout_seconds": 5.0,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


def client_for(api: SimulatedTopoApi, key: str = DEMO_API_KEY, **overrides: Any) -> TopoClient:
    return TopoClient(key, fast_config(api, **overrides))


def day_window(day: datetime) -> Window:
    return make_window(day, day + timedelta(days=1))


def ids_in(tasks: list[dict[str, Any]], window: Window) -> set[str]:
    """The ids of the stored tasks whose ``created_at`` lies in ``[start, end)``."""
    return {t["id"] for t in tasks if window.start <= parse_timestamp(t["created_at"]) < window.end}


def at(moment: datetime) -> dict[str, Any]:
    return make_task(created_at=moment)


def tasks_page_requests(api: SimulatedTopoApi) -> list[RequestRecord]:
    return [r for r in api.requests if r.path == "/v1/tasks"]


def ignore(window: Window, tasks: list[Task]) -> None:
    """A page handler that keeps nothing."""


def assert_no_retry_before_retry_after(records: list[RequestRecord], retry_after: float) -> int:
    """Every request sent again after a 429 reached the API ``retry_after`` s later or more.

    A request is identified by its window and page; returns how many retries followed a
    429 (so a test can show it exercised the rule).
    """
    by_request: dict[tuple[str, ...], list[RequestRecord]] = collections.defaultdict(list)
    for record in records:
        key = tuple(record.params[name][0] for name in ("created_at_after", "page"))
        by_request[key].append(record)
    checked = 0
    for attempts in by_request.values():
        attempts.sort(key=lambda r: r.received_at)
        for earlier, later in itertools.pairwise(attempts):
            if earlier.status == 429:
                assert later.received_at - earlier.received_at >= retry_after, (earlier, later)
                checked += 1
    return checked


# --- the window: strict bounds, midnight, dropping what is outside -------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_task_at_exactly_midnight_lands_in_the_new_day_only(serve: Serve, zone: str) -> None:
    tz = ZoneInfo(zone)
    old_day = make_window(datetime(2024, 3, 1, tzinfo=tz), datetime(2024, 3, 2, tzinfo=tz))
    new_day = make_window(datetime(2024, 3, 2, tzinfo=tz), datetime(2024, 3, 3, tzinfo=tz))
    midnight = at(new_day.start)
    last_microsecond = at(new_day.start - MICROSECOND)
    half_second_before = at(new_day.start - timedelta(seconds=0.5))
    after_midnight = at(new_day.start + MICROSECOND)
    tasks = [midnight, last_microsecond, half_second_before, after_midnight]
    api = serve(tasks)

    collector = WindowCollector()
    with client_for(api) as client:
        results = client.fetch_windows([old_day, new_day], collector)

    assert {t.id for t in collector.tasks(new_day)} == {midnight["id"], after_midnight["id"]}
    assert {t.id for t in collector.tasks(old_day)} == {
        last_microsecond["id"],
        half_second_before["id"],
    }
    # The new day's query starts a second early (the API's bound is exclusive), so Topo
    # also returned the old day's last second; the client dropped those two locally.
    assert results[1].api_total == 4
    assert results[1].in_window == 2
    assert [r.in_window for r in results] == [2, 2]
    assert set(collector.done) == set(results)  # each window reported done, once
    assert len(collector.done) == 2


def test_a_task_at_exactly_end_is_left_out_and_outside_tasks_are_dropped(serve: Serve) -> None:
    window = day_window(DAY)
    inside = [
        at(window.start),
        at(window.start + MICROSECOND),
        at(window.start + timedelta(hours=12)),
        at(window.end - MICROSECOND),
    ]
    outside = [
        at(window.start - MICROSECOND),  # returned by the widened query, dropped locally
        at(window.start - timedelta(seconds=1)),  # on the widened exclusive bound itself
        at(window.start - timedelta(days=1)),
        at(window.end),
        at(window.end + timedelta(hours=1)),
    ]
    api = serve(inside + outside)

    with client_for(api) as client:
        tasks, result = fetch_window(client, window)

    assert [t.id for t in tasks] == [t["id"] for t in inside]  # ordered by created_at
    assert all(window.start <= t.created_at < window.end for t in tasks)
    assert result.api_total == len(inside) + 1  # the one a microsecond before start
    assert result.in_window == len(inside)
    (request,) = tasks_page_requests(api)
    assert parse_timestamp(request.params["created_at_after"][0]) == window.start - timedelta(
        seconds=1
    )
    assert parse_timestamp(request.params["created_at_before"][0]) == window.end
    assert request.params["size"] == ["100"]
    assert request.params["sort_by"] == ["created_at"]


def test_an_empty_window_is_one_request_and_no_tasks(serve: Serve) -> None:
    api = serve([at(DAY - timedelta(days=3))])
    with client_for(api) as client:
        tasks, result = fetch_window(client, day_window(DAY))
    assert tasks == []
    assert (result.api_total, result.in_window, result.reads, result.pages) == (0, 0, 1, 1)
    assert len(api.requests) == 1


def test_tasks_come_back_exactly_as_stored(serve: Serve) -> None:
    stored = [
        make_task(created_at=DAY + timedelta(minutes=i), status=status, type=kind)
        for i, (status, kind) in enumerate(
            itertools.product(
                ["PENDING", "IN_PROGRESS", "COMPLETED", "SKIPPED"], ["CALL", "EMAIL_REPLY"]
            )
        )
    ]
    stored.append(make_task(created_at=DAY, assignee_user_id=None, brand_new_field={"x": 1}))
    api = serve(stored)
    with client_for(api) as client:
        tasks, _ = fetch_window(client, day_window(DAY))
    by_id = {t.id: t for t in tasks}
    assert set(by_id) == {t["id"] for t in stored}
    for task in stored:
        assert by_id[task["id"]].raw == task
        assert by_id[task["id"]] == Task.from_api(task)


# --- completeness: ties, volume ------------------------------------------------------------


def tie_data(seed: int = 3, tasks: int = 1000) -> tuple[list[dict[str, Any]], Window]:
    """One day of generated tasks holding the data set's 300-task tie across pages."""
    spec = DatasetSpec(seed=seed, start_date=DAY.date(), days=1, tasks_per_day=[tasks])
    data = generate_dataset(spec)
    ties = collections.Counter(t["created_at"] for t in data.tasks)
    assert ties.most_common(1)[0][1] == 300
    return data.tasks, make_window(*spec.day_bounds(DAY.date()))


def test_a_300_task_tie_across_page_boundaries_lands_exactly_once_each(serve: Serve) -> None:
    stored, window = tie_data()
    api = serve(stored)

    with client_for(api, concurrency=4) as client:
        tasks, result = fetch_window(client, window)

    ids = [t.id for t in tasks]
    assert len(ids) == len(set(ids))
    assert set(ids) == ids_in(stored, window)
    assert (result.api_total, result.in_window, result.reads) == (1000, 1000, 1)
    pages = sorted(int(r.params["page"][0]) for r in tasks_page_requests(api))
    assert pages == list(range(1, 11))  # every page exactly once


def test_a_tie_at_exactly_midnight_straddling_pages_lands_in_the_new_day(serve: Serve) -> None:
    window = day_window(DAY)
    before = [at(window.start - timedelta(seconds=0.5)) for _ in range(60)]
    tie = [at(window.start) for _ in range(300)]
    after = [at(window.start + timedelta(seconds=1 + i)) for i in range(40)]
    api = serve(before + tie + after)

    collector = WindowCollector()
    with client_for(api) as client:
        results = client.fetch_windows([day_window(DAY - timedelta(days=1)), window], collector)

    assert {t.id for t in collector.tasks(window)} == {t["id"] for t in tie + after}
    assert {t.id for t in collector.tasks(results[0].window)} == {t["id"] for t in before}
    assert results[1].api_total == 400


@pytest.mark.parametrize(
    ("kind", "priority"),
    [
        ("identical", "HOT"),
        # Changed while the window was read, its older state served last: the newer stays.
        ("stale", "TODAY"),
        # Two states for one instant: the one handed over last (the warehouse reports it).
        ("conflicting", "TODAY"),
    ],
)
def test_a_task_served_twice_is_collected_once_in_its_latest_state(
    serve: Serve, kind: str, priority: str
) -> None:
    window = day_window(DAY)
    tasks = [make_task(created_at=DAY + timedelta(minutes=n), priority="HOT") for n in range(150)]
    api = serve(tasks, FaultPlan(repeat_first_task=kind))  # type: ignore[arg-type]

    with client_for(api) as client:
        collected, result = fetch_window(client, window)

    assert len(collected) == result.in_window == 150
    assert collected[0].id == tasks[0]["id"]
    assert collected[0].priority == priority
    assert result.reads == 1  # the repeat does not upset the reconciliation


@pytest.mark.parametrize("max_rereads", [0, 3, 60])
def test_unstable_tie_order_is_reconciled_or_reported_never_silently_short(
    serve: Serve, max_rereads: int
) -> None:
    # Without the cheap re-reads of the pages around ties, only whole-window re-reads heal.
    stored, window = tie_data()
    api = serve(stored, FaultPlan(unstable_tie_order=True, seed=max_rereads))
    handed: dict[str, Task] = {}

    def on_page(page_window: Window, tasks: list[Task]) -> None:
        assert page_window == window
        handed.update((t.id, t) for t in tasks)

    error: TopoReconciliationError | None = None
    with client_for(api, max_rereads=max_rereads, max_tie_rereads=0) as client:
        try:
            (result,) = client.fetch_windows([window], OnEachPage(on_page))
        except TopoReconciliationError as raised:
            error = raised
        stats = client.stats

    if error is None:
        # Reconciled: exactly the stored set, ids accumulated over several reads.
        assert set(handed) == ids_in(stored, window)
        assert result.in_window == 1000
        assert stats.rereads == result.reads - 1
    else:
        # Reported: the gap is named with both numbers and the window.
        assert error.expected == 1000
        assert error.fetched < 1000
        assert f"fetched {error.fetched} unique ids" in str(error)
        assert "total_count 1000" in str(error)
        assert window.start.isoformat() in str(error)
        assert f"read {max_rereads + 1} times" in str(error)
        assert stats.rereads == max_rereads
    assert stats.tie_rereads == 0
    # One read of a day with a shuffled 300-task tie across four pages virtually never
    # sees every task (each read misses about 30% of the tie); sixty reads virtually always
    # do (each task is then missed with a probability of about 1e-31).
    if max_rereads == 0:
        assert error is not None
    if max_rereads == 60:
        assert error is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unstable_tie_order_is_healed_by_re_reading_only_the_pages_around_the_tie(
    serve: Serve, seed: int
) -> None:
    stored, window = tie_data()
    api = serve(stored, FaultPlan(unstable_tie_order=True, seed=seed))
    tie_instant = collections.Counter(t["created_at"] for t in stored).most_common(1)[0][0]
    tie_position = sorted(t["created_at"] for t in stored).index(tie_instant)
    tie_pages = set(range(tie_position // 100 + 1, (tie_position + 300 - 1) // 100 + 2))

    with client_for(api) as client:  # default limits
        tasks, result = fetch_window(client, window)
        stats = client.stats

    assert {t.id for t in tasks} == ids_in(stored, window)
    assert (result.reads, result.in_window) == (1, 1000)
    assert stats.rereads == 0
    assert stats.tie_rereads >= 1
    # After the first full read (pages 1..10), only pages holding the tie were asked again.
    pages = [int(r.params["page"][0]) for r in tasks_page_requests(api)]
    assert sorted(pages[:10]) == list(range(1, 11))
    assert set(pages[10:]) <= tie_pages
    assert len(pages) == 10 + len(tie_pages) * stats.tie_rereads


def test_a_5000_task_day_is_complete(serve: Serve) -> None:
    spec = DatasetSpec(seed=11, start_date=DAY.date(), days=1, tasks_per_day=[5000])
    stored = generate_dataset(spec).tasks
    window = make_window(*spec.day_bounds(DAY.date()))
    api = serve(stored)

    with client_for(api, concurrency=4) as client:
        tasks, result = fetch_window(client, window)
        stats = client.stats

    assert len(tasks) == 5000
    assert {t.id for t in tasks} == ids_in(stored, window) == {t["id"] for t in stored}
    assert (result.api_total, result.in_window, result.reads, result.pages) == (5000, 5000, 1, 50)
    assert (stats.requests, stats.pages, stats.retries) == (50, 50, 0)
    pages = sorted(int(r.params["page"][0]) for r in api.requests)
    assert pages == list(range(1, 51))


def test_behind_a_slow_page_handler_only_a_few_pages_are_fetched_ahead(serve: Serve) -> None:
    # Pages fetched but not yet handed over wait in memory; a handler slower than the API
    # (the stage's DuckDB writes) must hold the fetch back instead of letting them pile up.
    spec = DatasetSpec(seed=11, start_date=DAY.date(), days=20, tasks_per_day=[500] * 20)
    api = serve(generate_dataset(spec).tasks)
    windows = [make_window(*spec.day_bounds(day)) for day in spec.dates]
    ahead: list[int] = []

    def slow_handler(window: Window, tasks: list[Task]) -> None:
        ahead.append(len(tasks_page_requests(api)) - len(ahead) - 1)
        time.sleep(0.01)

    concurrency = 4
    with client_for(api, concurrency=concurrency) as client:
        results = client.fetch_windows(windows, OnEachPage(slow_handler))

    assert sum(r.in_window for r in results) == 20 * 500
    assert len(ahead) == 20 * 5  # every page handed over, once
    assert max(ahead) <= PAGES_AHEAD_PER_WORKER * concurrency
    assert max(ahead) < 20  # unbounded, the workers ran 60 pages ahead of this handler


def test_a_task_created_during_the_fetch_makes_the_window_read_again(serve: Serve) -> None:
    window = day_window(DAY)
    stored = [at(window.start + timedelta(minutes=i)) for i in range(250)]
    api = serve(stored)
    newcomer = at(window.start)  # sorts first: every later row moves down one place
    pages_seen = []

    def on_page(page_window: Window, tasks: list[Task]) -> None:
        pages_seen.append(len(tasks))
        if len(pages_seen) == 1:
            api.store.upsert(newcomer)  # before pages 2 and 3 are requested

    collector = WindowCollector()

    def handler(page_window: Window, tasks: list[Task]) -> None:
        on_page(page_window, tasks)
        collector(page_window, tasks)

    with client_for(api) as client:
        (result,) = client.fetch_windows([window], OnEachPage(handler))

    assert {t.id for t in collector.tasks(window)} == {t["id"] for t in [*stored, newcomer]}
    assert result.reads == 2
    assert result.in_window == 251
    assert client.stats.rereads == 1


class ChangingCollector(WindowCollector):
    """A collector that runs ``change`` once, right after its first page (pages 2+ are
    requested only after that)."""

    def __init__(self, change: Callable[[], None]) -> None:
        super().__init__()
        self._change: Callable[[], None] | None = change

    def __call__(self, window: Window, tasks: list[Task]) -> None:
        super().__call__(window, tasks)
        if self._change is not None:
            self._change()
            self._change = None


def test_a_task_deleted_during_the_fetch_does_not_land(serve: Serve) -> None:
    window = day_window(DAY)
    stored = [at(window.start + timedelta(minutes=i)) for i in range(250)]
    api = serve(stored)
    gone = stored[3]  # handed over with page 1, then deleted: later rows move up one place
    collector = ChangingCollector(lambda: api.store.delete(gone["id"]))

    with client_for(api) as client:
        (result,) = client.fetch_windows([window], collector)

    landed = {t.id for t in collector.tasks(window)}
    assert landed == {t["id"] for t in stored} - {gone["id"]}
    assert result.in_window == len(landed) == 249
    assert result.reads == 2


@pytest.mark.parametrize("change", ["delete", "add"])
def test_a_set_change_after_the_first_read_is_not_counted_in_place_of_a_missed_tie(
    serve: Serve, change: str
) -> None:
    # The first read misses some of a shuffled tie; before the re-reads (of the tie's pages
    # or the window) a task is deleted or added. Ids of the first read then no longer add
    # up to the new total: the client must start afresh rather than count the changed task
    # in place of a missed one.
    stored, window = tie_data()
    api = serve(stored, FaultPlan(unstable_tie_order=True, seed=5))
    changed = (
        next(t for t in stored if t["created_at"] == stored[-1]["created_at"])
        if change == "delete"
        else make_task(created_at=window.start + timedelta(hours=23))
    )
    pages = 0

    class ChangeAfterFirstRead(WindowCollector):
        def __call__(self, page_window: Window, tasks: list[Task]) -> None:
            nonlocal pages
            super().__call__(page_window, tasks)
            pages += 1
            if pages == 10:  # the first read's last page
                if change == "delete":
                    api.store.delete(changed["id"])
                else:
                    api.store.upsert(changed)

    collector = ChangeAfterFirstRead()
    with client_for(api, max_rereads=60) as client:
        (result,) = client.fetch_windows([window], collector)

    assert result.reads >= 2  # the read after the change started afresh
    landed = {t.id for t in collector.tasks(window)}
    expected = ids_in(stored, window) ^ {changed["id"]}
    assert landed == expected
    assert result.in_window == len(expected)


# --- faults: 5xx, dropped connections, malformed bodies, timeouts ----------------------------


def test_server_errors_drops_and_malformed_bodies_still_give_the_exact_set(serve: Serve) -> None:
    spec = DatasetSpec(seed=5, start_date=DAY.date(), days=2, tasks_per_day=[1200, 800])
    stored = generate_dataset(spec).tasks
    windows = [make_window(*spec.day_bounds(d)) for d in spec.dates]
    faults = FaultPlan(error_5xx_rate=0.2, drop_rate=0.1, malformed_rate=0.1, seed=4)
    api = serve(stored, faults)

    collector = WindowCollector()
    # Attempts generous enough that ~40% failing requests never exhaust them in this test.
    with client_for(api, concurrency=4, max_attempts=20) as client:
        results = client.fetch_windows(windows, collector)
        stats = client.stats

    for window, result in zip(windows, results, strict=True):
        assert {t.id for t in collector.tasks(window)} == ids_in(stored, window)
        assert result.in_window == len(ids_in(stored, window))
    # The client's statistics agree with what the API saw, request for request.
    records = api.requests
    statuses = collections.Counter(r.status for r in records)
    assert stats.requests == len(records)
    assert stats.server_errors == sum(n for s, n in statuses.items() if s and s >= 500) > 0
    assert stats.transport_errors == statuses[None] > 0
    assert stats.malformed_bodies == statuses[200] - stats.pages > 0
    assert stats.pages == 20  # 12 + 8 pages, each accepted once
    assert stats.retries == stats.requests - stats.pages
    assert stats.rate_limited == 0
    assert stats.wait_seconds > 0


def test_server_errors_through_every_attempt_fail_with_the_request_id(serve: Serve) -> None:
    api = serve([at(DAY)], FaultPlan(error_5xx_rate=1.0))
    with client_for(api, max_attempts=3) as client, pytest.raises(TopoUnavailableError) as caught:
        fetch_window(client, day_window(DAY))
    assert len(api.requests) == 3
    assert caught.value.status_code in (500, 502, 503)
    assert caught.value.request_id is not None
    assert REQUEST_ID.fullmatch(caught.value.request_id)
    assert caught.value.request_id in str(caught.value)
    assert "server errors through every retry" in str(caught.value)
    assert client.stats.server_errors == 3
    assert client.stats.retries == 2


def test_dropped_connections_through_every_attempt_fail_as_transport_errors(
    serve: Serve,
) -> None:
    api = serve([at(DAY)], FaultPlan(drop_rate=1.0))
    with client_for(api, max_attempts=3) as client, pytest.raises(TopoTransportError) as caught:
        fetch_window(client, day_window(DAY))
    assert len(api.requests) == 3
    assert "could not reach Topo" in str(caught.value)
    assert client.stats.transport_errors == 3


def test_a_slow_answer_past_the_request_timeout_is_retried_then_reported(serve: Serve) -> None:
    api = serve([at(DAY)], FaultPlan(latency_seconds=0.5))
    with client_for(api, request_timeout_seconds=0.1, max_attempts=2) as client:
        with pytest.raises(TopoTransportError, match="ReadTimeout"):
            fetch_window(client, day_window(DAY))
        assert client.stats.transport_errors == 2
    api.faults = FaultPlan(latency_seconds=0.05)  # slower than usual, within the timeout
    with client_for(api, request_timeout_seconds=2.0) as client:
        tasks, _ = fetch_window(client, day_window(DAY))
    assert len(tasks) == 1


# --- 429: Retry-After and a rate limit below the client's pacing ---------------------------


@pytest.mark.waits
def test_a_429_storm_is_survived_and_retry_after_is_honoured(serve: Serve) -> None:
    spec = DatasetSpec(seed=2, start_date=DAY.date(), days=4, tasks_per_day=[100] * 4)
    stored = generate_dataset(spec).tasks
    windows = [make_window(*spec.day_bounds(d)) for d in spec.dates]
    # Four one-page windows start together (concurrency 4): the storm hits all four pages,
    # then two retries, each time answering Retry-After: 1 (which holds every thread).
    api = serve(stored, FaultPlan(force_429_count=6, retry_after_seconds=1))

    collector = WindowCollector()
    with client_for(api, concurrency=4, backoff_cap_seconds=0.01) as client:
        client.fetch_windows(windows, collector)
        stats = client.stats

    for window in windows:
        assert {t.id for t in collector.tasks(window)} == ids_in(stored, window)
    records = api.requests
    assert sum(r.status == 429 for r in records) == 6
    assert stats.rate_limited == 6
    # Retry-After (1 s) is far above the configured backoff cap (0.01 s): it still wins.
    assert assert_no_retry_before_retry_after(records, retry_after=1.0) == 6
    assert stats.pages == 4
    assert stats.requests == len(records) == 10
    assert stats.wait_seconds >= 6 * 1.0  # every 429 waited at least its Retry-After


@pytest.mark.waits
def test_a_server_rate_limit_below_the_clients_pacing_is_survived(serve: Serve) -> None:
    spec = DatasetSpec(seed=8, start_date=DAY.date(), days=1, tasks_per_day=[1000])
    stored = generate_dataset(spec).tasks
    window = make_window(*spec.day_bounds(DAY.date()))
    # The API allows 10 requests/s after a burst of 4; the client is paced at 50/s.
    api = serve(stored, FaultPlan(rate_limit_per_minute=600, rate_limit_burst=4))

    with client_for(api, requests_per_minute=3000, concurrency=4) as client:
        tasks, result = fetch_window(client, window)
        stats = client.stats

    assert {t.id for t in tasks} == ids_in(stored, window)
    assert result.in_window == 1000
    records = api.requests
    refused = [r for r in records if r.status == 429]
    assert refused  # the limit did bite
    assert stats.rate_limited == len(refused)
    assert assert_no_retry_before_retry_after(records, retry_after=1.0) >= 1
    # A 429 holds every thread, not only the one retrying: once the answer is in (allow
    # 0.25 s), no request reaches the API until its Retry-After has elapsed. Unpaced by the
    # pause, the client would send a dozen in that time.
    for refusal in refused:
        held = [r for r in records if 0.25 <= r.received_at - refusal.received_at < 1.0]
        assert held == [], (refusal, held)


def test_429s_through_every_attempt_fail_with_advice(serve: Serve) -> None:
    api = serve([at(DAY)], FaultPlan(force_429_count=2, retry_after_seconds=0))
    with client_for(api, max_attempts=2) as client, pytest.raises(TopoUnavailableError) as caught:
        fetch_window(client, day_window(DAY))
    assert len(api.requests) == 2
    assert caught.value.status_code == 429
    assert "TOPO_API_REQUESTS_PER_MINUTE" in str(caught.value)
    assert caught.value.request_id is not None
    assert caught.value.request_id in str(caught.value)


# --- errors that fail at once --------------------------------------------------------------


def assert_key_absent(key: str, *texts: str) -> None:
    for text in texts:
        assert key not in text


@pytest.mark.parametrize(
    ("key", "error_type", "message"),
    [
        (SECRET_KEY, TopoAuthError, "the Topo API key was rejected"),
        (NO_SCOPE_API_KEY, TopoPermissionError, "lacks the tasks:read scope"),
    ],
)
def test_401_and_403_fail_at_once_with_advice_and_never_show_the_key(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    key: str,
    error_type: type[Exception],
    message: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "topo_pipeline"):
        caplog.set_level(logging.DEBUG, logger=name)
    api = serve([at(DAY)])

    client = client_for(api, key=key, max_attempts=5)
    with client, pytest.raises(error_type) as caught:
        fetch_window(client, day_window(DAY))

    error = caught.value
    assert len(api.requests) == 1  # not retried
    assert message in str(error)
    assert "TOPO_API_KEY" in str(error)
    assert error.status_code == (401 if error_type is TopoAuthError else 403)
    assert error.error_type == "UnauthorizedIssue"
    assert error.request_id is not None
    assert REQUEST_ID.fullmatch(error.request_id)
    assert f"request_id: {error.request_id}" in str(error)
    assert client.stats.retries == 0

    # The key is nowhere: exception text and traceback, reprs, stats, log records.
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # debug logs captured
    log_text = [f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    assert_key_absent(
        key,
        str(error),
        repr(error),
        repr(vars(error)),
        "".join(traceback.format_exception(error)),
        repr(client),
        repr(client.config),
        repr(client.stats),
        repr(client.stats.as_dict()),
        caplog.text,
        *log_text,
    )


def test_a_fetch_through_every_kind_of_fault_logs_nothing_of_the_key(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "topo_pipeline"):
        caplog.set_level(logging.DEBUG, logger=name)
    faults = FaultPlan(
        error_5xx_rate=0.3, drop_rate=0.2, malformed_rate=0.3, force_429_count=1,
        retry_after_seconds=0, seed=1,
    )  # fmt: skip
    stored = [at(DAY + timedelta(minutes=i)) for i in range(1000)]
    api = serve(stored, faults, api_keys={SECRET_KEY: frozenset({"tasks:read"})})

    with client_for(api, key=SECRET_KEY, max_attempts=30) as client:
        tasks, _ = fetch_window(client, day_window(DAY))
        stats = client.stats.as_dict()

    assert len(tasks) == 1000
    assert stats["rate_limited"] == 1
    assert min(stats["server_errors"], stats["transport_errors"], stats["malformed_bodies"]) > 0
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert_key_absent(
        SECRET_KEY,
        caplog.text,
        *(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records),
        repr(stats),
        repr(client),
    )


def test_an_api_that_is_down_fails_as_a_transport_error_naming_the_url(serve: Serve) -> None:
    api = serve([at(DAY)])
    config = fast_config(api, max_attempts=3)
    api.stop()  # nothing listens on the port any more
    with TopoClient(DEMO_API_KEY, config) as client, pytest.raises(TopoTransportError) as caught:
        fetch_window(client, day_window(DAY))
    assert config.base_url in str(caught.value)
    assert "ConnectError" in str(caught.value)
    assert client.stats.transport_errors == 3
    assert client.stats.retries == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": 500}, "size"),
        ({"page": 0}, "page"),
        ({"status": "DONE"}, "status"),
        ({"created_at_after": "2024-03-01"}, "created_at_after"),
        ({"types": ["CALL", "MEETING"]}, "types"),
    ],
)
def test_400_on_a_bad_parameter_fails_at_once_naming_it(
    serve: Serve, params: dict[str, Any], field: str
) -> None:
    api = serve([at(DAY)])
    stats = FetchStats()
    session = TopoSession(DEMO_API_KEY, fast_config(api, max_attempts=5), stats)
    with closing(session), pytest.raises(TopoRequestError) as caught:
        session.get(f"{api.base_url}/tasks", params, TaskPage.from_api)
    assert len(api.requests) == 1
    error = caught.value
    assert error.status_code == 400
    assert error.error_type == "ValidationIssue"
    assert f"field: {field}" in str(error)
    assert error.request_id is not None
    assert error.request_id in str(error)
    assert stats.retries == 0


def test_404_fails_at_once_and_points_at_the_base_url(serve: Serve) -> None:
    api = serve([at(DAY)])
    wrong_root = api.base_url.removesuffix("/v1")  # forgot the /v1
    client = client_for(api, base_url=wrong_root, max_attempts=5)
    with client, pytest.raises(TopoRequestError) as caught:
        fetch_window(client, day_window(DAY))
    assert len(api.requests) == 1
    error = caught.value
    assert error.status_code == 404
    assert error.error_type == "NotFoundIssue"
    assert "TOPO_API_BASE_URL" in str(error)
    assert error.request_id is not None
    assert error.request_id in str(error)


def test_a_failure_in_one_window_stops_the_whole_fetch(serve: Serve) -> None:
    api = serve([at(DAY + timedelta(days=i)) for i in range(3)])
    with client_for(api, key=SECRET_KEY) as client, pytest.raises(TopoAuthError):
        client.fetch_windows(
            [day_window(DAY + timedelta(days=i)) for i in range(3)], OnEachPage(ignore)
        )
    assert 1 <= len(api.requests) <= 3  # the first pages already in flight, nothing after


# --- several windows: order and pacing -----------------------------------------------------


def test_fetch_windows_returns_results_in_order_within_the_request_rate(serve: Serve) -> None:
    spec = DatasetSpec(seed=9, start_date=DAY.date(), days=3, tasks_per_day=[150, 320, 90])
    stored = generate_dataset(spec).tasks
    days = [make_window(*spec.day_bounds(d)) for d in spec.dates]
    windows = [days[2], days[0], days[1]]  # not chronological: order is the caller's
    api = serve(stored)
    handed: list[tuple[Window, list[Task]]] = []

    rpm = 600.0  # one request every 0.1 s
    with client_for(api, requests_per_minute=rpm, concurrency=4) as client:
        results = client.fetch_windows(
            windows, OnEachPage(lambda w, tasks: handed.append((w, tasks)))
        )

    assert [r.window for r in results] == windows
    assert [r.in_window for r in results] == [90, 150, 320]
    assert [r.pages for r in results] == [1, 2, 4]
    for window, tasks in handed:
        assert all(window.start <= t.created_at < window.end for t in tasks)
    for window in windows:
        got = [t.id for w, tasks in handed if w == window for t in tasks]
        assert len(got) == len(set(got))
        assert set(got) == ids_in(stored, window)

    # Requests were spread at the configured rate: any k + 1 consecutive arrivals span at
    # least k - 1 intervals (one interval of slack for scheduling jitter on a busy machine).
    arrivals = sorted(r.received_at for r in api.requests)
    assert len(arrivals) == 7
    interval = 60.0 / rpm
    for i, j in itertools.combinations(range(len(arrivals)), 2):
        assert arrivals[j] - arrivals[i] >= (j - i - 1) * interval
    span = arrivals[-1] - arrivals[0]
    assert (len(arrivals) - 1) / span <= rpm / 60.0 * 1.5


def test_fetch_windows_with_no_windows_sends_nothing(serve: Serve) -> None:
    api = serve([at(DAY)])
    with client_for(api) as client:
        assert client.fetch_windows([], OnEachPage(ignore)) == []
    assert api.requests == []


def test_the_same_window_twice_is_refused(serve: Serve) -> None:
    api = serve([at(DAY)])
    with client_for(api) as client, pytest.raises(ValueError, match="only once"):
        client.fetch_windows([day_window(DAY), day_window(DAY)], OnEachPage(ignore))
    assert api.requests == []


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.topo.io/v1",
        "http://10.0.0.5:8080/v1",
        "http://localhost.example.com/v1",
        "ftp://api.topo.io/v1",
        "api.topo.io/v1",
        "https:///v1",
        "https://api.topo.io/v1?debug=1",
    ],
)
def test_unsafe_or_malformed_base_urls_are_refused(url: str) -> None:
    with pytest.raises(TopoConfigError, match="TOPO_API_BASE_URL"):
        ClientConfig(base_url=url)
    with pytest.raises(TopoConfigError):
        TopoClient(DEMO_API_KEY, ClientConfig(base_url=url))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.topo.io/v1",
        "https://api.topo.io/v1/",
        "http://127.0.0.1:8765/v1",
        "http://127.8.9.10/v1",
        "http://localhost:8765/v1",
        "http://[::1]:8765/v1",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert validate_base_url(url) == url.rstrip("/")
    with TopoClient(DEMO_API_KEY, ClientConfig(base_url=url)) as client:
        assert repr(client) == f"TopoClient(base_url={url!r})"


@pytest.mark.parametrize("key", ["", "   ", "\n"])
def test_an_empty_key_is_refused(key: str) -> None:
    with pytest.raises(TopoConfigError, match="TOPO_API_KEY"):
        TopoClient(key)


@pytest.mark.parametrize(
    "key",
    [
        SECRET_KEY + "\nX-Injected: 1",  # a header injection, or a key pasted over two lines
        SECRET_KEY + "\x00",
        "topo_Sup3rS3cr\u00e9tKeyValue",  # not ASCII
        "topo_Sup3r S3cretKeyValue",  # a space inside
    ],
)
def test_a_key_that_cannot_be_a_header_value_is_refused_without_showing_it(
    serve: Serve, key: str
) -> None:
    api = serve([at(DAY)])
    with pytest.raises(TopoConfigError, match="TOPO_API_KEY") as caught:
        TopoClient(key, fast_config(api))
    assert api.requests == []
    text = "".join(traceback.format_exception(caught.value))
    assert_key_absent("S3cr", str(caught.value), repr(caught.value), text)


@pytest.mark.parametrize(
    "settings",
    [
        {"concurrency": 0},
        {"max_attempts": 0},
        {"max_rereads": -1},
        {"max_tie_rereads": -1},
        {"requests_per_minute": -5.0},
        {"request_timeout_seconds": 0.0},
    ],
)
def test_impossible_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(TopoConfigError):
        ClientConfig(**settings)


def test_stats_start_at_zero_and_hold_no_secrets() -> None:
    stats = FetchStats()
    assert set(stats.as_dict().values()) == {0}
    assert "_lock" not in stats.as_dict()
