"""``report/sla_report`` end to end: built by the pipeline's own runs, read in a real browser.

A module fixture runs the real code location like ``make demo`` does, against the simulated
API: the assignee directory, a range run of ``topo/tasks*`` over three and a half weeks
ending yesterday (the report is built after the analyst copy, in the same run), then a
working day in the simulated Topo and a refresh of the last days. The tests open the page
in headless Chromium, check the tiles against numbers computed here with SQL from the
``analytics`` tables, and read the asset's metadata back from the instance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY, PUBLISH_JOB_NAME
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.assets.report import REPORT_KEY, build_report_asset
from topo_pipeline.defs.jobs import REFRESH_SELECTION, partition_range_tags
from topo_pipeline.report.__main__ import main as report_main
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import Activity, DatasetSpec, move_on
from topo_pipeline_tests.browser import Chromium
from topo_pipeline_tests.harness import SimulatedPipeline, simulated_pipelines

ZONE = "America/New_York"  # weeks are local weeks, not UTC ones
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.astimezone(ZoneInfo(ZONE)).date()
DAYS = 25
FIRST = TODAY - timedelta(days=DAYS)
YESTERDAY = TODAY - timedelta(days=1)
SPEC = DatasetSpec(
    seed=7,  # examples/assignees.csv names this seed's assignees
    start_date=FIRST,
    days=DAYS,
    tasks_per_day=[45] * DAYS,
    timezone=ZONE,
    as_of=NOW,
    tie_group_size=0,
)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Pipeline(SimulatedPipeline):
    def run(
        self, selection: dg.AssetSelection, tags: Mapping[str, str] | None = None
    ) -> dg.ExecuteInProcessResult:
        defs = build_defs(self.settings)
        return dg.materialize(
            defs.assets,
            selection=selection,
            resources=defs.resources,
            instance=self.instance,
            tags=tags,
        )


@dataclass
class Reported:
    pipeline: Pipeline
    first_page: str
    activity: Activity

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    def page(self) -> str:
        return self.settings.report_file.read_text()


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    folder = tmp_path_factory.mktemp("report")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        simulated_pipelines(folder, monkeypatch) as make,
    ):
        pipeline = make(SPEC, Pipeline)
        pipeline.settings = pipeline.settings.model_copy(
            update={
                "assignees_path": EXAMPLES / "assignees.csv",
                "business_hours": "Mon-Fri 09:00-18:00",
            }
        )
        assert pipeline.run(dg.AssetSelection.assets(ASSIGNEES_KEY)).success
        first = pipeline.run(
            REFRESH_SELECTION, partition_range_tags(FIRST.isoformat(), YESTERDAY.isoformat())
        )
        assert first.success
        first_page = pipeline.settings.report_file.read_text()
        # A working day in Topo, then the daily refresh's re-fetch of the last three days.
        refreshed = YESTERDAY - timedelta(days=2)
        activity = move_on(
            pipeline.store,
            created_from=datetime.combine(refreshed, time(), ZoneInfo(ZONE)),
            now=datetime.now(UTC),
        )
        assert activity.reassigned
        assert activity.completed
        second = pipeline.run(
            REFRESH_SELECTION, partition_range_tags(refreshed.isoformat(), YESTERDAY.isoformat())
        )
        assert second.success
        yield Reported(pipeline, first_page, activity)


def query(path: Path, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """One row from the analyst copy, opened as an analyst opens it."""
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row


def tiles(page: str) -> dict[str, dict[str, str]]:
    """Each tile's data attributes and the text it shows."""
    found = {}
    pattern = (
        r'<div class="tile" data-metric="(\w+)" data-value="([^"]*)" data-previous="([^"]*)">'
        r'<div class="label">[^<]*</div><div class="value">([^<]*)</div>'
        r'<div class="change (\w+)">([^<]*)</div>'
    )
    for metric, value, previous, text, trend, change in re.findall(pattern, page):
        found[metric] = {
            "value": value,
            "previous": previous,
            "text": unescape(text),
            "trend": trend,
            "change": unescape(change),
        }
    return found


def last_complete_week(copy: Path, made_at: datetime) -> tuple[date, date]:
    """Monday and Sunday of the latest week over by ``made_at`` and by the last day of data."""
    (last,) = query(copy, "SELECT max(partition_date) FROM analytics.task_sla")
    end = min(last, made_at.astimezone(ZoneInfo(ZONE)).date() - timedelta(days=1))
    sunday = end - timedelta(days=end.isoweekday() % 7)
    return sunday - timedelta(days=6), sunday


