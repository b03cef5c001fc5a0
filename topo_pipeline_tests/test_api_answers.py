"""What Topo's answers mean, on real ``httpx.Response`` objects: the error each status
becomes, which are retried, and the waits and budgets the headers ask for."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from topo_pipeline.api.answers import (
    api_error,
    is_retriable,
    rate_limit_budget,
    retry_after_seconds,
    too_long_a_wait,
)
from topo_pipeline.api.errors import (
    TopoApiError,
    TopoAuthError,
    TopoPermissionError,
    TopoRequestError,
    TopoUnavailableError,
)
from topo_pipeline.api.pacing import Budget

KEY = "topo_Sup3rS3cretKeyValue"


def redact(text: str) -> str:
    return text.replace(KEY, "[API key removed]")


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "retriable"),
    [(400, False), (401, False), (403, False), (404, False), (409, False), (422, False),
     (429, True), (500, True), (502, True), (503, True), (504, True)],
)  # fmt: skip
def test_429_and_5xx_are_retried_other_errors_are_not(status: int, retriable: bool) -> None:
    assert is_retriable(status) is retriable


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (401, TopoAuthError, "TOPO_API_KEY"),
        (403, TopoPermissionError, "tasks:read"),
        (400, TopoRequestError, "refused a request parameter (field: size)"),
        (404, TopoRequestError, "TOPO_API_BASE_URL"),
        (409, TopoRequestError, "Topo answered HTTP 409"),
        (422, TopoRequestError, "business rule"),
        (429, TopoUnavailableError, "TOPO_API_REQUESTS_PER_MINUTE"),
        (503, TopoUnavailableError, "server errors through every retry"),
    ],
)
def test_each_error_status_becomes_its_error_with_the_request_id(
    status: int, error: type[TopoApiError], says: str
) -> None:
    body = {
        "status_code": status,
        "type": "SomeIssue",
        "message": f"bad key {KEY}",
        "data": {"field": "size"},
        "request_id": "req_01",
    }
    raised = api_error(answer(status, body), redact)
    assert type(raised) is error
    assert says in str(raised)
    assert (raised.status_code, raised.error_type, raised.request_id) == (
        status,
        "SomeIssue",
        "req_01",
    )
    assert "request_id: req_01" in str(raised)
    assert KEY not in str(raised)
    assert raised.api_message == "bad key [API key removed]"


def test_an_error_answer_without_a_json_body_still_names_the_status() -> None:
    raised = api_error(httpx.Response(502, text="<html>Bad gateway</html>"), redact)
    assert isinstance(raised, TopoUnavailableError)
    assert raised.request_id is None
    assert "HTTP 502" in str(raised)
    assert "request_id: not given" in str(raised)
    header_only = api_error(httpx.Response(500, headers={"X-Request-Id": "req_h"}), redact)
    assert header_only.request_id == "req_h"


def test_too_long_a_wait_names_the_wait_the_limit_and_the_setting() -> None:
    failure = api_error(answer(429, {"request_id": "req_02"}), redact)
    error = too_long_a_wait(failure, 7200.0, 300.0)
    assert isinstance(error, TopoUnavailableError)
    assert "2.0 h (7200 s)" in str(error)
    assert "5 min (300 s)" in str(error)
    assert "TOPO_API_MAX_RETRY_AFTER_SECONDS" in str(error)
    assert (error.status_code, error.request_id) == (429, "req_02")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("", None), ("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("soon", None)],
)
def test_retry_after_in_seconds(value: str | None, seconds: float | None) -> None:
    headers = {} if value is None else {"Retry-After": value}
    assert retry_after_seconds(answer(429, **headers)) == seconds


def test_retry_after_as_an_http_date() -> None:
    in_a_minute = formatdate(time.time() + 60, usegmt=True)
    waited = retry_after_seconds(answer(429, **{"Retry-After": in_a_minute}))
    assert waited is not None
    assert 55 <= waited <= 60
    past = formatdate(time.time() - 60, usegmt=True)
    assert retry_after_seconds(answer(429, **{"Retry-After": past})) == 0.0


@pytest.mark.parametrize(
    ("headers", "budget"),
    [
        ({}, None),
        (
            {"RateLimit-Limit": "100", "RateLimit-Remaining": "7", "RateLimit-Reset": "30"},
            Budget(limit=100, remaining=7, reset_in=30.0),
        ),
        # The structured-field form: only the leading number counts.
        (
            {"RateLimit-Limit": "100, 100;w=60", "RateLimit-Remaining": "0;w=60"},
            Budget(limit=100, remaining=0, reset_in=1.0),
        ),
        ({"X-RateLimit-Remaining": "12"}, Budget(limit=12, remaining=12, reset_in=1.0)),
        ({"RateLimit-Remaining": "lots", "RateLimit-Limit": "5"}, None),
        ({"RateLimit-Remaining": "nan"}, None),
    ],
)
def test_rate_limit_headers_give_a_budget(headers: dict[str, str], budget: Budget | None) -> None:
    assert rate_limit_budget(httpx.Headers(headers)) == budget


def test_a_reset_given_as_a_unix_time_is_read_as_seconds_from_now() -> None:
    headers = httpx.Headers(
        {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0",
         "X-RateLimit-Reset": str(int(time.time()) + 20)}
    )  # fmt: skip
    budget = rate_limit_budget(headers)
    assert budget is not None
    assert (budget.limit, budget.remaining) == (60, 0)
    assert 18 <= budget.reset_in <= 20
