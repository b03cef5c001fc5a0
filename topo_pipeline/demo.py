"""``make demo``: the whole pipeline on the simulated Topo API, in one command.

Starts the simulated API, materializes the last seven complete days of ``topo/tasks`` and
everything downstream, fetches the last three again after simulated work, loads the
assignee directory, publishes the analyst copy and the SLA report, prints a summary read
from the copy and ends with the report's path. Settings come from the environment and the
``.env`` (:mod:`topo_pipeline.env_file`), which the demo writes where there is none. The run
is recorded in ``$DAGSTER_HOME``, so ``make dev`` shows it; the tables land in
``TOPO_DUCKDB_PATH`` and ``TOPO_ANALYST_DUCKDB_PATH`` (point them away from a real
pipeline's files). The order and the example settings: ``docs/design.md``, "``make demo``".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

import topo_pipeline.dagster_warnings  # noqa: F401 - filters the beta warnings we expect
from topo_pipeline.api.errors import TopoError
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY, MISSING_CHECK
from topo_pipeline.defs.jobs import REFRESH_SELECTION, partition_range_tags
from topo_pipeline.defs.location import build_defs
from topo_pipeline.env_file import load_env_file, write_demo_env_file
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
from topo_pipeline.warehouse.queries import render_sql
from topo_pipeline.warehouse.tables import quoted

DEMO_DAYS = 7
REFRESHED_DAYS = 3  # fetched again after a simulated working day, as the daily refresh does
SIMULATED_DAYS = 10  # the week, plus a few days the schedule and sensor can refresh later
_DEMO_JOB = "make_demo"


def main() -> int:
    """Run the demo; return the process exit status."""
    written = write_demo_env_file()
    if written is not None:
        print(f"Wrote {written}: the demo's settings, which make dev and the CLI read too")  # noqa: T201
    load_env_file()
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
    settings = settings.model_copy(update={"start_date": min(settings.start_date, first)})

    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api:
        print(f"Simulated Topo API at {api.base_url} ({len(dataset.tasks)} tasks)")  # noqa: T201
        os.environ[API_KEY_ENV] = DEMO_API_KEY
        settings = settings.model_copy(update={"base_url": api.base_url})
        print(f"Materializing {first} .. {last} of topo/tasks and everything downstream")  # noqa: T201
        result = _materialize(settings, first.isoformat(), last.isoformat())
        if result.success:
            result = _refresh_after_a_working_day(settings, api.store, last)
    if not result.success:
        print(f"the demo run failed: {_why(result)}", file=sys.stderr)  # noqa: T201
        return 1
    directory = settings.assignees_path or "(TOPO_ASSIGNEES_PATH unset)"
    print(f"Loading the assignee directory {directory}")  # noqa: T201
    loaded = _load_directory(settings)
    if not loaded.success:
        print(f"loading the assignee directory failed: {_why(loaded)}", file=sys.stderr)  # noqa: T201
        return 1
    _print_directory_check(loaded)
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
    # Only the days fetched again: a change to today's tasks would not be seen.
    activity = move_on(
        store,
        created_from=datetime.combine(refreshed, time(), zone),
        created_before=datetime.combine(last + timedelta(days=1), time(), zone),
        now=datetime.now(UTC),
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


def _load_directory(settings: Settings) -> dg.ExecuteInProcessResult:
    """Load the assignee directory, then rebuild what names assignees and publish.

    After the tasks, so its ``assignees_in_directory`` check sees who they are assigned to;
    the by-assignee and by-team tables built before it are rebuilt, and the analyst copy
    published, in the same run (both are downstream of it).
    """
    return _run(settings, dg.AssetSelection.assets(ASSIGNEES_KEY).downstream(), {})


def _print_directory_check(result: dg.ExecuteInProcessResult) -> None:
    """What ``assignees_in_directory`` found, as the UI shows it."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == MISSING_CHECK:
            missing = evaluation.metadata.get("missing_assignees")
            count = missing.value if missing is not None else "?"
            verdict = "passed" if evaluation.passed else "warns"
            print(f"Check {MISSING_CHECK} {verdict}: {count} assignee(s) not in the directory")  # noqa: T201


def _run(
    settings: Settings, selection: dg.AssetSelection, tags: Mapping[str, str]
) -> dg.ExecuteInProcessResult:
    defs = build_defs(settings)
    # A job of the selection, with the code location's loggers: its console logger prints
    # an error a user causes as one paragraph (defs/console.py).
    demo = dg.Definitions(
        assets=defs.assets,
        resources=defs.resources,
        loggers=defs.loggers,
        jobs=[dg.define_asset_job(_DEMO_JOB, selection=selection)],
    )
    # Recorded in $DAGSTER_HOME, so `make dev` shows these runs afterwards.
    with dg.DagsterInstance.get() as instance:
        return demo.resolve_job_def(_DEMO_JOB).execute_in_process(
            instance=instance,
            tags={**tags, "topo_pipeline/launched_by": "make demo"},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )


def _print_summary(settings: Settings, first: object, last: object) -> None:
    params = {"first": first, "last": last}
    # Opened as analysts open it, so its views are read as they read them; the catalog is
    # named after the file, and written out in case that name is also a schema's.
    with duckdb.connect(str(settings.analyst_duckdb_path), read_only=True) as con:
        (catalog,) = con.execute("SELECT current_database()").fetchone() or ("",)
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
            cursor = con.execute(render_sql(query, catalog=quoted(catalog)), params)
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
