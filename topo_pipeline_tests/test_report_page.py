"""The SLA report's parts without Dagster: weeks, the changes window, formats, charts, and a
report over three years of synthetic data (its size, and how it renders in Chromium).

The three-year file is written by the warehouse code a run uses (landing, history,
analytics, the analyst copy), without the API or Dagster, with an assignee directory of
more teams than the charts have colours (one with markup in its name) and no business
hours.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest

from topo_pipeline.report import write_report
from topo_pipeline.report.changes import FIRST_REPORT_LOOKBACK, ChangesWindow, changes_window
from topo_pipeline.report.charts import MAX_SERIES, Series, weekly_rate_chart
from topo_pipeline.report.data import CHART_WEEKS, OTHER_TEAMS, last_complete_week
from topo_pipeline.report.formats import duration
from topo_pipeline.report.headlines import change, percent
from topo_pipeline.simulator import DatasetSpec, TaskStore, assignee_ids, generate_dataset, move_on
from topo_pipeline.warehouse.analyst_copy import publish_analyst_copy
from topo_pipeline.warehouse.analytics import DEFAULT_SLA_TARGET_MINUTES
from topo_pipeline.warehouse.assignees import read_assignees, replace_assignees
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.pipeline_info import PipelineInfo
from topo_pipeline_tests.browser import Chromium
from topo_pipeline_tests.warehouse_seed import current_file, seed_tasks

MON, SUN = date(2026, 3, 2), date(2026, 3, 8)


@pytest.mark.parametrize(
    ("first", "last", "today", "expected"),
    [
        # Data through yesterday, a Wednesday: the week that ended last Sunday.
        (date(2026, 1, 1), date(2026, 3, 10), date(2026, 3, 11), MON),
        # Today is Monday: yesterday's Sunday closes the week.
        (date(2026, 1, 1), SUN, SUN + timedelta(days=1), MON),
        # On Sunday itself the week is not over: the one before.
        (date(2026, 1, 1), SUN, SUN, MON - timedelta(days=7)),
        # Data that stopped two weeks ago: the last week it covers, not an empty one.
        (date(2026, 1, 1), SUN + timedelta(days=3), date(2026, 3, 25), MON),
        # Less than a week of data, all in the current week: none yet.
        (SUN + timedelta(days=1), SUN + timedelta(days=3), SUN + timedelta(days=4), None),
        # Data from Thursday to Sunday: that week counts (the tiles say 4 of 7 days).
        (date(2026, 3, 5), SUN, SUN + timedelta(days=2), MON),
        # No data at all.
        (None, None, SUN, None),
    ],
)
def test_the_last_complete_week(
    first: date | None, last: date | None, today: date, expected: date | None
) -> None:
    assert last_complete_week(first, last, today) == expected


T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("previous", "through", "window", "basis"),
    [
        # The first report: the last week of changes.
        (None, T0, ChangesWindow(T0 - FIRST_REPORT_LOOKBACK, T0), "first report"),
        # New landings since the previous report: from where it stopped.
        (
            ChangesWindow(T0 - timedelta(days=2), T0 - timedelta(days=1)),
            T0,
            ChangesWindow(T0 - timedelta(days=1), T0),
            "previous report",
        ),
        # Nothing fetched since (a publish alone): the previous window again.
        (
            ChangesWindow(T0 - timedelta(days=1), T0),
            T0,
            ChangesWindow(T0 - timedelta(days=1), T0),
            "unchanged since the previous report",
        ),
        # A previous report newer than the data (another file): as if there were none.
        (
            ChangesWindow(T0, T0 + timedelta(days=1)),
            T0,
            ChangesWindow(T0 - FIRST_REPORT_LOOKBACK, T0),
            "first report",
        ),
        # No history at all.
        (None, None, None, "none"),
    ],
)
def test_the_changes_window(
    previous: ChangesWindow | None,
    through: datetime | None,
    window: ChangesWindow | None,
    basis: str,
) -> None:
    assert changes_window(previous, through) == (window, basis)


def test_a_page_records_its_changes_window() -> None:
    window = ChangesWindow(T0, T0 + timedelta(hours=5, microseconds=7))
    page = f"<html><head>{window.meta_tags()}</head></html>"

    assert ChangesWindow.from_html(page) == window
    assert ChangesWindow.from_html("<html></html>") is None
    assert ChangesWindow.from_html(page.replace("+00:00", "")) is None  # naive: not ours


@pytest.mark.parametrize(
    ("current", "previous", "kind", "higher_is_better", "text"),
    [
        (0.875, 0.8, "rate", True, "▲ 7.5 pp (better) from 80.0%"),
        (0.8, 0.875, "rate", True, "▼ 7.5 pp (worse) from 87.5%"),
        (12, 20, "count", False, "▼ 8 (better) from 20"),
        (1500, 1200, "count", False, "▲ 300 (worse) from 1,200"),
        (0.5, 0.5, "rate", True, "no change from 50.0%"),
        (0.5, None, "rate", True, "week before: no data"),
        (None, 0.5, "rate", True, "week before: 50.0%"),
    ],
)
def test_changes_are_written_with_their_direction(
    current: float | None, previous: float | None, kind: str, higher_is_better: bool, text: str
) -> None:
    assert change(current, previous, kind, higher_is_better) == text  # type: ignore[arg-type]


def test_rates_and_durations_read_as_people_write_them() -> None:
    assert percent(0.8754) == "87.5%"
    assert percent(None) == "no data"
    assert duration(timedelta(minutes=12.4)) == "12 min"
    assert duration(timedelta(minutes=191)) == "3 h 11 min"
    assert duration(timedelta(days=2, hours=3, minutes=5)) == "2 d 3 h"
    assert duration(timedelta(minutes=-8)) == "due in 8 min"


def test_a_chart_breaks_its_line_where_a_week_has_no_value() -> None:
    weeks = [MON + timedelta(days=7 * i) for i in range(5)]
    svg = weekly_rate_chart(
        "c",
        "A <chart>",
        weeks,
        [Series("HOT & co", (0.5, 0.6, None, 0.7, 0.8)), Series("TODAY", (0.1,) * 5)],
        y_title="Rate (%)",
        x_title="Week",
        partial_weeks=frozenset({weeks[-1]}),
    )
    paths = re.findall(r'<path d="([^"]*)"', svg)
    assert [p.count("M") for p in paths] == [2, 1]
    assert "A &lt;chart&gt;" in svg
    assert 'data-series="HOT &amp; co"' in svg
    assert svg.count('fill="#fff"') == 2  # the partial week's point, hollow, on each line
    with pytest.raises(ValueError, match="at most"):
        weekly_rate_chart(
            "c", "t", weeks, [Series(str(i), (0.5,) * 5) for i in range(MAX_SERIES + 1)],
            y_title="y", x_title="x",
        )  # fmt: skip


@dataclass(frozen=True)
class ThreeYears:
    copy: Path
    report: Path
    teams: int


@pytest.fixture(scope="module")
def three_years(tmp_path_factory: pytest.TempPathFactory) -> ThreeYears:
    """Three years of tasks, 24 a day, ending yesterday, landed, refreshed and published."""
    folder = tmp_path_factory.mktemp("three-years")
    now = datetime.now(UTC).replace(microsecond=0)
    days = 3 * 365 + 1
    spec = DatasetSpec(
        seed=7,
        start_date=now.date() - timedelta(days=days),
        days=days,
        tasks_per_day=[24] * days,
        as_of=now,
        tie_group_size=0,
    )
    data = generate_dataset(spec)
    # Every assignee in a team of their own: one more team than the charts have colours.
    directory = folder / "assignees.csv"
    with directory.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "name", "team"])
        for i, user in enumerate(assignee_ids(spec)):
            team = "<b>R&D</b>" if i == 0 else f"Team {i + 1}"
            writer.writerow([user, f"Person {i + 1}", team])
    source = current_file(folder / "pipeline.duckdb")
    with connect(source) as con:
        replace_assignees(con, read_assignees(directory), loaded_at=now)
    seed_tasks(source, data.tasks, loaded_at=now - timedelta(hours=6))
    # A working day later the last days are fetched again: the history records changes.
    store = TaskStore(data.tasks, data.sequence_templates)
    recent = now.date() - timedelta(days=3)
    move_on(store, created_from=datetime.combine(recent, time(), UTC), now=now)
    refetched = [t for t in store.all() if t["created_at"][:10] >= recent.isoformat()]
    seed_tasks(source, refetched, loaded_at=now)
    copy = folder / "published" / "topo_analytics.duckdb"
    info = PipelineInfo("UTC", spec.start_date, "test", dict(DEFAULT_SLA_TARGET_MINUTES))
    publish_analyst_copy(source, copy, info=info)
    report = write_report(copy, folder / "published" / "sla_report.html").path
    return ThreeYears(copy, report, teams=len(assignee_ids(spec)) + 1)


def test_three_years_of_data_make_a_page_under_3_mb(three_years: ThreeYears) -> None:
    page = three_years.report.read_text()

    assert three_years.report.stat().st_size < 3_000_000
    assert len(re.findall(r'<g class="series"', page)) == 3 + 2 * MAX_SERIES
    # 8 named teams and (no team) on 8 lines: the two smallest named ones pooled, and named.
    assert re.search(rf"{OTHER_TEAMS}: Team \d, Team \d\.", page)
    assert 'data-series="(no team)"' in page  # unassigned tasks are never pooled away
    assert 'data-chart-missing="sla-business"' in page
    assert "Business hours: not configured" in page
    assert "&lt;b&gt;R&amp;D&lt;/b&gt;" in page  # a team's markup is text, never markup
    assert "<b>R&D</b>" not in page


def test_three_years_render_without_errors(
    three_years: ThreeYears, chromium: str, tmp_path: Path
) -> None:
    with Chromium.launch(chromium, tmp_path / "profile") as browser:
        page = browser.open(three_years.report.as_uri())
        assert page.errors() == []
        assert page.requests == [three_years.report.as_uri()]
        charts = page.evaluate(
            """Object.fromEntries([...document.querySelectorAll('svg.chart')].map(svg =>
                [svg.dataset.chart, [svg.querySelectorAll('g.series').length,
                 svg.querySelector('g.series path').getTotalLength()]]))"""
        )
        assert {name: count for name, (count, _) in charts.items()} == {
            "sla-wall": 3,
            "completion-by-team": MAX_SERIES,
            "skip-by-team": MAX_SERIES,
        }
        assert all(length > 300 for _, length in charts.values())  # a line, not a dot
        # Half a year of weeks, each a point (the first, partial, hollow).
        points = page.evaluate(
            "document.querySelector('svg[data-chart=sla-wall] g.series').children.length - 1"
        )
        assert points == CHART_WEEKS
        assert page.evaluate("document.querySelector('#teams').innerText").count("<b>R&D</b>")
        page.screenshot(tmp_path / "three_years.png")


@pytest.mark.parametrize("name", ["topo_analytics.duckdb", "analytics.duckdb"])
def test_the_hot_list_is_the_sla_watch_views_whatever_the_copys_name(
    three_years: ThreeYears, tmp_path: Path, name: str
) -> None:
    # analytics.duckdb: the copy's views name the catalog "analytics", not the report's.
    copy = tmp_path / name
    publish_analyst_copy(
        three_years.copy.parent.parent / "pipeline.duckdb",  # the pipeline's file
        copy,
        info=PipelineInfo("UTC", date(2020, 1, 1), "test", dict(DEFAULT_SLA_TARGET_MINUTES)),
    )
    with duckdb.connect(str(copy), read_only=True) as con:  # as analysts open it
        (hot,) = con.execute(
            f"SELECT count(*) FROM {'analytics.' if name.startswith('analytics') else ''}"
            "analytics.sla_watch WHERE priority = 'HOT'"
        ).fetchone() or (0,)

    page = write_report(copy, tmp_path / "report.html").path.read_text()

    section = page[page.index('<section id="hot">') : page.index('<section id="changes">')]
    assert f"From analytics.sla_watch: {hot:,} HOT tasks." in section
    assert "Derived from" not in section
