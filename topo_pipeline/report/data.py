"""What the SLA report shows, read from a published DuckDB file with the report's SQL.

:func:`load_report_data` runs the queries of ``sql/`` on a connection from
:func:`topo_pipeline.warehouse.duckdb.connect` (the analyst copy, or the pipeline's own
file: the tables are the same) and returns a :class:`ReportData` for :mod:`.page` to
render. Weeks run Monday to Sunday on the tasks' creation day (``partition_date``, a day in
the pipeline's time zone); a week's rates are pooled over its days (sums over sums). The
last complete week is the latest one that ended before today and by the last day with
tasks. Nothing here imports Dagster.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from topo_pipeline.report.changes import Changes, ChangesWindow, load_changes
from topo_pipeline.report.charts import MAX_SERIES, Series
from topo_pipeline.report.hot import HotWatch, load_hot_watch
from topo_pipeline.report.queries import relation_exists, report_sql
from topo_pipeline.warehouse.builds import latest_build

ASSIGNEE_WEEKS = 4
"""The assignee table covers the last complete week and the three before it."""

CHART_WEEKS = 26
"""The weekly charts show the latest half year (the analyst copy holds every day)."""

ASSIGNEE_ROWS = 60
"""Most assignees the table lists (worst first)."""

NO_TEAM = "(no team)"
OTHER_TEAMS = "Other teams"


class ReportError(RuntimeError):
    """The file cannot be reported on (no ``topo.pipeline_info``: never published)."""


@dataclass(frozen=True)
class PipelineFacts:
    """``topo.pipeline_info``: when the file was published and what it covers."""

    published_at: datetime
    timezone: str
    sla_targets: Mapping[str, int]
    first_day: date | None
    last_day: date | None
    partition_days: int
    tasks: int
    last_loaded_at: datetime | None
    version: str


@dataclass(frozen=True)
class WeekNumbers:
    """The headline counts of one week (Monday ``start`` to Sunday), pooled over its days."""

    start: date
    hot_met: int
    hot_breached: int
    tasks: int
    completed: int
    open_past_due: int
    days_with_tasks: int

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)

    @property
    def hot_sla_attainment(self) -> float | None:
        """HOT met / (met + breached); ``None`` without a verdict."""
        verdicts = self.hot_met + self.hot_breached
        return self.hot_met / verdicts if verdicts else None

    @property
    def completion_rate(self) -> float | None:
        """Completed / tasks, every priority; ``None`` without tasks."""
        return self.completed / self.tasks if self.tasks else None


@dataclass(frozen=True)
class WeeklyCharts:
    """The series of the weekly charts, aligned with ``weeks`` (Mondays, consecutive)."""

    weeks: tuple[date, ...]
    partial: frozenset[date]
    sla_wall: tuple[Series, ...]
    sla_business: tuple[Series, ...] | None
    """``None`` when the file has no business-hours numbers (not configured)."""
    no_verdict: tuple[str, ...]
    """Priorities with tasks but never an SLA verdict (no target configured)."""
    completion_by_team: tuple[Series, ...]
    skip_by_team: tuple[Series, ...]
    other_teams: tuple[str, ...]
    """Teams pooled into :data:`OTHER_TEAMS` (more teams than colours)."""


@dataclass(frozen=True)
class AssigneeRow:
    user_id: str | None
    name: str | None
    team: str | None
    tasks: int
    met: int
    breached: int
    sla_attainment: float | None
    completion_rate: float | None
    skip_rate: float | None


@dataclass(frozen=True)
class AssigneeTable:
    """Assignees over ``first..last``, worst SLA attainment first; ``total`` before the cap."""

    first: date
    last: date
    rows: tuple[AssigneeRow, ...]
    total: int


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows."""

    generated_at: datetime
    facts: PipelineFacts
    business_hours: str | None
    """The business hours in force, described; ``None``: not configured."""
    week: WeekNumbers | None
    """The last complete week; ``None`` before the data covers one."""
    previous_week: WeekNumbers | None
    charts: WeeklyCharts
    assignees: AssigneeTable | None
    hot: HotWatch
    changes: Changes

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.facts.timezone)