def week_numbers(copy: Path, monday: date) -> dict[str, float | int | None]:
    """The tiles' numbers of one week, from analytics.task_sla (not the rollups the page reads)."""
    hot_attainment, completion, past_due = query(
        copy,
        """
        SELECT
            count(*) FILTER (WHERE priority = 'HOT' AND sla_status = 'MET')::DOUBLE
                / NULLIF(count(*) FILTER (
                    WHERE priority = 'HOT' AND sla_status IN ('MET', 'BREACHED')), 0),
            count(*) FILTER (WHERE status = 'COMPLETED')::DOUBLE / NULLIF(count(*), 0),
            count(*) FILTER (
                WHERE status IN ('PENDING', 'IN_PROGRESS') AND sla_status = 'BREACHED')
        FROM analytics.task_sla
        WHERE partition_date BETWEEN ? AND ?
        """,
        [monday, monday + timedelta(days=6)],
    )
    return {
        "hot_sla_attainment": hot_attainment,
        "completion_rate": completion,
        "open_past_due": past_due,
    }


def latest_report(reported: Reported) -> dg.AssetMaterialization:
    records = reported.pipeline.instance.fetch_materializations(REPORT_KEY, limit=1).records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return materialization


def test_the_report_renders_in_a_browser_without_errors_or_network(
    reported: Reported, chromium: str, tmp_path: Path
) -> None:
    report = reported.settings.report_file
    copy = reported.settings.analyst_duckdb_path
    (teams,) = query(copy, "SELECT count(DISTINCT coalesce(team, '')) FROM analytics.sla_by_team")
    (priorities,) = query(copy, "SELECT count(DISTINCT priority) FROM analytics.sla_by_priority")
    expected_series = {
        "sla-wall": priorities,
        "sla-business": priorities,
        "completion-by-team": teams,
        "skip-by-team": teams,
    }

    with Chromium.launch(chromium, tmp_path / "profile") as browser:
        page = browser.open(report.as_uri())
        assert page.errors() == []
        # Self-contained: the file itself is the only thing loaded.
        assert page.requests == [report.as_uri()]
        assert page.evaluate("document.scripts.length") == 0
        charts = page.evaluate(
            """[...document.querySelectorAll('svg.chart')].map(svg => ({
                id: svg.dataset.chart,
                series: svg.querySelectorAll('g.series').length,
                legend: svg.querySelectorAll('g.legend-item').length,
                drawn: [...svg.querySelectorAll('g.series')].filter(
                    g => g.getBBox().width > 0 && g.getBBox().height > 0).length,
                width: svg.getBoundingClientRect().width,
                axes: svg.querySelectorAll('.axis-title').length,
            }))"""
        )
        assert {c["id"]: c["series"] for c in charts} == expected_series
        for chart in charts:
            assert chart["legend"] == chart["series"] == chart["drawn"], chart
            assert chart["width"] > 300, chart
            assert chart["axes"] == 2, chart
        screenshot = page.screenshot(tmp_path / "sla_report.png")
        assert screenshot.read_bytes().startswith(b"\x89PNG")

        page.emulate_media("print")
        layout = page.evaluate(
            """[getComputedStyle(document.querySelector('.tiles')).gridTemplateColumns,
                getComputedStyle(document.querySelector('.charts')).gridTemplateColumns]"""
        )
        assert len(layout[0].split()) == 3  # the three tiles side by side
        assert len(layout[1].split()) == 1  # one chart per row, readable on paper
        pdf = page.pdf()
        assert re.search(rb"/MediaBox \[0 0 59[45]\.\d+ 84[12]\.\d+\]", pdf), "not A4"
        assert page.errors() == []


def test_the_tiles_show_the_analytics_numbers_of_the_last_complete_week(
    reported: Reported,
) -> None:
    copy = reported.settings.analyst_duckdb_path
    made_at = datetime.fromtimestamp(
        reported.pipeline.instance.fetch_materializations(REPORT_KEY, limit=1).records[0].timestamp,
        UTC,
    )
    monday, sunday = last_complete_week(copy, made_at)
    current = week_numbers(copy, monday)
    previous = week_numbers(copy, monday - timedelta(days=7))
    assert all(value is not None for value in (*current.values(), *previous.values()))

    page = reported.page()
    shown = tiles(page)
    assert set(shown) == set(current)
    for metric, value in current.items():
        tile = shown[metric]
        assert float(tile["value"]) == pytest.approx(value, abs=1e-12), metric
        assert float(tile["previous"]) == pytest.approx(previous[metric], abs=1e-12), metric
    for rate in ("hot_sla_attainment", "completion_rate"):
        assert shown[rate]["text"] == f"{current[rate] * 100:.1f}%"
        assert shown[rate]["change"].endswith(f"from {previous[rate] * 100:.1f}%")
    assert shown["open_past_due"]["text"] == f"{current['open_past_due']:,}"
    # Fewer open tasks past due is better: the arrow says which way, the word how it reads.
    if current["open_past_due"] < previous["open_past_due"]:
        assert shown["open_past_due"]["change"].startswith("▼")
        assert shown["open_past_due"]["trend"] == "better"
    assert f"Sun {sunday.day} " in page

    # The same numbers on the asset's materialization, rates in percent, for the UI's plots.
    metadata = latest_report(reported).metadata
    assert metadata["hot_sla_attainment_pct"].value == round(current["hot_sla_attainment"] * 100, 2)
    assert metadata["completion_rate_pct"].value == round(current["completion_rate"] * 100, 2)
    assert metadata["open_past_due"].value == current["open_past_due"]
    assert metadata["week"].value == f"{monday.isoformat()}..{sunday.isoformat()}"
    tiles_md = metadata["tiles"].value
    assert f"{current['hot_sla_attainment'] * 100:.1f}%" in tiles_md
    assert f"{current['completion_rate'] * 100:.1f}%" in tiles_md
    assert isinstance(metadata["path"], dg.PathMetadataValue)
    assert Path(metadata["path"].value) == reported.settings.report_file


