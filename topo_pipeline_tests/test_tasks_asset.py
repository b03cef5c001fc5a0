"""The ``topo/tasks`` asset end to end: Dagster runs against the simulated API over HTTP.

Each test materializes the real asset with ``dg.materialize`` and then reads the DuckDB file
the run wrote, comparing it with what the simulator serves.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from topo_pipeline.api.models import TASK_FIELDS, TIMESTAMP_FIELDS, parse_timestamp
from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.ingestion import PREVIEW_ROWS, TASKS_KEY
from topo_pipeline.defs.jobs import partition_range_tags
from topo_pipeline.defs.resources import TopoApiResource
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.simulator import DEMO_API_KEY, DatasetSpec, FaultPlan, TaskStore, make_task
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.harness import SimulatedPipeline, file_after_run

START = date(2026, 3, 2)
DAYS = [START + timedelta(days=i) for i in range(3)]
# Day 1 is big enough for the data set's 300-task tie group; day 2 is empty.
SPEC = DatasetSpec(seed=11, start_date=START, days=3, tasks_per_day=[450, 0, 260])


class Pipeline(SimulatedPipeline):
    """The pipeline of one test, running ``topo/tasks`` alone."""

    def materialize(
        self, first: date, last: date | None = None, *, raise_on_error: bool = True
    ) -> dg.ExecuteInProcessResult:
        """Run ``topo/tasks`` for the days ``first..last`` as one (single-run) range run."""
        defs = build_defs(self.settings)
        tasks_asset = defs.get_assets_def(TASKS_KEY)
        return dg.materialize(
            [tasks_asset],
            resources=defs.resources,
            instance=self.instance,
            tags=partition_range_tags(first.isoformat(), (last or first).isoformat()),
            raise_on_error=raise_on_error,
        )

    def rows(self, *, where: str = "") -> dict[str, dict[str, Any]]:
        """Every stored row of ``topo.tasks`` by id."""
        with connect(self.settings.duckdb_path, read_only=True) as con:
            cursor = con.execute(f"SELECT * FROM warehouse.topo.tasks {where}")
            names = [column[0] for column in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(pipeline_factory: Callable[..., Pipeline]) -> PipelineFactory:
    """Builds a :class:`Pipeline` over a data set; its zone is the data set's zone."""
    return lambda spec, **options: pipeline_factory(spec, Pipeline, **options)


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Pipeline:
    return make_pipeline(SPEC)


@pytest.fixture(scope="module")
def range_run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's file after one range run of DAYS."""
    return file_after_run(
        tmp_path_factory.mktemp("range-run"),
        SPEC,
        Pipeline,
        lambda pipeline: pipeline.materialize(DAYS[0], DAYS[-1]),
    )


@pytest.fixture
def landed(pipeline: Pipeline, range_run_file: Path) -> Pipeline:
    """``pipeline`` after the range run of DAYS: its file a copy of the module's.

    Only the file: the pipeline's instance has no record of that run.
    """
    shutil.copyfile(range_run_file, pipeline.settings.duckdb_path)
    return pipeline


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def served_tasks(store: TaskStore, days: Sequence[date], timezone: str) -> dict[str, dict]:
    """The store's tasks created on ``days`` (local calendar days), by id."""
    bounds = [day_bounds(day, timezone) for day in days]
    return {
        task["id"]: task
        for task in store.all()
        if any(start <= parse_timestamp(task["created_at"]) < end for start, end in bounds)
    }


