"""Freshness checks: a day that has not landed by the deadline fails; a landed one passes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.automation import pipeline_asset_keys
from topo_pipeline.defs.freshness import (
    ANALYST_COPY_CURRENT,
    LANDED_BY_DEADLINE,
    build_analyst_copy_current_check,
    build_landed_by_deadline_checks,
    expected_partition,
    last_deadline,
)
from topo_pipeline.defs.jobs import REFRESH_SELECTION, partition_range_tags
from topo_pipeline.defs.location import build_defs
from topo_pipeline.defs.partitions import daily_partitions
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import DatasetSpec
from topo_pipeline_tests.harness import SimulatedPipeline

START = date(2026, 3, 2)
SPEC = DatasetSpec(seed=4, start_date=START, days=3, tasks_per_day=[30, 20, 25])
YESTERDAY = START + timedelta(days=2)
DEADLINE_HOUR = 6
AFTER_DEADLINE = datetime(2026, 3, 5, 7, 30, tzinfo=UTC)  # 1.5 h past the deadline


class Pipeline(SimulatedPipeline):
    def materialize(self, first: date, last: date, selection: dg.AssetSelection) -> None:
        defs = build_defs(self.settings)
        result = dg.materialize(
            defs.assets,
            selection=selection,
            resources=defs.resources,
            instance=self.instance,
            tags=partition_range_tags(first.isoformat(), last.isoformat()),
        )
        assert result.success

    def check(self, now: datetime) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
        """Run the freshness checks as of ``now``; their evaluations by (asset, check)."""
        defs = build_defs(self.settings)
        keys = pipeline_asset_keys(list(defs.assets))
        checks = [
            build_landed_by_deadline_checks(
                keys,
                daily_partitions(self.settings),
                partitioned_key=TASKS_KEY,
                deadline_hour=DEADLINE_HOUR,
                timezone=self.settings.timezone,
                clock=lambda: now,
            ),
            build_analyst_copy_current_check(
                ANALYST_COPY_KEY, keys, max_lag_minutes=60, clock=lambda: now
            ),
        ]
        result = dg.materialize(
            [*defs.assets, *checks],
            selection=dg.AssetSelection.checks(*checks),
            resources=defs.resources,
            instance=self.instance,
        )
        assert result.success  # a failed check does not fail the run
        return {
            (e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()
        }


@pytest.fixture
def pipeline(pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    return pipeline_factory(SPEC, Pipeline)


def landed(evaluations: dict[tuple[str, str], dg.AssetCheckEvaluation]) -> dict[str, bool]:
    return {
        asset: e.passed for (asset, name), e in evaluations.items() if name == LANDED_BY_DEADLINE
    }


def test_yesterday_missing_after_the_deadline_fails_every_pipeline_asset(
    pipeline: Pipeline,
) -> None:
    pipeline.materialize(START, YESTERDAY - timedelta(days=1), REFRESH_SELECTION)

    evaluations = pipeline.check(AFTER_DEADLINE)

    results = landed(evaluations)
    assert TASKS_KEY.to_user_string() in results
    assert len(results) >= 2  # topo/tasks and the analytics tables
    assert not any(results.values()), results
    tasks = evaluations[(TASKS_KEY.to_user_string(), LANDED_BY_DEADLINE)]
    assert tasks.severity == dg.AssetCheckSeverity.ERROR
    assert tasks.metadata["expected_partition"].value == YESTERDAY.isoformat()
    assert tasks.metadata["overdue_minutes"].value == 90


def test_before_the_deadline_the_day_before_is_expected(pipeline: Pipeline) -> None:
    pipeline.materialize(START, YESTERDAY - timedelta(days=1), REFRESH_SELECTION)

    results = landed(pipeline.check(AFTER_DEADLINE - timedelta(hours=2)))

    assert results
    assert all(results.values()), results


def test_once_yesterday_lands_the_checks_pass(pipeline: Pipeline) -> None:
    pipeline.materialize(START, YESTERDAY - timedelta(days=1), REFRESH_SELECTION)
    assert not any(landed(pipeline.check(AFTER_DEADLINE)).values())

    pipeline.materialize(YESTERDAY, YESTERDAY, REFRESH_SELECTION)

    results = landed(pipeline.check(AFTER_DEADLINE))
    assert results
    assert all(results.values()), results


def test_only_topo_tasks_landed_leaves_the_analytics_failing(pipeline: Pipeline) -> None:
    pipeline.materialize(START, YESTERDAY, dg.AssetSelection.assets(TASKS_KEY))

    results = landed(pipeline.check(AFTER_DEADLINE))

    assert results.pop(TASKS_KEY.to_user_string()) is True
    assert results
    assert not any(results.values()), results


def test_the_analyst_copy_check_shows_its_age_and_fails_when_behind(pipeline: Pipeline) -> None:
    unpublished = REFRESH_SELECTION - dg.AssetSelection.assets(ANALYST_COPY_KEY).downstream()
    pipeline.materialize(START, YESTERDAY, unpublished)
    never = pipeline.check(datetime.now(UTC))
    assert not never[(ANALYST_COPY_KEY.to_user_string(), ANALYST_COPY_CURRENT)].passed

    pipeline.materialize(START, YESTERDAY, dg.AssetSelection.assets(ANALYST_COPY_KEY))
    fresh = pipeline.check(datetime.now(UTC) + timedelta(minutes=30))
    current = fresh[(ANALYST_COPY_KEY.to_user_string(), ANALYST_COPY_CURRENT)]

    assert current.passed
    assert current.metadata["age_minutes"].value == 30
    assert current.metadata["behind_pipeline_minutes"].value == 0
    assert "published_at" in current.metadata


@pytest.mark.parametrize(
    ("now", "timezone", "deadline", "partition"),
    [
        # After the hour: yesterday is due.
        ("2026-03-05T07:00:00+00:00", "UTC", "2026-03-05T06:00:00+00:00", "2026-03-04"),
        # Before it: the day before yesterday.
        ("2026-03-05T05:59:00+00:00", "UTC", "2026-03-04T06:00:00+00:00", "2026-03-03"),
        # The hour is local: 06:00 in New York is 11:00 UTC (EST).
        (
            "2026-03-05T10:00:00+00:00",
            "America/New_York",
            "2026-03-04T06:00:00-05:00",
            "2026-03-03",
        ),
        (
            "2026-03-05T11:00:00+00:00",
            "America/New_York",
            "2026-03-05T06:00:00-05:00",
            "2026-03-04",
        ),
    ],
)
def test_the_deadline_and_the_day_it_expects(
    now: str, timezone: str, deadline: str, partition: str
) -> None:
    partitions = daily_partitions(Settings(start_date=date(2026, 1, 1), timezone=timezone))

    found = last_deadline(datetime.fromisoformat(now), DEADLINE_HOUR, timezone)

    assert found == datetime.fromisoformat(deadline)
    assert expected_partition(partitions, found) == partition
