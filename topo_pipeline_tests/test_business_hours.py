"""Business-hours SLAs: the SQL against an independent Python oracle, across nights,
weekends, holidays and both DST changes of America/New_York; and the calendar's settings."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import DatasetSpec
from topo_pipeline.warehouse.analytics import (
    DEFAULT_SLA_TARGET_MINUTES,
    ROLLUP_TABLES,
    replace_rollup,
    replace_task_sla,
)
from topo_pipeline.warehouse.business_hours import (
    WorkingCalendar,
    parse_business_hours,
    read_holidays,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.analytics_oracle import (
    Task,
    assert_all_tables_match,
    assert_rows_match,
    business_deadline,
    expected_tables,
    read_table,
    table_columns,
    task_from_api,
    working_intervals,
)
from topo_pipeline_tests.test_analytics_sql import insert_tasks
from topo_pipeline_tests.test_assignees import Pipeline

ZONE = "America/New_York"
NY = ZoneInfo(ZONE)
SPRING = date(2024, 3, 10)  # Sunday: 02:00 EST -> 03:00 EDT
AUTUMN = date(2024, 11, 3)  # Sunday: 02:00 EDT -> 01:00 EST
HOLIDAYS = (date(2024, 3, 11), date(2024, 11, 5))  # the Mondays/Tuesdays after
AS_OF = datetime(2024, 11, 20, 12, 0, tzinfo=UTC)
TARGETS = {**DEFAULT_SLA_TARGET_MINUTES, "URGENT": 30}

OFFICE = WorkingCalendar((1, 2, 3, 4, 5), 9 * 60, 18 * 60, HOLIDAYS)
ROUND_THE_CLOCK = WorkingCalendar((1, 2, 3, 4, 5, 6, 7), 0, 24 * 60)
# Working hours that cross the DST changes themselves (01:00-03:00 local on Sundays).
NIGHT_SHIFT = WorkingCalendar((6, 7), 60, 4 * 60, (date(2024, 3, 16),))


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


def tasks() -> list[Task]:
    """Tasks created around both DST weekends: evenings, nights, weekends, before holidays,
    inside and outside working hours, completed at every kind of moment or still open."""
    created = []
    for base in (SPRING, AUTUMN):
        for offset, hour in itertools.product(range(-3, 4), (0, 1, 2, 8, 9, 12, 17, 19, 23)):
            created.append(local(base + timedelta(days=offset), hour, 30))
    out = []
    priorities = ("HOT", "TODAY", "EXTRA", "URGENT")
    statuses = ("COMPLETED", "COMPLETED", "PENDING", "IN_PROGRESS", "SKIPPED", "COMPLETED")
    spans = (45, 200, 900, 2000, 5000, 9000, 50)
    for i, created_at in enumerate(created):
        status = statuses[i % len(statuses)]
        done = (
            created_at + timedelta(minutes=spans[i % len(spans)]) if status == "COMPLETED" else None
        )
        out.append(
            Task(
                f"t{i:03d}",
                created_at.astimezone(NY).date(),
                priorities[i % len(priorities)],
                status,
                "A",
                created_at,
                completed_at=done,
                skipped_at=created_at + timedelta(minutes=5) if status == "SKIPPED" else None,
            )
        )
    return out


def test_the_oracle_counts_a_known_weekend_and_holiday() -> None:
    # Friday 17:30 before the spring change, 60 working minutes: 30 on Friday, then Monday
    # is a holiday, so the rest is Tuesday 09:00-09:30 (EDT by then).
    intervals = working_intervals(OFFICE, ZONE, date(2024, 3, 7), date(2024, 3, 20))
    assert business_deadline(intervals, local(date(2024, 3, 8), 17, 30), 60) == local(
        date(2024, 3, 12), 9, 30
    )
    assert local(date(2024, 3, 12), 9, 30) == datetime(2024, 3, 12, 13, 30, tzinfo=UTC)
    # Round the clock, a DST day has 23 or 25 working hours.
    day = working_intervals(ROUND_THE_CLOCK, ZONE, SPRING, SPRING)
    assert [(end - start) / timedelta(hours=1) for start, end in day] == [23]
    day = working_intervals(ROUND_THE_CLOCK, ZONE, AUTUMN, AUTUMN)
    assert [(end - start) / timedelta(hours=1) for start, end in day] == [25]


@pytest.mark.parametrize(
    "calendar",
    [OFFICE, ROUND_THE_CLOCK, NIGHT_SHIFT],
    ids=["office-with-holidays", "round-the-clock", "night-shift-across-dst"],
)
def test_business_hours_columns_match_the_oracle(tmp_path: Path, calendar: WorkingCalendar) -> None:
    data = tasks()
    days = sorted({t.partition_date for t in data})
    with connect(tmp_path / "pipeline.duckdb") as con:
        insert_tasks(con, data)
        replace_task_sla(
            con, days, as_of=AS_OF, sla_targets=TARGETS, calendar=calendar, calendar_timezone=ZONE
        )
        for table in ROLLUP_TABLES:
            replace_rollup(con, table, days)
        expected = expected_tables(data, AS_OF, TARGETS, calendar=calendar, timezone=ZONE)
        assert_all_tables_match(con, expected)
        rows = read_table(con, "task_sla")
    verdicts = {row["business_sla_status"] for row in rows}
    assert verdicts >= {"MET", "BREACHED", "SKIPPED"}
    if calendar is ROUND_THE_CLOCK:
        # Every minute counts: the business columns equal the wall-clock ones.
        for row in rows:
            assert row["business_sla_due_at"] == row["sla_due_at"]
            assert row["business_sla_status"] == row["sla_status"]
    if calendar is OFFICE:
        # Outside hours the business deadline is later; never earlier.
        later = [r for r in rows if r["sla_due_at"] and r["business_sla_due_at"] > r["sla_due_at"]]
        assert later
        assert all(r["business_sla_due_at"] >= r["sla_due_at"] for r in rows if r["sla_due_at"])


def test_without_business_hours_the_columns_are_null(tmp_path: Path) -> None:
    data = tasks()[:20]
    days = sorted({t.partition_date for t in data})
    with connect(tmp_path / "pipeline.duckdb") as con:
        insert_tasks(con, data)
        replace_task_sla(con, days, as_of=AS_OF, sla_targets=TARGETS)
        for table in ROLLUP_TABLES:
            replace_rollup(con, table, days)
        assert_all_tables_match(con, expected_tables(data, AS_OF, TARGETS))
        for row in read_table(con, "sla_by_priority"):
            assert (row["business_met"], row["business_sla_attainment"]) == (None, None)


@pytest.mark.parametrize(
    ("text", "weekdays", "start", "end"),
    [
        ("Mon-Fri 09:00-18:00", (1, 2, 3, 4, 5), 540, 1080),
        ("mon-thu,sat 08:30-24:00", (1, 2, 3, 4, 6), 510, 1440),
        ("Sun 00:00-01:00", (7,), 0, 60),
    ],
)
def test_business_hours_are_parsed(
    text: str, weekdays: tuple[int, ...], start: int, end: int
) -> None:
    calendar = parse_business_hours(text)
    assert (calendar.weekdays, calendar.start_minute, calendar.end_minute) == (weekdays, start, end)


@pytest.mark.parametrize(
    "text", ["Mon-Fri", "Fri-Mon 09:00-18:00", "Mon-Fri 18:00-09:00", "Xyz 09:00-10:00", "Mon 9-17"]
)
def test_bad_business_hours_fail_naming_the_variable(text: str) -> None:
    with pytest.raises(TopoConfigError, match="TOPO_BUSINESS_HOURS"):
        Settings.from_env({"TOPO_BUSINESS_HOURS": text})


def test_the_holidays_file_is_validated_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "holidays.csv"
    path.write_text("date,name\n2026-12-25,Christmas\n2026-13-01,Bad\n2026-12-25,Again\n")
    with pytest.raises(ValueError, match="line 3: '2026-13-01'") as caught:
        read_holidays(path)
    assert "line 4: 2026-12-25 repeats line 2" in str(caught.value)
    with pytest.raises(TopoConfigError, match="TOPO_HOLIDAYS_PATH"):
        Settings.from_env(
            {"TOPO_BUSINESS_HOURS": "Mon-Fri 09:00-18:00", "TOPO_HOLIDAYS_PATH": str(path)}
        )
    path.write_text("date,name\n2026-12-25,Christmas\n2026-01-01,New Year\n")
    settings = Settings.from_env(
        {"TOPO_BUSINESS_HOURS": "Mon-Fri 09:00-18:00", "TOPO_HOLIDAYS_PATH": str(path)}
    )
    assert settings.working_calendar() == WorkingCalendar(
        (1, 2, 3, 4, 5), 540, 1080, (date(2026, 1, 1), date(2026, 12, 25))
    )
    assert Settings.from_env({}).working_calendar() is None
    with pytest.raises(TopoConfigError, match=r"TOPO_HOLIDAYS_PATH .*TOPO_BUSINESS_HOURS"):
        Settings.from_env({"TOPO_HOLIDAYS_PATH": str(path)})


class AutumnPipeline(Pipeline):
    first, last, as_of = date(2026, 10, 30), date(2026, 11, 3), "2026-11-04T18:30:00Z"


def test_the_settings_reach_the_assets_end_to_end(pipeline_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TOPO_BUSINESS_HOURS and TOPO_HOLIDAYS_PATH, through the code location, in a real run
    against the simulated API (a week in New York spanning the autumn DST change)."""
    holidays = tmp_path / "holidays.csv"
    holidays.write_text("date,name\n2026-11-03,Election Day\n")
    spec = DatasetSpec(
        start_date=date(2026, 10, 30),
        days=5,
        tasks_per_day=[40, 10, 10, 40, 40],
        timezone=ZONE,
        as_of=datetime(2026, 11, 4, 18, 0, tzinfo=UTC),
        tie_group_size=0,
    )
    made = pipeline_factory(spec, AutumnPipeline)
    made.settings = made.settings.model_copy(
        update={"business_hours": "Mon-Fri 09:00-18:00", "holidays_path": holidays}
    )
    assert made.everything().success
    calendar = made.settings.working_calendar()
    assert calendar is not None
    assert calendar.holidays == (date(2026, 11, 3),)
    served = [task_from_api(t, ZONE) for t in made.store.all()]
    expected = expected_tables(
        served,
        parse_timestamp(AutumnPipeline.as_of),
        DEFAULT_SLA_TARGET_MINUTES,
        calendar=calendar,
        timezone=ZONE,
    )
    with connect(made.settings.duckdb_path, read_only=True) as con:
        for table in ("task_sla", "sla_by_priority", "sla_by_team"):
            assert_rows_match(
                read_table(con, table), expected[table], table, table_columns(con, table)
            )
        statuses = {row["business_sla_status"] for row in read_table(con, "task_sla")}
    assert statuses >= {"MET", "OPEN"}
