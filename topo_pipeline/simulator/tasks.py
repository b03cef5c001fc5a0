"""One task object built by hand, and the SLA targets generated tasks spread around.

:func:`make_task` builds one valid task as ``GET /v1/tasks`` returns it, for a test or
for live traffic; :data:`SLA_TARGET_MINUTES` are the response-time targets per priority.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from topo_pipeline.simulator.contract import TIMESTAMP_FIELDS, format_timestamp, parse_timestamp

SLA_TARGET_MINUTES: Mapping[str, int] = {"HOT": 60, "TODAY": 1440, "EXTRA": 4320}
"""SLA target per priority, in minutes, that the generated response times spread around.

They are the pipeline's default targets as its README gives them (``TOPO_SLA_*_MINUTES``),
so the data holds tasks that meet them and tasks that miss them. Written here rather than
imported: the simulator depends on nothing of the pipeline's (a test keeps the two equal).
"""


def make_task(**overrides: Any) -> dict[str, Any]:
    """Build one valid task object; keyword arguments replace (or add) fields.

    The default is a PENDING, TODAY-priority EMAIL_REPLY created at
    ``2024-01-01T12:00:00Z`` with a fresh random ``id``. Timestamp overrides may be aware
    datetimes or strings. Unless given explicitly: a COMPLETED task gets ``completed_at``
    30 minutes after ``created_at`` (and ``ANSWERED`` if it is a CALL), a SKIPPED one
    ``skipped_at`` likewise, and ``updated_at`` is the latest timestamp of the task.
    Keys that are not task fields are kept, to stand in for fields Topo adds later.
    """
    values = {
        k: format_timestamp(v) if isinstance(v, datetime) else v for k, v in overrides.items()
    }
    task: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "organization_id": "0b8e4f0e-8a4e-4c8e-9f59-2f1f2b0c1a01",
        "type": "EMAIL_REPLY",
        "priority": "TODAY",
        "status": "PENDING",
        "sequence_id": "5d1f4a3e-6b7c-4d8e-9f0a-1b2c3d4e5f60",
        "assignee_user_id": "7a0f3c52-3e1b-4b8e-8f6a-9d2c4e6b1a10",
        "disposition": None,
        "reopened_at": None,
        "reopen_reason": None,
        "skipped_at": None,
        "completed_at": None,
        "created_at": "2024-01-01T12:00:00Z",
        "updated_at": None,
    }
    task.update(values)
    finished_at = format_timestamp(parse_timestamp(task["created_at"]) + timedelta(minutes=30))
    if task["status"] == "COMPLETED" and "completed_at" not in values:
        task["completed_at"] = finished_at
        if task["type"] == "CALL" and "disposition" not in values:
            task["disposition"] = "ANSWERED"
    if task["status"] == "SKIPPED" and "skipped_at" not in values:
        task["skipped_at"] = finished_at
    if "updated_at" not in values:
        stamps = [task[name] for name in TIMESTAMP_FIELDS if task.get(name)]
        task["updated_at"] = format_timestamp(max(parse_timestamp(s) for s in stamps))
    return task
