"""Typed records of Topo's task object (:class:`Task`, declared field by field in
:data:`TASK_SCHEMA`) and of the list-tasks page envelope (:class:`TaskPage`).

Enum fields stay plain strings, so a value Topo adds later lands and an asset check
reports it; ``id`` and ``created_at`` are strict, and a timestamp without a UTC offset is
refused rather than guessed (``api/README.md`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from topo_pipeline.api.errors import TopoDataError

TASK_TYPES = frozenset({"CALL", "EMAIL_REPLY", "LINKEDIN_REPLY", "NEW_LEAD_REVIEW"})
PRIORITIES = frozenset({"HOT", "TODAY", "EXTRA"})
STATUSES = frozenset({"PENDING", "IN_PROGRESS", "COMPLETED", "SKIPPED"})
DISPOSITIONS = frozenset({"ANSWERED", "VOICEMAIL_LEFT", "NO_ANSWER"})
REOPEN_REASONS = frozenset({"REMINDER_RULE"})

#: Enum-typed task fields and the values Topo documents for each.
KNOWN_ENUM_VALUES: Mapping[str, frozenset[str]] = {
    "type": TASK_TYPES,
    "priority": PRIORITIES,
    "status": STATUSES,
    "disposition": DISPOSITIONS,
    "reopen_reason": REOPEN_REASONS,
}


@dataclass(frozen=True, slots=True)
class TaskField:
    """One field of Topo's task object: the single declaration of the task schema.

    :class:`Task`'s attributes, the warehouse's ``topo.tasks`` and stage columns (their
    types and comments), the SQL that lands them and the asset checks are all derived
    from :data:`TASK_SCHEMA` or checked against it by a test.
    """

    name: str
    kind: Literal["string", "timestamp"]
    """``string`` (ids and enum values are kept as text) or ``timestamp`` (ISO 8601, UTC)."""
    description: str
    """What the field means; becomes the column's ``COMMENT`` in DuckDB."""
    required: bool = False
    """The object page marks it required (``id`` and ``created_at`` are strict besides)."""
    strict: bool = False
    """Without it a task cannot be placed or de-duplicated: :meth:`Task.from_api` refuses it."""


#: Topo's task object, in the order Topo documents its fields.
TASK_SCHEMA: tuple[TaskField, ...] = (
    TaskField("id", "string", "Task id (UUID). Unique.", strict=True),
    TaskField(
        "organization_id",
        "string",
        "Topo workspace (organization) the task belongs to.",
        required=True,
    ),
    TaskField(
        "type",
        "string",
        "Task type: CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW (Topo may add values).",
        required=True,
    ),
    TaskField(
        "priority",
        "string",
        "Priority bucket set by Topo: HOT, TODAY, EXTRA (Topo may add values).",
        required=True,
    ),
    TaskField(
        "status",
        "string",
        "Status when fetched: PENDING, IN_PROGRESS, COMPLETED, SKIPPED (Topo may add values).",
        required=True,
    ),
    TaskField("sequence_id", "string", "Sequence run that created the task.", required=True),
    TaskField(
        "assignee_user_id",
        "string",
        "Workspace user the task is assigned to; NULL means unassigned.",
    ),
    TaskField(
        "disposition",
        "string",
        "Outcome of a CALL task: ANSWERED, VOICEMAIL_LEFT, NO_ANSWER; NULL otherwise.",
    ),
    TaskField("reopened_at", "timestamp", "When the task was last reopened; NULL if never."),
    TaskField("reopen_reason", "string", "Why it was last reopened: REMINDER_RULE; NULL if never."),
    TaskField("skipped_at", "timestamp", "When the task was skipped; NULL if not skipped."),
    TaskField("completed_at", "timestamp", "When the task was completed; NULL if not completed."),
    TaskField(
        "created_at",
        "timestamp",
        "When Topo created the task. Decides partition_date.",
        strict=True,
    ),
    TaskField("updated_at", "timestamp", "When Topo last modified the task.", required=True),
)

