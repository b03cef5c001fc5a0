"""The client against a hostile or broken API: it must not hang, exhaust memory, mislead or leak.

Each test serves the simulator with one of its hostile faults (``FaultPlan``) and checks
that the client fails at once with an error naming the cause, or counts and reports what
it refused, and that the API key appears in no error text or log line.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from topo_pipeline.api.config import ClientConfig, validate_base_url
from topo_pipeline.api.errors import (
    TopoAuthError,
    TopoConfigError,
    TopoDataError,
    TopoTransportError,
)
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import FaultPlan, make_task
from topo_pipeline_tests.api_harness import (
    SECRET_KEY,
    Serve,
    default_client,
    fetch_window,
    make_window,
)

DAY = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = make_window(DAY, DAY + timedelta(days=1))


def test_a_server_that_drips_its_answer_is_cut_off_at_the_request_deadline(serve: Serve) -> None:
    # One byte every 20 ms: each byte arrives well within the read timeout, so without an
    # overall deadline a page would take ~20 s (and hours against a slower drip).
    api = serve([make_task(created_at=DAY)], FaultPlan(drip_seconds_per_byte=0.02))
    with (
        default_client(
            api, request_deadline_seconds=0.3, max_attempts=2, request_timeout_seconds=5.0
        ) as client,
        pytest.raises(TopoTransportError) as caught,
    ):
        fetch_window(client, WINDOW)
    assert "TOPO_API_REQUEST_DEADLINE_SECONDS" in str(caught.value)
    assert "0.3 s" in str(caught.value)
    assert client.stats.transport_errors == 2
    assert len(api.requests) == 2  # retried once, then failed


def test_an_answer_within_the_deadline_is_not_affected(serve: Serve) -> None:
    api = serve([make_task(created_at=DAY)], FaultPlan(drip_seconds_per_byte=0.0002))
    with default_client(api, request_deadline_seconds=10.0) as client:
        tasks, result = fetch_window(client, WINDOW)
    assert len(tasks) == 1
    assert result.in_window == 1


def test_an_implausible_total_count_fails_at_once_without_requesting_its_pages(
    serve: Serve,
) -> None:
    api = serve([make_task(created_at=DAY)], FaultPlan(total_count_override=10**12))
    with default_client(api) as client, pytest.raises(TopoDataError) as caught:
        fetch_window(client, WINDOW)
    message = str(caught.value)
    assert "1,000,000,000,000" in message
    assert "TOPO_API_MAX_TASKS_PER_WINDOW" in message
    assert len(api.requests) == 1  # page 1 only: no 10^10 pages queued


def test_the_total_count_bound_is_configurable(serve: Serve) -> None:
    tasks = [make_task(created_at=DAY + timedelta(minutes=i)) for i in range(150)]
    api = serve(tasks, FaultPlan())
    with default_client(api, max_tasks_per_window=100) as client, pytest.raises(TopoDataError):
        fetch_window(client, WINDOW)
    with default_client(api, max_tasks_per_window=150) as client:
        assert len(fetch_window(client, WINDOW)[0]) == 150


def test_timestamps_without_an_offset_are_refused_naming_the_task(serve: Serve) -> None:
    task = make_task(created_at=DAY + timedelta(hours=3))
    api = serve([task], FaultPlan(naive_timestamps=True))
    with default_client(api) as client, pytest.raises(TopoDataError) as caught:
        fetch_window(client, WINDOW)
    message = str(caught.value)
    assert "no UTC offset" in message
    assert task["id"] in message
    assert len(api.requests) == 1  # refused, not retried as if it were a garbled body


def test_tasks_outside_the_requested_bounds_are_counted_warned_and_not_landed(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    inside = [make_task(created_at=DAY + timedelta(hours=h)) for h in (0, 5, 23)]
    last_second = make_task(created_at=DAY - timedelta(milliseconds=300))  # in the query
    leaked = [make_task(created_at=DAY - timedelta(minutes=m)) for m in (5, 30, 50)]
    api = serve([*inside, last_second, *leaked], FaultPlan(leak_outside_bounds_seconds=3600))

    with caplog.at_level(logging.WARNING), default_client(api) as client:
        tasks, result = fetch_window(client, WINDOW)

    assert {t.id for t in tasks} == {t["id"] for t in inside}
    assert result.api_total == 7  # what Topo counted, the leaked tasks included
    assert (result.in_window, result.before_window, result.out_of_bounds) == (3, 1, 3)
    # Topo's own count for the window, which the landing is checked against: 6, not 3.
    assert result.expected_in_window == 6
    warnings = [r.getMessage() for r in caplog.records if "outside the bounds" in r.getMessage()]
    assert len(warnings) == 1  # once per window, not per task
    assert "count_matches_api_total" in warnings[0]


def test_a_server_that_echoes_the_key_has_it_scrubbed_from_every_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    api = serve(
        [make_task(created_at=DAY)],
        FaultPlan(echo_key_in_401=True),
        api_keys={SECRET_KEY: frozenset({"tasks:read"})},
    )
    with (
        caplog.at_level(logging.DEBUG),
        default_client(api, key=SECRET_KEY) as client,
        pytest.raises(TopoAuthError) as caught,
    ):
        fetch_window(client, WINDOW)
    error = caught.value
    assert "[API key removed]" in str(error)  # the server did echo it
    for text in (str(error), repr(error), error.api_message or "", caplog.text):
        assert SECRET_KEY not in text
        assert SECRET_KEY[5:25] not in text


@pytest.mark.parametrize(
    "url",
    [
        "https://admin:Pa55word-xyz@api.topo.io/v1",
        "https://Pa55word-xyz@api.topo.io/v1",
        "http://admin:Pa55word-xyz@127.0.0.1:8765/v1",
    ],
)
def test_a_base_url_with_credentials_is_refused_at_load_without_repeating_them(
    url: str,
) -> None:
    for attempt in (
        lambda: validate_base_url(url),
        lambda: Settings.from_env({"TOPO_API_BASE_URL": url}),
        lambda: ClientConfig(base_url=url),
    ):
        with pytest.raises(TopoConfigError) as caught:
            attempt()
        message = str(caught.value)
        assert "TOPO_API_BASE_URL" in message
        assert "user name or password" in message
        assert "Pa55word" not in message
        assert "admin" not in message
