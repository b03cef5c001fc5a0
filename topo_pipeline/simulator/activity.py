"""Work done in the simulated Topo between two fetches: tasks progress, move, disappear.

:func:`move_on` changes some of a store's open tasks the way a sales team's day does
(started, completed, skipped, reassigned) and deletes one, so a later fetch of the same
days shows what changed. Seeded: the same store, arguments and seed give the same changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from topo_pipeline.simulator.contract import format_timestamp, parse_timestamp
from topo_pipeline.simulator.store import TaskStore

_OPEN = ("PENDING", "IN_PROGRESS")


@dataclass(frozen=True)
class Activity:
    """What :func:`move_on` changed, by task id."""

    started: tuple[str, ...]
    completed: tuple[str, ...]
    skipped: tuple[str, ...]
    reassigned: tuple[str, ...]
    deleted: tuple[str, ...]


def move_on(
    store: TaskStore,
    *,
    created_from: datetime,
    now: datetime,
    created_before: datetime | None = None,
    share: float = 0.3,
    seed: int = 0,
) -> Activity:
    """Change a ``share`` of the open tasks created at or after ``created_from``, at ``now``.

    With ``created_before``, only tasks created before it are changed (and deleted).

    Of the tasks picked: most are completed or skipped at ``now``, pending ones may be
    started (IN_PROGRESS), some are reassigned to another user seen in the store; one more
    open task is deleted.

    Raises:
        ValueError: if ``now`` is naive, or ``share`` is not in [0, 1].
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not 0 <= share <= 1:
        raise ValueError("share must be in [0, 1]")
    rng = random.Random(seed)
    tasks = sorted(store.all(), key=lambda t: t["id"])
    users = sorted({t["assignee_user_id"] for t in tasks if t.get("assignee_user_id")})
    candidates = [
        t
        for t in tasks
        if t.get("status") in _OPEN
        and parse_timestamp(t["created_at"]) >= created_from
        and (created_before is None or parse_timestamp(t["created_at"]) < created_before)
    ]
    picked = rng.sample(candidates, round(len(candidates) * share))
    stamp = format_timestamp(now)
    changed: dict[str, list[str]] = {
        k: [] for k in ("started", "completed", "skipped", "reassigned")
    }
    for task in picked:
        roll = rng.random()
        task = dict(task, updated_at=stamp)
        if roll < 0.45:
            task.update(status="COMPLETED", completed_at=stamp)
            if task.get("type") == "CALL":
                task["disposition"] = rng.choice(("ANSWERED", "VOICEMAIL_LEFT", "NO_ANSWER"))
            changed["completed"].append(task["id"])
        elif roll < 0.6:
            task.update(status="SKIPPED", skipped_at=stamp)
            changed["skipped"].append(task["id"])
        elif roll < 0.85:
            if task["status"] != "PENDING":
                continue  # still being worked on
            task["status"] = "IN_PROGRESS"
            changed["started"].append(task["id"])
        else:
            others = [u for u in users if u != task.get("assignee_user_id")]
            if not others:
                continue
            task["assignee_user_id"] = rng.choice(others)
            changed["reassigned"].append(task["id"])
        store.upsert(task)
    picked_ids = {t["id"] for t in picked}
    untouched = [t["id"] for t in candidates if t["id"] not in picked_ids]
    deleted = (rng.choice(untouched),) if untouched else ()
    for task_id in deleted:
        store.delete(task_id)
    return Activity(
        started=tuple(changed["started"]),
        completed=tuple(changed["completed"]),
        skipped=tuple(changed["skipped"]),
        reassigned=tuple(changed["reassigned"]),
        deleted=deleted,
    )
