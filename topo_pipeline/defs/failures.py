"""Errors a user causes become one clear paragraph, with the traceback kept behind it.

A wrong or under-scoped API key, a setting that cannot work, a window Topo's
``total_count`` does not confirm, a DuckDB file another process keeps locked: none of
these is a bug, and a traceback in front of the message only hides it. Wrapping an
asset's compute function in :func:`explain_user_errors` turns those errors
(:data:`USER_ERRORS`) into a ``dg.Failure`` whose description is the paragraph: what
failed, the cause and the fix (the error's own message, which names both), and what
happened to the data. The original error stays chained to it, so the run's event log in
the UI keeps the full traceback; the console logger (:mod:`topo_pipeline.defs.console`)
prints the paragraph alone. Retrying a Failure is pointless except for a lock, which
may be released, so only that one keeps the asset's retry policy.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dagster as dg

from topo_pipeline.api.errors import (
    TopoApiError,
    TopoConfigError,
    TopoReconciliationError,
    TopoRequestError,
    TopoTransportError,
)
from topo_pipeline.defs.console import show_failures_as_paragraphs
from topo_pipeline.warehouse.duckdb import WarehouseLockedError
from topo_pipeline.warehouse.history import HistoryOrderError

USER_ERRORS: tuple[type[Exception], ...] = (
    TopoConfigError,
    TopoRequestError,
    TopoApiError,
    TopoTransportError,
    TopoReconciliationError,
    WarehouseLockedError,
    HistoryOrderError,
)
"""Errors that a setting, the key, Topo or another process cause, not the code.

:class:`~topo_pipeline.api.errors.TopoApiError` covers 401, 403 and the other 4xx, and
also 429 / 5xx that outlasted every retry (Topo is down or throttling), as
:class:`~topo_pipeline.api.errors.TopoTransportError` covers timeouts and dropped
connections that did.
"""

_NOTHING_CHANGED = "Nothing was written: the tables hold what they held before this run."

F = TypeVar("F", bound=Callable[..., Any])


def explain(error: Exception, step: str) -> str:
    """The paragraph for ``error`` raised in ``step``: cause, fix, what happened to the data."""
    message = str(error).strip().rstrip(".")
    if isinstance(error, WarehouseLockedError):
        after = "The step is retried by its retry policy; nothing was written meanwhile."
    elif isinstance(error, TopoReconciliationError):
        after = "Run it again; if the counts keep disagreeing, report the window to Topo."
    else:
        after = f"{_NOTHING_CHANGED} Fix the cause, then run it again."
    return f"{step} failed: {message[:1].upper()}{message[1:]}. {after}"


def _failure(error: Exception, step: str) -> dg.Failure:
    metadata: dict[str, str] = {"cause": type(error).__name__}
    if isinstance(error, TopoApiError):
        metadata["http_status"] = str(error.status_code)
        metadata["request_id"] = error.request_id or "not given"
    return dg.Failure(
        description=explain(error, step),
        metadata=metadata,
        allow_retries=isinstance(error, WarehouseLockedError),
    )


def _quiet_console(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Have the step's console loggers print a Failure as its paragraph (defs/console.py)."""
    context = kwargs.get("context", args[0] if args else None)
    show_failures_as_paragraphs(getattr(context, "log", None))


def explain_user_errors(step: str) -> Callable[[F], F]:
    """Decorate an asset's compute function so :data:`USER_ERRORS` fail it as a paragraph.

    Put it below ``@dg.asset`` / ``@dg.multi_asset``; the signature Dagster inspects is
    the function's own, whose first parameter is the context. Works for functions that
    return and for generators. It also installs the console formatter of
    :mod:`topo_pipeline.defs.console` on the step's loggers, which print the failure.
    """

    def decorate(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                _quiet_console(args, kwargs)
                try:
                    yield from fn(*args, **kwargs)
                except USER_ERRORS as error:
                    raise _failure(error, step) from error

            return generator  # type: ignore[return-value]

        @functools.wraps(fn)
        def function(*args: Any, **kwargs: Any) -> Any:
            _quiet_console(args, kwargs)
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as error:
                raise _failure(error, step) from error

        return function  # type: ignore[return-value]

    return decorate
