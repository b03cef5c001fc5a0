"""An httpx transport that gives every request an overall deadline: :class:`DeadlineTransport`.

httpx's timeouts bound each wait for bytes, so a server that drips its answer could hold a
request for hours; here connecting, sending and reading the whole answer must end by one
deadline. Built on httpx's and httpcore's public API only.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import httpcore
import httpx


class DeadlineTransport(httpx.BaseTransport):
    """httpx's default HTTP/1.1 transport, each request ending by ``deadline_seconds``.

    It owns an ``httpcore.ConnectionPool`` whose connections read and write no later than
    the deadline of the request using them, and maps ``httpx.Request`` to the pool and its
    answer back, as ``httpx.HTTPTransport`` does (httpcore's errors become httpx's). A
    request past its deadline fails with ``httpx.ConnectTimeout``, ``httpx.WriteTimeout``
    or ``httpx.ReadTimeout``.

    Args:
        deadline_seconds: the longest one request may take, its answer's body included.
        limits: connection pool limits.
    """

    def __init__(self, deadline_seconds: float, limits: httpx.Limits) -> None:
        self._deadline_seconds = deadline_seconds
        self._pool = httpcore.ConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the pool; its answer's body is read under the same deadline."""
        deadline = time.monotonic() + self._deadline_seconds
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("DeadlineTransport serves synchronous requests only")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _until(deadline), _httpx_errors():
            answer = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_BodyStream(answer, deadline),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()


@cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``).

    Built once per process and shared by every client (tests' own ``httpx`` clients too):
    loading the CA bundle takes about 20 ms.
    """
    return httpx.create_ssl_context()


class _BodyStream(httpx.SyncByteStream):
    """An answer's body, each chunk read under the request's deadline and error mapping."""

    def __init__(self, answer: httpcore.Response, deadline: float) -> None:
        self._answer = answer
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._answer.iter_stream()
        while True:
            with _until(self._deadline), _httpx_errors():
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        with _httpx_errors():
            self._answer.close()


# httpcore's errors and httpx's public equivalents, the most specific first (the mapping
# of httpx's own HTTPTransport).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Raise httpcore's errors as the httpx errors callers of an httpx client expect."""
    try:
        yield
    except Exception as error:
        for core_error, httpx_error in _ERRORS:
            if isinstance(error, core_error):
                raise httpx_error(str(error)) from error
        raise


class _Deadline(threading.local):
    """The monotonic time by which this thread's current request must be complete."""

    at: float | None = None


_DEADLINE = _Deadline()


@contextmanager
def _until(deadline: float) -> Iterator[None]:
    """Make ``deadline`` the one this thread's connections honour, within the block."""
    previous, _DEADLINE.at = _DEADLINE.at, deadline
    try:
        yield
    finally:
        _DEADLINE.at = previous


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of this thread's deadline."""
    at = _DEADLINE.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the calling thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own network backend, with :class:`_DeadlineStream` connections."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)
