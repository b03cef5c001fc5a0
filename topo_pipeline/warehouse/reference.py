"""Reference tables (schema ``reference``): facts about Topo's world that the API does not serve.

``reference.assignees``, the assignee directory (:mod:`topo_pipeline.warehouse.assignees`),
is joined by the by-assignee and by-team rollups; without a directory it is empty and names
and teams are NULL. :func:`plan_reference_load` is the rule every reference input follows:
a source that is unset, missing or empty never empties a loaded table, a bad one fails the
load, and only an explicit ``clear`` empties it (why: ``docs/design.md``, "Reference
inputs").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from topo_pipeline.warehouse.tables import Column, Table

REFERENCE_SCHEMA = "reference"

ASSIGNEES = Table(
    REFERENCE_SCHEMA,
    "assignees",
    "The assignee directory: one row per workspace user id, from the CSV named by "
    "TOPO_ASSIGNEES_PATH; empty until one is loaded (a source that is later unset, missing "
    "or empty leaves the rows loaded). Topo has no users endpoint; this is where names and "
    "teams come from.",
    (
        Column(
            "user_id",
            "VARCHAR",
            "Workspace user id (lower-case UUID), as in topo.tasks.assignee_user_id. Unique.",
            not_null=True,
        ),
        Column("name", "VARCHAR", "The user's name; NULL when the file leaves it empty."),
        Column("team", "VARCHAR", "The user's team; NULL when the file leaves it empty."),
        Column("line", "INTEGER", "Line of the CSV file the row comes from.", not_null=True),
        Column(
            "loaded_at",
            "TIMESTAMPTZ",
            "When the directory was loaded from the file.",
            not_null=True,
        ),
    ),
)
"""``reference.assignees``; see :func:`~topo_pipeline.warehouse.assignees.replace_assignees`."""


class SourceState(Enum):
    """What a reference input's source held when a load was asked for."""

    UNSET = "unset"
    """No source is configured (its setting is unset)."""
    MISSING = "missing"
    """A source is configured but is not there (the file was moved or deleted)."""
    EMPTY = "empty"
    """The source is there but holds no rows (an empty file, or a header alone)."""
    INVALID = "invalid"
    """The source cannot be used (a bad row, a missing column, unreadable)."""
    ROWS = "rows"
    """The source holds valid rows."""


class LoadAction(Enum):
    """What a load does to the reference table."""

    REPLACE = "replace"
    """Replace the table's rows with the source's."""
    KEEP = "keep"
    """Leave the table exactly as it is (no write, no new materialization)."""
    CLEAR = "clear"
    """Empty the table: only when asked explicitly."""
    FAIL = "fail"
    """Fail the load; the table keeps its rows."""


@dataclass(frozen=True)
class ReferencePlan:
    """The decision of :func:`plan_reference_load`.

    Attributes:
        action: what to do to the table.
        message: one or two sentences for the run log and the check: what happens to the
            table and, where it was kept, how to empty it on purpose.
        warn: whether it deserves a warning (a source that is set but missing, empty or
            invalid, or an absent source that leaves loaded rows in place).
        rows_kept: rows the table keeps from an earlier load (0 unless ``action`` is
            KEEP or FAIL).
    """

    action: LoadAction
    message: str
    warn: bool
    rows_kept: int


def plan_reference_load(
    source: SourceState,
    loaded_rows: int,
    *,
    clear: bool = False,
    table: str,
    setting: str,
) -> ReferencePlan:
    """Decide what loading a reference table from its source does. Pure.

    The rule: a source that is unset, missing or empty never empties a table that holds
    rows; the table is kept, with a warning. An invalid source fails the load and keeps
    the table. Only ``clear`` empties it, whatever the source holds. With nothing loaded
    and no source configured, the table stays empty without a warning (a deployment
    that has no such input).

    Args:
        source: what the source held.
        loaded_rows: rows the table holds now.
        clear: the user asked to empty the table.
        table: the table's name, for the message (``reference.assignees``).
        setting: what names the source, for the message (``TOPO_ASSIGNEES_PATH``).
    """
    if clear:
        return ReferencePlan(
            LoadAction.CLEAR,
            f"{table} emptied as asked (clear: true; it held {_rows(loaded_rows)}); "
            f"its source was not loaded",
            warn=False,
            rows_kept=0,
        )
    if source is SourceState.ROWS:
        return ReferencePlan(
            LoadAction.REPLACE,
            f"{table} replaced with the rows of {setting}; it held {_rows(loaded_rows)} before",
            warn=False,
            rows_kept=0,
        )
    if source is SourceState.INVALID:
        kept = f"{table} keeps its {_rows(loaded_rows)}" if loaded_rows else f"{table} stays empty"
        return ReferencePlan(
            LoadAction.FAIL,
            f"{kept}: fix the file, then materialize it again",
            warn=True,
            rows_kept=loaded_rows,
        )
    why = {
        SourceState.UNSET: f"{setting} is unset",
        SourceState.MISSING: f"{setting} names no file",
        SourceState.EMPTY: f"{setting} names a file without rows",
    }[source]
    if loaded_rows == 0:
        return ReferencePlan(
            LoadAction.KEEP,
            f"{why}: {table} stays empty",
            warn=source is not SourceState.UNSET,
            rows_kept=0,
        )
    return ReferencePlan(
        LoadAction.KEEP,
        f"{why}: {table} keeps the {_rows(loaded_rows)} loaded earlier, unchanged; to empty "
        "it on purpose, materialize it with run config clear: true",
        warn=True,
        rows_kept=loaded_rows,
    )


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"
