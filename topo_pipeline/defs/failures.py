"""Errors a user causes or a server sends become one paragraph, the traceback behind it.

In an asset's body, :func:`user_errors` turns the errors of :data:`USER_ERRORS` (a rejected
key, a bad setting, a broken answer from Topo, an unconfirmed window, a locked DuckDB file)
into a ``dg.Failure`` whose description says what failed, the cause, the fix and what
happened to the data; the original error is chained to it::

    with user_errors("topo/tasks"):
        ...

Only a lock timeout keeps the asset's retry policy (``docs/design.md``, "Errors a user causes").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import dagster as dg

from topo_pipeline.api.errors import (
    TopoApiError,
    TopoConfigError,
    TopoDataError,
    TopoReconciliationError,
    TopoTransportError,
)
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.history import HistoryOrderError

USER_ERRORS: tuple[type[Exception], ...] = (
    TopoConfigError,
    TopoApiError,
    TopoTransportError,
    TopoDataError,
    TopoReconciliationError,
    WarehouseLockedError,
    HistoryOrderError,
)
"""Errors that a setting, the key, Topo or another process cause, not the code.

:class:`~topo_pipeline.api.errors.TopoApiError` covers 400, 401, 403 and the other 4xx,
and also 429 / 5xx that outlasted every retry or asked for a longer wait than allowed;
:class:`~topo_pipeline.api.errors.TopoTransportError` covers timeouts and dropped
connections that did; :class:`~topo_pipeline.api.errors.TopoDataError` a page or task
that breaks Topo's documented contract (a ``total_count`` out of bounds, a timestamp
without an offset).
"""

_NOTHING_CHANGED = "Nothing was written: the tables hold what they held before this run."

F = TypeVar("F", bound=Callable[..., Any])


def explain(error: Exception, step: str) -> str:
    """The paragraph for ``error`` raised in ``step``: cause, fix, what happened to the data."""
    message = str(error).strip().rstrip(".")
    if isinstance(error, WarehouseLockedError):
        after = (
            "Nothing was written meanwhile; run it again once that session is closed (a step "
            "with a retry policy tries again by itself)."
        )
    elif isinstance(error, TopoReconciliationError):
        after = "Run it again; if the counts keep disagreeing, report the window to Topo."
    elif isinstance(error, TopoDataError):
        after = f"{_NOTHING_CHANGED} If it recurs, report it to Topo with this message."
    else:
        after = f"{_NOTHING_CHANGED} Fix the cause, then run it again."
    return f"{step} failed: {message[:1].upper()}{message[1:]}. {after}"


def failure_for(error: Exception, step: str) -> dg.Failure:
    """The ``dg.Failure`` that reports ``error`` of ``step`` (raise it ``from error``)."""
    metadata: dict[str, str] = {"cause": type(error).__name__}
    if isinstance(error, TopoApiError):
        metadata["http_status"] = str(error.status_code)
        metadata["request_id"] = error.request_id or "not given"
    return dg.Failure(
        description=explain(error, step),
        metadata=metadata,
        allow_retries=isinstance(error, WarehouseLockedError),
    )


@contextmanager
def user_errors(step: str) -> Iterator[None]:
    """Fail the step as one paragraph when the block raises one of :data:`USER_ERRORS`.

    Use it inside an asset's compute function (``step`` names the asset in the
    paragraph, e.g. ``"topo/tasks"``); any other error passes through unchanged.

    Raises:
        dg.Failure: for an error of :data:`USER_ERRORS`, chained to it.
    """
    try:
        yield
    except USER_ERRORS as error:
        raise failure_for(error, step) from error
