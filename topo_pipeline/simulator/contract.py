"""Topo's task object as the simulator serves it: its fields, enum values and timestamps.

Written from Topo's documentation (the task object and List Tasks in ``topo-api.md``), not
imported from the pipeline: the simulator is a second, independent implementation of the
contract the client reads, so a mistake in the client's reading cannot hide in the fake
as well. ``test_simulator.py`` pins these values to the documented ones.
"""

from __future__ import annotations

from datetime import UTC, datetime

TASK_FIELDS = (
    "id",
    "organization_id",
    "type",
    "priority",
    "status",
    "sequence_id",
    "assignee_user_id",
    "disposition",
    "reopened_at",
    "reopen_reason",
    "skipped_at",
    "completed_at",
    "created_at",
    "updated_at",
)
"""The 14 fields of a task, in the order Topo documents them."""

TIMESTAMP_FIELDS = frozenset(
    {"reopened_at", "skipped_at", "completed_at", "created_at", "updated_at"}
)
"""The fields holding ISO 8601 date-times (or null)."""

TASK_TYPES = frozenset({"CALL", "EMAIL_REPLY", "LINKEDIN_REPLY", "NEW_LEAD_REVIEW"})
PRIORITIES = frozenset({"HOT", "TODAY", "EXTRA"})
STATUSES = frozenset({"PENDING", "IN_PROGRESS", "COMPLETED", "SKIPPED"})
DISPOSITIONS = frozenset({"ANSWERED", "VOICEMAIL_LEFT", "NO_ANSWER"})
"""Outcome of a completed CALL task; null on every other task."""


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime.

    Takes ``Z``, an offset, or no offset at all (read as UTC), as the List Tasks bounds do.

    Raises:
        ValueError: if ``text`` is not an ISO 8601 date-time.
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """``value`` as Topo writes a timestamp: ISO 8601 in UTC with ``Z``.

    Microseconds appear only when ``value`` has any (``2024-01-01T12:00:00Z``).

    Raises:
        ValueError: if ``value`` is naive (it names no instant).
    """
    if value.tzinfo is None:
        raise ValueError("a naive datetime names no instant; give it a time zone")
    return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
