"""A real HTTP server on loopback that implements Topo's ``GET /v1/tasks``.

:class:`SimulatedTopoApi` follows the contract in ``topo-api.md`` (sections 2-4 and 7-10):
bearer auth with scopes, every query parameter of List Tasks, strict created-at bounds, the
page envelope, and Topo's error body on every error. On top of that it injects the faults
of a :class:`~topo_pipeline.simulator.faults.FaultPlan`, switchable while it runs. API keys
are never written to a response or a log. The order in which a request is judged, and why
the server keeps connections alive: ``simulator/README.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import logging
import math
import random
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from topo_pipeline.simulator.contract import PRIORITIES, STATUSES, TASK_TYPES, parse_timestamp
from topo_pipeline.simulator.faults import (
    FaultDecision,
    FaultInjector,
    FaultKind,
    FaultPlan,
    repeat_first_task,
)
from topo_pipeline.simulator.limits import LimitState
from topo_pipeline.simulator.store import TaskQuery, TaskStore, timestamp_key

log = logging.getLogger(__name__)

#: A key with the ``tasks:read`` scope, accepted by default (it is not a secret).
DEMO_API_KEY = "sim-demo-key"
#: A valid key without ``tasks:read`` (only ``contacts:read``): List Tasks answers 403.
NO_SCOPE_API_KEY = "sim-no-scope-key"
DEFAULT_API_KEYS: Mapping[str, frozenset[str]] = {
    DEMO_API_KEY: frozenset({"tasks:read"}),
    NO_SCOPE_API_KEY: frozenset({"contacts:read"}),
}
REQUIRED_SCOPE = "tasks:read"
TASKS_PATH = "/v1/tasks"

MAX_PAGE_SIZE = 100
SORT_FIELDS = frozenset({"created_at", "updated_at"})
SORT_ORDERS = frozenset({"asc", "desc"})
_SINGLE_VALUED = (
    "page",
    "size",
    "sort_by",
    "sort_order",
    "sequence_id",
    "status",
    "assignee_user_id",
    "created_at_after",
    "created_at_before",
)
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# The "Z" that ends a timestamp value in the pre-encoded JSON of a task.
_OFFSET_Z = re.compile(rb'(\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z(?=")')
_MAX_DISCARDED_BODY = 1 << 20
_SERVER_ERROR_MESSAGES = {
    500: "Internal server error.",
    502: "Bad gateway: an upstream service did not answer.",
    503: "Service temporarily unavailable.",
}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server received, for tests to inspect.

    Attributes:
        received_at: ``time.monotonic()`` when the request was read.
        path: the URL path, without the query string.
        params: the query parameters, each with all its values in order.
        status: the HTTP status answered; ``None`` if the connection was dropped.
        auth_ok: whether the request carried a known key with the ``tasks:read`` scope
            (evaluated for every request, also one that a fault answered).
        answered_at: ``time.monotonic()`` just before the answer was written (after the
            latency), or when the connection was dropped.
        retry_after: the seconds a 429 answer's ``Retry-After`` asked for, else ``None``.
    """

    received_at: float
    path: str
    params: dict[str, list[str]]
    status: int | None
    auth_ok: bool
    answered_at: float = 0.0
    retry_after: float | None = None


