"""The HTTP side of the simulated API: a threaded server and its request handler.

:class:`ApiServer` serves one :class:`~topo_pipeline.simulator.server.SimulatedTopoApi`
on loopback, tracking open connections so that stopping is quick; its handler reads each
request, applies the fault plan's decision (drop, 429, 5xx, latency, drip, malformed
body), asks the API object for the answer and records a :class:`RequestRecord`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from topo_pipeline.simulator.errors import ApiError
from topo_pipeline.simulator.faults import FaultDecision, FaultKind, FaultPlan
from topo_pipeline.simulator.limits import LimitState

if TYPE_CHECKING:
    from topo_pipeline.simulator.server import SimulatedTopoApi

log = logging.getLogger(__name__)

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


class ApiServer(ThreadingHTTPServer):
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

    server: ApiServer
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
