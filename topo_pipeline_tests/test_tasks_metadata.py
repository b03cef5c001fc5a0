"""What a ``topo/tasks`` run records: per day, the run's overview on its last day, run-wide.

Pure functions on hand-made windows and results; ``test_tasks_asset.py`` checks the same
keys on real runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from topo_pipeline.api.windows import WindowResult
from topo_pipeline.defs.metadata import PER_DAY_ROWS
from topo_pipeline.defs.partitions import DAY_COMPLETE_METADATA
from topo_pipeline.defs.tasks_metadata import partition_metadata, per_day_table, run_metadata
from topo_pipeline.warehouse.duplicates import DuplicateReport
from topo_pipeline.warehouse.history import HistoryChanges
from topo_pipeline.warehouse.landing import Landing
from topo_pipeline.warehouse.tasks import PartitionWindow

FIRST = date(2026, 3, 1)


def window(day: date) -> PartitionWindow:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return PartitionWindow(day, start, start + timedelta(days=1))


def result(day: date, tasks: int, *, pages: int = 1, out_of_bounds: int = 0) -> WindowResult:
    return WindowResult(
        window(day),
        api_total=tasks + 2,
        in_window=tasks,
        reads=1,
        pages=pages,
        before_window=2,
        out_of_bounds=out_of_bounds,
    )


def days(count: int) -> list[date]:
    return [FIRST + timedelta(days=n) for n in range(count)]


PREVIEW = (["id", "partition_date"], [("t1", FIRST), ("t2", FIRST)])


def test_each_day_gets_its_counts_and_window_and_only_the_last_the_overview() -> None:
    run = days(3)
    windows = [window(day) for day in run]
    results = [result(run[0], 5, pages=2), result(run[1], 0), result(run[2], 3, out_of_bounds=1)]
    rows = {run[0]: 5, run[1]: 0, run[2]: 3}

    # The fetch started while the last day was still going on (a live refresh).
    fetched_from = windows[2].start + timedelta(hours=9)
    metadata = partition_metadata(windows, results, rows, PREVIEW, fetched_from=fetched_from)

    assert list(metadata) == [day.isoformat() for day in run]
    assert [metadata[day.isoformat()][DAY_COMPLETE_METADATA] for day in run] == [
        True,
        True,
        False,
    ]
    assert metadata[run[0].isoformat()] == {
        "dagster/row_count": 5,
        DAY_COMPLETE_METADATA: True,
        "api_in_window_count": 5,  # total_count less the second before the window
        "api_out_of_bounds": 0,
        "api_total_count_for_query": 7,
        "window_start_utc": "2026-03-01T00:00:00+00:00",
        "window_end_utc": "2026-03-02T00:00:00+00:00",
        "pages": 2,
        "reads": 1,
    }
    assert metadata[run[2].isoformat()]["api_out_of_bounds"] == 1
    assert "preview" not in metadata[run[0].isoformat()]
    last = metadata[run[2].isoformat()]
    assert isinstance(last["preview"], dg.TableMetadataValue)
    assert [record.data["id"] for record in last["preview"].records] == ["t1", "t2"]
    assert last["per_day"].value.count("\n| 2026-03-0") == 3


def test_a_long_range_lists_its_latest_days() -> None:
    run = days(PER_DAY_ROWS + 3)

    text = per_day_table(
        [window(day) for day in run], [result(day, 1) for day in run], dict.fromkeys(run, 1)
    )

    assert text.startswith(f"The last {PER_DAY_ROWS} of the run's {len(run)} days.")
    assert f"| {run[2]} |" not in text
    assert f"| {run[3]} | 2026-03-04 00:00 | 2026-03-05 00:00 | 1 | 1 | 1 |" in text


def test_the_run_reports_its_requests_landing_history_and_repeats() -> None:
    stats = {
        "requests": 12.0,
        "pages": 10.0,
        "retries": 2.0,
        "rate_limited": 1.0,
        "server_errors": 1.0,
        "transport_errors": 0.0,
        "malformed_bodies": 0.0,
        "rereads": 0.0,
        "tie_rereads": 1.0,
        "api_seconds": 1.23456,
        "wait_seconds": 0.5,
    }
    landing = Landing(
        rows={FIRST: 4, FIRST + timedelta(days=1): 0},
        history=HistoryChanges(versions=3, removed=1),
        seconds=0.25,
    )

    metadata = run_metadata(stats, 2.5, DuplicateReport(), landing)

    assert metadata["rows_landed_in_run"] == 4
    assert metadata["partitions_in_run"] == 2
    assert (metadata["history_versions_recorded"], metadata["history_tasks_removed"]) == (3, 1)
    assert (metadata["api_requests"], metadata["api_rate_limited_429"]) == (12, 1)
    assert metadata["api_seconds"] == 1.235
    assert (metadata["fetch_wall_seconds"], metadata["land_wall_seconds"]) == (2.5, 0.25)
    assert metadata["duplicates_conflicting"] == 0
    assert metadata["dagster/table_name"] == "topo.tasks"