def expected_row(task: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    """What ``topo.tasks`` must hold for ``task``, computed from the API object alone."""
    row = {
        name: parse_timestamp(task[name])
        if name in TIMESTAMP_FIELDS and task.get(name)
        else task.get(name)
        for name in TASK_FIELDS
    }
    row["partition_date"] = row["created_at"].astimezone(ZoneInfo(timezone)).date()
    return row


def assert_table_matches(pipeline: Pipeline, days: Sequence[date]) -> None:
    """The rows of ``days`` are exactly the simulator's tasks of those days, field by field."""
    timezone = pipeline.settings.timezone
    expected = served_tasks(pipeline.store, days, timezone)
    dates = ", ".join(f"DATE '{day}'" for day in days)
    stored = pipeline.rows(where=f"WHERE partition_date IN ({dates})")
    assert set(stored) == set(expected)
    for task_id, task in expected.items():
        row = stored[task_id]
        assert {name: row[name] for name in (*TASK_FIELDS, "partition_date")} == expected_row(
            task, timezone
        ), task_id
        assert json.loads(row["raw"]) == task


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Metadata values per partition key of the run's ``topo/tasks`` materializations."""
    return {
        event.partition: {key: value.value for key, value in event.metadata.items()}
        for event in (
            e.event_specific_data.materialization  # type: ignore[union-attr]
            for e in result.get_asset_materialization_events()
        )
    }


# -- landing ------------------------------------------------------------------------------


def test_a_range_run_lands_every_task_field_by_field(make_pipeline: PipelineFactory) -> None:
    pipeline = make_pipeline(SPEC, new_file=True)  # a new deployment: the run creates the file
    result = pipeline.materialize(DAYS[0], DAYS[-1])

    assert_table_matches(pipeline, DAYS)
    per_partition = materializations(result)
    assert set(per_partition) == {day.isoformat() for day in DAYS}
    expected_counts = [len(served_tasks(pipeline.store, [day], "UTC")) for day in DAYS]
    assert expected_counts[1] == 0  # the empty day is a legitimate, empty partition
    for day, count in zip(DAYS, expected_counts, strict=True):
        metadata = per_partition[day.isoformat()]
        assert metadata["dagster/row_count"] == count
        assert metadata["api_in_window_count"] == count
        assert metadata["window_start_utc"] == f"{day}T00:00:00+00:00"
        assert metadata["window_end_utc"] == f"{day + timedelta(days=1)}T00:00:00+00:00"
        assert metadata["rows_landed_in_run"] == sum(expected_counts)
        assert metadata["history_versions_recorded"] == sum(expected_counts)  # all new
        assert metadata["history_tasks_removed"] == 0
        assert metadata["api_pages"] >= 5 + 3  # 450 tasks in pages of 100, and 260
    # The run's overview tables go on its last day only, not onto every partition.
    last = per_partition[DAYS[-1].isoformat()]
    preview = last["preview"]  # a table the UI renders natively
    assert preview.schema.columns[0].name == "id"
    assert len(preview.records) == PREVIEW_ROWS
    assert {record.data["partition_date"] for record in preview.records} <= {
        day.isoformat() for day in DAYS
    }
    assert last["per_day"].count("\n| 2026-03-0") == len(DAYS)
    assert all("preview" not in per_partition[day.isoformat()] for day in DAYS[:-1])
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 6
    assert all(check.passed for check in checks), [c.description for c in checks]
    # One single-run backfill: one step, one run.
    assert len(result.get_step_success_events()) == 1


def test_tasks_at_midnight_and_in_a_tie_land_once_in_their_day(pipeline: Pipeline) -> None:
    pipeline.materialize(DAYS[0], DAYS[-1])

    stored = pipeline.rows()
    tasks = pipeline.store.all()
    midnight = [t for t in tasks if parse_timestamp(t["created_at"]).time() == time()]
    assert midnight, "the data set puts tasks at exactly midnight"
    for task in midnight:
        assert stored[task["id"]]["partition_date"] == parse_timestamp(task["created_at"]).date()

    by_instant: dict[str, int] = {}
    for task in tasks:
        by_instant[task["created_at"]] = by_instant.get(task["created_at"], 0) + 1
    tie_instant, tie_size = max(by_instant.items(), key=lambda item: item[1])
    assert tie_size >= 300
    tied = [row for row in stored.values() if row["created_at"] == parse_timestamp(tie_instant)]
    assert len(tied) == tie_size


def test_materializing_twice_leaves_no_duplicates(pipeline: Pipeline) -> None:
    pipeline.materialize(DAYS[0], DAYS[-1])
    pipeline.materialize(DAYS[0], DAYS[-1])
    pipeline.materialize(DAYS[0])

    with connect(pipeline.settings.duckdb_path, read_only=True) as con:
        rows, ids = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM warehouse.topo.tasks"
        ).fetchone()
    assert rows == ids == len(served_tasks(pipeline.store, DAYS, "UTC"))


