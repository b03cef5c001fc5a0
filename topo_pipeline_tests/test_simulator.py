"""Contract tests of the simulated Topo API, through real HTTP on loopback.

They pin what ``topo-api.md`` documents for ``GET /v1/tasks`` (auth, every filter and
sort, strict created-at bounds, the envelope, the error body), the switchable faults,
and the properties the seeded data set promises to the pipeline's tests.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from topo_pipeline.api import models
from topo_pipeline.api.deadline import shared_ssl_context
from topo_pipeline.api.models import (
    DISPOSITIONS,
    PRIORITIES,
    STATUSES,
    TASK_FIELDS,
    TASK_TYPES,
    parse_timestamp,
)
from topo_pipeline.api.pacing import Outcome, RateController
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    NO_SCOPE_API_KEY,
    DatasetSpec,
    FaultPlan,
    SimulatedDataset,
    SimulatedTopoApi,
    TaskQuery,
    TaskStore,
    contract,
    generate_dataset,
    generate_tasks,
    make_task,
)
from topo_pipeline.simulator.__main__ import (
    NotLoopbackError,
    argument_parser,
    check_loopback,
    fault_plan,
)
from topo_pipeline.simulator.__main__ import main as simulator_main
from topo_pipeline.simulator.faults import FaultInjector
from topo_pipeline.simulator.store import timestamp_key
from topo_pipeline.simulator.tasks import SLA_TARGET_MINUTES
from topo_pipeline.warehouse.analytics import DEFAULT_SLA_TARGET_MINUTES

AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
REQUEST_ID = re.compile(r"^req_[0-9a-hjkmnp-tv-z]{26}$")
ERROR_KEYS = {"status_code", "type", "message", "data", "request_id"}
SLA_MINUTES = {"HOT": 60, "TODAY": 1440, "EXTRA": 4320}
T0 = datetime(2024, 3, 1, tzinfo=UTC)

Serve = Callable[..., tuple[SimulatedTopoApi, httpx.Client]]


def loopback_client(
    api: SimulatedTopoApi, headers: Mapping[str, str] = AUTH, **kwargs: Any
) -> httpx.Client:
    """A plain ``httpx.Client`` for ``api``, with the demo key unless ``headers`` say otherwise.

    It gets the pipeline's shared TLS context: httpx would build one (loading the CA bundle)
    for every client, though these speak plain HTTP on loopback.
    """
    return httpx.Client(
        base_url=api.base_url, headers=headers, verify=shared_ssl_context(), **kwargs
    )


def uid(n: int) -> str:
    """A readable, valid uuid whose order follows ``n``."""
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start simulated APIs (and an authenticated client for each); stop them afterwards."""
    with contextlib.ExitStack() as stack:

        def start(store: TaskStore, **kwargs: Any) -> tuple[SimulatedTopoApi, httpx.Client]:
            api = stack.enter_context(SimulatedTopoApi(store, **kwargs))
            client = loopback_client(api, timeout=10)
            stack.enter_context(client)
            return api, client

        yield start


@pytest.fixture(scope="module")
def dataset() -> SimulatedDataset:
    """Two weeks of the default, realistic data set."""
    return generate_dataset(DatasetSpec(seed=7, start_date=date(2024, 1, 1), days=14))