#: Every field of the task object, in the order Topo documents them.
TASK_FIELDS = tuple(f.name for f in TASK_SCHEMA)
TIMESTAMP_FIELDS = frozenset(f.name for f in TASK_SCHEMA if f.kind == "timestamp")
#: Fields the object page marks required (besides ``id`` and ``created_at``, which are strict).
REQUIRED_FIELDS = tuple(f.name for f in TASK_SCHEMA if f.required)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 timestamp into an aware UTC datetime.

    Accepts a ``Z`` suffix or an explicit offset; a naive value is taken as UTC, which is
    what Topo's examples show.

    Raises:
        ValueError: if ``value`` is not an ISO 8601 date-time.
    """
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with a ``Z`` suffix (microseconds if any)."""
    if value.tzinfo is None:
        raise ValueError("refusing to format a naive datetime")
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


@dataclass(frozen=True, slots=True)
class Task:
    """One Topo task as received, with timestamps parsed to aware UTC datetimes.

    ``raw`` is the object exactly as the API sent it, so fields Topo adds later are kept.
    """

    id: str
    organization_id: str | None
    type: str | None
    priority: str | None
    status: str | None
    sequence_id: str | None
    assignee_user_id: str | None
    disposition: str | None
    reopened_at: datetime | None
    reopen_reason: str | None
    skipped_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, obj: Any) -> Task:
        """Build a task from one item of a list-tasks page.

        Raises:
            TopoDataError: if the item is not an object, or its ``id`` or ``created_at`` is
                missing or malformed, or a timestamp field does not parse.
        """
        if not isinstance(obj, Mapping):
            raise TopoDataError(f"a task item is a {type(obj).__name__}, not a JSON object")
        task_id = obj.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise TopoDataError("a task item has no 'id'")
        values: dict[str, Any] = {}
        for name in TASK_FIELDS:
            value = obj.get(name)
            if name in TIMESTAMP_FIELDS:
                value = _timestamp_field(task_id, name, value)
            elif value is not None and not isinstance(value, str):
                raise TopoDataError(
                    f"task {task_id}: field {name!r} should be a string, got {type(value).__name__}"
                )
            values[name] = value
        if values["created_at"] is None:
            raise TopoDataError(f"task {task_id} has no 'created_at'")
        return cls(**values, raw=obj)


def _timestamp_field(task_id: str, name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TopoDataError(f"task {task_id}: {name} is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TopoDataError(
            f"task {task_id}: {name} {value!r} is not an ISO 8601 date-time"
        ) from None
    if parsed.tzinfo is None:
        raise TopoDataError(
            f"task {task_id}: {name} {value[:40]!r} has no UTC offset ('Z' or +hh:mm). Topo "
            "documents timestamps with one; the pipeline does not guess the zone, which "
            "could put tasks in the wrong day."
        )
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of ``GET /v1/tasks``: the envelope every Topo list endpoint uses."""

    items: list[Any]
    total_count: int
    total_pages: int
    has_more: bool

    @classmethod
    def from_api(cls, body: Any) -> TaskPage:
        """Validate the envelope; items stay raw until :meth:`Task.from_api`.

        Raises:
            TopoDataError: if a required envelope field is missing or of the wrong type.
        """
        if not isinstance(body, Mapping):
            raise TopoDataError("the page body is not a JSON object")
        items = body.get("items")
        total_count = body.get("total_count")
        total_pages = body.get("total_pages")
        has_more = body.get("has_more")
        if not isinstance(items, list):
            raise TopoDataError("the page has no 'items' list")
        for name, value in (("total_count", total_count), ("total_pages", total_pages)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TopoDataError(f"the page's {name!r} is not a non-negative integer")
        if not isinstance(has_more, bool):
            raise TopoDataError("the page's 'has_more' is not a boolean")
        return cls(items=items, total_count=total_count, total_pages=total_pages, has_more=has_more)

    def page_count_for(self, size: int) -> int:
        """Pages needed for ``total_count`` at ``size`` (does not trust ``total_pages``)."""
        return max(1, math.ceil(self.total_count / size))