class ApiError(Exception):
    """An error answer with Topo's error body."""

    def __init__(
        self, status: int, issue: str, message: str, data: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.issue = issue
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        """The JSON error body, with a fresh ``request_id``."""
        body: dict[str, Any] = {
            "status_code": self.status,
            "type": self.issue,
            "message": self.message,
        }
        if self.data is not None:
            body["data"] = dict(self.data)
        body["request_id"] = new_request_id()
        return body


def new_request_id() -> str:
    """A gateway-style request id: ``req_`` + 26 lowercase Crockford base32 characters.

    Like a ULID: 10 characters of millisecond time, then 16 of randomness.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(secrets.token_bytes(10))
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "req_" + "".join(reversed(chars))


def parse_list_tasks_params(params: Mapping[str, list[str]]) -> tuple[TaskQuery, int, int]:
    """Validate the query parameters of ``GET /v1/tasks``.

    Unknown parameters are ignored. A single-valued parameter given more than once is an
    error (``status`` is one value, not an array), as is an empty value.

    Returns:
        The filters and order, the page number and the page size.

    Raises:
        ApiError: a 400 ``ValidationIssue`` whose ``data.field`` names the parameter.
    """
    for name in _SINGLE_VALUED:
        if len(params.get(name, ())) > 1:
            raise _invalid(name, ",".join(params[name]), "takes a single value, not a list")

    def single(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    page = _integer("page", single("page"), default=1, low=1, high=None)
    size = _integer("size", single("size"), default=10, low=1, high=MAX_PAGE_SIZE)
    sort_by = _choice("sort_by", single("sort_by"), SORT_FIELDS)
    sort_order = _choice("sort_order", single("sort_order"), SORT_ORDERS) or "asc"
    status = _choice("status", single("status"), STATUSES)
    types = _choices("types", params.get("types"), TASK_TYPES)
    priorities = _choices("priorities", params.get("priorities"), PRIORITIES)
    sequence_id = _uuid("sequence_id", single("sequence_id"))
    assignee = _uuid("assignee_user_id", single("assignee_user_id"))
    template_values = params.get("sequence_template_ids")
    templates = None
    if template_values:
        templates = frozenset(_uuid("sequence_template_ids", v) or "" for v in template_values)
    after = _datetime("created_at_after", single("created_at_after"))
    before = _datetime("created_at_before", single("created_at_before"))
    query = TaskQuery(
        created_after=after,
        created_before=before,
        # Without sort_by the order is created_at then id: what the API's storage gives.
        sort_by=sort_by or "created_at",
        descending=sort_order == "desc",
        sequence_id=sequence_id,
        sequence_template_ids=templates,
        types=types,
        status=status,
        priorities=priorities,
        assignee_user_id=assignee,
    )
    return query, page, size


class SimulatedTopoApi:
    """The simulated Topo API, served over HTTP on a loopback address.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`)::

        with SimulatedTopoApi(TaskStore(tasks)) as api:
            httpx.get(f"{api.base_url}/tasks", headers={"Authorization": f"Bearer {DEMO_API_KEY}"})

    Args:
        store: the tasks served; mutations show up in the next request.
        api_keys: accepted keys and their scopes; default :data:`DEFAULT_API_KEYS`.
        faults: the initial fault plan (assign :attr:`faults` to change it while running).
        host: address to bind (loopback).
        port: port to bind; 0 picks a free one.
    """

    def __init__(
        self,
        store: TaskStore,
        api_keys: Mapping[str, frozenset[str]] | None = None,
        faults: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store = store
        self._api_keys = dict(DEFAULT_API_KEYS if api_keys is None else api_keys)
        self._injector = FaultInjector(faults or FaultPlan(), time.monotonic())
        self._address = (host, port)
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> SimulatedTopoApi:
        """Bind the address and serve in a background thread; return ``self``."""
        if self._server is not None:
            raise RuntimeError("the simulated API is already running")
        self._stopping.clear()
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # How often the accept loop notices stop(): short, so tests start and stop quickly.
            kwargs={"poll_interval": 0.01},
            name=f"topo-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close open connections and join every thread. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # also cuts short any latency fault being served
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the connection threads
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> SimulatedTopoApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- public state -------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        return self._running().server_address[1]

    @property
    def base_url(self) -> str:
        """The API root, as Topo documents it: ``http://127.0.0.1:<port>/v1``."""
        host = self._running().server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/v1"

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force."""
        return self._injector.plan

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        # A fresh injector: the RNG restarts from plan.seed, the bucket is full, the
        # storm is armed. Requests already being answered keep their decisions.
        self._injector = FaultInjector(plan, time.monotonic())

    @property
    def rate_limit_per_minute(self) -> float | None:
        """The rate limit in force now (it may differ from the plan's after a change)."""
        return self._injector.limit_per_minute

    def set_rate_limit(self, per_minute: float | None) -> None:
        """Change the rate limit of the running server from now on; ``None`` lifts it.

        Unlike assigning :attr:`faults`, the limiter keeps its state (a bucket's tokens, a
        window's admissions), as a real API whose limit is lowered or raised would.
        """
        self._injector.set_limit(per_minute, time.monotonic())

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests received so far, in the order they were answered.

        A request is recorded just before its answer is written, so a client that has
        its response always finds the record.
        """
        with self._records_lock:
            return list(self._records)

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._records_lock:
            self._records.clear()

    # --- request handling (called from connection threads) ------------------------

    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the simulated API is not running; call start() first")
        return self._server

    def _record(self, record: RequestRecord) -> None:
        with self._records_lock:
            self._records.append(record)

    def _authorize(self, header: str | None) -> ApiError | None:
        """The 401 / 403 a request's ``Authorization`` header earns, or ``None``."""
        if header is None or not header.strip():
            return ApiError(
                401,
                "UnauthorizedIssue",
                "Missing Authorization header; send 'Authorization: Bearer <API key>'.",
            )
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return ApiError(
                401,
                "UnauthorizedIssue",
                "Malformed Authorization header; expected 'Bearer <API key>'.",
            )
        scopes = None
        for key, key_scopes in self._api_keys.items():
            # Constant-time comparison, as a real gateway would do.
            if hmac.compare_digest(key.encode(), token.encode()):
                scopes = key_scopes
        if scopes is None:
            return ApiError(401, "UnauthorizedIssue", "Invalid API key.")
        if REQUIRED_SCOPE not in scopes:
            return ApiError(
                403,
                "UnauthorizedIssue",
                f"This API key lacks the '{REQUIRED_SCOPE}' scope that GET {TASKS_PATH} needs.",
                {"required_scope": REQUIRED_SCOPE},
            )
        return None

    def _list_tasks(
        self,
        method: str,
        path: str,
        params: Mapping[str, list[str]],
        auth_error: ApiError | None,
        decision: FaultDecision,
        plan: FaultPlan,
    ) -> bytes:
        """The 200 body of a request, or raise the :class:`ApiError` it earns."""
        if path != TASKS_PATH:
            raise ApiError(404, "NotFoundIssue", f"No resource at {path}.")
        if method != "GET":
            raise ApiError(
                405, "MethodNotAllowedIssue", f"{method} is not allowed on {path}; use GET."
            )
        if auth_error is not None:
            raise auth_error
        query, page, size = parse_list_tasks_params(params)
        if plan.reject_parameter is not None:
            name = plan.reject_parameter
            raise _invalid(name, ",".join(params.get(name, [])), "is not accepted")
        if plan.leak_outside_bounds_seconds and query.created_after is not None:
            leak = round(plan.leak_outside_bounds_seconds * 1_000_000)
            query = dataclasses.replace(query, created_after=query.created_after - leak)
        selection = self.store.select(query)
        served = len(selection)
        total = served if plan.total_count_override is None else plan.total_count_override
        total_pages = math.ceil(total / size)
        start = (page - 1) * size
        tie_rng = None if decision.tie_seed is None else random.Random(decision.tie_seed)
        items = selection.page(start, start + size, tie_rng) if start < served else []
        if plan.repeat_first_task is not None and served:
            items = repeat_first_task(
                items,
                selection.page(0, 1)[0],
                plan.repeat_first_task,
                last_page=start < served <= start + size,
                room=len(items) < size,
            )
        if plan.naive_timestamps:
            items = [_OFFSET_Z.sub(rb"\1", item) for item in items]
        # The items are pre-encoded JSON: splice them in rather than re-encode each page.
        tail = {"total_count": total, "total_pages": total_pages, "has_more": page < total_pages}
        return (
            b'{"items":['
            + b",".join(items)
            + b"],"
            + json.dumps(tail, separators=(",", ":"))[1:].encode()
        )


class _Server(ThreadingHTTPServer):
    """The HTTP server, tracking open connections so that stopping is quick."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: SimulatedTopoApi) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            closing = self._closing
        try:
            if not closing:
                super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Shut down every open connection, so that idle keep-alive threads end now."""
        with self._connections_lock:
            self._closing = True
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its own thread
                connection.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer, built before anything is written."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, error: ApiError, headers: Mapping[str, str] | None = None) -> _Answer:
        body = json.dumps(error.body(), separators=(",", ":")).encode()
        return cls(error.status, body, headers or {})


class _Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests (HTTP/1.1 keep-alive)."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "topo-simulator"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection is closed after this many seconds
    # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
    # client's delayed ACK (~40 ms per response).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _handle(self) -> None:
        api = self.server.api
        received = time.monotonic()
        split = urlsplit(self.path)
        params = parse_qs(split.query, keep_blank_values=True)
        auth_error = api._authorize(self.headers.get("Authorization"))
        self._discard_body()
        injector = api._injector
        decision = injector.decide(received)
        plan = injector.plan
        if decision.latency_seconds:
            api._stopping.wait(decision.latency_seconds)
        answer = self._answer(split.path, params, auth_error, decision, plan)
        if answer is not None and decision.limit_state is not None:
            limit_headers = _limit_headers(decision.limit_state, plan)
            answer = dataclasses.replace(answer, headers={**answer.headers, **limit_headers})
        # Recorded before the answer is written: a test that has the response can rely on
        # finding its record.
        status = None if answer is None else answer.status
        retry_after = decision.retry_after if status == 429 else None
        api._record(
            RequestRecord(
                received,
                split.path,
                params,
                status,
                auth_error is None,
                answered_at=time.monotonic(),
                retry_after=retry_after,
            )
        )
        if answer is None:
            self.close_connection = True  # a dropped connection: closed, nothing written
        else:
            self._send(answer, plan.drip_seconds_per_byte)

    def _answer(
        self,
        path: str,
        params: dict[str, list[str]],
        auth_error: ApiError | None,
        decision: FaultDecision,
        plan: FaultPlan,
    ) -> _Answer | None:
        """The answer to a request; ``None`` to drop the connection."""
        if decision.kind is FaultKind.DROP:
            return None
        if plan.echo_key_in_401:
            _, _, token = (self.headers.get("Authorization") or "").partition(" ")
            return _Answer.error(
                ApiError(401, "UnauthorizedIssue", f"Invalid API key '{token.strip()}'.")
            )
        if decision.kind is FaultKind.RATE_LIMITED:
            retry_after = decision.retry_after or 0
            error = ApiError(
                429,
                "RateLimitIssue",
                f"Rate limit exceeded; retry after {retry_after} s.",
                {
                    "limit_per_minute": decision.limit_per_minute,
                    "retry_after_seconds": retry_after,
                },
            )
            return _Answer.error(error, {"Retry-After": _retry_after(retry_after, plan)})
        if decision.kind is FaultKind.SERVER_ERROR and decision.status is not None:
            message = _SERVER_ERROR_MESSAGES.get(decision.status, "Server error.")
            return _Answer.error(ApiError(decision.status, "InternalIssue", message))
        try:
            body = self.server.api._list_tasks(
                self.command, path, params, auth_error, decision, plan
            )
        except ApiError as error:
            return _Answer.error(error, {"Allow": "GET"} if error.status == 405 else {})
        except Exception:
            log.exception("simulated API failed on %s", path)
            return _Answer.error(ApiError(500, "InternalIssue", "Internal server error."))
        if decision.malformed:
            body = body[: len(body) // 2]  # cut mid-document: never valid JSON
        return _Answer(200, body)

    def _send(self, answer: _Answer, drip_seconds_per_byte: float = 0.0) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if drip_seconds_per_byte:
                self._drip(answer.body, drip_seconds_per_byte)
                return
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True  # the client went away; nothing more to do

    def _drip(self, body: bytes, seconds_per_byte: float) -> None:
        """Write the buffered status line and headers, then the body, one byte at a time."""
        self._headers_buffer.append(b"\r\n")
        raw = b"".join(self._headers_buffer) + (body if self.command != "HEAD" else b"")
        self._headers_buffer = []
        stopping = self.server.api._stopping
        for index in range(len(raw)):
            if stopping.wait(seconds_per_byte):
                break
            self.wfile.write(raw[index : index + 1])
        self.close_connection = True

    def _discard_body(self) -> None:
        """Read a request body (none is expected) so the connection stays usable."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # not worth parsing chunks: close after answering
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 < length <= _MAX_DISCARDED_BODY:
            self.rfile.read(length)
        elif length != 0:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unknown method) with Topo's body."""
        if code == 501:
            code, issue = 405, "MethodNotAllowedIssue"  # an HTTP method nobody serves
        elif code >= 500:
            issue = "InternalIssue"
        else:
            issue = "ValidationIssue"
        self.close_connection = True
        self._send(_Answer.error(ApiError(code, issue, message or "Bad request.")))

    def log_message(self, format: str, *args: Any) -> None:
        # The request line carries no credentials (the key travels in a header).
        log.debug("%s %s", self.address_string(), format % args)


def _retry_after(seconds: int, plan: FaultPlan) -> str:
    """A ``Retry-After`` value: delta-seconds, or an HTTP date no earlier than that."""
    if plan.retry_after_format == "http-date":
        # An HTTP date has whole seconds: round the moment up so the wait is not shortened.
        return formatdate(math.ceil(time.time()) + seconds, usegmt=True)
    return str(seconds)


def _limit_headers(state: LimitState, plan: FaultPlan) -> dict[str, str]:
    """The limiter's budget as ``RateLimit-*`` or ``X-RateLimit-*`` headers."""
    if plan.rate_limit_headers == "x-ratelimit":
        return {
            "X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(math.ceil(time.time()) + state.reset_seconds),
        }
    return {
        "RateLimit-Limit": str(state.limit),
        "RateLimit-Remaining": str(state.remaining),
        "RateLimit-Reset": str(state.reset_seconds),
    }


# --- parameter parsing ------------------------------------------------------------


def _invalid(name: str, value: str, reason: str) -> ApiError:
    return ApiError(
        400,
        "ValidationIssue",
        f"Query parameter '{name}' {reason}.",
        {"field": name, "location": "query", "value": value[:200], "reason": reason},
    )


def _integer(name: str, value: str | None, *, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise _invalid(name, value, "must be an integer")
    number = int(text)
    if number < low or (high is not None and number > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise _invalid(name, value, f"must be {bounds}")
    return number


def _choice(name: str, value: str | None, allowed: frozenset[str]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise _invalid(name, value, f"must be one of {', '.join(sorted(allowed))}")
    return value


def _choices(name: str, values: list[str] | None, allowed: frozenset[str]) -> frozenset[str] | None:
    if not values:
        return None
    return frozenset(_choice(name, v, allowed) or "" for v in values)


def _uuid(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _invalid(name, value, "must be a UUID") from None


def _datetime(name: str, value: str | None) -> int | None:
    """An ISO 8601 date-time (``Z``, an offset, or naive = UTC) as a store timestamp key."""
    if value is None:
        return None
    # A date alone is not a date-time; fromisoformat would read it as midnight.
    if len(value) < 16 or value[10] not in "Tt ":
        raise _invalid(name, value, "must be an ISO 8601 date-time")
    try:
        return timestamp_key(parse_timestamp(value))
    except ValueError:
        raise _invalid(name, value, "must be an ISO 8601 date-time") from None
