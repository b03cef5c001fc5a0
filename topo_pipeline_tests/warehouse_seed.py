"""Write a real pipeline DuckDB file from task objects, without Dagster or the API."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from topo_pipeline.api.models import Task, parse_timestamp
from topo_pipeline.warehouse.analytics import (
    DEFAULT_SLA_TARGET_MINUTES,
    ROLLUP_TABLES,
    ensure_analytics_tables,
    replace_rollup,
    replace_task_sla,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.schema import declarations_fingerprint, ensure_schema
from topo_pipeline.warehouse.staging import replace_task_partitions
from topo_pipeline.warehouse.tasks import (
    PartitionWindow,
    ensure_tasks_table,
)


@functools.cache
def _blank_file(fingerprint: str) -> Path:
    """A new file's schema, made once per process and per declarations (``fingerprint``)."""
    folder = Path(tempfile.mkdtemp(prefix=f"topo-blank-warehouse-{fingerprint}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with connect(folder / "blank.duckdb") as con:
        ensure_schema(con)
    return folder / "blank.duckdb"


def current_file(path: Path) -> Path:
    """Create ``path`` as an empty pipeline file of the current schema; return it.

    Creating a file's tables, views and their comments takes about 70 ms; fixtures, and
    the test pipelines of ``harness.simulated_pipelines``, copy a blank file made once per
    process instead. The schema's own tests create their files as the pipeline does, and so
    do a test pipeline made with ``new_file=True`` and the process-starting tests.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_blank_file(declarations_fingerprint()), path)
    return path


def day_window(day: date, timezone: str = "UTC") -> PartitionWindow:
    zone = ZoneInfo(timezone)
    return PartitionWindow(
        day,
        datetime.combine(day, time(), zone),
        datetime.combine(day + timedelta(days=1), time(), zone),
    )


def seed_tasks(
    path: Path,
    tasks: Iterable[Mapping[str, Any]],
    *,
    loaded_at: datetime,
    timezone: str = "UTC",
    with_analytics: bool = True,
) -> list[date]:
    """Land ``tasks`` in ``topo.tasks`` (and build the analytics tables); return the days."""
    tasks = list(tasks)
    zone = ZoneInfo(timezone)
    days = sorted({parse_timestamp(t["created_at"]).astimezone(zone).date() for t in tasks})
    if not path.exists():
        current_file(path)
    with connect(path) as con:
        ensure_tasks_table(con)
        replace_task_partitions(
            con,
            [day_window(day, timezone) for day in days],
            [Task.from_api(dict(t)) for t in tasks],
            loaded_at=loaded_at,
        )
        if with_analytics:
            ensure_analytics_tables(con)
            replace_task_sla(con, days, as_of=loaded_at, sla_targets=DEFAULT_SLA_TARGET_MINUTES)
            for table in ROLLUP_TABLES:
                replace_rollup(con, table, days)
    return days
