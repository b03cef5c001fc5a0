"""``LiveTraffic``: the simulated Topo's users create tasks "now" and work them over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.simulator import LiveTraffic, TaskStore

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
USERS = ("u1", "u2", "u3")


def drive(seed: int, hours: int = 6) -> tuple[LiveTraffic, list[dict]]:
    store = TaskStore()
    traffic = LiveTraffic(store, start=START, tasks_per_hour=40, assignees=USERS, seed=seed)
    for step in range(1, hours * 6 + 1):  # every ten minutes
        traffic.advance(START + timedelta(minutes=10 * step))
    return traffic, store.all()


def test_tasks_arrive_between_two_instants_and_are_worked_as_planned() -> None:
    store = TaskStore()
    traffic = LiveTraffic(store, start=START, tasks_per_hour=60, assignees=USERS, seed=1)
    first = traffic.advance(START + timedelta(minutes=30))
    assert len(first.created) == 30
    created = [parse_timestamp(store.get(task_id)["created_at"]) for task_id in first.created]
    assert all(START < at <= START + timedelta(minutes=30) for at in created)
    assert {store.get(task_id)["status"] for task_id in first.created} <= {
        "PENDING",
        "IN_PROGRESS",
        "COMPLETED",
        "SKIPPED",
    }

    driven, tasks = drive(seed=1)
    hot = [t for t in tasks if t["priority"] == "HOT"]
    finished = [t for t in hot if t["status"] in ("COMPLETED", "SKIPPED")]
    assert hot
    assert finished
    # Most HOT tasks are answered within their hour, some late, some never.
    in_time = [
        t
        for t in finished
        if parse_timestamp(t.get("completed_at") or t["skipped_at"])
        <= parse_timestamp(t["created_at"]) + timedelta(minutes=60)
    ]
    assert len(in_time) > len(hot) / 2
    assert len(in_time) < len(finished)
    old_open = [
        t
        for t in hot
        if t["status"] in ("PENDING", "IN_PROGRESS")
        and parse_timestamp(t["created_at"]) < START + timedelta(hours=3)
    ]
    assert old_open, "some HOT tasks are never answered"
    # Every change happened by the time it says, never after the last instant reached.
    for task in tasks:
        assert parse_timestamp(task["updated_at"]) <= driven.now
        assert task["assignee_user_id"] in (*USERS, None)


def test_the_same_seed_and_instants_give_the_same_traffic() -> None:
    assert drive(seed=4)[1] == drive(seed=4)[1]
    assert drive(seed=4)[1] != drive(seed=5)[1]


def test_a_task_of_the_tests_own_waits_until_answered() -> None:
    store = TaskStore()
    traffic = LiveTraffic(store, start=START, tasks_per_hour=0)
    task = traffic.add(priority="HOT", type="CALL")
    assert parse_timestamp(task["created_at"]) == START
    traffic.advance(START + timedelta(hours=5))
    assert store.get(task["id"])["status"] == "PENDING"
    traffic.answer(task["id"], START + timedelta(hours=5))
    answered = store.get(task["id"])
    assert (answered["status"], answered["disposition"]) == ("COMPLETED", "ANSWERED")
    assert answered["completed_at"] == "2026-03-10T14:00:00Z"


def test_time_only_moves_forward() -> None:
    traffic = LiveTraffic(TaskStore(), start=START)
    traffic.advance(START + timedelta(minutes=5))
    with pytest.raises(ValueError, match="only moves forward"):
        traffic.advance(START)
    with pytest.raises(ValueError, match="aware"):
        LiveTraffic(TaskStore(), start=datetime(2026, 3, 10))
