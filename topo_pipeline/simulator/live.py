"""Live traffic in the simulated Topo: tasks created "now", worked (or not) as time passes.

:class:`LiveTraffic` drives a :class:`~topo_pipeline.simulator.store.TaskStore` forward in
time. Each :meth:`LiveTraffic.advance` to an instant creates the tasks that arrived since
the previous one (created at seeded instants in between) and applies what happened to the
earlier ones by then: each new task is given, when created, whether and when it will be
started and answered (completed, or now and then skipped), most of them within their
priority's SLA target, some late, some never. ``make dev`` advances it with the wall clock
every few seconds; tests advance it with a driven clock, and :meth:`LiveTraffic.add`
creates a task of their own that nobody answers until they say so.

Seeded: the same store, seed and sequence of instants give the same tasks and changes.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from topo_pipeline.simulator.contract import TASK_TYPES, format_timestamp, parse_timestamp
from topo_pipeline.simulator.store import TaskStore
from topo_pipeline.simulator.tasks import SLA_TARGET_MINUTES, make_task

_PRIORITY_WEIGHTS = {"HOT": 30, "TODAY": 50, "EXTRA": 20}
_TYPES = tuple(sorted(TASK_TYPES))
_OPEN = ("PENDING", "IN_PROGRESS")


@dataclass(frozen=True)
class _Plan:
    """What will happen to one task: started at ``start_at``, answered at ``answer_at``."""

    start_at: datetime | None
    answer_at: datetime | None
    outcome: str  # COMPLETED or SKIPPED


@dataclass(frozen=True)
class LiveActivity:
    """What one :meth:`LiveTraffic.advance` changed, by task id."""

    created: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass
class LiveTraffic:
    """Creates and works tasks in ``store`` as :meth:`advance` moves time forward.

    Attributes:
        store: the simulated API's tasks.
        start: the instant traffic starts from (aware); nothing is created at or before it.
        tasks_per_hour: new tasks per hour, on average.
        assignees: user ids tasks are assigned to (a few stay unassigned); by default the
            assignees already in the store.
        unanswered_share: share of new tasks nobody answers.
        late_share: share of the answered ones answered after their SLA target.
        seed: seed of every random choice.
    """

    store: TaskStore
    start: datetime
    tasks_per_hour: float = 60.0
    assignees: Sequence[str] = ()
    unanswered_share: float = 0.1
    late_share: float = 0.15
    seed: int = 0
    _now: datetime = field(init=False)
    _owed: float = field(init=False, default=0.0)
    _plans: dict[str, _Plan] = field(init=False, default_factory=dict)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.tasks_per_hour < 0:
            raise ValueError("tasks_per_hour must not be negative")
        self._now = self.start
        self._rng = random.Random(f"{self.seed}:live")
        if not self.assignees:
            self.assignees = sorted(
                {t["assignee_user_id"] for t in self.store.all() if t.get("assignee_user_id")}
            )

    @property
    def now(self) -> datetime:
        """The instant traffic has been advanced to."""
        return self._now

    def add(self, *, created_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
        """Create one task at ``created_at`` (default: :attr:`now`) that nobody answers.

        ``fields`` override the task's fields (``priority``, ``type``, ``assignee_user_id``
        ...). Answer it with :meth:`answer`.
        """
        task = make_task(
            id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            created_at=created_at or self._now,
            status="PENDING",
            **fields,
        )
        self.store.upsert(task)
        return task

    def answer(
        self, task_id: str, at: datetime | None = None, *, outcome: str = "COMPLETED"
    ) -> None:
        """Complete (or skip) a stored task at ``at`` (default: :attr:`now`).

        Raises:
            KeyError: if the store has no such task.
        """
        task = self.store.get(task_id)
        if task is None:
            raise KeyError(task_id)
        self.store.upsert(_answered(task, at or self._now, outcome))
        self._plans.pop(task_id, None)

    def advance(self, now: datetime) -> LiveActivity:
        """Move time forward to ``now``: create the tasks that arrived, work the earlier ones.

        Raises:
            ValueError: if ``now`` is naive or before the instant already reached.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if now < self._now:
            raise ValueError(f"time only moves forward: {now} is before {self._now}")
        created = self._create(self._now, now)
        started, completed, skipped = self._work(now)
        self._now = now
        return LiveActivity(tuple(created), tuple(started), tuple(completed), tuple(skipped))

    def run(self, stop: threading.Event, every_seconds: float = 15.0) -> None:
        """Advance to the wall clock every ``every_seconds`` until ``stop`` is set (a thread's
        target: ``make dev`` and ``python -m topo_pipeline.simulator --live``)."""
        while not stop.wait(every_seconds):
            self.advance(max(self._now, datetime.now(UTC)))

    def _create(self, after: datetime, until: datetime) -> list[str]:
        hours = (until - after).total_seconds() / 3600
        self._owed += hours * self.tasks_per_hour
        count = int(self._owed)
        self._owed -= count
        # Whole milliseconds in (after, until], as Topo's timestamps come.
        span = int((until - after).total_seconds() * 1000)
        instants = (
            sorted(after + timedelta(milliseconds=self._rng.randint(1, span)) for _ in range(count))
            if span > 0
            else []
        )
        created = []
        for instant in instants:
            priority = self._rng.choices(
                list(_PRIORITY_WEIGHTS), weights=list(_PRIORITY_WEIGHTS.values())
            )[0]
            assignee = (
                self._rng.choice(list(self.assignees))
                if self.assignees and self._rng.random() > 0.05
                else None
            )
            task = self.add(
                created_at=instant,
                priority=priority,
                type=self._rng.choice(_TYPES),
                assignee_user_id=assignee,
            )
            self._plans[task["id"]] = self._plan(parse_timestamp(task["created_at"]), priority)
            created.append(task["id"])
        return created

    def _plan(self, created_at: datetime, priority: str) -> _Plan:
        if self._rng.random() < self.unanswered_share:
            return _Plan(None, None, "COMPLETED")
        # The scale of the simulated response times: the targets the data set uses.
        target = SLA_TARGET_MINUTES.get(priority, 60)
        late = self._rng.random() < self.late_share
        share = self._rng.uniform(1.05, 1.6) if late else self._rng.uniform(0.1, 0.95)
        answer_at = _to_millisecond(created_at + timedelta(minutes=target * share))
        start_at = _to_millisecond(
            created_at + (answer_at - created_at) * self._rng.uniform(0.2, 0.8)
        )
        outcome = "SKIPPED" if self._rng.random() < 0.1 else "COMPLETED"
        return _Plan(start_at, answer_at, outcome)

    def _work(self, now: datetime) -> tuple[list[str], list[str], list[str]]:
        started: list[str] = []
        completed: list[str] = []
        skipped: list[str] = []
        for task_id in sorted(self._plans):
            plan = self._plans[task_id]
            task = self.store.get(task_id)
            if task is None or task.get("status") not in _OPEN:
                del self._plans[task_id]  # answered, deleted or changed by someone else
                continue
            if plan.answer_at is not None and plan.answer_at <= now:
                self.store.upsert(_answered(task, plan.answer_at, plan.outcome))
                (completed if plan.outcome == "COMPLETED" else skipped).append(task_id)
                del self._plans[task_id]
            elif plan.start_at is not None and plan.start_at <= now and task["status"] == "PENDING":
                stamp = format_timestamp(plan.start_at)
                self.store.upsert(dict(task, status="IN_PROGRESS", updated_at=stamp))
                started.append(task_id)
        return started, completed, skipped


def _to_millisecond(instant: datetime) -> datetime:
    """``instant`` in whole milliseconds, as Topo's timestamps come."""
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _answered(task: Mapping[str, Any], at: datetime, outcome: str) -> dict[str, Any]:
    stamp = format_timestamp(at)
    if outcome == "SKIPPED":
        return dict(task, status="SKIPPED", skipped_at=stamp, updated_at=stamp)
    answered = dict(task, status="COMPLETED", completed_at=stamp, updated_at=stamp)
    if answered.get("type") == "CALL":
        answered["disposition"] = "ANSWERED"
    return answered
