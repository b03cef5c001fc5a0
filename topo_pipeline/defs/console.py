"""The code location's ``console`` logger: a ``dg.Failure`` prints as its paragraph.

:data:`console_logger` is Dagster's colored console logger with one change: a step that
fails with a ``dg.Failure`` (what :mod:`topo_pipeline.defs.failures` raises for errors a user
causes or a server sends) prints as the Failure's description alone, and the run's failure
as one line; every other line and error prints as Dagster prints it. ``TOPO_TRACEBACK=1``
prints the traceback too. Dagster uses it only for runs whose config names it, e.g.
``--config-json '{"loggers": {"console": {}}}'`` (README, "What the console prints on
errors"). :func:`brief_load_error` prints a setting that stops the code location from
loading as one paragraph.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from types import TracebackType

import dagster as dg

TRACEBACK_ENV = "TOPO_TRACEBACK"
"""Set to ``1`` to have the console print the traceback of user-caused failures too."""

_FAILURE_EVENTS = frozenset(
    {
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_UP_FOR_RETRY,
        dg.DagsterEventType.RUN_FAILURE,
    }
)
_FAILURE_CLASS = "Failure"
"""The class name Dagster records (``cls_name``) for an error that is a ``dg.Failure``."""

_CHECK_FAILED_CLASS = "DagsterAssetCheckFailedError"
"""The class name of the error a blocking check that failed raises: the data's fault, whose
message names the checks (their descriptions are in the run log above it)."""
_HINT = (
    f"(The traceback is in the run's event log in the Dagster UI; {TRACEBACK_ENV}=1 prints "
    "it here.)"
)


class ParagraphFormatter(logging.Formatter):
    """Formats like ``inner``, but a failure caused by a ``dg.Failure`` without frames."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = failure_paragraph(record)
        if text is None:
            return self.inner.format(record)
        shortened = logging.makeLogRecord({**record.__dict__, "msg": text, "args": ()})
        return self.inner.format(shortened)


def failure_paragraph(record: logging.LogRecord) -> str | None:
    """The text to print for ``record`` instead of its message, or ``None`` to keep it.

    Dagster puts a record's event under ``record.dagster_meta["dagster_event"]`` (its
    guide "Customizing Dagster's built-in loggers"). A step failure, a step's retry or a
    run failure whose error is a ``dg.Failure`` becomes the message's first line and the
    Failure's description; a run failure that only repeats its first step's Failure
    becomes its first line.
    """
    if _traceback_wanted():
        return None
    meta = getattr(record, "dagster_meta", None)
    event = meta.get("dagster_event") if isinstance(meta, Mapping) else None
    if not isinstance(event, dg.DagsterEvent) or event.event_type not in _FAILURE_EVENTS:
        return None
    description = _failure_description(event)
    if description is None:
        return None
    head = str(record.msg).split("\n\n", 1)[0]
    if event.event_type == dg.DagsterEventType.RUN_FAILURE:
        step_failure = event.job_failure_data.first_step_failure_event
        if step_failure is not None and _failure_description(step_failure) == description:
            return head  # the step's failure above said why
    return f"{head}\n\n{description}\n\n{_HINT}"


def _failure_description(event: dg.DagsterEvent) -> str | None:
    """The description of the ``dg.Failure`` behind ``event``'s error, else ``None``.

    The Failure is the error itself, or its cause when Dagster wrapped it (a step that
    used up its retry policy fails with "Exceeded max_retries", caused by the Failure).
    """
    error = getattr(event.event_specific_data, "error", None)
    for _ in range(10):
        if error is None:
            return None
        if error.cls_name in (_FAILURE_CLASS, _CHECK_FAILED_CLASS):
            # Dagster's text of the error is "<module>.Failure: <description>".
            description = error.message.strip().split(": ", 1)[-1].strip()
            return description if description not in ("", "None") else None
        error = error.cause
    return None


@dg.logger(
    config_schema=dg.colored_console_logger.config_schema,
    description=(
        "Dagster's colored console logger; a step failing with a dg.Failure prints as its "
        f"description, without the traceback ({TRACEBACK_ENV}=1 prints it)."
    ),
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """The ``console`` logger of every job in the code location."""
    logger = dg.colored_console_logger.logger_fn(init_context)
    for handler in logger.handlers:
        handler.setFormatter(ParagraphFormatter(handler.formatter or logging.Formatter()))
    return logger


def brief_load_error(error: BaseException) -> None:
    """If ``error`` ends the process uncaught, print it as a paragraph, not a traceback.

    For the command line (``dagster asset materialize``, ``dg launch``): the code location
    failed to load because of a setting, and the error names the setting and the fix.
    The webserver and daemon catch load errors themselves and show them in the UI.
    ``TOPO_TRACEBACK=1`` keeps Python's own output.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not _traceback_wanted() and _caused_by(value, error):
            print(  # noqa: T201 - the process's last words
                f"topo_pipeline cannot load: {error}.\n(Nothing ran. Fix the setting and run "
                f"again; {TRACEBACK_ENV}=1 prints the traceback.)",
                file=sys.stderr,
            )
            return
        previous(kind, value, tb)

    sys.excepthook = hook


def _caused_by(value: BaseException | None, error: BaseException) -> bool:
    seen = 0
    while value is not None and seen < 20:
        if value is error:
            return True
        value, seen = value.__cause__ or value.__context__, seen + 1
    return False


def _traceback_wanted() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0")