def test_rematerializing_a_day_shows_changes_and_leaves_other_days_alone(landed: Pipeline) -> None:
    before = landed.rows()
    day1 = sorted(served_tasks(landed.store, [DAYS[0]], "UTC").values(), key=lambda t: t["id"])
    pending = [t for t in day1 if t["status"] == "PENDING"]
    to_complete, to_reassign, to_delete = pending[0], pending[1], day1[-1]
    now = "2026-03-05T09:30:00Z"
    landed.store.upsert(
        {**to_complete, "status": "COMPLETED", "completed_at": now, "updated_at": now}
    )
    landed.store.upsert({**to_reassign, "assignee_user_id": None, "updated_at": now})
    assert landed.store.delete(to_delete["id"])
    # A change on another day must not show up: that day is not re-materialized.
    day3_task = next(iter(served_tasks(landed.store, [DAYS[2]], "UTC").values()))
    landed.store.upsert({**day3_task, "status": "SKIPPED", "skipped_at": now})

    result = landed.materialize(DAYS[0])

    # topo.task_history got a version for each of the three changes, and only those.
    recorded = materializations(result)[DAYS[0].isoformat()]
    assert (recorded["history_versions_recorded"], recorded["history_tasks_removed"]) == (3, 1)
    after = landed.rows()
    assert after[to_complete["id"]]["status"] == "COMPLETED"
    assert after[to_complete["id"]]["completed_at"] == parse_timestamp(now)
    assert after[to_reassign["id"]]["assignee_user_id"] is None
    assert to_delete["id"] not in after
    assert_table_matches(landed, [DAYS[0]])
    day3_ids = {i for i, row in before.items() if row["partition_date"] == DAYS[2]}
    assert {i: after[i] for i in day3_ids} == {i: before[i] for i in day3_ids}
    assert after[day3_task["id"]]["status"] == day3_task["status"]


# -- failures leave the previous rows ------------------------------------------------------


def test_a_failure_in_the_middle_of_the_write_keeps_the_previous_rows(landed: Pipeline) -> None:
    before = landed.rows()
    # A task of day 3 now claims to be from day 1. Re-landing day 1 deletes day 1's rows and
    # starts inserting, then hits the same id still stored under day 3: the write fails
    # part-way, after the delete.
    moved = next(iter(served_tasks(landed.store, [DAYS[2]], "UTC").values()))
    landed.store.upsert({**moved, "created_at": f"{DAYS[0]}T23:59:59Z"})
    landed.store.upsert(make_task(created_at=f"{DAYS[0]}T23:59:58Z", id="new-on-day-1"))

    result = landed.materialize(DAYS[0], raise_on_error=False)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert "another partition" in failure.to_string() or "Duplicate key" in failure.to_string()
    assert landed.rows() == before


def test_an_api_that_keeps_failing_fails_the_run_and_keeps_the_previous_rows(
    landed: Pipeline,
) -> None:
    before = landed.rows()
    landed.store.upsert(make_task(created_at=f"{DAYS[0]}T10:00:00Z"))
    landed.api.faults = FaultPlan(error_5xx_rate=1.0, retry_after_seconds=0)
    settings = landed.settings.model_copy(update={"max_attempts": 2})

    result = replace(landed, settings=settings).materialize(DAYS[0], DAYS[-1], raise_on_error=False)

    assert not result.success
    assert landed.rows() == before


# -- time zones ------------------------------------------------------------------------


def test_a_new_york_dst_day_holds_exactly_its_23_hours(make_pipeline: PipelineFactory) -> None:
    zone = "America/New_York"
    spring_forward = date(2026, 3, 8)
    spec = DatasetSpec(
        seed=3,
        start_date=spring_forward - timedelta(days=1),
        days=3,
        tasks_per_day=[200, 230, 210],
        timezone=zone,
        tie_group_size=0,
    )
    pipeline = make_pipeline(spec)

    result = pipeline.materialize(spring_forward)

    assert_table_matches(pipeline, [spring_forward])
    stored = pipeline.rows()
    assert set(stored) == set(served_tasks(pipeline.store, [spring_forward], zone))
    # Neighbouring days' tasks exist in the API but not in this partition.
    assert len(pipeline.store.all()) > len(stored)
    metadata = materializations(result)[spring_forward.isoformat()]
    assert metadata["window_start_utc"] == "2026-03-08T05:00:00+00:00"
    assert metadata["window_end_utc"] == "2026-03-09T04:00:00+00:00"


