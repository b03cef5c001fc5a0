"""The assignee directory: a CSV of ``user_id,name,team`` loaded into ``reference.assignees``.

:func:`read_assignees` parses and validates the file named by ``TOPO_ASSIGNEES_PATH`` (a
bad row refuses the whole file, naming every bad line); :func:`read_assignee_source` says
what the source holds, for :func:`~topo_pipeline.warehouse.reference.plan_reference_load`;
:func:`replace_assignees` swaps the table's contents in one transaction;
:func:`assignees_missing_from_directory` lists the assignees of ``topo.tasks`` the directory
does not name. The file's rules: ``docs/design.md``, "Reference inputs". Nothing here
imports Dagster.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from topo_pipeline.warehouse.duckdb import transaction
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.reference import ASSIGNEES, SourceState
from topo_pipeline.warehouse.schema import ensure_schema

REQUIRED_COLUMNS = ("user_id", "name", "team")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_MAX_REPORTED = 20
"""Problems spelled out in the error; the rest are counted."""


@dataclass(frozen=True)
class Assignee:
    """One row of the directory."""

    user_id: str
    name: str | None
    team: str | None
    line: int
    """Line of the file the row ends on (1 is the header)."""


@dataclass(frozen=True)
class MissingAssignee:
    """An assignee of ``topo.tasks`` that the directory does not name."""

    user_id: str
    tasks: int
    last_seen_partition: date


@dataclass(frozen=True)
class AssigneeSource:
    """What the directory's source holds: its state, its rows, and what is wrong with it."""

    state: SourceState
    assignees: list[Assignee]
    problem: str | None = None
    """Why an INVALID source cannot be used (the file's error), else ``None``."""


class AssigneeFileError(ValueError):
    """The directory file cannot be used; the message names each bad line."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        shown = list(problems[:_MAX_REPORTED])
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        super().__init__(
            f"assignee directory {path} (TOPO_ASSIGNEES_PATH) has "
            f"{len(problems)} problem(s): " + "; ".join(shown)
        )
        self.problems = list(problems)


def read_assignees(path: Path) -> list[Assignee]:
    """The rows of the directory file at ``path``, validated (``[]`` for a file without rows).

    Raises:
        AssigneeFileError: listing every bad line (and a missing header column).
        OSError: if the file cannot be read.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:  # nothing at all in the file, not even a header
            return []
        header = [name.strip() for name in reader.fieldnames]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise AssigneeFileError(
                path, [f"line 1: the header lacks column(s) {', '.join(missing)}"]
            )
        reader.fieldnames = header
        problems: list[str] = []
        rows: list[Assignee] = []
        first_line: dict[str, int] = {}
        for record in reader:
            line = reader.line_num
            user_id = (record.get("user_id") or "").strip().lower()
            if not user_id:
                problems.append(f"line {line}: empty user_id")
                continue
            if not _UUID.fullmatch(user_id):
                problems.append(f"line {line}: user_id {user_id!r} is not a UUID")
                continue
            if user_id in first_line:
                problems.append(
                    f"line {line}: user_id {user_id} repeats line {first_line[user_id]}"
                )
                continue
            first_line[user_id] = line
            rows.append(
                Assignee(user_id, _text(record.get("name")), _text(record.get("team")), line)
            )
    if problems:
        raise AssigneeFileError(path, problems)
    return rows


def read_assignee_source(path: Path | None) -> AssigneeSource:
    """What the directory source at ``path`` holds (``None``: no source configured).

    Never raises for the file's sake: a missing file is MISSING, one without rows EMPTY,
    and a bad or unreadable one INVALID with the reason in ``problem``.
    """
    if path is None:
        return AssigneeSource(SourceState.UNSET, [])
    if not path.is_file():
        return AssigneeSource(SourceState.MISSING, [])
    try:
        people = read_assignees(path)
    except AssigneeFileError as error:
        return AssigneeSource(SourceState.INVALID, [], str(error))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return AssigneeSource(
            SourceState.INVALID,
            [],
            f"assignee directory {path} (TOPO_ASSIGNEES_PATH) cannot be read as a UTF-8 "
            f"CSV file: {reason}",
        )
    return AssigneeSource(SourceState.ROWS if people else SourceState.EMPTY, people)


def loaded_assignees(con: duckdb.DuckDBPyConnection) -> int:
    """Rows ``reference.assignees`` holds now."""
    ensure_schema(con)
    (count,) = con.execute(f"SELECT count(*) FROM {ASSIGNEES.qualified}").fetchone() or (0,)
    return int(count)


def replace_assignees(
    con: duckdb.DuckDBPyConnection, assignees: Sequence[Assignee], *, loaded_at: datetime
) -> int:
    """Make ``reference.assignees`` hold exactly ``assignees``, in one transaction.

    An empty sequence empties the table; whether to do so is
    :func:`~topo_pipeline.warehouse.reference.plan_reference_load`'s decision.

    Returns:
        The number of rows written.
    """
    ensure_schema(con)
    with transaction(con):
        con.execute(f"DELETE FROM {ASSIGNEES.qualified}")
        if assignees:
            con.execute(
                load_sql("insert_assignees"),
                {
                    "user_ids": [a.user_id for a in assignees],
                    "names": [a.name for a in assignees],
                    "teams": [a.team for a in assignees],
                    "lines": [a.line for a in assignees],
                    "loaded_at": loaded_at,
                },
            )
    return len(assignees)


def assignees_missing_from_directory(con: duckdb.DuckDBPyConnection) -> list[MissingAssignee]:
    """Assignees of ``topo.tasks`` that ``reference.assignees`` does not name, most tasks first."""
    ensure_schema(con)
    rows = con.execute(load_sql("assignees_missing_from_directory")).fetchall()
    return [MissingAssignee(user_id, int(tasks), day) for user_id, tasks, day in rows]


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None
