"""Runs publish the analyst copy when they end: with no daemon, after a failure, from the CLI.

``execute_in_process`` (and ``dg.materialize``) swap in their own executor, so these tests
execute jobs with ``dg.execute_job``, which runs the code location's executor in this
process, as a run worker or ``dagster asset materialize`` does. The last test is the CLI
itself (``dagster asset materialize`` and ``dg launch``), as a subprocess, with no daemon
anywhere.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.analyst_copy_sensor import ANALYST_COPY_SENSOR_NAME
from topo_pipeline.defs.assets.analyst_copy import (
    ANALYST_COPY_KEY,
    COVERS_THROUGH_METADATA,
    PUBLISH_JOB_NAME,
    latest_change_event,
    published_through,
)
from topo_pipeline.defs.jobs import REFRESH_JOB_NAME, partition_range_tags
from topo_pipeline.defs.publishing_executor import plan_run_end_publish
from topo_pipeline.instance import REPO_ROOT
from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.harness import fresh_instance
from topo_pipeline_tests.processes import deployment_env, instance_at, venv_executable
from topo_pipeline_tests.test_analyst_copy import catalog_snapshot

START = date(2025, 3, 1)
SPEC = DatasetSpec(seed=11, start_date=START, days=3, tasks_per_day=[25, 30, 20], tie_group_size=0)
DAYS = [str(START + timedelta(days=i)) for i in range(3)]


# --- the decision -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changed", "others", "daemon", "publish"),
    [
        (False, set(), True, False),  # nothing written: the copy is current
        (False, set(), False, False),
        (True, set(), False, True),  # a CLI run with no daemon
        (True, set(), True, True),  # the last run of a burst, or a lone run
        (True, {"r2"}, True, False),  # others will publish after it (or the sensor will)
        (True, {"r2"}, False, True),  # no daemon: a queued run may never start
    ],
)
def test_the_run_end_publish_decision(
    changed: bool, others: set[str], daemon: bool, publish: bool
) -> None:
    plan = plan_run_end_publish(changed=changed, other_runs=others, daemon_alive=daemon)
    assert plan.publish is publish
    if others and not publish:
        assert "r2" in plan.reason


# --- real runs through the code location's executor ------------------------------------


@pytest.fixture
def api() -> Iterator[SimulatedTopoApi]:
    data = generate_dataset(SPEC)
    with SimulatedTopoApi(TaskStore(data.tasks, data.sequence_templates)) as server:
        yield server


def location_env(api: SimulatedTopoApi, folder: Path) -> dict[str, str]:
    """The ``TOPO_*`` environment of a deployment against ``api``, files in ``folder``."""
    return {
        API_KEY_ENV: DEMO_API_KEY,
        "TOPO_API_BASE_URL": api.base_url,
        "TOPO_DUCKDB_PATH": str(folder / "pipeline.duckdb"),
        "TOPO_ANALYST_DUCKDB_PATH": str(folder / "analyst.duckdb"),
        "TOPO_START_DATE": START.isoformat(),
        "TOPO_API_REQUESTS_PER_MINUTE": "0",
    }


def refresh_job_from_env() -> dg.JobDefinition:
    """The refresh job of the code location the environment describes (reconstructable)."""
    return build_defs(Settings.from_env()).resolve_job_def(REFRESH_JOB_NAME)


def publish_job_from_env() -> dg.JobDefinition:
    """The publish job of the code location the environment describes (reconstructable)."""
    return build_defs(Settings.from_env()).resolve_job_def(PUBLISH_JOB_NAME)


def publishes(instance: dg.DagsterInstance) -> list[dg.EventLogRecord]:
    return list(instance.fetch_materializations(ANALYST_COPY_KEY, limit=100).records)


def test_a_run_that_fails_after_landing_tasks_publishes_what_it_landed(
    api: SimulatedTopoApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = location_env(api, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    defs = build_defs(settings)
    with fresh_instance() as instance:
        # topo/tasks lands the three days, then the analytics step fails on bad config.
        result = dg.execute_job(
            dg.reconstructable(refresh_job_from_env),
            instance=instance,
            tags=dict(partition_range_tags(DAYS[0], DAYS[-1])),
            run_config={"ops": {"analytics_tables": {"config": {"as_of": "yesterday"}}}},
            raise_on_error=False,
        )
        assert not result.success
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        assert failed == ["analytics_tables"]

        assert settings.analyst_duckdb_path.exists()
        copy = catalog_snapshot(settings.analyst_duckdb_path)
        assert copy == catalog_snapshot(settings.duckdb_path)
        assert len(copy["rows"]["topo.tasks"]) == sum(SPEC.tasks_per_day)
        # Recorded as a publish that covers the run's materializations ...
        (record,) = publishes(instance)
        metadata = record.asset_materialization.metadata
        assert metadata[COVERS_THROUGH_METADATA].value == latest_change_event(
            instance, [dg.AssetKey(["topo", "tasks"])]
        )
        assert published_through(instance) == metadata[COVERS_THROUGH_METADATA].value
        # ... so the sensor has nothing left to publish.
        sensor = defs.resolve_sensor_def(ANALYST_COPY_SENSOR_NAME)
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert not tick.run_requests, tick.skip_message

        # The publish job's own run changes no tables: one publish, not two.
        published = dg.execute_job(dg.reconstructable(publish_job_from_env), instance=instance)
        assert published.success
        assert len(publishes(instance)) == 2
        events = [e.message or "" for e in published.all_events]
        assert not [m for m in events if "publishing the analyst copy" in m]


# --- the CLI, with no daemon ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cli", ["dagster", "dg"])
def test_a_cli_range_run_leaves_a_current_analyst_copy(
    api: SimulatedTopoApi, tmp_path: Path, cli: str
) -> None:
    home = tmp_path / "dagster_home"
    env = deployment_env(home) | location_env(api, tmp_path)
    days = f"{DAYS[0]}...{DAYS[-1]}"
    if cli == "dg":  # the README's command; dg finds the project from its folder
        command = [venv_executable("dg"), "launch", "--assets", "topo/tasks*"]
        command += ["--partition-range", days]
        workdir = REPO_ROOT
    else:
        command = [venv_executable("dagster"), "asset", "materialize"]
        command += ["-m", "topo_pipeline.definitions", "--select", "topo/tasks*"]
        command += ["--partition-range", days]
        workdir = tmp_path
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    analyst, pipeline = tmp_path / "analyst.duckdb", tmp_path / "pipeline.duckdb"
    assert analyst.exists(), "the command exited without publishing the analyst copy"
    assert catalog_snapshot(analyst) == catalog_snapshot(pipeline)
    with connect(analyst, read_only=True) as con:
        by_day = con.execute(
            "SELECT partition_date::VARCHAR, count(*) FROM warehouse.analytics.task_sla "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
        described = con.execute(
            "SELECT partition_timezone, first_partition_date, last_partition_date, tasks "
            "FROM warehouse.topo.pipeline_info"
        ).fetchall()
    assert by_day == list(zip(DAYS, SPEC.tasks_per_day, strict=True))
    # The copy describes itself.
    assert described == [("UTC", START, START + timedelta(days=2), sum(SPEC.tasks_per_day))]
    # Recorded in the instance the command used, as one publish.
    with instance_at(home) as instance:
        assert len(publishes(instance)) == 1