# -- data the API adds later -----------------------------------------------------------


def test_an_unknown_enum_value_lands_and_warns_naming_it(pipeline: Pipeline) -> None:
    pipeline.store.upsert(
        make_task(created_at=f"{DAYS[2]}T08:00:00Z", type="SMS", id="sms-task", new_field=1)
    )

    result = pipeline.materialize(DAYS[2])

    assert result.success
    row = pipeline.rows()["sms-task"]
    assert row["type"] == "SMS"
    assert json.loads(row["raw"])["new_field"] == 1
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    enum_check = checks["known_enum_values"]
    assert not enum_check.passed
    assert enum_check.severity == dg.AssetCheckSeverity.WARN
    assert "SMS" in (enum_check.description or "") + json.dumps(
        {k: str(v.value) for k, v in enum_check.metadata.items()}
    )
    assert all(c.passed for name, c in checks.items() if name != "known_enum_values")


def test_tasks_topo_sends_outside_the_bounds_fail_the_count_check(pipeline: Pipeline) -> None:
    # A broken filter: Topo also serves (and counts) the last 6 hours of the day before.
    pipeline.api.faults = FaultPlan(leak_outside_bounds_seconds=6 * 3600)
    leaked = [
        task
        for task in served_tasks(pipeline.store, [DAYS[0]], pipeline.settings.timezone).values()
        if parse_timestamp(task["created_at"]) >= day_bounds(DAYS[1], "UTC")[0] - timedelta(hours=6)
    ]
    assert leaked

    result = pipeline.materialize(DAYS[1])

    assert result.success  # nothing wrong was landed: the day is empty
    assert pipeline.rows(where=f"WHERE partition_date = DATE '{DAYS[1]}'") == {}
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    count_check = checks["count_matches_api_total"]
    assert not count_check.passed  # compared with Topo's total_count, not the client's count
    assert count_check.metadata["expected_total"].value >= len(leaked) - 1
    assert count_check.metadata["landed_total"].value == 0
    metadata = materializations(result)[DAYS[1].isoformat()]
    assert metadata["api_out_of_bounds"] >= len(leaked) - 1


# -- a task served twice ---------------------------------------------------------------


def first_of_day(store: TaskStore, day: date) -> dict[str, Any]:
    """The task the API serves first for the day's query (it starts a second early)."""
    start, end = day_bounds(day, "UTC")
    query = [
        t
        for t in store.all()
        if start - timedelta(seconds=1) < parse_timestamp(t["created_at"]) < end
    ]
    first = min(query, key=lambda t: (parse_timestamp(t["created_at"]), t["id"]))
    assert parse_timestamp(first["created_at"]) >= start  # in the day, so it is staged
    return first


@pytest.mark.parametrize("kind", ["identical", "stale", "conflicting"])
def test_a_task_served_twice_lands_once_and_only_a_conflict_fails(
    pipeline: Pipeline, kind: str
) -> None:
    first = first_of_day(pipeline.store, DAYS[2])
    pipeline.api.faults = FaultPlan(repeat_first_task=kind)  # type: ignore[arg-type]

    result = pipeline.materialize(DAYS[2], raise_on_error=False)

    stored = pipeline.rows()
    assert len(stored) == len(served_tasks(pipeline.store, [DAYS[2]], "UTC"))  # once each
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks["no_conflicting_duplicates"]
    (metadata,) = materializations(result).values()
    counts = {k: metadata[k] for k in metadata if k.startswith("duplicates_")}
    row = stored[first["id"]]
    if kind == "identical":
        assert result.success
        assert check.passed
        assert counts == {
            "duplicates_identical": 1,
            "duplicates_superseded": 0,
            "duplicates_conflicting": 0,
        }
        assert row["priority"] == first["priority"]
    elif kind == "stale":
        # The newer version was served first and its stale copy last: the newer one lands.
        assert result.success
        assert check.passed
        assert counts["duplicates_superseded"] == 1
        assert row["updated_at"] == parse_timestamp(first["updated_at"]) + timedelta(minutes=1)
        assert row["priority"] != first["priority"]
    else:
        # The blocking check fails the step (downstream steps would not run) and names
        # the id and the updated_at of both copies; the rows are landed all the same.
        assert not result.success
        assert not check.passed
        assert check.severity == dg.AssetCheckSeverity.ERROR
        stamp = parse_timestamp(first["updated_at"]).isoformat().replace("+00:00", "Z")
        assert first["id"] in (check.description or "")
        assert f"updated_at {stamp} and {stamp}" in (check.description or "")
        assert counts["duplicates_conflicting"] == 1
        assert row["priority"] != first["priority"]  # the copy fetched last
        # The run log (and the console) says what the check found.
        logged = [
            entry.user_message
            for entry in pipeline.instance.all_logs(result.run_id)
            if entry.dagster_event is None and entry.level >= logging.ERROR
        ]
        assert any(first["id"] in m and "no_conflicting_duplicates" in m for m in logged)
    assert all(c.passed for name, c in checks.items() if name != "no_conflicting_duplicates")


