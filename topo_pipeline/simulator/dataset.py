"""What a simulated data set is: the :class:`DatasetSpec` asked for, the data set generated.

:func:`~topo_pipeline.simulator.generation.generate_dataset` turns a spec into a
:class:`SimulatedDataset`. Equal specs always give identical data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate. Equal specs always give identical data.

    Attributes:
        seed: seed of every random choice.
        start_date: the first day (a calendar day in ``timezone``).
        days: how many consecutive days carry tasks.
        tasks_per_day: exact task count for each day (``days`` values); ``None`` gives a
            seeded, realistic spread: ~1,500-3,500 on weekdays, a few hundred on weekend
            days, and now and then a near-empty day.
        timezone: IANA zone whose calendar days these are; "exactly midnight" tasks sit
            at 00:00 in this zone.
        assignees: number of workspace users tasks are assigned to (besides unassigned).
        as_of: the simulated present (aware). Nothing happens after it: tasks created
            later are left out, and completions, skips and reopens that would come later
            have not happened yet (the task is still open). ``None`` means the end of the
            last day.
        tie_group_size: size of the one large group of tasks sharing a ``created_at``,
            put on the first day with room for it (at least ``tie_group_size + 50``
            tasks besides the midnight ones); 0 disables it.
    """

    seed: int = 7
    start_date: date = date(2024, 1, 1)
    days: int = 14
    tasks_per_day: Sequence[int] | None = None
    timezone: str = "UTC"
    assignees: int = 8
    as_of: datetime | None = None
    tie_group_size: int = 300

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.assignees < 1:
            raise ValueError("assignees must be at least 1")
        if self.tie_group_size < 0:
            raise ValueError("tie_group_size must not be negative")
        if self.tasks_per_day is not None:
            counts = tuple(self.tasks_per_day)
            if len(counts) != self.days or any(n < 0 for n in counts):
                raise ValueError("tasks_per_day needs one non-negative count per day")
            object.__setattr__(self, "tasks_per_day", counts)
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        ZoneInfo(self.timezone)  # fail early on an unknown zone

    @property
    def dates(self) -> list[date]:
        """The calendar days covered, in order."""
        return [self.start_date + timedelta(days=i) for i in range(self.days)]

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """``[start, end)`` of a calendar day in ``timezone``, as aware UTC datetimes."""
        zone = ZoneInfo(self.timezone)
        start = datetime.combine(day, time(0), zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
        return start, end

    def effective_as_of(self) -> datetime:
        """``as_of``, or the end of the last day when it is not set."""
        if self.as_of is not None:
            return self.as_of.astimezone(UTC)
        return self.day_bounds(self.dates[-1])[1]


@dataclass(frozen=True)
class SimulatedDataset:
    """Generated tasks plus the data the API knows but does not put on a task.

    Attributes:
        tasks: task objects as the API serves them, ordered by ``created_at`` then ``id``.
        sequence_templates: sequence run id → its sequence template id.
    """

    tasks: list[dict[str, Any]]
    sequence_templates: dict[str, str] = field(default_factory=dict)