def load_report_data(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    business_hours: str | None = None,
    previous: ChangesWindow | None = None,
) -> ReportData:
    """Read everything the report shows from the attached file.

    Args:
        con: a connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
        now: when the report is made (aware): "today", and "now" for tasks at risk.
        business_hours: the business hours in force, described (``TOPO_BUSINESS_HOURS``),
            for a file without ``analytics.builds`` (whose latest row is used otherwise);
            ``None`` says "not configured" unless the file has business-hours numbers.
        previous: the window of changes the previous report showed, if any.

    Raises:
        ReportError: if the file has no ``topo.pipeline_info`` row.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    facts = _facts(con)
    today = now.astimezone(ZoneInfo(facts.timezone)).date()
    week_start = last_complete_week(facts.first_day, facts.last_day, today)
    week = previous_week = None
    assignees = None
    if week_start is not None:
        week = _week_numbers(con, week_start)
        previous_week = _week_numbers(con, week_start - timedelta(days=7))
        assignees = _assignees(con, week_start - timedelta(days=7 * (ASSIGNEE_WEEKS - 1)), week.end)
    charts = _charts(con, facts, today)
    built = latest_build(con) if relation_exists(con, "analytics", "builds") else None
    if built is not None:
        # The hours the tables were built with, whatever the environment says now.
        business_hours = (
            f"{built.business_hours}, {built.timezone}" if built.business_hours else None
        )
    elif charts.sla_business is not None and business_hours is None:
        business_hours = (
            "configured when the tables were built (which hours is not known here: "
            "TOPO_BUSINESS_HOURS is unset)"
        )
    return ReportData(
        generated_at=now,
        facts=facts,
        business_hours=business_hours,
        week=week,
        previous_week=previous_week,
        charts=charts,
        assignees=assignees,
        hot=load_hot_watch(con, now),
        changes=load_changes(con, previous),
    )


def week_monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def last_complete_week(first: date | None, last: date | None, today: date) -> date | None:
    """The Monday of the latest week that ended before ``today`` and by ``last`` (the last
    day with tasks); ``None`` when no task is that old, or the week ended before ``first``."""
    if first is None or last is None:
        return None
    end = min(last, today - timedelta(days=1))
    sunday = end - timedelta(days=(end.weekday() + 1) % 7)
    if sunday < first:
        return None
    return sunday - timedelta(days=6)


def _facts(con: duckdb.DuckDBPyConnection) -> PipelineFacts:
    if not relation_exists(con, "topo", "pipeline_info"):
        raise ReportError(
            "the file has no topo.pipeline_info: report on the analyst copy, which every "
            "publish writes it into (TOPO_ANALYST_DUCKDB_PATH), after one publish"
        )
    row = con.execute(report_sql("pipeline_info")).fetchone()
    if row is None:
        raise ReportError(
            "topo.pipeline_info is empty: the file was never published; materialize "
            "publish/analyst_copy first"
        )
    (published, zone, priorities, minutes, first, last, days, tasks, loaded, version) = row
    return PipelineFacts(
        published_at=published,
        timezone=zone,
        sla_targets=dict(zip(priorities, minutes, strict=True)),
        first_day=first,
        last_day=last,
        partition_days=int(days),
        tasks=int(tasks),
        last_loaded_at=loaded,
        version=version,
    )


def _week_numbers(con: duckdb.DuckDBPyConnection, start: date) -> WeekNumbers:
    params = {"first": start, "last": start + timedelta(days=6)}
    row = con.execute(report_sql("headline_week"), params).fetchone() or (0,) * 6
    return WeekNumbers(start, *(int(value) for value in row))


def _charts(con: duckdb.DuckDBPyConnection, facts: PipelineFacts, today: date) -> WeeklyCharts:
    if facts.first_day is None or facts.last_day is None:
        return WeeklyCharts((), frozenset(), (), None, (), (), (), ())
    last = week_monday(facts.last_day)
    first = max(week_monday(facts.first_day), last - timedelta(days=7 * (CHART_WEEKS - 1)))
    weeks = tuple(first + timedelta(days=7 * i) for i in range((last - first).days // 7 + 1))
    since = {"first": first}
    covered_to = min(facts.last_day, today - timedelta(days=1))
    partial = frozenset(
        w for w in weeks if w < facts.first_day or w + timedelta(days=6) > covered_to
    )
    index = {week: i for i, week in enumerate(weeks)}

    sla: dict[str, list[list[int | None]]] = defaultdict(lambda: [[None] * 4 for _ in weeks])
    business_seen = False
    for week, priority, *counts in con.execute(
        report_sql("weekly_sla_by_priority"), since
    ).fetchall():
        sla[_priority_name(priority)][index[week]] = counts
        business_seen = business_seen or counts[2] is not None
    order = [
        *(p for p in facts.sla_targets if p in sla),
        *sorted(set(sla) - set(facts.sla_targets)),
    ]
    wall = [Series(p, tuple(_ratio_of_sum(c[0], c[1]) for c in sla[p])) for p in order]
    business = [Series(p, tuple(_ratio_of_sum(c[2], c[3]) for c in sla[p])) for p in order]
    no_verdict = tuple(s.name for s in wall if all(v is None for v in s.values))

    teams: dict[str, list[tuple[int, int, int]]] = defaultdict(lambda: [(0, 0, 0) for _ in weeks])
    for week, team, tasks, completed, skipped in con.execute(
        report_sql("weekly_completion_by_team"), since
    ).fetchall():
        teams[team if team is not None else NO_TEAM][index[week]] = (tasks, completed, skipped)
    shown, pooled = _team_groups(teams)
    return WeeklyCharts(
        weeks=weeks,
        partial=partial,
        sla_wall=_with_values(wall)[:MAX_SERIES],
        sla_business=_with_values(business)[:MAX_SERIES] if business_seen else None,
        no_verdict=no_verdict,
        completion_by_team=tuple(
            Series(name, tuple(_ratio(c[1], c[0]) for c in counts)) for name, counts in shown
        ),
        skip_by_team=tuple(
            Series(name, tuple(_ratio(c[2], c[0]) for c in counts)) for name, counts in shown
        ),
        other_teams=pooled,
    )


def _team_groups(
    teams: Mapping[str, list[tuple[int, int, int]]],
) -> tuple[list[tuple[str, list[tuple[int, int, int]]]], tuple[str, ...]]:
    """The teams to draw, most tasks first, :data:`NO_TEAM` last; with more teams than
    colours the smallest named ones are pooled into :data:`OTHER_TEAMS`."""
    ranked = sorted(teams, key=lambda t: (t == NO_TEAM, -sum(c[0] for c in teams[t]), t))
    if len(ranked) <= MAX_SERIES:
        return [(t, teams[t]) for t in ranked], ()
    named = [t for t in ranked if t != NO_TEAM]
    room = MAX_SERIES - 1 - (NO_TEAM in teams)
    kept, rest = named[:room], named[room:]
    weeks = len(next(iter(teams.values())))
    other = [
        (
            sum(teams[t][i][0] for t in rest),
            sum(teams[t][i][1] for t in rest),
            sum(teams[t][i][2] for t in rest),
        )
        for i in range(weeks)
    ]
    no_team = [(NO_TEAM, teams[NO_TEAM])] if NO_TEAM in teams else []
    return [*((t, teams[t]) for t in kept), (OTHER_TEAMS, other), *no_team], tuple(rest)


def _with_values(series: Sequence[Series]) -> tuple[Series, ...]:
    return tuple(s for s in series if any(v is not None for v in s.values))


def _ratio(part: int | None, whole: int | None) -> float | None:
    return part / whole if part is not None and whole else None


def _ratio_of_sum(part: int | None, other: int | None) -> float | None:
    if part is None or other is None:
        return None
    return _ratio(part, part + other)


def _priority_name(priority: str | None) -> str:
    return priority if priority is not None else "(no priority)"


def _assignees(con: duckdb.DuckDBPyConnection, first: date, last: date) -> AssigneeTable:
    params = {"first": first, "last": last, "limit": ASSIGNEE_ROWS}
    rows = con.execute(report_sql("assignees_worst_first"), params).fetchall()
    return AssigneeTable(
        first=first,
        last=last,
        rows=tuple(AssigneeRow(*row[:9]) for row in rows),
        total=int(rows[0][9]) if rows else 0,
    )
