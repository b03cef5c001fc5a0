"""Task ids a run fetched more than once: which copy lands, and when that is a conflict.

:func:`staged_duplicates` sorts out the copies a run's stage holds of one id: **identical**
copies land once, copies with **different** ``updated_at`` land as the latest, and copies
that differ under the **same** ``updated_at`` are a conflict, which :func:`check_duplicates`
reports as the blocking ``no_conflicting_duplicates`` check. Why copies arise and which one
lands: ``docs/design.md``, "A task fetched twice". Nothing here imports Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.task_checks import MAX_EXAMPLES, CheckOutcome

NO_CONFLICTING_DUPLICATES = "no_conflicting_duplicates"

DESCRIPTION = (
    "A task id fetched more than once in the run has one content per updated_at. Identical "
    "copies are dropped (duplicates_identical); copies with different updated_at are a task "
    "that changed while its day was read, and the latest updated_at lands "
    "(duplicates_superseded); different content under the same updated_at is a conflict "
    "and fails this check, naming the id and the updated_at of each copy."
)
"""The check's description, for its spec."""

_IN_DESCRIPTION = 3
"""Conflicts spelled out in the one-sentence description; the metadata holds more."""


@dataclass(frozen=True)
class DuplicateConflict:
    """One id fetched with different content under one ``updated_at``.

    Attributes:
        id: the task id.
        partition_dates: the partitions its copies fall in (two if ``created_at`` differs).
        updated_at: the ``updated_at`` of each distinct copy, oldest first.
        fields: the fields whose values differ between the copies.
    """

    id: str
    partition_dates: tuple[date, ...]
    updated_at: tuple[datetime | None, ...]
    fields: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateReport:
    """The ids of a stage that were fetched more than once, by kind (see the module).

    Attributes:
        repeated_ids: ids staged more than once.
        identical: copies dropped because another copy of the id is identical.
        superseded: older versions replaced by a copy with a later ``updated_at``.
        conflicting_ids: ids with different content under one ``updated_at``.
        conflicts: the first of those, by id (at most ``max_examples``).
        superseded_ids: the first ids that had an older version replaced, by id.
    """

    repeated_ids: int = 0
    identical: int = 0
    superseded: int = 0
    conflicting_ids: int = 0
    conflicts: tuple[DuplicateConflict, ...] = ()
    superseded_ids: tuple[str, ...] = ()

    def metadata(self) -> dict[str, int]:
        """The counts, as the asset's metadata."""
        return {
            "duplicates_identical": self.identical,
            "duplicates_superseded": self.superseded,
            "duplicates_conflicting": self.conflicting_ids,
        }


def staged_duplicates(
    con: duckdb.DuckDBPyConnection, max_examples: int = MAX_EXAMPLES
) -> DuplicateReport:
    """The duplicates of the stage ``con`` holds (its table ``staged_tasks``).

    Args:
        con: the stage's own connection (:meth:`TaskStage.duplicates` passes it).
        max_examples: conflicting ids, and superseded ids, spelled out at most.
    """
    # fetchall, not fetchone: the stage's connection takes the next batch right after.
    rows = con.execute(
        load_sql("staged_task_duplicates"), {"max_examples": max_examples}
    ).fetchall()
    if len(rows) != 1:  # cannot happen: an aggregate without GROUP BY yields one row
        raise RuntimeError(f"staged_task_duplicates.sql returned {len(rows)} rows, not 1")
    repeated, identical, superseded, conflicting, copies, superseded_ids = rows[0]
    return DuplicateReport(
        repeated_ids=int(repeated),
        identical=int(identical),
        superseded=int(superseded),
        conflicting_ids=int(conflicting),
        conflicts=_conflicts(copies),
        superseded_ids=tuple(superseded_ids),
    )


def check_duplicates(report: DuplicateReport) -> CheckOutcome:
    """``no_conflicting_duplicates``: no id came back with two contents for one instant (ERROR)."""
    metadata: dict[str, Any] = {
        "repeated_ids": report.repeated_ids,
        **report.metadata(),
    }
    if report.superseded_ids:
        metadata["superseded_example_ids"] = ", ".join(report.superseded_ids)
    if not report.conflicting_ids:
        if not report.repeated_ids:
            text = "No task id was fetched more than once."
        else:
            text = (
                f"{_n(report.repeated_ids, 'task id')} fetched more than once: "
                f"{_n(report.identical, 'identical copy', 'identical copies')} dropped, "
                f"{_n(report.superseded, 'older version')} replaced by a later updated_at; "
                "none conflict."
            )
        return CheckOutcome(NO_CONFLICTING_DUPLICATES, True, "ERROR", text, metadata)
    metadata["example_ids"] = ", ".join(c.id for c in report.conflicts)
    for conflict in report.conflicts:
        metadata[f"conflict {conflict.id}"] = _describe(conflict)
    named = "; ".join(f"{c.id} {_describe(c)}" for c in report.conflicts[:_IN_DESCRIPTION])
    return CheckOutcome(
        NO_CONFLICTING_DUPLICATES,
        False,
        "ERROR",
        f"{_n(report.conflicting_ids, 'task id')} came back with different content under the "
        f"same updated_at, e.g. {named}. The copy fetched last was landed; re-materialize the "
        "day, and report the ids to Topo if it persists.",
        metadata,
    )


def _conflicts(copies: list[dict[str, Any]]) -> tuple[DuplicateConflict, ...]:
    """Group the query's copies (sorted by id) into one conflict per id."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for copy in copies:
        by_id.setdefault(copy["id"], []).append(copy)
    conflicts = []
    for task_id, group in by_id.items():
        objects = [json.loads(c["raw"]) for c in group]
        keys = sorted({key for o in objects for key in o})
        fields = tuple(k for k in keys if len({json.dumps(o.get(k)) for o in objects}) > 1)
        conflicts.append(
            DuplicateConflict(
                id=task_id,
                partition_dates=tuple(sorted({c["partition_date"] for c in group})),
                updated_at=tuple(c["updated_at"] for c in group),
                fields=fields,
            )
        )
    return tuple(conflicts)


def _describe(conflict: DuplicateConflict) -> str:
    days = ", ".join(str(d) for d in conflict.partition_dates)
    stamps = " and ".join(_utc(ts) for ts in conflict.updated_at)
    differing = ", ".join(conflict.fields) or "key order only"
    return f"(partition {days}): copies updated_at {stamps}, differing in {differing}"


def _utc(ts: datetime | None) -> str:
    if ts is None:
        return "null"
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else plural or singular + 's'}"
