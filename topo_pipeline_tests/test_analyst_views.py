"""The analyst views in a published copy, read the way analysts open it.

``analytics.daily_by_priority`` has a row for every calendar day and priority, zero-filled
where the rollups have none and equal to them where they have rows; ``analytics.
open_tasks_past_due`` lists exactly the open tasks whose due time has passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pytest

from topo_pipeline.simulator import make_task
from topo_pipeline.warehouse.analyst_copy import publish_analyst_copy
from topo_pipeline.warehouse.pipeline_info import PipelineInfo
from topo_pipeline.warehouse.schema import VIEWS
from topo_pipeline_tests.test_analyst_copy import LOADED_AT, some_tasks
from topo_pipeline_tests.warehouse_seed import seed_tasks

DAY1, DAY3 = date(2025, 3, 14), date(2025, 3, 16)  # nothing on 2025-03-15
INFO = PipelineInfo(
    timezone="UTC",
    start_date=date(2025, 3, 1),
    version="test",
    # URGENT is configured but has no tasks: it still gets a row every day.
    sla_target_minutes={"HOT": 60, "TODAY": 1440, "EXTRA": 4320, "URGENT": 30},
)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    folder = tmp_path_factory.mktemp("views")
    now = datetime.now(UTC)
    tasks = [
        *some_tasks(DAY1, 12),
        *some_tasks(DAY3, 7),
        # Open and due in an hour: not past due yet, whatever its as_of said.
        make_task(priority="HOT", status="PENDING", created_at=now - timedelta(minutes=10)),
        make_task(priority=None, status="PENDING", created_at=now - timedelta(days=2)),
    ]
    seed_tasks(folder / "pipeline.duckdb", tasks, loaded_at=LOADED_AT)
    target = folder / "topo_analytics.duckdb"
    publish_analyst_copy(folder / "pipeline.duckdb", target, info=INFO)
    con = duckdb.connect(str(target), read_only=True)
    try:
        yield con
    finally:
        con.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_views_and_their_columns_carry_comments(copy: duckdb.DuckDBPyConnection) -> None:
    views = {
        f"{schema}.{name}": comment
        for schema, name, comment in copy.execute(
            "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    }
    assert set(views) == {view.display_name for view in VIEWS}
    assert all(views.values())
    columns = copy.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() "
        "WHERE table_name IN ('daily_by_priority', 'open_tasks_past_due')"
    ).fetchall()
    assert len(columns) > 10
    assert [c for c in columns if not c[2]] == []


def test_daily_by_priority_has_every_day_and_priority_zero_filled(
    copy: duckdb.DuckDBPyConnection,
) -> None:
    view = rows(copy, "FROM analytics.daily_by_priority")
    first, last = copy.execute(
        "SELECT min(partition_date), max(partition_date) FROM topo.tasks"
    ).fetchone()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    priorities = {r["priority"] for r in rows(copy, "SELECT DISTINCT priority FROM topo.tasks")}
    priorities |= set(INFO.sla_target_minutes)
    assert None in priorities
    assert "URGENT" in priorities
    keys = [(r["partition_date"], r["priority"]) for r in view]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(day, p) for day in days for p in priorities}
    # Ordered by day, then priority with NULL last.
    assert keys == sorted(keys, key=lambda k: (k[0], k[1] is None, k[1] or ""))

    sla = {
        (r["partition_date"], r["priority"]): r
        for r in rows(copy, "FROM analytics.sla_by_priority")
    }
    rate = {
        (r["partition_date"], r["priority"]): r
        for r in rows(copy, "FROM analytics.completion_rate_by_priority")
    }
    counts = ("tasks", "completed", "skipped", "open", "met", "breached")
    zero_rows = 0
    for row in view:
        key = (row["partition_date"], row["priority"])
        if key in rate:
            assert {c: row[c] for c in counts} == {
                "tasks": rate[key]["tasks"],
                "completed": rate[key]["completed"],
                "skipped": rate[key]["skipped"],
                "open": sla[key]["open"],
                "met": sla[key]["met"],
                "breached": sla[key]["breached"],
            }
            assert row["sla_attainment"] == sla[key]["sla_attainment"]
            assert row["completion_rate"] == rate[key]["completion_rate"]
            assert row["skip_rate"] == rate[key]["skip_rate"]
        else:
            zero_rows += 1
            assert {c: row[c] for c in counts} == dict.fromkeys(counts, 0), row
            assert (row["sla_attainment"], row["completion_rate"], row["skip_rate"]) == (
                None,
                None,
                None,
            )
    # The empty day and the configured priority nobody has are among the zero rows.
    assert zero_rows >= len(priorities) + len(days)
    gap = [r for r in view if r["partition_date"] == DAY1 + timedelta(days=1)]
    assert gap
    assert all(r["tasks"] == 0 for r in gap)
    assert (
        sum(r["tasks"] for r in view)
        == copy.execute("SELECT count(*) FROM topo.tasks").fetchone()[0]
    )


def test_open_tasks_past_due_lists_exactly_the_overdue_open_tasks(
    copy: duckdb.DuckDBPyConnection,
) -> None:
    now = datetime.now(UTC)
    listed = rows(copy, "FROM analytics.open_tasks_past_due")
    task_sla = rows(copy, "FROM analytics.task_sla")
    expected = sorted(
        (
            r
            for r in task_sla
            if r["status"] in ("PENDING", "IN_PROGRESS")
            and r["sla_due_at"]
            and r["sla_due_at"] < now
        ),
        key=lambda r: (r["sla_due_at"], r["id"]),
    )
    assert expected, "the fixture has overdue open tasks"
    assert [r["id"] for r in listed] == [r["id"] for r in expected]
    open_ids = {r["id"] for r in task_sla if r["status"] in ("PENDING", "IN_PROGRESS")}
    not_listed = open_ids - {r["id"] for r in listed}
    # The task due in an hour, and the one without priority (no target), are not listed.
    assert len(not_listed) == 2
    for row in listed:
        overdue = (now - row["sla_due_at"]).total_seconds() / 60
        assert row["minutes_overdue"] == pytest.approx(overdue, abs=5)
        assert row["status_loaded_at"] == LOADED_AT
