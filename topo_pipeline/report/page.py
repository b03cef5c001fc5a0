"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

:func:`render_page` turns a :class:`~topo_pipeline.report.data.ReportData` into the page.
Its Content-Security-Policy forbids every fetch (scripts, fonts, images from anywhere), so
the page shows the same offline as online; it uses the reader's own sans-serif font. Print
styles lay it out on A4 (one chart per row, no section split across pages). Every value
from the data is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from html import escape
from importlib import resources
from zoneinfo import ZoneInfo

from topo_pipeline.report.changes import Changes
from topo_pipeline.report.charts import Series, weekly_rate_chart
from topo_pipeline.report.data import CHART_WEEKS, OTHER_TEAMS, ReportData
from topo_pipeline.report.formats import (
    NONE,
    cell,
    count,
    html_table,
    local_time,
    minutes_text,
    person,
    short_id,
)
from topo_pipeline.report.headlines import Headline, headlines, percent, week_label
from topo_pipeline.report.hot import AT_RISK_MINUTES

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = resources.files("topo_pipeline.report").joinpath("page.css").read_text()
"""The page's style sheet (screen and A4 print), inlined into ``<head>``."""


def render_page(data: ReportData, *, meta: str = "") -> str:
    """The whole page; ``meta`` is put into ``<head>`` as is (the changes window's tags)."""
    zone = data.zone
    tiles = headlines(data)
    title = "Topo SLA report"
    if data.week is not None:
        title += f" — week of {data.week.start.isoformat()}"
    body = [
        _header(data, zone),
        _tiles(data, tiles),
        _sla_charts(data),
        _team_charts(data),
        _assignees(data),
        _hot(data, zone),
        _changes(data.changes, zone),
        _about(data, zone),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="topo_pipeline {escape(data.facts.version)}">'
        f"{meta}<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _header(data: ReportData, zone: ZoneInfo) -> str:
    period = (
        f"Last complete week: {week_label(data.week)}, against the week before."
        if data.week is not None
        else "The data does not cover a complete week yet."
    )
    return (
        "<header><h1>Topo SLA report</h1>"
        f'<p class="sub">{escape(period)} Data published '
        f"{local_time(data.facts.published_at, zone)}; weeks are Monday to Sunday by the "
        "day tasks were created, in "
        f"{escape(data.facts.timezone)}.</p></header>"
    )


def _tiles(data: ReportData, tiles: Sequence[Headline]) -> str:
    if not tiles or data.week is None or data.previous_week is None:
        return (
            '<section id="headlines"><h2>Headlines</h2><p class="missing">No complete week '
            "of tasks yet: the tiles compare the last complete week with the week before."
            "</p></section>"
        )
    out = ['<section id="headlines"><h2>Headlines</h2><div class="tiles">']
    for tile in tiles:
        out.append(
            f'<div class="tile" data-metric="{tile.key}" data-value="{_raw(tile.current)}" '
            f'data-previous="{_raw(tile.previous)}"><div class="label">{escape(tile.label)}</div>'
            f'<div class="value">{escape(tile.text())}</div>'
            f'<div class="change {tile.trend()}">{escape(tile.change())}</div>'
            f'<div class="note">{escape(tile.detail)}</div></div>'
        )
    out.append(
        f'</div><p class="note">{escape(week_label(data.week))} '
        f"({data.week.days_with_tasks} of 7 days with tasks) against "
        f"{escape(week_label(data.previous_week))} ({data.previous_week.days_with_tasks} of 7)."
        " Rates are pooled over the week's tasks.</p></section>"
    )
    return "".join(out)


def _raw(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _chart(data: ReportData, chart_id: str, title: str, series: Sequence[Series], y: str) -> str:
    charts = data.charts
    if not any(any(v is not None for v in s.values) for s in series):
        return (
            f'<p class="missing" data-chart-missing="{chart_id}">No data for {escape(title)}.</p>'
        )
    return weekly_rate_chart(
        chart_id,
        title,
        charts.weeks,
        series,
        y_title=y,
        x_title=f"Week starting Monday (creation day, {data.facts.timezone})",
        partial_weeks=charts.partial,
    )


def _weeks_note(data: ReportData) -> str:
    weeks = data.charts.weeks
    if not weeks:
        return ""
    text = (
        f"Weeks starting {weeks[0].isoformat()} to {weeks[-1].isoformat()} (the latest "
        f"{CHART_WEEKS} at most)."
    )
    if data.charts.partial:
        text += (
            " Hollow points: weeks the data covers only in part (before the first day "
            "fetched, or not over yet)."
        )
    return f'<p class="note">{escape(text)}</p>'


def _sla_charts(data: ReportData) -> str:
    targets = ", ".join(f"{p} {minutes_text(m)}" for p, m in data.facts.sla_targets.items())
    y = "SLA attainment (%)"
    wall = _chart(
        data, "sla-wall", "SLA attainment by priority, wall clock", data.charts.sla_wall, y
    )
    if data.charts.sla_business is None:
        business = (
            '<p class="missing" data-chart-missing="sla-business">Business hours: not '
            "configured (TOPO_BUSINESS_HOURS), so there is no business-hours SLA.</p>"
        )
    else:
        business = _chart(
            data,
            "sla-business",
            "SLA attainment by priority, business hours",
            data.charts.sla_business,
            y,
        )
    notes = [f"Targets: {targets}; business hours: {data.business_hours or 'not configured'}."]
    if data.charts.no_verdict:
        names = ", ".join(data.charts.no_verdict)
        notes.append(f"No SLA verdict for {names}: no target configured, not drawn.")
    return (
        '<section id="sla"><h2>SLA attainment by priority, per week</h2>'
        '<p class="note">Of the tasks created in a week that have a verdict (completed, or '
        "open past their due time), the share that met their SLA target; business hours "
        f"count only working time. {escape(' '.join(notes))}</p>"
        '<div class="charts">'
        f"<figure><figcaption>Wall clock</figcaption>{wall}</figure>"
        f"<figure><figcaption>Business hours</figcaption>{business}</figure>"
        f"</div>{_weeks_note(data)}</section>"
    )


def _team_charts(data: ReportData) -> str:
    charts = data.charts
    completion = _chart(
        data,
        "completion-by-team",
        "Completion rate by team",
        charts.completion_by_team,
        "Completion rate (%)",
    )
    skip = _chart(
        data,
        "skip-by-team",
        "Skip rate by team",
        charts.skip_by_team,
        "Skip rate (%)",
    )
    pooled = f" {OTHER_TEAMS}: {', '.join(charts.other_teams)}." if charts.other_teams else ""
    return (
        '<section id="teams"><h2>Completion and skip rate by team, per week</h2>'
        '<p class="note">Share of the tasks created in a week that are completed, or '
        "skipped, as last fetched; (no team) holds unassigned tasks and assignees the "
        f"directory does not name.{escape(pooled)}</p>"
        '<div class="charts">'
        f"<figure><figcaption>Completion rate</figcaption>{completion}</figure>"
        f"<figure><figcaption>Skip rate</figcaption>{skip}</figure>"
        f"</div>{_weeks_note(data)}</section>"
    )


def _assignees(data: ReportData) -> str:
    table = data.assignees
    head = '<section id="assignees"><h2>Assignees, last four weeks, worst first</h2>'
    if table is None or not table.rows:
        return head + '<p class="missing">No tasks in the last four complete weeks.</p></section>'
    rows = []
    for row in table.rows:
        rows.append(
            [
                person(row.name, row.user_id),
                escape(row.team or NONE),
                count(row.tasks),
                count(row.met),
                count(row.breached),
                percent(row.sla_attainment),
                percent(row.completion_rate),
                percent(row.skip_rate),
            ]
        )
    more = (
        f" The {len(table.rows)} worst of {table.total} are listed."
        if table.total > len(table.rows)
        else ""
    )
    return (
        head + f'<p class="note">Tasks created {table.first.isoformat()} to '
        f"{table.last.isoformat()}, pooled; worst SLA attainment first, then most "
        f"breaches.{more}</p>"
        + html_table(
            [
                "Assignee",
                "Team",
                "Tasks",
                "Met",
                "Breached",
                "SLA attainment",
                "Completion rate",
                "Skip rate",
            ],
            rows,
            numeric=range(2, 8),
            html_cells=True,
        )
        + "</section>"
    )


def _hot(data: ReportData, zone: ZoneInfo) -> str:
    hot = data.hot
    head = '<section id="hot"><h2>HOT tasks breached or at risk now</h2>'
    if hot.source == "analytics.task_sla":
        note = (
            "Derived from analytics.task_sla (this file has no analytics.sla_watch): open HOT "
            "tasks (PENDING or IN_PROGRESS when last fetched, latest fetch "
            f"{local_time(data.facts.last_loaded_at, zone)}) whose due time has passed or "
            f"comes within {AT_RISK_MINUTES} minutes, at {local_time(data.generated_at, zone)}: "
            f"{hot.past_due:,} past due, {hot.due_soon:,} due soon."
        )
    else:
        note = f"From {hot.source}: {hot.total:,} HOT tasks."
    if hot.total > len(hot.rows):
        note += f" The {len(hot.rows)} due first are listed."
    if not hot.rows:
        return head + f'<p class="note">{escape(note)}</p><p>None.</p></section>'
    rows = [[cell(value, zone) for value in row] for row in hot.rows]
    numeric = [
        i for i, value in enumerate(hot.rows[0]) if isinstance(value, int | float | timedelta)
    ]
    return (
        head
        + f'<p class="note">{escape(note)}</p>'
        + html_table(list(hot.columns), rows, numeric=numeric, html_cells=True)
        + "</section>"
    )


def _changes(changes: Changes, zone: ZoneInfo) -> str:
    head = '<section id="changes"><h2>What changed since the last report</h2>'
    if changes.window is None:
        return head + '<p class="missing">No task history in this file yet.</p></section>'
    since = local_time(changes.window.since, zone, seconds=True)
    through = local_time(changes.window.through, zone, seconds=True)
    window = (
        f"Changes the pipeline observed from {since} to {through} (when they were fetched, "
        "not when they happened in Topo)"
    )
    basis = {
        "previous report": ": since the previous report.",
        "unchanged since the previous report": ": nothing new was fetched since the previous "
        "report, so its changes are shown again.",
        "first report": ": no earlier report, so the last 7 days.",
    }.get(changes.basis, ".")
    summary = (
        f"<ul><li>{changes.new_tasks:,} new tasks landed</li>"
        f"<li>{changes.changed_versions:,} changed versions of known tasks</li>"
        f"<li>{changes.reassignments:,} reassignments</li>"
        f"<li>{changes.removed:,} no longer returned by Topo</li></ul>"
    )
    parts = [head, f'<p class="note">{escape(window + basis)}</p>', summary]
    if changes.transitions is None:
        parts.append(
            '<p class="note">Status changes: the view analytics.task_status_changes '
            "is not in this file.</p>"
        )
    elif changes.transitions:
        parts.append("<h3>Status changes</h3>")
        parts.append(
            html_table(
                ["From", "To", "Tasks", "Of them HOT"],
                [
                    [t.from_status, t.to_status, count(t.changes), count(t.hot)]
                    for t in changes.transitions
                ],
                numeric=(2, 3),
            )
        )
    if changes.recent:
        parts.append(
            f"<h3>Latest reassignments ({len(changes.recent)} of {changes.reassignments:,})</h3>"
        )
        parts.append(
            html_table(
                ["Observed", "Task", "Priority", "From", "To"],
                [
                    [
                        escape(local_time(r.observed_at, zone)),
                        short_id(r.id),
                        escape(r.priority or NONE),
                        person(r.previous_name, r.previous_user_id),
                        person(r.name, r.user_id),
                    ]
                    for r in changes.recent
                ],
                html_cells=True,
            )
        )
    parts.append("</section>")
    return "".join(parts)


def _about(data: ReportData, zone: ZoneInfo) -> str:
    facts = data.facts
    covered = (
        f"{facts.first_day.isoformat()} to {facts.last_day.isoformat()} "
        f"({facts.partition_days:,} days with tasks, {facts.tasks:,} tasks)"
        if facts.first_day and facts.last_day
        else "no tasks yet"
    )
    items = [
        ("Time zone", f"{facts.timezone} (TOPO_TIMEZONE): days and weeks are calendar days here"),
        ("SLA targets", ", ".join(f"{p} {minutes_text(m)}" for p, m in facts.sla_targets.items())),
        ("Business hours", data.business_hours or "not configured (TOPO_BUSINESS_HOURS)"),
        ("Published", local_time(facts.published_at, zone) + " (topo.pipeline_info.published_at)"),
        ("Days covered", covered),
        ("Last fetched from Topo", local_time(facts.last_loaded_at, zone)),
        ("Report made", local_time(data.generated_at, zone)),
        ("Pipeline version", facts.version),
    ]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return (
        '<section id="about"><h2>About these numbers</h2>'
        f'<dl class="about">{rows}</dl>'
        '<p class="note">SLA attainment = met / (met + breached): a task is breached when it '
        "was completed after its due time (created_at + the target of its priority), or was "
        "still open past it when the SLA was evaluated; skipped tasks have no verdict. "
        "Completion rate = completed / tasks; skip rate = skipped / tasks. Rates over a week "
        "or four are pooled (sums over sums). Definitions: docs/analyst-guide.md.</p>"
        "</section>"
    )
