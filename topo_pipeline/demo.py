"""``make demo``: the whole pipeline on the simulated Topo API, in one command.

Starts the simulated API on a free loopback port (seeded tasks up to now), materializes the
last seven complete days of ``topo/tasks`` and every downstream table as one single-run
backfill, then lets the simulated Topo's users work some recent tasks and fetches the last
three days again (as the daily refresh does), publishes the analyst copy, and prints tasks
per day and status, SLA attainment and completion rate by priority, by team and by assignee
(with names), and what ``topo.task_history`` recorded as changed, read from the analyst
copy, and ends with the path of the SLA report (``TOPO_REPORT_PATH``).

Names and teams come from the assignee directory: ``TOPO_ASSIGNEES_PATH`` if set, else
``examples/assignees.csv``, which names the simulated data set's assignees (all but one, so
the ``assignees_in_directory`` check has something to report). SLAs are also counted in
business hours: ``TOPO_BUSINESS_HOURS`` if set, else ``Mon-Fri 09:00-18:00`` with the
holidays of ``examples/holidays.csv``.

The run is recorded in ``$DAGSTER_HOME`` (the Makefile points it at ``.dagster_home/``), so
``make dev`` shows it in the UI afterwards. The tables land in ``TOPO_DUCKDB_PATH`` and
``TOPO_ANALYST_DUCKDB_PATH`` (defaults under ``data/``); point those elsewhere to keep demo
data away from a real pipeline's files.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from topo_pipeline.api.errors import TopoError
from topo_pipeline.defs.assets.analyst_copy import ANALYST_COPY_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.jobs import REFRESH_SELECTION, partition_range_tags
from topo_pipeline.defs.location import build_defs
from topo_pipeline.instance import prepare_dagster_home
from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
    move_on,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.queries import load_sql

DEMO_DAYS = 7
REFRESHED_DAYS = 3  # fetched again after a simulated working day, as the daily refresh does
SIMULATED_DAYS = 10  # the week, plus a few days the schedule and sensor can refresh later
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_ASSIGNEES = EXAMPLES / "assignees.csv"
EXAMPLE_BUSINESS_HOURS = "Mon-Fri 09:00-18:00"
EXAMPLE_HOLIDAYS = EXAMPLES / "holidays.csv"


def main() -> int:
    """Run the demo; return the process exit status."""
    # Single-run backfill policies are marked beta in Dagster 1.13; say so once, in the README.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    try:
        settings = Settings.from_env()
    except TopoError as error:
        print(f"configuration error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    print(prepare_dagster_home().describe())  # noqa: T201
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    first, last = today - timedelta(days=DEMO_DAYS), today - timedelta(days=1)
    spec = DatasetSpec(
        start_date=today - timedelta(days=SIMULATED_DAYS - 1),
        days=SIMULATED_DAYS,
        timezone=settings.timezone,
        as_of=now,
    )
    dataset = generate_dataset(spec)
    settings = replace(
        settings,
        start_date=min(settings.start_date, first),
        assignees_path=settings.assignees_path or EXAMPLE_ASSIGNEES,
    )
    if settings.business_hours is None:
        settings = replace(
            settings, business_hours=EXAMPLE_BUSINESS_HOURS, holidays_path=EXAMPLE_HOLIDAYS
        )

    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api:
        print(f"Simulated Topo API at {api.base_url} ({len(dataset.tasks)} tasks)")  # noqa: T201
        os.environ[API_KEY_ENV] = DEMO_API_KEY
        settings = replace(settings, api_base_url=api.base_url)
        print(f"Loading the assignee directory {settings.assignees_path}")  # noqa: T201
        if not _run(settings, dg.AssetSelection.assets(ASSIGNEES_KEY), {}).success:
            print("loading the assignee directory failed; see the log above", file=sys.stderr)  # noqa: T201
            return 1
        print(f"Materializing {first} .. {last} of topo/tasks and everything downstream")  # noqa: T201
        result = _materialize(settings, first.isoformat(), last.isoformat())
        if result.success:
            result = _refresh_after_a_working_day(settings, api.store, last)
    if not result.success:
        print(f"the demo run failed: {_why(result)}", file=sys.stderr)  # noqa: T201
        return 1
    published = _publish(settings)
    if not published.success:
        print(f"publishing the analyst copy failed: {_why(published)}", file=sys.stderr)  # noqa: T201
        return 1
    _print_summary(settings, first, last)
    return 0


def _refresh_after_a_working_day(
    settings: Settings, store: TaskStore, last: date
) -> dg.ExecuteInProcessResult:
    """Work some recent tasks in the simulated Topo, then fetch the last days again.

    As the daily schedule's trailing refresh would: ``topo.task_history`` records what
    changed.
    """
    refreshed = last - timedelta(days=REFRESHED_DAYS - 1)
    zone = ZoneInfo(settings.timezone)
    activity = move_on(
        store, created_from=datetime.combine(refreshed, time(), zone), now=datetime.now(UTC)
    )
    print(  # noqa: T201
        f"Meanwhile in Topo: {len(activity.completed)} tasks completed, "
        f"{len(activity.skipped)} skipped, {len(activity.started)} started, "
        f"{len(activity.reassigned)} reassigned, {len(activity.deleted)} deleted. "
        f"Fetching {refreshed} .. {last} again"
    )
    return _materialize(settings, refreshed.isoformat(), last.isoformat())


def _why(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's explanation (a user-caused error's paragraph), or a pointer."""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return data.user_failure_data.description
        if data.error is not None:
            return f"{data.error.message.strip()} (the traceback is in the log above)"
    return "see the log above"


