"""Console output of runs: a user-caused failure as its paragraph, not a traceback wall.

When a step fails with a ``dg.Failure`` (the pipeline raises those for errors a user
causes, each with a paragraph naming the cause and the fix: :mod:`topo_pipeline.defs.failures`),
Dagster's console logger still prints Dagster's own stack frames under it, and prints
the error again under the run's failure. With the formatter installed here, the step's
failure prints as its paragraph and the run's failure as its one-line summary. The
traceback is not lost: the run's event log (the UI's run page) keeps it, and with
``TOPO_TRACEBACK=1`` in the environment the console prints it too. Every other line, and
every other error, prints exactly as before.

Dagster builds its default console logger for each run unless the run config names
one, so the code location's executor installs the formatter on the run's console
loggers when it starts (:func:`show_failures_as_paragraphs`): that covers ``dagster
asset materialize``, ``dg launch`` and runs from the UI. :data:`console_logger` is the
same console logger as a definition, used when run config configures ``console`` (as
``make demo`` does).

A setting that cannot work stops the code location from loading; on the command line
:func:`brief_load_error` has that error print as one paragraph too.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from dagster._loggers import JsonLogFormatter

TRACEBACK_ENV = "TOPO_TRACEBACK"
"""Set to ``1`` to have the console print the traceback of user-caused failures too."""

_FAILURES = (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE)


class _ParagraphFormatter(logging.Formatter):
    """Formats like ``inner``, but a ``dg.Failure`` as its description, without frames."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = _without_traceback(record)
        if text is None:
            return self._inner.format(record)
        shortened = logging.makeLogRecord({**record.__dict__, "msg": text, "args": ()})
        return self._inner.format(shortened)


def _without_traceback(record: logging.LogRecord) -> str | None:
    """The record's message without its error's frames, or ``None`` to leave it as it is."""
    if _traceback_wanted():
        return None
    meta = getattr(record, LOG_RECORD_METADATA_ATTR, None)
    event = meta.get("dagster_event") if isinstance(meta, dict) else None
    if event is None or event.event_type not in _FAILURES:
        return None
    data = event.event_specific_data
    error = getattr(data, "error", None)
    if error is None or error.cls_name != "Failure":
        return None
    head = str(record.msg).split("\n\n", 1)[0]
    if event.event_type == DagsterEventType.RUN_FAILURE:
        return head  # the step's failure above already said why
    user = getattr(data, "user_failure_data", None)
    description = (user.description if user is not None else None) or error.message.strip()
    return (
        f"{head}\n\n{description}\n\n(The traceback is in the run's event log in the Dagster "
        f"UI; {TRACEBACK_ENV}=1 prints it here.)"
    )


def paragraph_failures(logger: logging.Logger) -> None:
    """Make ``logger``'s handlers print user-caused failures as paragraphs. Idempotent."""
    for handler in logger.handlers:
        formatter = handler.formatter
        if isinstance(formatter, _ParagraphFormatter | JsonLogFormatter):
            continue  # installed already; JSON output stays whole for machines
        handler.setFormatter(_ParagraphFormatter(formatter or logging.Formatter()))


def show_failures_as_paragraphs(log_manager: object) -> None:
    """Install the formatter on the console loggers of a run's ``DagsterLogManager``.

    Those are the loggers its Dagster handler hands every record to (the run's
    ``@logger`` instances); Dagster has no public accessor for them.
    """
    handler = getattr(log_manager, "_dagster_handler", None)
    for logger in getattr(handler, "_loggers", ()):
        if isinstance(logger, logging.Logger):
            paragraph_failures(logger)


@dg.logger(
    config_schema=dg.colored_console_logger.config_schema,
    description=(
        "Dagster's colored console logger; a step failing with a dg.Failure is printed as "
        "its description, without the traceback (TOPO_TRACEBACK=1 prints it)."
    ),
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """The ``console`` logger of every job in the code location."""
    logger = dg.colored_console_logger.logger_fn(init_context)
    paragraph_failures(logger)
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