# -- the key ---------------------------------------------------------------------------


def test_the_api_key_is_in_no_event_metadata_or_log(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    result = pipeline.materialize(DAYS[0], DAYS[-1])

    records = pipeline.instance.all_logs(result.run_id)
    assert records
    serialized = "\n".join(repr(record) for record in records)
    captured = capsys.readouterr()
    resource = TopoApiResource(api_key=DEMO_API_KEY, base_url=pipeline.settings.base_url)
    with resource.client() as client:
        client_repr = repr(client)
    for text in (serialized, captured.out, captured.err, caplog.text, repr(resource), client_repr):
        assert DEMO_API_KEY not in text


def test_a_rejected_key_fails_the_run_saying_so_without_the_key(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_key = "wrong-key-0123456789abcdef"
    monkeypatch.setenv(API_KEY_ENV, wrong_key)
    caplog.set_level("DEBUG")

    result = pipeline.materialize(DAYS[0], raise_on_error=False)

    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    message = error.to_string()
    assert "rejected" in message
    assert "request_id" in message or "req_" in message
    # One paragraph in front, the cause and the fix; the traceback stays chained behind it.
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None
    assert failure.description.startswith("topo/tasks failed: The Topo API key was rejected")
    assert "check TOPO_API_KEY" in failure.description
    assert "Nothing was written" in failure.description
    assert str(failure.metadata["request_id"].value).startswith("req_")
    assert "TopoAuthError" in message  # the original error, with its traceback
    assert wrong_key not in failure.description
    records = "\n".join(repr(r) for r in pipeline.instance.all_logs(result.run_id))
    for text in (message, records, caplog.text):
        assert wrong_key not in text
    assert len(pipeline.api.requests) == 1  # not retried


# -- the run log -----------------------------------------------------------------------


def test_a_run_with_retries_tells_its_story_in_the_run_log_without_the_key(
    pipeline: Pipeline,
) -> None:
    pipeline.api.faults = FaultPlan(
        latency_seconds=0.02, error_5xx_rate=0.25, force_429_count=2, retry_after_seconds=0, seed=5
    )
    settings = pipeline.settings.model_copy(
        update={"progress_interval_seconds": 0.1, "max_attempts": 10}
    )

    result = replace(pipeline, settings=settings).materialize(DAYS[0], DAYS[-1])

    assert result.success
    records = pipeline.instance.all_logs(result.run_id)
    lines = [(r.level, r.user_message) for r in records if r.user_message]
    retries = [(level, m) for level, m in lines if "Topo request failed" in m]
    # The client's own loggers reach the run log: each retry with its reason and wait.
    assert any(
        level == logging.WARNING and "HTTP 5" in m and "retrying in" in m for level, m in retries
    ), lines
    assert any(level == logging.INFO and "HTTP 429" in m for level, m in retries), lines
    progress = [m for _, m in lines if m.startswith("fetching: ")]
    assert progress, lines
    assert all("days done" in m and "requests/min" in m and "ETA" in m for m in progress)
    assert any("landed" in m and "topo.tasks" in m for _, m in lines)
    assert DEMO_API_KEY not in "\n".join(repr(record) for record in records)
