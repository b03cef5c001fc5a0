"""The report's headline numbers (its tiles) and how they are written.

Three numbers for the last complete week against the week before: HOT SLA attainment,
completion rate and open tasks past due. The page shows them as tiles, the Dagster asset
records them as metadata (plotted over materializations) and as a Markdown preview; all
of them write rates as percentages with :func:`percent` and changes with :func:`change`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from topo_pipeline.report.charts import MONTHS
from topo_pipeline.report.data import ReportData, WeekNumbers


@dataclass(frozen=True)
class Headline:
    """One tile: a number of the last complete week, and the same of the week before."""

    key: str
    """Metadata name (``hot_sla_attainment``, ``completion_rate``, ``open_past_due``)."""
    label: str
    kind: Literal["rate", "count"]
    current: float | int | None
    previous: float | int | None
    higher_is_better: bool
    detail: str
    """What the current number counts, in words."""

    def text(self) -> str:
        """The current number as shown: ``87.5%``, ``12``, or ``no data``."""
        return format_value(self.current, self.kind)

    def change(self) -> str:
        """The change from the week before, with whether it is better or worse."""
        return change(self.current, self.previous, self.kind, self.higher_is_better)

    def trend(self) -> Literal["better", "worse", "same", "none"]:
        if self.current is None or self.previous is None:
            return "none"
        if self.current == self.previous:
            return "same"
        up = self.current > self.previous
        return "better" if up == self.higher_is_better else "worse"


def percent(rate: float | None) -> str:
    """A rate in [0, 1] as a percentage with one decimal (``87.5%``); ``no data`` for None."""
    return "no data" if rate is None else f"{rate * 100:.1f}%"


def format_value(value: float | int | None, kind: Literal["rate", "count"]) -> str:
    if kind == "rate":
        return percent(value)
    return "no data" if value is None else f"{value:,}"


def change(
    current: float | int | None,
    previous: float | int | None,
    kind: Literal["rate", "count"],
    higher_is_better: bool,
) -> str:
    """``▲ 2.3 pp (better) vs 85.2%``; ``no data for the week before`` when undefined."""
    if previous is None:
        return "week before: no data"
    shown = format_value(previous, kind)
    if current is None:
        return f"week before: {shown}"
    diff = current - previous
    if diff == 0:
        return f"no change from {shown}"
    arrow = "▲" if diff > 0 else "▼"
    amount = f"{abs(diff) * 100:.1f} pp" if kind == "rate" else f"{abs(diff):,}"
    verdict = "better" if (diff > 0) == higher_is_better else "worse"
    return f"{arrow} {amount} ({verdict}) from {shown}"


def headlines(data: ReportData) -> tuple[Headline, ...]:
    """The tiles of ``data``; empty before the data covers a complete week."""
    week, before = data.week, data.previous_week
    if week is None or before is None:
        return ()
    return (
        Headline(
            "hot_sla_attainment",
            "HOT SLA attainment",
            "rate",
            week.hot_sla_attainment,
            before.hot_sla_attainment,
            higher_is_better=True,
            detail=f"{week.hot_met:,} of {week.hot_met + week.hot_breached:,} HOT tasks with a "
            "verdict met their SLA (wall clock)",
        ),
        Headline(
            "completion_rate",
            "Completion rate",
            "rate",
            week.completion_rate,
            before.completion_rate,
            higher_is_better=True,
            detail=f"{week.completed:,} of {week.tasks:,} tasks completed, every priority",
        ),
        Headline(
            "open_past_due",
            "Open past due",
            "count",
            week.open_past_due if week.tasks else None,
            before.open_past_due if before.tasks else None,
            higher_is_better=False,
            detail="tasks created that week still open after their due time (at the last "
            "SLA evaluation)",
        ),
    )


def week_label(week: WeekNumbers) -> str:
    """``Mon 30 Nov - Sun 6 Dec 2026``, with an en dash."""
    start, end = week.start, week.end
    first = f"Mon {start.day} {MONTHS[start.month - 1]}"
    if start.year != end.year:
        first += f" {start.year}"
    return f"{first} \u2013 Sun {end.day} {MONTHS[end.month - 1]} {end.year}"