def _materialize(settings: Settings, first: str, last: str) -> dg.ExecuteInProcessResult:
    """One single-run backfill of ``topo/tasks`` and everything downstream, first..last."""
    return _run(settings, REFRESH_SELECTION, partition_range_tags(first, last))


def _publish(settings: Settings) -> dg.ExecuteInProcessResult:
    """Publish the analyst copy now, and the SLA report from it. ``dg.materialize`` runs
    with Dagster's own in-process executor, not the code location's, so the run does not
    publish when it ends as launched runs and the CLI do."""
    return _run(settings, dg.AssetSelection.assets(ANALYST_COPY_KEY).downstream(), {})


def _run(
    settings: Settings, selection: dg.AssetSelection, tags: Mapping[str, str]
) -> dg.ExecuteInProcessResult:
    defs = build_defs(settings)
    # Recorded in $DAGSTER_HOME, so `make dev` shows these runs afterwards.
    with dg.DagsterInstance.get() as instance:
        return dg.materialize(
            defs.assets,
            selection=selection,
            resources=defs.resources,
            instance=instance,
            tags={**tags, "topo_pipeline/launched_by": "make demo"},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )


def _print_summary(settings: Settings, first: object, last: object) -> None:
    params = {"first": first, "last": last}
    with connect(settings.analyst_duckdb_path, read_only=True) as con:
        for title, query in (
            ("Tasks per day and status", "demo_tasks_by_day_and_status"),
            (
                "SLA attainment (wall clock and business hours) and completion rate by priority",
                "demo_metrics_by_priority",
            ),
            ("SLA attainment and completion rate by team", "demo_sla_by_team"),
            ("SLA attainment by assignee", "demo_sla_by_assignee"),
            ("What changed (topo.task_history, see docs/analyst-guide.md)", "demo_history_changes"),
        ):
            cursor = con.execute(load_sql(query), params)
            columns = [column[0] for column in cursor.description]
            print(f"\n{title}")  # noqa: T201
            print(_text_table(columns, cursor.fetchall()))  # noqa: T201
    print(  # noqa: T201
        f"\nAnalysts: open {settings.analyst_duckdb_path} (docs/analyst-guide.md has queries). "
        "`make dev` opens the Dagster UI."
    )
    print(f"Managers: open the SLA report {settings.report_file.resolve()} in a browser.")  # noqa: T201


def _text_table(columns: list[str], rows: list[tuple[object, ...]]) -> str:
    """Right-aligned columns; NULL shows as ``-``."""
    cells = [columns, *[["-" if value is None else str(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    )


if __name__ == "__main__":
    sys.exit(main())
