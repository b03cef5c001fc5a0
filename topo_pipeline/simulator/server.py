"""The simulated Topo API object: its lifecycle, auth and the List Tasks page envelope.

:class:`SimulatedTopoApi` follows the contract in ``topo-api.md`` (sections 2-4 and 7-10):
bearer auth with scopes, every query parameter of List Tasks (``params.py``), strict
created-at bounds, the page envelope, and Topo's error body on every error (``errors.py``).
On top of that it injects the faults of a :class:`~topo_pipeline.simulator.faults.FaultPlan`,
switchable while it runs; ``handler.py`` serves it over HTTP. API keys are never written to
a response or a log. The order in which a request is judged, and why the server keeps
connections alive: ``simulator/README.md``.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
import random
import re
import threading
import time
from collections.abc import Mapping

from topo_pipeline.simulator.errors import ApiError
from topo_pipeline.simulator.faults import (
    FaultDecision,
    FaultInjector,
    FaultPlan,
    repeat_first_task,
)
from topo_pipeline.simulator.handler import ApiServer, RequestRecord
from topo_pipeline.simulator.params import invalid_parameter, parse_list_tasks_params
from topo_pipeline.simulator.store import TaskStore

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

# The "Z" that ends a timestamp value in the pre-encoded JSON of a task.
_OFFSET_Z = re.compile(rb'(\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z(?=")')


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
        self._server: ApiServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> SimulatedTopoApi:
        """Bind the address and serve in a background thread; return ``self``."""
        if self._server is not None:
            raise RuntimeError("the simulated API is already running")
        self._stopping.clear()
        self._server = ApiServer(self._address, self)
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

    def _running(self) -> ApiServer:
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
            raise invalid_parameter(name, ",".join(params.get(name, [])), "is not accepted")
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
