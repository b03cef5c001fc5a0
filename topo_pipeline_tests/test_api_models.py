"""Parsing of task objects and page envelopes, including the lenient and strict paths."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from topo_pipeline.api.errors import TopoDataError
from topo_pipeline.api.models import (
    KNOWN_ENUM_VALUES,
    REQUIRED_FIELDS,
    Task,
    TaskPage,
    format_timestamp,
    parse_timestamp,
)

FULL = {
    "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "organization_id": "0b8e4f0e-8a4e-4c8e-9f59-2f1f2b0c1a01",
    "type": "CALL",
    "priority": "HOT",
    "status": "COMPLETED",
    "sequence_id": "5d1f4a3e-6b7c-4d8e-9f0a-1b2c3d4e5f60",
    "assignee_user_id": None,
    "disposition": "ANSWERED",
    "reopened_at": "2025-03-14T09:22:11.483Z",
    "reopen_reason": "REMINDER_RULE",
    "skipped_at": None,
    "completed_at": "2025-03-14T10:00:00+01:00",
    "created_at": "2025-03-14T08:00:00Z",
    "updated_at": "2025-03-14T10:00:00Z",
    "brand_new_field": {"nested": [1, 2]},
}


def unknown_enum_values(task: Task) -> dict[str, str]:
    """Enum fields whose value Topo does not document (the known_enum_values check's rule)."""
    values = {name: getattr(task, name) for name in KNOWN_ENUM_VALUES}
    return {
        name: value
        for name, value in values.items()
        if value is not None and value not in KNOWN_ENUM_VALUES[name]
    }


def missing_required_fields(task: Task) -> list[str]:
    """Required fields that are None (the required_fields_present check's rule)."""
    return [name for name in REQUIRED_FIELDS if getattr(task, name) is None]


def test_parses_every_field_and_keeps_raw_exactly() -> None:
    task = Task.from_api(FULL)
    assert task.id == FULL["id"]
    assert task.assignee_user_id is None
    assert task.created_at == datetime(2025, 3, 14, 8, 0, tzinfo=UTC)
    # an explicit offset is converted to UTC
    assert task.completed_at == datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    assert task.reopened_at == datetime(2025, 3, 14, 9, 22, 11, 483000, tzinfo=UTC)
    assert task.raw == FULL
    assert missing_required_fields(task) == []
    assert unknown_enum_values(task) == {}


def test_unknown_enum_values_are_kept_and_named() -> None:
    task = Task.from_api({**FULL, "status": "ARCHIVED", "type": "SMS"})
    assert task.status == "ARCHIVED"
    assert unknown_enum_values(task) == {"type": "SMS", "status": "ARCHIVED"}


def test_missing_required_fields_become_none_and_are_named() -> None:
    obj = {k: v for k, v in FULL.items() if k not in ("priority", "updated_at")}
    task = Task.from_api(obj)
    assert task.priority is None
    assert missing_required_fields(task) == ["priority", "updated_at"]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "not a JSON object"),
        ({**FULL, "id": None}, "no 'id'"),
        ({**FULL, "created_at": None}, "no 'created_at'"),
        ({**FULL, "completed_at": "yesterday"}, "completed_at 'yesterday' is not an ISO 8601"),
        ({**FULL, "created_at": 1700000000}, "created_at is not a date-time string"),
        ({**FULL, "status": 3}, "field 'status' should be a string"),
    ],
)
def test_structural_problems_raise_a_named_error(obj: object, message: str) -> None:
    with pytest.raises(TopoDataError, match=message):
        Task.from_api(obj)


def test_naive_timestamps_are_utc_and_formatting_is_z_suffixed() -> None:
    assert parse_timestamp("2025-01-01T00:00:00") == datetime(2025, 1, 1, tzinfo=UTC)
    assert format_timestamp(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2025, 1, 1))


def test_page_envelope_is_validated() -> None:
    page = TaskPage.from_api({"items": [], "total_count": 250, "total_pages": 3, "has_more": True})
    assert page.page_count_for(100) == 3
    assert (
        TaskPage.from_api(
            {"items": [], "total_count": 0, "total_pages": 0, "has_more": False}
        ).page_count_for(100)
        == 1
    )
    for broken in (
        {"total_count": 1, "total_pages": 1, "has_more": False},
        {"items": [], "total_count": "1", "total_pages": 1, "has_more": False},
        {"items": [], "total_count": 1, "total_pages": 1, "has_more": "no"},
        {"items": [], "total_count": True, "total_pages": 1, "has_more": False},
        "[]",
    ):
        with pytest.raises(TopoDataError):
            TaskPage.from_api(broken)
