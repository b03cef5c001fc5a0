"""The working calendar business-hours SLAs are counted in: working hours per weekday, holidays.

``TOPO_BUSINESS_HOURS`` describes the hours, e.g. ``Mon-Fri 09:00-18:00`` (local times of
``TOPO_TIMEZONE``; days as ``Mon``..``Sun``, ranges and commas: ``Mon-Thu,Sat``; an end of
``24:00`` means midnight at the end of the day). ``TOPO_HOLIDAYS_PATH`` optionally names a
CSV with a ``date`` column (``YYYY-MM-DD``; more columns, a ``name`` say, are ignored):
days without working hours. :func:`parse_business_hours` and :func:`read_holidays` validate
them; :class:`WorkingCalendar` is what ``analytics.task_sla`` is computed with
(``task_sla_insert_partitions.sql`` generates the working intervals in SQL and joins them
to the tasks). Nothing here imports Dagster.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class WorkingCalendar:
    """Working hours on ``weekdays`` (ISO numbers, Monday 1) from ``start_minute`` to
    ``end_minute`` after local midnight, except on ``holidays`` (local dates)."""

    weekdays: tuple[int, ...]
    start_minute: int
    end_minute: int
    holidays: tuple[date, ...] = ()

    @property
    def minutes_per_day(self) -> int:
        return self.end_minute - self.start_minute

    def horizon_days(self, target_minutes: int) -> int:
        """Calendar days after a task's creation within which any target is reached."""
        working_days = math.ceil(target_minutes / self.minutes_per_day) + 1
        weeks = math.ceil(working_days / len(self.weekdays))
        return 7 * weeks + 7 + len(self.holidays)

    def describe(self) -> str:
        days = ",".join(_DAYS[d - 1].title() for d in self.weekdays)
        start, end = divmod(self.start_minute, 60), divmod(self.end_minute, 60)
        text = f"{days} {start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}"
        return text + (f", {len(self.holidays)} holiday(s)" if self.holidays else "")


def parse_business_hours(text: str) -> WorkingCalendar:
    """``Mon-Fri 09:00-18:00`` as a :class:`WorkingCalendar` without holidays.

    Raises:
        ValueError: saying what is wrong and what the format is.
    """
    parts = text.strip().split()
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not like 'Mon-Fri 09:00-18:00'")
    days_text, hours_text = parts
    weekdays: set[int] = set()
    for item in days_text.lower().split(","):
        first, _, last = item.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"{item!r} is not a day or range of days (Mon..Sun) in {text!r}")
        low, high = _DAYS.index(first), _DAYS.index(last or first)
        if high < low:
            raise ValueError(f"the days {item!r} run backwards in {text!r}")
        weekdays.update(range(low + 1, high + 2))
    match = _HOURS.fullmatch(hours_text)
    if match is None:
        raise ValueError(f"{hours_text!r} is not hours like 09:00-18:00 in {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if m1 > 59 or m2 > 59 or start >= 24 * 60 or end > 24 * 60 or end <= start:
        raise ValueError(
            f"{hours_text!r} must start before it ends, within one day (00:00-24:00), in {text!r}"
        )
    return WorkingCalendar(tuple(sorted(weekdays)), start, end)


def read_holidays(path: Path) -> tuple[date, ...]:
    """The dates of the holidays CSV at ``path``, sorted.

    Raises:
        ValueError: naming every bad line (a missing ``date`` column, a date that is not
            ``YYYY-MM-DD``, a repeated date).
        OSError: if the file cannot be read.
    """
    problems: list[str] = []
    found: dict[date, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        if "date" not in header:
            raise ValueError(f"holidays file {path}: line 1: the header lacks column date")
        reader.fieldnames = header
        for record in reader:
            line = reader.line_num
            value = (record.get("date") or "").strip()
            try:
                day = date.fromisoformat(value)
            except ValueError:
                problems.append(f"line {line}: {value!r} is not a date like 2026-12-25")
                continue
            if day in found:
                problems.append(f"line {line}: {day} repeats line {found[day]}")
                continue
            found[day] = line
    if problems:
        raise ValueError(
            f"holidays file {path} has {len(problems)} problem(s): " + "; ".join(problems)
        )
    return tuple(sorted(found))