def ids_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def assert_error(response: httpx.Response, status: int, issue: str) -> dict[str, Any]:
    """Check Topo's error body shape and return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert {"status_code", "type", "message", "request_id"} <= set(body) <= ERROR_KEYS
    assert body["status_code"] == status
    assert body["type"] == issue
    assert isinstance(body["message"], str)
    assert body["message"]
    assert REQUEST_ID.match(body["request_id"]), body["request_id"]
    assert "data" not in body or isinstance(body["data"], dict)
    return body


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic c2ltLWRlbW8ta2V5",
        "Bearer",
        "Bearer two words",
        f"Token {DEMO_API_KEY}",
        "Bearer topo_not_a_key_we_know",
    ],
)
def test_missing_malformed_or_unknown_key_is_401(serve: Serve, header: str | None) -> None:
    api, _ = serve(TaskStore([make_task()]))
    headers = {} if header is None else {"Authorization": header}
    with loopback_client(api, headers=headers) as anonymous:
        response = anonymous.get("/tasks")
    body = assert_error(response, 401, "UnauthorizedIssue")
    assert "topo_not_a_key_we_know" not in response.text
    assert "items" not in body
    assert api.requests[-1].auth_ok is False


def test_known_key_without_tasks_read_scope_is_403(serve: Serve) -> None:
    api, client = serve(TaskStore([make_task()]))
    response = client.get("/tasks", headers={"Authorization": f"Bearer {NO_SCOPE_API_KEY}"})
    body = assert_error(response, 403, "UnauthorizedIssue")
    assert body["data"] == {"required_scope": "tasks:read"}
    assert NO_SCOPE_API_KEY not in response.text
    assert api.requests[-1].auth_ok is False


def test_keys_are_configurable_per_server(serve: Serve) -> None:
    keys = {"custom-key": frozenset({"tasks:read", "tasks:write"})}
    _, client = serve(TaskStore([make_task()]), api_keys=keys)
    assert_error(client.get("/tasks"), 401, "UnauthorizedIssue")  # the demo key is not in
    assert client.get("/tasks", headers={"Authorization": "bearer custom-key"}).status_code == 200


# --- filters ----------------------------------------------------------------------------

A, B = uid(901), uid(902)
SEQ_1, SEQ_2, SEQ_3 = uid(801), uid(802), uid(803)
TEMPLATE_X, TEMPLATE_Y, TEMPLATE_Z = uid(701), uid(702), uid(703)
FILTER_TASKS = [
    make_task(
        id=uid(1), type="CALL", priority="HOT", status="COMPLETED",
        sequence_id=SEQ_1, assignee_user_id=A, created_at=T0 + timedelta(minutes=1),
    ),
    make_task(
        id=uid(2), type="EMAIL_REPLY", priority="TODAY", status="PENDING",
        sequence_id=SEQ_1, assignee_user_id=B, created_at=T0 + timedelta(minutes=2),
    ),
    make_task(
        id=uid(3), type="LINKEDIN_REPLY", priority="EXTRA", status="SKIPPED",
        sequence_id=SEQ_2, assignee_user_id=None, created_at=T0 + timedelta(minutes=3),
    ),
    make_task(
        id=uid(4), type="NEW_LEAD_REVIEW", priority="HOT", status="IN_PROGRESS",
        sequence_id=SEQ_3, assignee_user_id=A, created_at=T0 + timedelta(minutes=4),
    ),
    make_task(
        id=uid(5), type="CALL", priority="TODAY", status="PENDING",
        sequence_id=SEQ_3, assignee_user_id=B, created_at=T0 + timedelta(minutes=5),
    ),
]  # fmt: skip
FILTER_TEMPLATES = {SEQ_1: TEMPLATE_X, SEQ_2: TEMPLATE_Y, SEQ_3: TEMPLATE_Z}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {1, 2, 3, 4, 5}),
        ({"types": "CALL"}, {1, 5}),
        ({"types": ["CALL", "EMAIL_REPLY"]}, {1, 2, 5}),  # repeated parameter = OR
        ({"priorities": "HOT"}, {1, 4}),
        ({"priorities": ["HOT", "EXTRA"]}, {1, 3, 4}),
        ({"status": "PENDING"}, {2, 5}),
        ({"status": "SKIPPED"}, {3}),
        ({"sequence_id": SEQ_3}, {4, 5}),
        ({"sequence_id": SEQ_3.upper()}, {4, 5}),  # a uuid, not a string match
        ({"sequence_template_ids": TEMPLATE_X}, {1, 2}),
        ({"sequence_template_ids": [TEMPLATE_X, TEMPLATE_Y]}, {1, 2, 3}),
        ({"assignee_user_id": A}, {1, 4}),
        ({"types": "CALL", "status": "PENDING"}, {5}),  # different filters = AND
        ({"types": "CALL", "assignee_user_id": A, "priorities": "TODAY"}, set()),
        ({"types": "CALL", "unknown_param": "x", "page_token": "1"}, {1, 5}),  # ignored
    ],
)
def test_each_filter(serve: Serve, params: dict[str, Any], expected: set[int]) -> None:
    _, client = serve(TaskStore(FILTER_TASKS, FILTER_TEMPLATES))
    response = client.get("/tasks", params=params)
    assert set(ids_of(response)) == {uid(n) for n in expected}
    assert response.json()["total_count"] == len(expected)


def test_status_is_single_valued(serve: Serve) -> None:
    _, client = serve(TaskStore(FILTER_TASKS))
    response = client.get("/tasks", params={"status": ["PENDING", "COMPLETED"]})
    assert assert_error(response, 400, "ValidationIssue")["data"]["field"] == "status"


def test_the_run_template_is_not_a_task_field(serve: Serve) -> None:
    _, client = serve(TaskStore(FILTER_TASKS, FILTER_TEMPLATES))
    for item in client.get("/tasks").json()["items"]:
        assert list(item) == list(TASK_FIELDS)


# --- ordering ---------------------------------------------------------------------------

SORT_TASKS = [
    make_task(id=uid(n), created_at=T0 + timedelta(seconds=c), updated_at=T0 + timedelta(seconds=u))
    for n, c, u in [(1, 2, 10), (2, 0, 30), (3, 2, 20), (4, 0, 20), (5, 1, 20)]
]  # (id, created_at, updated_at) in seconds after T0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [2, 4, 5, 1, 3]),  # no sort_by: created_at, then id
        ({"sort_by": "created_at"}, [2, 4, 5, 1, 3]),
        ({"sort_by": "created_at", "sort_order": "asc"}, [2, 4, 5, 1, 3]),
        ({"sort_by": "created_at", "sort_order": "desc"}, [3, 1, 5, 4, 2]),
        ({"sort_order": "desc"}, [3, 1, 5, 4, 2]),
        ({"sort_by": "updated_at"}, [1, 3, 4, 5, 2]),
        ({"sort_by": "updated_at", "sort_order": "desc"}, [2, 5, 4, 3, 1]),
    ],
)
def test_sort_orders_by_field_then_id(
    serve: Serve, params: dict[str, str], expected: list[int]
) -> None:
    _, client = serve(TaskStore(SORT_TASKS))
    assert ids_of(client.get("/tasks", params=params)) == [uid(n) for n in expected]


# --- strict created-at bounds -----------------------------------------------------------

BOUND_TASKS = [
    make_task(id=uid(1), created_at="2024-03-01T00:00:00Z"),  # exactly the lower bound
    make_task(id=uid(2), created_at="2024-03-01T00:00:00.500Z"),
    make_task(id=uid(3), created_at="2024-03-01T12:00:00Z"),
    make_task(id=uid(4), created_at="2024-03-01T23:59:59Z"),
    make_task(id=uid(5), created_at="2024-03-02T00:00:00Z"),  # exactly the upper bound
    make_task(id=uid(6), created_at="2024-02-29T23:59:59Z"),
    make_task(id=uid(7), created_at="2024-03-02T00:00:01Z"),
]


@pytest.mark.parametrize(
    ("after", "before"),
    [
        ("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"),
        ("2024-03-01T00:00:00.000Z", "2024-03-02T00:00:00.000000Z"),
        ("2024-03-01T01:00:00+01:00", "2024-03-01T19:00:00-05:00"),  # offsets
        ("2024-03-01T00:00:00", "2024-03-02T00:00:00"),  # naive = UTC
    ],
)
def test_both_bounds_are_strict(serve: Serve, after: str, before: str) -> None:
    _, client = serve(TaskStore(BOUND_TASKS))
    response = client.get("/tasks", params={"created_at_after": after, "created_at_before": before})
    assert ids_of(response) == [uid(2), uid(3), uid(4)]


def test_each_bound_alone_and_sub_second_bounds(serve: Serve) -> None:
    _, client = serve(TaskStore(BOUND_TASKS))
    after = client.get("/tasks", params={"created_at_after": "2024-03-01T00:00:00Z"})
    assert set(ids_of(after)) == {uid(n) for n in (2, 3, 4, 5, 7)}
    before = client.get("/tasks", params={"created_at_before": "2024-03-01T00:00:00Z"})
    assert ids_of(before) == [uid(6)]
    half = client.get("/tasks", params={"created_at_after": "2024-03-01T00:00:00.5Z"})
    assert uid(2) not in ids_of(half)


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": "0"}, "size"),
        ({"size": "101"}, "size"),
        ({"size": "ten"}, "size"),
        ({"size": ""}, "size"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": ["1", "2"]}, "page"),
        ({"sort_by": "name"}, "sort_by"),
        ({"sort_order": "ascending"}, "sort_order"),
        ({"types": ["CALL", "SMS"]}, "types"),
        ({"priorities": "hot"}, "priorities"),
        ({"status": "DONE"}, "status"),
        ({"sequence_id": "not-a-uuid"}, "sequence_id"),
        ({"sequence_template_ids": [TEMPLATE_X, "42"]}, "sequence_template_ids"),
        ({"assignee_user_id": "123"}, "assignee_user_id"),
        ({"created_at_after": "2024-03-01"}, "created_at_after"),  # a date, not a date-time
        ({"created_at_after": "yesterday"}, "created_at_after"),
        ({"created_at_before": "2024-03-01T25:00:00Z"}, "created_at_before"),
        ({"created_at_before": "1709251200"}, "created_at_before"),
    ],
)
def test_validation_errors_name_the_field(serve: Serve, params: dict[str, Any], field: str) -> None:
    _, client = serve(TaskStore(FILTER_TASKS))
    body = assert_error(client.get("/tasks", params=params), 400, "ValidationIssue")
    assert body["data"]["field"] == field


def test_auth_is_checked_before_parameters(serve: Serve) -> None:
    api, _ = serve(TaskStore(FILTER_TASKS))
    response = httpx.get(f"{api.base_url}/tasks", params={"size": "0"})
    assert_error(response, 401, "UnauthorizedIssue")


# --- envelope ---------------------------------------------------------------------------

PAGED_TASKS = [make_task(id=uid(n), created_at=T0 + timedelta(minutes=n)) for n in range(1, 26)]


@pytest.mark.parametrize(
    ("size", "page", "first", "count", "total_pages", "has_more"),
    [
        (None, None, 1, 10, 3, True),  # defaults: page 1, size 10
        (10, 2, 11, 10, 3, True),
        (10, 3, 21, 5, 3, False),
        (10, 4, None, 0, 3, False),  # past the end: 200, empty, same totals
        (10, 1000, None, 0, 3, False),
        (25, 1, 1, 25, 1, False),
        (100, 1, 1, 25, 1, False),
        (7, 4, 22, 4, 4, False),
        (1, 25, 25, 1, 25, False),
    ],
)
def test_envelope_math(
    serve: Serve,
    size: int | None,
    page: int | None,
    first: int | None,
    count: int,
    total_pages: int,
    has_more: bool,
) -> None:
    _, client = serve(TaskStore(PAGED_TASKS))
    params = {k: v for k, v in (("size", size), ("page", page)) if v is not None}
    body = client.get("/tasks", params=params).json()
    assert set(body) == {"items", "total_count", "total_pages", "has_more"}
    assert body["total_count"] == 25
    assert body["total_pages"] == total_pages
    assert body["has_more"] is has_more
    expected = [] if first is None else [uid(n) for n in range(first, first + count)]
    assert [item["id"] for item in body["items"]] == expected


def test_empty_result_has_zero_pages(serve: Serve) -> None:
    _, client = serve(TaskStore(PAGED_TASKS))
    body = client.get("/tasks", params={"status": "SKIPPED"}).json()
    assert body == {"items": [], "total_count": 0, "total_pages": 0, "has_more": False}


# --- error shape, routing ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/tasks/3c90c3cc-0d44-4b50-8888-8dd25736052a", "/tasks/", "/me"])
def test_other_paths_are_404(serve: Serve, path: str) -> None:
    _, client = serve(TaskStore())
    assert_error(client.get(path), 404, "NotFoundIssue")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_405_and_keep_the_connection_usable(serve: Serve, method: str) -> None:
    _, client = serve(TaskStore([make_task()]))
    response = client.request(method, "/tasks", json={"ignored": True})
    assert_error(response, 405, "MethodNotAllowedIssue")
    assert response.headers["allow"] == "GET"
    assert client.get("/tasks").status_code == 200


def test_request_ids_are_fresh_per_error(serve: Serve) -> None:
    _, client = serve(TaskStore())
    ids = {client.get("/tasks", params={"size": "0"}).json()["request_id"] for _ in range(20)}
    assert len(ids) == 20


def test_tasks_are_served_exactly_as_stored(serve: Serve, dataset: SimulatedDataset) -> None:
    _, client = serve(TaskStore(dataset.tasks, dataset.sequence_templates))
    items = client.get("/tasks", params={"size": 100, "page": 7}).json()["items"]
    assert items == dataset.tasks[600:700]
    for item in items:
        assert list(item) == list(TASK_FIELDS)
        assert item["created_at"].endswith("Z")
        assert item["updated_at"].endswith("Z")


# --- store mutations and concurrency ----------------------------------------------------


def test_store_mutations_show_in_the_next_request(serve: Serve) -> None:
    store = TaskStore(PAGED_TASKS)
    _, client = serve(store)
    params = {"status": "COMPLETED", "size": 100}
    assert client.get("/tasks", params=params).json()["total_count"] == 0  # now cached

    store.upsert(make_task(id=uid(3), status="COMPLETED", created_at=T0 + timedelta(minutes=3)))
    assert ids_of(client.get("/tasks", params=params)) == [uid(3)]
    assert store.get(uid(3))["status"] == "COMPLETED"

    store.upsert(make_task(id=uid(99), status="COMPLETED", created_at=T0))
    assert ids_of(client.get("/tasks", params=params)) == [uid(99), uid(3)]
    assert client.get("/tasks").json()["total_count"] == 26

    assert store.delete(uid(3)) is True
    assert store.delete(uid(3)) is False
    assert ids_of(client.get("/tasks", params=params)) == [uid(99)]
    assert len(store) == 25
    assert store.get(uid(3)) is None

    store.set_sequence_template(PAGED_TASKS[0]["sequence_id"], TEMPLATE_Y)
    by_template = client.get("/tasks", params={"sequence_template_ids": TEMPLATE_Y})
    assert by_template.json()["total_count"] == 25  # make_task's tasks share one run


def test_the_store_keeps_its_own_copies() -> None:
    task = make_task(id=uid(1))
    store = TaskStore([task])
    task["status"] = "COMPLETED"
    store.get(uid(1))["status"] = "SKIPPED"
    assert store.all()[0]["status"] == "PENDING"
    with pytest.raises(ValueError, match="created_at"):
        store.upsert({"id": uid(2), "created_at": "not a time"})
    with pytest.raises(ValueError, match="id"):
        TaskStore([{"created_at": "2024-01-01T00:00:00Z"}])


def test_concurrent_clients_get_consistent_pages(serve: Serve, dataset: SimulatedDataset) -> None:
    api, _ = serve(TaskStore(dataset.tasks))
    expected = [t["id"] for t in dataset.tasks[:1600]]

    def fetch(page: int) -> list[str]:
        with loopback_client(api) as client:
            return ids_of(client.get("/tasks", params={"size": 100, "page": page}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(fetch, range(1, 17)))
    assert [i for page in pages for i in page] == expected


def test_stop_is_quick_with_idle_keep_alive_connections() -> None:
    api = SimulatedTopoApi(TaskStore([make_task()])).start()
    with loopback_client(api) as client:
        assert client.get("/tasks").status_code == 200  # leaves a keep-alive connection
        started = time.monotonic()
        api.stop()
        assert time.monotonic() - started < 2
        api.stop()  # idempotent
        with pytest.raises(httpx.TransportError):
            client.get("/tasks")
    with pytest.raises(RuntimeError, match="not running"):
        _ = api.base_url


# --- faults -----------------------------------------------------------------------------


@pytest.mark.waits
def test_rate_limit_refuses_a_burst_with_retry_after(serve: Serve) -> None:
    api, client = serve(TaskStore([make_task()]), faults=FaultPlan(rate_limit_per_minute=30))
    statuses = []
    for _ in range(100):
        response = client.get("/tasks")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    # The bucket holds a minute's worth (30); refusal comes right after it is spent.
    assert statuses == [200] * 30 + [429]
    body = assert_error(response, 429, "RateLimitIssue")
    assert body["data"] == {"limit_per_minute": 30, "retry_after_seconds": 2}
    # One request per 2 s comes back; the burst took well under 1 s of that.
    assert response.headers["retry-after"] == "2"
    assert client.get("/tasks").status_code == 429  # refused requests do not wait less
    time.sleep(2)
    assert client.get("/tasks").status_code == 200
    assert [r.status for r in api.requests][-3:] == [429, 429, 200]


@pytest.mark.waits
def test_a_client_paced_at_exactly_the_limit_is_never_refused(serve: Serve) -> None:
    plan = FaultPlan(rate_limit_per_minute=1200, rate_limit_burst=3)
    _, client = serve(TaskStore([make_task()]), faults=plan)
    # The pipeline's own controller, capped at the limit: one request every 50 ms.
    rate = RateController(1, cap_per_minute=1200)
    statuses = []
    for _ in range(40):
        ticket, _ = rate.acquire()
        statuses.append(client.get("/tasks").status_code)
        rate.finish(ticket, time.monotonic(), Outcome.ACCEPTED)
    assert statuses == [200] * 40

    unpaced = [client.get("/tasks").status_code for _ in range(40)]
    assert 429 in unpaced  # the same limit does bite a client that does not pace


def test_a_429_storm_hits_the_next_n_requests(serve: Serve) -> None:
    api, client = serve(TaskStore([make_task()]))
    api.faults = FaultPlan(force_429_count=3, retry_after_seconds=7)
    responses = [client.get("/tasks") for _ in range(4)]
    for response in responses[:3]:
        assert_error(response, 429, "RateLimitIssue")
        assert response.headers["retry-after"] == "7"
    assert responses[3].status_code == 200
    api.faults = FaultPlan(force_429_count=1)  # assigning a plan arms a new storm
    assert client.get("/tasks").status_code == 429
    assert client.get("/tasks").status_code == 200


def decisions(plan: FaultPlan, times: list[float]) -> list[int | None]:
    """The status the fault injector gives a request at each of ``times`` (None: 200)."""
    injector = FaultInjector(plan, now=0.0)
    return [injector.decide(now).status for now in times]


def test_a_token_bucket_allows_its_burst_then_the_rate() -> None:
    plan = FaultPlan(rate_limit_per_minute=60, rate_limit_burst=3)  # 1/s after 3
    # Five at once: the burst passes, the rest is refused; then one token per second.
    assert decisions(plan, [0, 0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0]) == [
        *[None] * 3,
        429,
        429,
        429,
        None,
        429,
        None,
        429,
    ]
    # Spaced at exactly the rate, nothing is ever refused.
    assert decisions(plan, [i * 1.0 for i in range(30)]) == [None] * 30


def test_a_sliding_window_without_burst_admits_one_request_per_interval() -> None:
    plan = FaultPlan(rate_limit_per_minute=120, rate_limiter="sliding_window")  # 1 per 0.5 s
    assert decisions(plan, [0, 0.1, 0.49, 0.5, 0.6, 1.0, 1.0]) == [
        None,
        429,
        429,
        None,
        429,
        None,
        429,
    ]
    # Idle time is not banked: after a long pause, still one per interval.
    assert decisions(plan, [0, 10, 10.1]) == [None, None, 429]


def test_a_sliding_window_counts_every_admission_in_its_window() -> None:
    plan = FaultPlan(
        rate_limit_per_minute=60, rate_limiter="sliding_window", rate_limit_window_seconds=3
    )  # 3 in any 3 s
    assert decisions(plan, [0, 0.1, 0.2, 0.3, 2.9, 3.0, 3.1, 3.2, 3.3]) == [
        None,
        None,
        None,
        429,
        429,
        None,
        None,
        None,
        429,
    ]


def test_a_refused_request_does_not_use_up_the_budget() -> None:
    for limiter in ("token_bucket", "sliding_window"):
        plan = FaultPlan(rate_limit_per_minute=60, rate_limit_burst=1, rate_limiter=limiter)
        hammering = [0.0, *(0.01 * i for i in range(1, 99)), 1.0]
        assert decisions(plan, hammering)[-1] is None, limiter


def test_a_scheduled_limit_change_applies_from_the_first_request() -> None:
    plan = FaultPlan(
        rate_limit_per_minute=600, rate_limit_burst=2, rate_limit_schedule=((10.0, 60.0),)
    )
    injector = FaultInjector(plan, now=0.0)
    # The schedule counts from the first request (t=5), not from the plan (t=0).
    before = [injector.decide(5.0 + 0.1 * i).status for i in range(100)]  # 10/s: all pass
    assert before == [None] * 100
    assert injector.limit_per_minute == 600
    after = [injector.decide(15.0 + 0.1 * i).status for i in range(1, 21)]  # now 1/s
    assert injector.limit_per_minute == 60
    assert after.count(None) == 3  # one token left from before, then one a second
    assert after.count(429) == 17


def test_set_rate_limit_changes_a_running_limit_and_keeps_its_state(serve: Serve) -> None:
    api, client = serve(TaskStore([make_task()]), faults=FaultPlan(rate_limit_per_minute=60))
    assert [client.get("/tasks").status_code for _ in range(3)] == [200] * 3
    api.set_rate_limit(2)  # the bucket keeps its tokens, capped at its capacity
    assert api.rate_limit_per_minute == 2
    statuses = [client.get("/tasks").status_code for _ in range(60)]
    assert statuses.index(429) == 57  # the rest of the 60-token burst, then refused
    api.set_rate_limit(None)
    assert [client.get("/tasks").status_code for _ in range(5)] == [200] * 5
    api.set_rate_limit(1)  # an unlimited API gets a fresh limiter of the plan's kind
    assert 429 in [client.get("/tasks").status_code for _ in range(5)]


def test_rate_limit_headers_describe_the_budget(serve: Serve) -> None:
    plan = FaultPlan(rate_limit_per_minute=60, rate_limit_burst=3, rate_limit_headers="ratelimit")
    _, client = serve(TaskStore([make_task()]), faults=plan)
    answers = [client.get("/tasks") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-limit"] for r in answers] == ["3"] * 4
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    # Seconds until the whole quota is back: 1 token a second.
    assert [int(r.headers["ratelimit-reset"]) for r in answers] == [1, 2, 3, 3]
    assert "x-ratelimit-limit" not in answers[0].headers


def test_x_ratelimit_headers_give_the_reset_as_a_unix_time(serve: Serve) -> None:
    plan = FaultPlan(
        rate_limit_per_minute=120, rate_limiter="sliding_window", rate_limit_headers="x-ratelimit"
    )
    _, client = serve(TaskStore([make_task()]), faults=plan)
    answer = client.get("/tasks")
    assert answer.headers["x-ratelimit-limit"] == "1"
    assert answer.headers["x-ratelimit-remaining"] == "0"
    reset = int(answer.headers["x-ratelimit-reset"])
    assert time.time() <= reset <= time.time() + 2
    assert "ratelimit-limit" not in answer.headers


def test_no_rate_limit_headers_unless_asked_or_without_a_limit(serve: Serve) -> None:
    for plan in (FaultPlan(rate_limit_per_minute=60), FaultPlan(rate_limit_headers="ratelimit")):
        _, client = serve(TaskStore([make_task()]), faults=plan)
        headers = client.get("/tasks").headers
        assert not any("ratelimit" in name for name in headers), plan


def test_retry_after_can_be_an_http_date(serve: Serve) -> None:
    plan = FaultPlan(force_429_count=1, retry_after_seconds=30, retry_after_format="http-date")
    api, client = serve(TaskStore([make_task()]), faults=plan)
    answer = client.get("/tasks")
    assert answer.status_code == 429
    moment = parsedate_to_datetime(answer.headers["retry-after"])
    assert 29 <= moment.timestamp() - time.time() <= 32
    assert api.requests[0].retry_after == 30
    assert api.requests[0].answered_at >= api.requests[0].received_at


# --- a hostile API ----------------------------------------------------------------------


def test_a_dripping_server_sends_the_answer_one_byte_at_a_time(serve: Serve) -> None:
    api, _ = serve(TaskStore([make_task()]), faults=FaultPlan(drip_seconds_per_byte=0.02))
    request = f"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_API_KEY}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as connection:
        connection.sendall(request.encode())
        chunks = [connection.recv(4096) for _ in range(5)]
    assert chunks == [b"H", b"T", b"T", b"P", b"/"]  # the status line, byte by byte
    _, quick = serve(TaskStore([make_task()]), faults=FaultPlan(drip_seconds_per_byte=0.0002))
    assert quick.get("/tasks").json()["total_count"] == 1


def test_a_huge_total_count_is_reported_whatever_matched(serve: Serve) -> None:
    plan = FaultPlan(total_count_override=10**12)
    _, client = serve(TaskStore([make_task()]), faults=plan)
    body = client.get("/tasks", params={"size": 100}).json()
    assert (body["total_count"], body["total_pages"], body["has_more"]) == (10**12, 10**10, True)
    assert len(body["items"]) == 1


def test_naive_timestamps_lose_their_offset_only(serve: Serve) -> None:
    task = make_task(created_at=T0)
    task["completed_at"] = "2024-03-01T00:30:00.250000Z"
    _, client = serve(TaskStore([task]), faults=FaultPlan(naive_timestamps=True))
    (item,) = client.get("/tasks").json()["items"]
    assert item["created_at"] == "2024-03-01T00:00:00"
    assert item["completed_at"] == "2024-03-01T00:30:00.250000"
    assert item["id"] == task["id"]
    assert item["status"] == task["status"]


def test_a_leaky_filter_serves_and_counts_tasks_before_the_lower_bound(serve: Serve) -> None:
    tasks = [make_task(created_at=T0 - timedelta(hours=h)) for h in (0, 1, 5)]
    _, client = serve(TaskStore(tasks), faults=FaultPlan(leak_outside_bounds_seconds=7200))
    after = (T0 - timedelta(minutes=1)).isoformat()
    body = client.get("/tasks", params={"created_at_after": after}).json()
    assert body["total_count"] == 2  # the task of T0 and the leaked one of T0 - 1 h


def served_copies(client: httpx.Client, size: int) -> list[dict[str, Any]]:
    """Every item of every page of a created_at-sorted walk, in order."""
    first = client.get("/tasks", params={"size": size}).json()
    items = list(first["items"])
    for page in range(2, first["total_pages"] + 1):
        items += client.get("/tasks", params={"size": size, "page": page}).json()["items"]
    assert first["total_count"] == 5  # the repeat is not counted
    return items


@pytest.mark.parametrize("size", [10, 2])  # the repeat on page 1 itself, and on page 3
def test_the_first_task_can_be_served_again_identical(serve: Serve, size: int) -> None:
    tasks = [make_task(created_at=T0 + timedelta(minutes=n)) for n in range(5)]
    _, client = serve(TaskStore(tasks), faults=FaultPlan(repeat_first_task="identical"))
    items = served_copies(client, size)
    assert [item["id"] for item in items] == [t["id"] for t in tasks] + [tasks[0]["id"]]
    assert items[-1] == items[0] == tasks[0]


def test_the_first_task_can_come_back_conflicting(serve: Serve) -> None:
    tasks = [make_task(created_at=T0 + timedelta(minutes=n), priority="TODAY") for n in range(5)]
    _, client = serve(TaskStore(tasks), faults=FaultPlan(repeat_first_task="conflicting"))
    items = served_copies(client, 2)
    assert items[:5] == tasks
    # Another state for the same instant: only the priority differs.
    assert items[5] == {**tasks[0], "priority": "EXTRA"}


def test_the_first_task_can_come_back_stale_after_a_newer_version(serve: Serve) -> None:
    tasks = [make_task(created_at=T0 + timedelta(minutes=n), priority="HOT") for n in range(5)]
    _, client = serve(TaskStore(tasks), faults=FaultPlan(repeat_first_task="stale"))
    items = served_copies(client, 2)
    newer = items[0]
    assert newer["id"] == tasks[0]["id"]
    assert newer["priority"] == "TODAY"
    assert parse_timestamp(newer["updated_at"]) == parse_timestamp(
        tasks[0]["updated_at"]
    ) + timedelta(minutes=1)
    assert items[1:5] == tasks[1:]
    assert items[5] == tasks[0]  # the stored, older version, served after the newer one


def test_a_full_last_page_has_no_room_for_the_repeat(serve: Serve) -> None:
    tasks = [make_task(created_at=T0 + timedelta(minutes=n)) for n in range(4)]
    _, client = serve(TaskStore(tasks), faults=FaultPlan(repeat_first_task="identical"))
    assert len(client.get("/tasks", params={"size": 2, "page": 2}).json()["items"]) == 2
    assert client.get("/tasks", params={"size": 2, "page": 3}).json()["items"] == []


def test_a_401_can_echo_the_key_it_was_sent(serve: Serve) -> None:
    _, client = serve(TaskStore([make_task()]), faults=FaultPlan(echo_key_in_401=True))
    body = assert_error(client.get("/tasks"), 401, "UnauthorizedIssue")
    assert DEMO_API_KEY in body["message"]


def test_a_parameter_can_be_refused_with_a_400_naming_it(serve: Serve) -> None:
    plan = FaultPlan(reject_parameter="created_at_after")
    _, client = serve(TaskStore([make_task()]), faults=plan)
    after = T0.isoformat()
    body = assert_error(
        client.get("/tasks", params={"created_at_after": after}), 400, "ValidationIssue"
    )
    assert body["data"]["field"] == "created_at_after"
    assert body["data"]["value"] == after
    # Authentication comes first, as for every other 400.
    assert_error(
        client.get("/tasks", headers={"Authorization": "Bearer nope"}), 401, "UnauthorizedIssue"
    )


def test_server_errors_have_the_error_body(serve: Serve) -> None:
    _, client = serve(TaskStore([make_task()]), faults=FaultPlan(error_5xx_rate=1.0, seed=3))
    statuses = set()
    for _ in range(30):
        response = client.get("/tasks")
        assert_error(response, response.status_code, "InternalIssue")
        statuses.add(response.status_code)
    assert statuses == {500, 502, 503}


def test_a_dropped_connection_sends_nothing(serve: Serve) -> None:
    api, client = serve(TaskStore([make_task()]), faults=FaultPlan(drop_rate=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/tasks")
    assert api.requests[-1].status is None
    api.faults = FaultPlan()
    assert client.get("/tasks").status_code == 200  # the client simply reconnects


def test_a_malformed_body_is_a_200_that_does_not_parse(serve: Serve) -> None:
    _, client = serve(TaskStore(PAGED_TASKS), faults=FaultPlan(malformed_rate=1.0))
    response = client.get("/tasks")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"items":[')
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_latency_is_added_to_every_request(serve: Serve) -> None:
    _, client = serve(TaskStore([make_task()]), faults=FaultPlan(latency_seconds=0.3))
    for path in ("/tasks", "/nowhere"):
        started = time.monotonic()
        client.get(path)
        assert time.monotonic() - started >= 0.3


def statuses_under(serve: Serve, plan: FaultPlan, requests: int = 40) -> list[object]:
    """What each of ``requests`` sequential requests got: a status, "drop" or "malformed"."""
    _, client = serve(TaskStore(PAGED_TASKS), faults=plan)
    outcomes: list[object] = []
    for _ in range(requests):
        try:
            response = client.get("/tasks")
        except httpx.RemoteProtocolError:
            outcomes.append("drop")
            continue
        try:
            response.json()
            outcomes.append(response.status_code)
        except json.JSONDecodeError:
            outcomes.append("malformed")
    return outcomes


def test_the_fault_sequence_is_deterministic_for_a_seed(serve: Serve) -> None:
    plan = FaultPlan(drop_rate=0.2, error_5xx_rate=0.3, malformed_rate=0.2, seed=11)
    first = statuses_under(serve, plan)
    assert statuses_under(serve, plan) == first
    assert {"drop", "malformed", 200} <= set(first)
    assert set(first) & {500, 502, 503}
    assert statuses_under(serve, FaultPlan(drop_rate=0.2, error_5xx_rate=0.3, seed=12)) != first


TIED_TASKS = [make_task(id=uid(n), created_at=T0) for n in range(1, 301)] + [
    make_task(id=uid(1000 + n), created_at=T0 + timedelta(seconds=n)) for n in range(1, 51)
]


def test_stable_order_breaks_ties_by_id_across_pages(serve: Serve) -> None:
    _, client = serve(TaskStore(TIED_TASKS))
    walked = [
        i
        for p in (1, 2, 3, 4)
        for i in ids_of(client.get("/tasks", params={"size": 100, "page": p}))
    ]
    assert walked == [uid(n) for n in range(1, 301)] + [uid(1000 + n) for n in range(1, 51)]
    again = ids_of(client.get("/tasks", params={"size": 100, "page": 2}))
    assert again == walked[100:200]


def test_unstable_tie_order_changes_between_requests(serve: Serve) -> None:
    api, client = serve(TaskStore(TIED_TASKS), faults=FaultPlan(unstable_tie_order=True))
    params = {"size": 100, "page": 2, "sort_by": "created_at"}
    first, second = (ids_of(client.get("/tasks", params=params)) for _ in range(2))
    assert first != second
    assert set(first) <= {uid(n) for n in range(1, 301)}
    # Only ties move: the rows after the tie group keep their order.
    last = ids_of(client.get("/tasks", params={"size": 100, "page": 4}))
    assert last == [uid(1000 + n) for n in range(1, 51)]
    api.faults = FaultPlan()
    assert ids_of(client.get("/tasks", params=params)) == [uid(n) for n in range(101, 201)]


def test_fault_plans_reject_impossible_values() -> None:
    for bad in (
        {"drop_rate": 1.5},
        {"error_5xx_rate": -0.1},
        {"rate_limit_per_minute": 0},
        {"latency_seconds": -1},
        {"force_429_count": -1},
        {"rate_limit_burst": 0},
        {"rate_limiter": "leaky"},
        {"rate_limit_window_seconds": 0},
        {"rate_limit_schedule": ((5.0, 0.0),)},
        {"rate_limit_headers": "draft"},
        {"retry_after_format": "minutes"},
        {"total_count_override": -1},
        {"repeat_first_task": "twice"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FaultPlan(**bad)


def test_requests_are_recorded(serve: Serve) -> None:
    api, client = serve(TaskStore([make_task()]))
    client.get("/tasks", params={"types": ["CALL", "EMAIL_REPLY"], "size": 5})
    httpx.get(f"{api.base_url}/tasks")
    first, second = api.requests
    assert first.path == "/v1/tasks"
    assert first.params == {"types": ["CALL", "EMAIL_REPLY"], "size": ["5"]}
    assert (first.status, first.auth_ok) == (200, True)
    assert (second.status, second.auth_ok) == (401, False)
    assert first.received_at <= second.received_at <= time.monotonic()
    api.clear_requests()
    assert api.requests == []


# --- the data set -----------------------------------------------------------------------


def day_window(spec: DatasetSpec, day: date) -> TaskQuery:
    start, end = spec.day_bounds(day)
    # created_at_after is exclusive: one microsecond earlier includes `start` itself.
    return TaskQuery(created_after=timestamp_key(start) - 1, created_before=timestamp_key(end))


def test_the_data_set_is_deterministic_for_a_seed() -> None:
    spec = DatasetSpec(seed=3, days=3, tasks_per_day=[40, 500, 0])
    assert generate_dataset(spec) == generate_dataset(spec)
    assert generate_tasks(DatasetSpec(seed=4, days=3, tasks_per_day=[40, 500, 0])) != (
        generate_tasks(spec)
    )


def test_the_simulators_contract_is_the_documented_one() -> None:
    # topo-api.md, section 3 (the task object). The simulator declares its own copy; the
    # pipeline's client, declared apart, must read the same contract.
    documented_fields = (
        "id", "organization_id", "type", "priority", "status", "sequence_id",
        "assignee_user_id", "disposition", "reopened_at", "reopen_reason", "skipped_at",
        "completed_at", "created_at", "updated_at",
    )  # fmt: skip
    documented_enums = {
        "type": {"CALL", "EMAIL_REPLY", "LINKEDIN_REPLY", "NEW_LEAD_REVIEW"},
        "priority": {"HOT", "TODAY", "EXTRA"},
        "status": {"PENDING", "IN_PROGRESS", "COMPLETED", "SKIPPED"},
        "disposition": {"ANSWERED", "VOICEMAIL_LEFT", "NO_ANSWER"},
    }
    simulated_enums = {
        "type": contract.TASK_TYPES,
        "priority": contract.PRIORITIES,
        "status": contract.STATUSES,
        "disposition": contract.DISPOSITIONS,
    }
    assert contract.TASK_FIELDS == documented_fields == models.TASK_FIELDS
    timestamps = {name for name in documented_fields if name.endswith("_at")}
    assert contract.TIMESTAMP_FIELDS == timestamps == models.TIMESTAMP_FIELDS
    assert simulated_enums == documented_enums
    assert simulated_enums == {name: models.KNOWN_ENUM_VALUES[name] for name in simulated_enums}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T09:30:00Z", "2024-03-01T09:30:00Z"),
        ("2024-03-01T09:30:00.250000Z", "2024-03-01T09:30:00.250000Z"),
        ("2024-03-01T10:30:00+01:00", "2024-03-01T09:30:00Z"),  # an offset: to UTC
        ("2024-03-01T09:30:00", "2024-03-01T09:30:00Z"),  # naive: read as UTC
    ],
)
def test_the_simulator_reads_and_writes_timestamps_in_utc(text: str, expected: str) -> None:
    parsed = contract.parse_timestamp(text)
    assert parsed.utcoffset() == timedelta(0)
    assert contract.format_timestamp(parsed) == expected


def test_the_simulator_refuses_to_format_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        contract.format_timestamp(datetime(2024, 3, 1, 9, 30))


def test_the_data_set_straddles_the_pipelines_default_sla_targets() -> None:
    # Copied, not imported, by the simulator; this keeps the copy honest.
    assert SLA_TARGET_MINUTES == DEFAULT_SLA_TARGET_MINUTES == SLA_MINUTES


def test_default_volumes_vary_by_day(dataset: SimulatedDataset) -> None:
    per_day = collections.Counter(t["created_at"][:10] for t in dataset.tasks)
    assert len(per_day) == 14
    assert max(per_day.values()) >= 2000
    assert min(per_day.values()) <= 300


def test_the_data_set_holds_every_case_the_pipeline_must_handle(dataset: SimulatedDataset) -> None:
    tasks = dataset.tasks
    for name, values in (("type", TASK_TYPES), ("priority", PRIORITIES), ("status", STATUSES)):
        assert {t[name] for t in tasks} == values
    assignees = collections.Counter(t["assignee_user_id"] for t in tasks)
    assert None in assignees
    assert len(assignees) - 1 == 8
    assert {t["disposition"] for t in tasks} == DISPOSITIONS | {None}
    assert {t["sequence_id"] for t in tasks} <= set(dataset.sequence_templates)
    assert len(set(dataset.sequence_templates.values())) > 1
    reopened = [t for t in tasks if t["reopened_at"] is not None]
    assert reopened
    assert all(t["reopen_reason"] == "REMINDER_RULE" for t in reopened)
    assert all(t["reopen_reason"] is None for t in tasks if t["reopened_at"] is None)
    for priority, target in SLA_MINUTES.items():
        for status, field in (("COMPLETED", "completed_at"), ("SKIPPED", "skipped_at")):
            minutes = [
                (parse_timestamp(t[field]) - parse_timestamp(t["created_at"])).total_seconds() / 60
                for t in tasks
                if t["priority"] == priority and t["status"] == status
            ]
            assert any(m <= target for m in minutes), (priority, status)
            assert any(m > target for m in minutes), (priority, status)


def test_timestamps_are_consistent(dataset: SimulatedDataset) -> None:
    as_of = DatasetSpec(start_date=date(2024, 1, 1), days=14).effective_as_of()
    for task in dataset.tasks:
        stamps = {k: parse_timestamp(v) for k, v in task.items() if k.endswith("_at") and v}
        assert all(v.microsecond == 0 for v in stamps.values())
        assert min(stamps.values()) == stamps["created_at"]
        assert max(stamps.values()) == stamps["updated_at"] <= as_of
        status = task["status"]
        assert (task["completed_at"] is not None) == (status == "COMPLETED"), task
        assert (task["skipped_at"] is not None) == (status == "SKIPPED"), task
        if task["disposition"] is not None:
            assert (task["type"], status) == ("CALL", "COMPLETED")
        if task["reopened_at"] and task["completed_at"]:
            assert stamps["completed_at"] >= stamps["reopened_at"]


def test_a_300_task_tie_straddles_page_boundaries(dataset: SimulatedDataset) -> None:
    spec = DatasetSpec(start_date=date(2024, 1, 1), days=14)
    ties = collections.Counter(t["created_at"] for t in dataset.tasks)
    instant, size = ties.most_common(1)[0]
    assert size == 300
    day = parse_timestamp(instant).date()
    selection = TaskStore(dataset.tasks).select(day_window(spec, day))
    rows = [json.loads(row) for row in selection.page(0, len(selection))]
    first = next(i for i, row in enumerate(rows) if row["created_at"] == instant)
    assert first % 100 == 50  # rows first..first+299 span 4 pages of 100
    assert all(row["created_at"] == instant for row in rows[first : first + 300])


def test_midnight_tasks_belong_to_the_day_in_the_zone(serve: Serve) -> None:
    spec = DatasetSpec(
        seed=5, start_date=date(2024, 3, 9), days=3, tasks_per_day=[60, 60, 60],
        timezone="America/New_York",
    )  # fmt: skip  # 2024-03-10 is 23 hours long there (DST starts)
    data = generate_dataset(spec)
    _, client = serve(TaskStore(data.tasks))
    counts = []
    for day in spec.dates:
        start, end = spec.day_bounds(day)
        midnight = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert sum(t["created_at"] == midnight for t in data.tasks) >= 1
        assert any(
            parse_timestamp(t["created_at"]) == end - timedelta(seconds=1) for t in data.tasks
        )
        params = {
            "created_at_after": (start - timedelta(seconds=1)).isoformat(),
            "created_at_before": end.isoformat(),
            "size": 100,
        }
        items = client.get("/tasks", params=params).json()["items"]
        in_day = [i for i in items if parse_timestamp(i["created_at"]) >= start]
        assert in_day[0]["created_at"] == midnight
        counts.append(len(in_day))
    assert counts == [60, 60, 60]
    assert spec.day_bounds(date(2024, 3, 9))[0] == datetime(2024, 3, 9, 5, tzinfo=UTC)
    assert spec.day_bounds(date(2024, 3, 11))[0] == datetime(2024, 3, 11, 4, tzinfo=UTC)


def test_as_of_is_the_simulated_present() -> None:
    as_of = datetime(2024, 1, 2, 12, 0, tzinfo=UTC)
    spec = DatasetSpec(seed=1, days=2, tasks_per_day=[400, 400], as_of=as_of)
    tasks = generate_tasks(spec)
    assert 400 < len(tasks) < 800  # the afternoon of the last day has not happened yet
    latest = max(parse_timestamp(t["updated_at"]) for t in tasks)
    assert latest <= as_of
    recent = [t for t in tasks if parse_timestamp(t["created_at"]) > as_of - timedelta(hours=1)]
    assert any(t["status"] in ("PENDING", "IN_PROGRESS") for t in recent)


def test_the_whole_day_pages_through_completely(serve: Serve, dataset: SimulatedDataset) -> None:
    spec = DatasetSpec(start_date=date(2024, 1, 1), days=14)
    _, client = serve(TaskStore(dataset.tasks))
    start, end = spec.day_bounds(date(2024, 1, 1))
    params: dict[str, Any] = {
        "created_at_after": (start - timedelta(seconds=1)).isoformat(),
        "created_at_before": end.isoformat(),
        "size": 100,
        "sort_by": "created_at",
    }
    seen: list[str] = []
    page = 1
    while True:
        body = client.get("/tasks", params={**params, "page": page}).json()
        seen.extend(item["id"] for item in body["items"])
        if not body["has_more"]:
            break
        page += 1
    expected = [t["id"] for t in dataset.tasks if t["created_at"].startswith("2024-01-01")]
    assert seen == expected
    assert body["total_count"] == len(expected)
    assert body["total_pages"] == page


def test_make_task_builds_valid_consistent_tasks() -> None:
    pending = make_task()
    assert list(pending) == list(TASK_FIELDS)
    assert pending["updated_at"] == pending["created_at"]
    call = make_task(type="CALL", status="COMPLETED", created_at=T0)
    assert call["completed_at"] == "2024-03-01T00:30:00Z" == call["updated_at"]
    assert call["disposition"] == "ANSWERED"
    skipped = make_task(status="SKIPPED", created_at="2024-03-01T00:00:00Z")
    assert skipped["skipped_at"] == skipped["updated_at"] == "2024-03-01T00:30:00Z"
    assert make_task()["id"] != make_task()["id"]
    assert make_task(new_field=1)["new_field"] == 1


# --- the command line -------------------------------------------------------------------


def test_the_command_line_switches_every_limiter_and_hostile_fault() -> None:
    args = argument_parser().parse_args(
        [
            *("--rate-limit-per-minute", "600", "--rate-limiter", "sliding_window"),
            *("--rate-limit-window", "2", "--rate-limit-schedule", "10:120,30.5:300"),
            *("--rate-limit-headers", "x-ratelimit", "--retry-after-format", "http-date"),
            *("--drip-seconds-per-byte", "0.5", "--total-count", "1000000000000"),
            *("--naive-timestamps", "--leak-outside-bounds", "3600", "--echo-key-in-401"),
            *("--repeat-first-task", "conflicting"),
        ]
    )
    assert fault_plan(args) == FaultPlan(
        rate_limit_per_minute=600,
        rate_limiter="sliding_window",
        rate_limit_window_seconds=2,
        rate_limit_schedule=((10.0, 120.0), (30.5, 300.0)),
        rate_limit_headers="x-ratelimit",
        retry_after_format="http-date",
        drip_seconds_per_byte=0.5,
        total_count_override=10**12,
        naive_timestamps=True,
        leak_outside_bounds_seconds=3600,
        echo_key_in_401=True,
        repeat_first_task="conflicting",
    )
    bucket = fault_plan(
        argument_parser().parse_args(["--rate-limit-per-minute", "300", "--rate-limit-burst", "10"])
    )
    assert (bucket.rate_limiter, bucket.rate_limit_burst) == ("token_bucket", 10)
    with pytest.raises(SystemExit):
        argument_parser().parse_args(["--rate-limit-schedule", "soon:120"])


def test_the_command_line_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        simulator_main(["--host", "0.0.0.0"])  # noqa: S104 - the value under test
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LocalHost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    check_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::", "example.com", ""])  # noqa: S104
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(NotLoopbackError, match="not a loopback address"):
        check_loopback(host)


def test_the_command_line_serves_until_sigterm() -> None:
    command = [
        sys.executable, "-m", "topo_pipeline.simulator", "--port", "0", "--days", "2",
        "--end-date", "2024-01-02", "--tasks-per-day", "30", "--seed", "9",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"TOPO_API_BASE_URL=(\S+) TOPO_API_KEY=(\S+)", line)
            assert match, line
            base_url, key = match.groups()
            assert base_url.startswith("http://127.0.0.1:")
            assert key == DEMO_API_KEY
            response = httpx.get(f"{base_url}/tasks", headers={"Authorization": f"Bearer {key}"})
            assert response.json()["total_count"] == 60
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_threads_do_not_leak() -> None:
    before = threading.active_count()
    with (
        SimulatedTopoApi(TaskStore([make_task()])) as api,
        loopback_client(api) as client,
    ):
        for _ in range(5):
            client.get("/tasks")
    assert threading.active_count() == before
