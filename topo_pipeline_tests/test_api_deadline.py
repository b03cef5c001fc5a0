"""The deadline transport on its own, under a plain ``httpx.Client``: answers pass through
unchanged, a dripping answer is cut off at the deadline, and httpcore's errors reach the
caller as httpx's."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import httpx
import pytest

from topo_pipeline.api.deadline import DeadlineTransport, shared_ssl_context
from topo_pipeline.simulator import DEMO_API_KEY, FaultPlan, make_task
from topo_pipeline_tests.api_harness import Serve

DAY = datetime(2024, 3, 1, tzinfo=UTC)
LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=2)


def client(deadline: float) -> httpx.Client:
    return httpx.Client(
        transport=DeadlineTransport(deadline, LIMITS),
        headers={"Authorization": f"Bearer {DEMO_API_KEY}"},
        timeout=5.0,
    )


def test_answers_pass_through_with_status_headers_and_body(serve: Serve) -> None:
    task = make_task(created_at=DAY)
    api = serve([task])
    with client(deadline=10.0) as http:
        ok = http.get(f"{api.base_url}/tasks", params={"size": 10})
        refused = http.get(f"{api.base_url}/tasks", params={"size": 500})
        again = http.get(f"{api.base_url}/tasks")  # on the kept-alive connection
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/json")
    assert [item["id"] for item in ok.json()["items"]] == [task["id"]]
    assert refused.status_code == 400
    assert refused.json()["type"] == "ValidationIssue"
    assert again.status_code == 200


def test_a_dripping_answer_is_cut_off_at_the_deadline(serve: Serve) -> None:
    # Every byte comes within the 5 s read timeout; the whole answer would take seconds.
    api = serve([make_task(created_at=DAY)], FaultPlan(drip_seconds_per_byte=0.02))
    started = time.monotonic()
    with client(deadline=0.3) as http, pytest.raises(httpx.ReadTimeout):
        http.get(f"{api.base_url}/tasks")
    assert time.monotonic() - started < 2.0


def test_a_refused_connection_is_httpxs_connect_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with client(deadline=5.0) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/v1/tasks")


def test_the_tls_context_is_built_once_per_process() -> None:
    assert shared_ssl_context() is shared_ssl_context()