def test_the_report_lists_what_changed_since_the_previous_one(reported: Reported) -> None:
    page = reported.page()
    since = re.search(r'changes-since" content="([^"]+)"', page)
    first_through = re.search(r'changes-through" content="([^"]+)"', reported.first_page)
    assert since
    assert first_through
    assert since.group(1) == first_through.group(1)  # where the previous report stopped

    section = page[page.index('<section id="changes">') :]
    activity = reported.activity
    assert f"{len(activity.reassigned):,} reassignments" in section
    transitions = re.findall(
        r"<tr><td>([A-Z_]+)</td><td>([A-Z_]+)</td><td class=num>([\d,]+)</td>", section
    )
    to_status = {}
    for _, to, count in transitions:
        to_status[to] = to_status.get(to, 0) + int(count.replace(",", ""))
    assert to_status.get("COMPLETED", 0) == len(activity.completed)
    assert to_status.get("SKIPPED", 0) == len(activity.skipped)
    assert to_status.get("IN_PROGRESS", 0) == len(activity.started)
    assert to_status.get("REMOVED", 0) == len(activity.deleted)


def test_every_publish_rewrites_the_report_beside_the_copy(reported: Reported) -> None:
    settings = reported.settings
    before = reported.page()
    publish = build_defs(settings).resolve_job_def(PUBLISH_JOB_NAME)

    result = publish.execute_in_process(instance=reported.pipeline.instance)

    assert result.success
    keys = {e.asset_key for e in result.get_asset_materialization_events()}
    assert keys == {ANALYST_COPY_KEY, REPORT_KEY}
    after = reported.page()
    (published_at,) = query(
        settings.analyst_duckdb_path, "SELECT published_at FROM topo.pipeline_info"
    )
    assert published_at.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M") in after
    # Nothing new was fetched: the same changes, said to be repeated.
    assert re.findall(r"changes-\w+\" content=\"[^\"]+\"", after) == re.findall(
        r"changes-\w+\" content=\"[^\"]+\"", before
    )
    assert "nothing new was fetched since the previous report" in after
    # Written aside and renamed over the old page: nothing is left beside it.
    assert sorted(p.name for p in settings.report_file.parent.glob("*.html*")) == [
        settings.report_file.name
    ]


def test_make_report_rebuilds_it_from_the_copy_without_a_run(
    reported: Reported,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "elsewhere" / "report.html"
    monkeypatch.setenv("TOPO_ANALYST_DUCKDB_PATH", str(reported.settings.analyst_duckdb_path))
    monkeypatch.setenv("TOPO_REPORT_PATH", str(target))
    monkeypatch.setenv("TOPO_TIMEZONE", ZONE)
    # Other hours in this shell: the page names those the tables were built with.
    monkeypatch.setenv("TOPO_BUSINESS_HOURS", "Mon-Sat 08:00-20:00")
    monkeypatch.setenv("TOPO_DUCKDB_PATH", str(tmp_path / "unused.duckdb"))
    monkeypatch.chdir(tmp_path)  # no .env here

    assert report_main([]) == 0

    assert str(target) in capsys.readouterr().out
    page = target.read_text()
    assert tiles(page) == tiles(reported.page())
    assert "Mon,Tue,Wed,Thu,Fri 09:00-18:00, America/New_York" in page

    monkeypatch.setenv("TOPO_ANALYST_DUCKDB_PATH", str(tmp_path / "missing.duckdb"))
    assert report_main([]) == 1
    assert "publish it first" in capsys.readouterr().err


def test_without_a_published_copy_the_step_fails_saying_so(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    asset = build_report_asset(report, tmp_path / "never_published.duckdb")

    result = dg.materialize([asset], raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "does not exist yet: publish it first" in description
    assert not report.exists()
