"""A seeded, deterministic, realistic set of Topo tasks for the simulated API.

:func:`generate_dataset` turns a :class:`~topo_pipeline.simulator.dataset.DatasetSpec`
into task objects exactly as ``GET /v1/tasks`` returns them, plus the sequence-run →
template mapping the ``sequence_template_ids`` filter needs. What the data contains on
purpose (ties across page boundaries, tasks at midnight, SLA edge cases, ...) and the
rules its timestamps follow: ``simulator/README.md``, "Data set".
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from topo_pipeline.simulator.contract import (
    DISPOSITIONS,
    PRIORITIES,
    TASK_FIELDS,
    TASK_TYPES,
)
from topo_pipeline.simulator.dataset import DatasetSpec, SimulatedDataset
from topo_pipeline.simulator.tasks import SLA_TARGET_MINUTES

# Relative weights of the documented values (the sets come from contract.py, so a value
# added there is generated too, at weight 1, until it gets a weight here).
# Draws go through sorted() names so the sequence never depends on set iteration order.
_TYPE_WEIGHTS = {"CALL": 30, "EMAIL_REPLY": 35, "LINKEDIN_REPLY": 20, "NEW_LEAD_REVIEW": 15}
_PRIORITY_WEIGHTS = {"HOT": 15, "TODAY": 55, "EXTRA": 30}
_DISPOSITION_WEIGHTS = {"ANSWERED": 35, "VOICEMAIL_LEFT": 35, "NO_ANSWER": 30}

_MIDNIGHT_TASKS_PER_DAY = 2
_TEMPLATES = 12
_DAY = 86_400


def assignee_ids(spec: DatasetSpec) -> list[str]:
    """The workspace user ids the tasks of ``spec`` are assigned to, heaviest workload first.

    They depend on ``seed`` and ``assignees`` only; ``examples/assignees.csv`` names those of
    the default seed (the demo's).
    """
    return _draw_assignees(random.Random(f"{spec.seed}:people"), spec.assignees)


def _draw_assignees(people: random.Random, count: int) -> list[str]:
    return [_uuid(people) for _ in range(count)]


def generate_dataset(spec: DatasetSpec) -> SimulatedDataset:
    """Generate the tasks and run → template mapping that ``spec`` describes."""
    people = random.Random(f"{spec.seed}:people")
    organization_id = _uuid(random.Random(f"{spec.seed}:organization"))
    assignees = _draw_assignees(people, spec.assignees)
    # Uneven workloads: the first reps carry noticeably more tasks than the last.
    assignee_weights = [1.0 / (1.0 + 0.35 * i) for i in range(spec.assignees)]
    templates = [_uuid(people) for _ in range(_TEMPLATES)]
    context = _Context(
        spec=spec,
        organization_id=organization_id,
        assignees=assignees,
        assignee_weights=assignee_weights,
        templates=templates,
        as_of=_epoch(spec.effective_as_of()),
    )

    counts = list(spec.tasks_per_day or (_default_count(spec.seed, d) for d in spec.dates))
    tie_day = _tie_day(spec, counts)
    previous_runs: list[_Run] = []
    for day, count in zip(spec.dates, counts, strict=True):
        previous_runs = _generate_day(
            context, day, count, previous_runs, tie_group=spec.tie_group_size * (day == tie_day)
        )
    context.tasks.sort(key=lambda t: (t["created_at"], t["id"]))
    return SimulatedDataset(tasks=context.tasks, sequence_templates=context.sequence_templates)


def generate_tasks(spec: DatasetSpec) -> list[dict[str, Any]]:
    """The task objects of :func:`generate_dataset` (without the run → template map)."""
    return generate_dataset(spec).tasks


# --- generation -------------------------------------------------------------------


@dataclass
class _Run:
    """A sequence run: its tasks share a template and, mostly, an owner."""

    id: str
    owner: str | None


@dataclass
class _Context:
    spec: DatasetSpec
    organization_id: str
    assignees: list[str]
    assignee_weights: list[float]
    templates: list[str]
    as_of: int  # epoch seconds
    tasks: list[dict[str, Any]] = field(default_factory=list)
    sequence_templates: dict[str, str] = field(default_factory=dict)


def _default_count(seed: int, day: date) -> int:
    """A realistic, seeded task volume for one day."""
    rng = random.Random(f"{seed}:volume:{day.isoformat()}")
    if rng.random() < 0.08:
        return rng.randint(3, 30)  # a holiday or an outage: almost nothing happens
    if day.weekday() >= 5:
        return rng.randint(80, 400)
    return rng.randint(1500, 3500)


def _tie_day(spec: DatasetSpec, counts: list[int]) -> date | None:
    """The first day with room for the big tie group to straddle page boundaries."""
    if spec.tie_group_size == 0:
        return None
    for day, count in zip(spec.dates, counts, strict=True):
        if count - _MIDNIGHT_TASKS_PER_DAY - spec.tie_group_size >= 50:
            return day
    return None


def _generate_day(
    context: _Context, day: date, count: int, previous_runs: list[_Run], tie_group: int
) -> list[_Run]:
    """Append one day's tasks to ``context.tasks``; return the runs started that day."""
    rng = random.Random(f"{context.spec.seed}:{day.isoformat()}")
    start, end = (_epoch(b) for b in context.spec.day_bounds(day))
    created = _creation_times(rng, start, end, count - tie_group, tie_group)

    runs = [
        _new_run(context, rng, rng.choice(context.templates))
        for _ in range(max(1, (count - tie_group) // 3))
    ]
    # A bulk launch: a contact list enrolled into one template creates one run (and one
    # task) per contact in the same second.
    bulk_template = rng.choice(context.templates)
    bulk_runs = [_new_run(context, rng, bulk_template) for _ in range(tie_group)]
    tie_second = created.tie_second

    for created_at in created.times:
        if created_at > context.as_of:
            # Not generated yet at the simulated present. Draw nothing more: the rest
            # of the day is later still.
            break
        if created_at == tie_second and bulk_runs:
            run = bulk_runs.pop()
        elif previous_runs and rng.random() < 0.25:
            run = rng.choice(previous_runs)  # a multi-day sequence reaching a later step
        else:
            run = rng.choice(runs)
        context.tasks.append(_task(context, rng, run, created_at))
    return runs + bulk_runs


@dataclass
class _CreationTimes:
    times: list[int]
    tie_second: int | None


def _creation_times(
    rng: random.Random, start: int, end: int, regular: int, tie_group: int
) -> _CreationTimes:
    """Sorted creation instants (epoch seconds) of one day ``[start, end)``.

    ``regular`` instants cluster in business hours, with a few small bursts; the first
    ones sit exactly at midnight and one in the day's last second. ``tie_group`` more
    share one second, chosen so that exactly ``k`` tasks with ``k % 100 == 50`` come
    before it: in the day's window at ``size=100`` the group then straddles pages.
    """
    midnight = min(regular, _MIDNIGHT_TASKS_PER_DAY)
    times = [start] * midnight
    if regular - midnight >= 10:
        times.append(end - 1)
    business_start, business_end = start + 8 * 3600, start + 18 * 3600
    while len(times) < regular:
        if rng.random() < 0.8:
            instant = rng.randrange(business_start, business_end)
        else:
            instant = rng.randrange(start, end)
        instant = min(max(instant, start + 1), end - 2)
        burst = rng.randint(2, 8) if rng.random() < 0.01 else 1  # e.g. a reply storm
        times.extend([instant] * min(burst, regular - len(times)))
    times.sort()
    if not tie_group:
        return _CreationTimes(times, None)

    before = max(50, (len(times) // 2) // 100 * 100 + 50)  # mid-day, ≡ 50 (mod 100)
    second = times[before - 1] + 1
    # Nothing of the regular tasks may share the group's second, or the group would
    # not start at position `before`; move those one second later.
    for i in range(before, len(times)):
        if times[i] > second:
            break
        times[i] = second + 1
    times[before:before] = [second] * tie_group
    return _CreationTimes(times, second)


def _new_run(context: _Context, rng: random.Random, template: str) -> _Run:
    run_id = _uuid(rng)
    context.sequence_templates[run_id] = template
    owner = None if rng.random() < 0.06 else _assignee(context, rng)
    return _Run(run_id, owner)


def _assignee(context: _Context, rng: random.Random) -> str:
    return rng.choices(context.assignees, weights=context.assignee_weights)[0]


def _task(context: _Context, rng: random.Random, run: _Run, created: int) -> dict[str, Any]:
    """One task created at ``created`` (epoch seconds), with its history up to ``as_of``."""
    as_of = context.as_of
    task_type = _weighted(rng, TASK_TYPES, _TYPE_WEIGHTS)
    priority = _weighted(rng, PRIORITIES, _PRIORITY_WEIGHTS)
    roll = rng.random()
    if roll < 0.9:
        assignee = run.owner
    elif roll < 0.97:
        assignee = _assignee(context, rng)  # reassigned away from the run's owner
    else:
        assignee = None
    # Response times spread around the pipeline's default SLA targets.
    target = SLA_TARGET_MINUTES.get(priority, 1440) * 60

    status, finished, opened, reopened = _history(rng, created, target, as_of)
    completed_at = finished if status == "COMPLETED" else None
    skipped_at = finished if status == "SKIPPED" else None
    disposition = None
    if task_type == "CALL" and status == "COMPLETED":
        disposition = _weighted(rng, DISPOSITIONS, _DISPOSITION_WEIGHTS)

    updated = max(s for s in (created, finished, opened, reopened) if s is not None)
    if rng.random() < 0.05:
        # A later edit that changes no status (a note, a reassignment).
        updated = min(as_of, updated + rng.randrange(60, 2 * _DAY))
    stamps = {
        "reopened_at": reopened,
        "skipped_at": skipped_at,
        "completed_at": completed_at,
        "created_at": created,
        "updated_at": updated,
    }
    task = {
        "id": _uuid(rng),
        "organization_id": context.organization_id,
        "type": task_type,
        "priority": priority,
        "status": status,
        "sequence_id": run.id,
        "assignee_user_id": assignee,
        "disposition": disposition,
        "reopen_reason": "REMINDER_RULE" if reopened is not None else None,
        **{name: _format(value) for name, value in stamps.items()},
    }
    return {name: task[name] for name in TASK_FIELDS}


def _history(
    rng: random.Random, created: int, target: int, as_of: int
) -> tuple[str, int | None, int | None, int | None]:
    """Status, finish (completion or skip), opened-at and reopened-at instants of a task.

    The reps' response times spread around the SLA target (about a quarter of the
    actions miss it); an action that would only happen after ``as_of`` has not happened
    yet, so recent tasks are more often still open.
    """
    roll = rng.random()
    outcome = "COMPLETED" if roll < 0.72 else "SKIPPED" if roll < 0.89 else None
    status, finished, opened = _act(rng, created, target, as_of, outcome)
    reopened = None
    if finished is not None and rng.random() < 0.07:
        # A reminder rule reopens it; then it is acted on again, or is still open.
        candidate = finished + int(target * rng.uniform(0.1, 2.0)) + 1
        if candidate <= as_of:
            reopened = candidate
            roll = rng.random()
            outcome = "COMPLETED" if roll < 0.55 else "SKIPPED" if roll < 0.7 else None
            status, finished, opened = _act(rng, reopened, target, as_of, outcome)
    return status, finished, opened, reopened


def _act(
    rng: random.Random, since: int, target: int, as_of: int, outcome: str | None
) -> tuple[str, int | None, int | None]:
    """Status, finish and opened-at instants of acting on a task from ``since``."""
    # Log-normal with a median of half the target: about 27 % of actions miss the SLA.
    delay = int(target * rng.lognormvariate(math.log(0.5), 1.1))
    delay = min(max(delay, 30), 30 * _DAY)
    opened = since + max(1, int(delay * rng.uniform(0.05, 0.6)))
    if outcome is not None and since + delay <= as_of:
        return outcome, since + delay, None
    if opened <= as_of and (outcome is not None or rng.random() < 0.4):
        return "IN_PROGRESS", None, opened
    return "PENDING", None, None


def _weighted(rng: random.Random, values: frozenset[str], weights: dict[str, int]) -> str:
    names = sorted(values)
    return rng.choices(names, weights=[weights.get(n, 1) for n in names])[0]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _epoch(value: datetime) -> int:
    return math.floor(value.timestamp())


def _format(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
