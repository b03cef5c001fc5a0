"""Write a real pipeline DuckDB file from task objects, without Dagster or the API."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from topo_pipeline.api.models import Task, parse_timestamp
from topo_pipeline.warehouse.analytics import (
    DEFAULT_SLA_TARGET_MINUTES,
    ROLLUP_TABLES,
    ensure_analytics_tables,
    replace_rollup,
    replace_task_sla,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.landing import land_stage
from topo_pipeline.warehouse.schema import declarations_fingerprint, ensure_schema
from topo_pipeline.warehouse.staging import STAGE_BATCH_SIZE, task_stage
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


def replace_task_partitions(
    con: duckdb.DuckDBPyConnection,
    windows: Sequence[PartitionWindow],
    tasks: Iterable[Task],
    *,
    loaded_at: datetime,
    directory: str | Path | None = None,
    batch_size: int = STAGE_BATCH_SIZE,
) -> dict[date, int]:
    """Replace the rows of ``windows``' partitions with ``tasks``, as a run lands them.

    The path a run takes, without the API: ``tasks`` are drawn from the iterable into a
    stage in batches (a generator is never held in memory at once), then landed with
    :func:`~topo_pipeline.warehouse.landing.land_stage` (``topo.task_history`` recorded in
    the same transaction). Any failure, one raised by ``tasks`` itself included, leaves
    every previous row as it was.

    Args:
        con: a connection with the current schema and no open transaction.
        windows: the partitions to replace; distinct dates, windows that do not overlap.
        tasks: the tasks of those windows. May be a generator.
        loaded_at: when the tasks were fetched (aware); stored on every row.
        directory: where the stage's temporary folder goes (default: the system's).
        batch_size: tasks written to the stage at a time.

    Returns:
        The rows landed per partition date, for every window's date (0 for an empty day).
    """
    with task_stage(windows, directory=directory, batch_size=batch_size) as stage:
        iterator = iter(tasks)
        while batch := list(islice(iterator, batch_size)):
            stage.add(batch)
        return land_stage(con, stage, loaded_at=loaded_at).rows


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


def api_task(created_at: str, *, task_id: str | None = None, **fields: Any) -> Task:
    """A task as the API sends it: an EMAIL_REPLY, TODAY, PENDING and unassigned unless
    ``fields`` say otherwise; a new id unless ``task_id`` is given."""
    obj = {
        "id": task_id or str(uuid.uuid4()),
        "organization_id": "org-1",
        "type": "EMAIL_REPLY",
        "priority": "TODAY",
        "status": "PENDING",
        "sequence_id": "seq-1",
        "assignee_user_id": None,
        "created_at": created_at,
        "updated_at": created_at,
    }
    obj.update(fields)
    return Task.from_api(obj)
