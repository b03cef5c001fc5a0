"""The UI path end to end: ``dagster-webserver`` and ``dagster-daemon`` as real processes.

One module-scoped stack: the simulated Topo API (in this process), a temporary
``DAGSTER_HOME`` holding the repository's ``dagster.yaml`` (so the run queue, pools and
telemetry settings under test are the committed ones), temporary DuckDB files, and the
webserver and daemon on a free loopback port, loading ``workspace.yaml``.

Everything is driven through the webserver's GraphQL API with the operations the UI
sends (checked against the UI source shipped in dagster-webserver 1.13:
``LaunchAssetExecutionButton.tsx``, ``LaunchAssetChoosePartitionsDialog.tsx``): a
multi-partition "Materialize" is ``launchPartitionBackfill`` with the asset selection and
the partition keys; a single-partition one is ``launchPipelineExecution`` on the assets'
job with the partition's tags.

The simulated days lie far in the past, outside the open-task sensor's maximum age, so
only the runs launched here and the automation they trigger touch them (the analytics of
days more than a year old follow a ``topo/tasks`` run of those days alone); the schedule,
the sensors and the automation run in the daemon the whole time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.defs.freshness import FRESHNESS_JOB_NAME
from topo_pipeline.instance import REPO_ROOT, prepare_dagster_home
from topo_pipeline.liveness import parse_owner
from topo_pipeline.recovery import PROCESS_TAG
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    FaultPlan,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.processes import (
    create_instance_storage,
    free_port,
    pids_using_home,
    stop_groups,
    venv_executable,
)
from topo_pipeline_tests.webhook import WebhookReceiver

pytestmark = pytest.mark.slow

START = date(2025, 1, 6)
UI_DAYS = [START + timedelta(days=i) for i in range(3)]
# Twice the runs the queue starts at once (max_concurrent_runs 4): enough that runs queue
# behind each other and contend for the duckdb pool; each run is a process start-up, so
# every run more costs seconds of the suite.
QUEUED_RUNS = 8
BACKFILL_DAYS = [START + timedelta(days=3 + i) for i in range(QUEUED_RUNS)]
TASKS_PER_DAY = 40
TASKS_KEY = ["topo", "tasks"]
ANALYST_COPY_KEY = ["publish", "analyst_copy"]
ANALYTICS_TABLES = (
    "task_sla",
    "sla_by_priority",
    "sla_by_assignee",
    "completion_rate_by_priority",
    "completion_rate_by_assignee",
)

STARTUP_TIMEOUT = 240.0
RUN_TIMEOUT = 420.0
BACKFILL_RUNS_TIMEOUT = 1500.0
PUBLISH_TIMEOUT = 240.0
POLL_SECONDS = 2.0

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
# What DuckDB and the warehouse module say when another process holds the file.
LOCK_ERROR_MARKERS = (
    "Could not set lock",
    "Conflicting lock",
    "WarehouseLockedError",
    "stayed locked by another process",
)

T = TypeVar("T")


# --- the GraphQL operations, as the UI sends them -------------------------------------

PYTHON_ERROR = "... on PythonError { message stack }"

WORKSPACE_QUERY = f"""
query WorkspaceStatus {{
  workspaceOrError {{
    ... on Workspace {{
      locationEntries {{
        name
        loadStatus
        locationOrLoadError {{
          __typename
          ... on RepositoryLocation {{ name repositories {{ name }} }}
          {PYTHON_ERROR}
        }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

DAEMON_HEALTH_QUERY = """
query DaemonHealth {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""

# The fields LaunchAssetLoaderQuery reads to decide how "Materialize" launches.
ASSET_NODES_QUERY = """
query AssetNodesForLaunch {
  assetNodes {
    assetKey { path }
    jobNames
    isExecutable
    isObservable
    dependencyKeys { path }
    partitionDefinition { type name description }
    backfillPolicy { policyType description }
    repository { name location { name } }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name jobNames } }
    }
  }
}
"""

LAUNCH_PARTITION_BACKFILL = f"""
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {{
  launchPartitionBackfill(backfillParams: $backfillParams) {{
    __typename
    ... on LaunchBackfillSuccess {{ backfillId }}
    ... on PartitionSetNotFoundError {{ message }}
    ... on PartitionKeysNotFoundError {{ message }}
    ... on InvalidStepError {{ invalidStepKey }}
    ... on InvalidOutputError {{ stepKey invalidOutputName }}
    ... on UnauthorizedError {{ message }}
    ... on PipelineNotFoundError {{ message }}
    ... on RunConflict {{ message }}
    ... on ConflictingExecutionParamsError {{ message }}
    ... on PresetNotFoundError {{ message }}
    ... on RunConfigValidationInvalid {{ pipelineName errors {{ message path reason }} }}
    {PYTHON_ERROR}
  }}
}}
"""

# CONFIG_PARTITION_FOR_ASSET_JOB_QUERY: the partition's run config and tags.
PARTITION_CONFIG_QUERY = f"""
query ConfigPartitionForAssetJobQuery(
  $repositoryName: String!
  $repositoryLocationName: String!
  $jobName: String!
  $partitionName: String!
  $assetKeys: [AssetKeyInput!]!
) {{
  pipelineOrError(
    params: {{
      pipelineName: $jobName
      repositoryName: $repositoryName
      repositoryLocationName: $repositoryLocationName
    }}
  ) {{
    __typename
    ... on Pipeline {{
      partition(partitionName: $partitionName, selectedAssetKeys: $assetKeys) {{
        name
        runConfigOrError {{ ... on PartitionRunConfig {{ yaml }} {PYTHON_ERROR} }}
        tagsOrError {{ ... on PartitionTags {{ results {{ key value }} }} {PYTHON_ERROR} }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

LAUNCH_PIPELINE_EXECUTION = f"""
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {{
  launchPipelineExecution(executionParams: $executionParams) {{
    __typename
    ... on LaunchRunSuccess {{ run {{ id pipelineName }} }}
    ... on PipelineNotFoundError {{ message }}
    ... on InvalidSubsetError {{ message }}
    ... on RunConfigValidationInvalid {{ errors {{ message }} }}
    {PYTHON_ERROR}
  }}
}}
"""

BACKFILL_STATUS_QUERY = f"""
query BackfillStatus($backfillId: String!) {{
  partitionBackfillOrError(backfillId: $backfillId) {{
    __typename
    ... on PartitionBackfill {{ id status error {{ message stack }} }}
    {PYTHON_ERROR}
  }}
}}
"""

RUNS_QUERY = f"""
query Runs($filter: RunsFilter) {{
  runsOrError(filter: $filter) {{
    __typename
    ... on Runs {{
      results {{
        runId
        jobName
        status
        tags {{ key value }}
        stepStats {{ stepKey status startTime endTime }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

RUN_LOGS_QUERY = f"""
query RunLogs($runId: ID!, $afterCursor: String) {{
  logsForRun(runId: $runId, afterCursor: $afterCursor, limit: 1000) {{
    __typename
    ... on EventConnection {{
      cursor
      hasMore
      events {{
        __typename
        ... on MessageEvent {{ message level stepKey eventType }}
        ... on ErrorEvent {{ error {{ message stack causes {{ message stack }} }} }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

POOL_QUERY = """
query Pool($pool: String!) {
  instance { concurrencyLimit(concurrencyKey: $pool) { claimedSlots { runId stepKey } } }
}
"""

ASSET_MATERIALIZATIONS_QUERY = """
query AssetMaterializations($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset { assetMaterializations(limit: 500) { runId timestamp } }
  }
}
"""

INSTIGATORS_QUERY = """
query Instigators($selector: RepositorySelector!) {
  schedulesOrError(repositorySelector: $selector) {
    __typename
    ... on Schedules { results { name scheduleState { status } } }
  }
  sensorsOrError(repositorySelector: $selector) {
    __typename
    ... on Sensors {
      results {
        name
        sensorState {
          status
          ticks(limit: 50) { status timestamp error { message } }
        }
      }
    }
  }
}
"""


# --- processes ------------------------------------------------------------------------


@dataclass
class Service:
    """A Dagster process this module started, in its own session (process group)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _start_service(name: str, argv: list[str], env: Mapping[str, str], workdir: Path) -> Service:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code servers and run workers share its group
        )
    return Service(name=name, process=process, log_path=log_path)


# --- the stack ------------------------------------------------------------------------


@dataclass
class Stack:
    """The running webserver and daemon, and what they run against."""

    url: str
    home: Path
    pipeline_path: Path
    analyst_path: Path
    tasks_by_day: Mapping[date, set[str]]
    services: list[Service]
    client: httpx.Client
    api: SimulatedTopoApi
    env: Mapping[str, str]
    workdir: Path
    webhook: WebhookReceiver
    location: str = ""
    repository: str = ""
    started_at: float = field(default_factory=time.time)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, f"GraphQL HTTP {response.status_code}: {response.text}"
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]

    def wait_for(
        self, what: str, check: Callable[[], T | None], timeout: float, interval: float = 1.0
    ) -> T:
        """Poll ``check`` until it returns a value; fail early if a service died."""
        deadline = time.monotonic() + timeout
        while True:
            for service in self.services:
                assert service.alive(), (
                    f"{service.name} exited ({service.process.returncode}) while waiting for "
                    f"{what}:\n{service.log_tail()}"
                )
            value = check()
            if value is not None:
                return value
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
            time.sleep(interval)

    @property
    def repository_selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository}

    def runs(self, run_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        data = self.graphql(RUNS_QUERY, {"filter": dict(run_filter)})["runsOrError"]
        assert data["__typename"] == "Runs", data
        return data["results"]

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of the run's event log, as the UI's run page reads it."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.graphql(RUN_LOGS_QUERY, {"runId": run_id, "afterCursor": cursor})
            connection = data["logsForRun"]
            assert connection["__typename"] == "EventConnection", connection
            events.extend(connection["events"])
            if not connection["hasMore"]:
                return events
            cursor = connection["cursor"]

    def run_log_text(self, run_id: str) -> str:
        """The run's event log (messages and errors) and its captured stdout/stderr."""
        parts = [json.dumps(event) for event in self.run_events(run_id)]
        compute_logs = self.home / "storage" / run_id / "compute_logs"
        if compute_logs.is_dir():
            for path in sorted(compute_logs.iterdir()):
                if path.suffix in (".out", ".err"):
                    parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def materialization_times(self, asset_key: Sequence[str]) -> list[float]:
        """When each recorded materialization of ``asset_key`` happened (epoch seconds)."""
        data = self.graphql(ASSET_MATERIALIZATIONS_QUERY, {"assetKey": {"path": list(asset_key)}})
        asset = data["assetOrError"]
        if asset["__typename"] == "AssetNotFoundError":
            return []
        assert asset["__typename"] == "Asset", asset
        return [float(m["timestamp"]) / 1000 for m in asset["assetMaterializations"]]

    def wait_until_idle(self, timeout: float) -> None:
        """Until no run of the instance is queued or in progress (sensors may add some)."""

        def idle() -> bool | None:
            busy = self.runs({"statuses": sorted(IN_FLIGHT)})
            return True if not busy else None

        self.wait_for("the instance to have no queued or running runs", idle, timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("dagster_e2e")
    days = [*UI_DAYS, *BACKFILL_DAYS]
    spec = DatasetSpec(
        seed=23, start_date=days[0], days=len(days), tasks_per_day=[TASKS_PER_DAY] * len(days)
    )
    dataset = generate_dataset(spec)
    tasks_by_day: dict[date, set[str]] = defaultdict(set)
    for task in dataset.tasks:
        tasks_by_day[parse_timestamp(task["created_at"]).astimezone(UTC).date()].add(task["id"])

    # The environment a deployment would have, minus anything TOPO_* from this shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPO_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(workdir / "dagster_home")
    prepare_dagster_home(env)  # the repository's dagster.yaml, as make dev does
    # Create the instance's storage once: the webserver and the daemon creating it at the
    # same moment can race in alembic ("table alembic_version already exists").
    create_instance_storage(env["DAGSTER_HOME"])
    pipeline_path = workdir / "data" / "pipeline.duckdb"
    analyst_path = workdir / "data" / "analyst.duckdb"

    port = free_port()
    with (
        SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api,
        WebhookReceiver() as webhook,
    ):
        env.update(
            {
                "TOPO_API_BASE_URL": api.base_url,
                "TOPO_API_KEY": DEMO_API_KEY,
                "TOPO_DUCKDB_PATH": str(pipeline_path),
                "TOPO_ANALYST_DUCKDB_PATH": str(analyst_path),
                "TOPO_START_DATE": START.isoformat(),
                "TOPO_API_REQUESTS_PER_MINUTE": "0",
                # A run fails fast once the API fails (the failure-alert test); the healthy
                # simulator never makes the other tests retry.
                "TOPO_API_MAX_ATTEMPTS": "2",
                "TOPO_ALERT_WEBHOOK_URL": webhook.url,
                "TOPO_UI_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        workspace = str(REPO_ROOT / "workspace.yaml")
        services = [
            _start_service(
                "webserver",
                [
                    venv_executable("dagster-webserver"),
                    *("-h", "127.0.0.1", "-p", str(port), "-w", workspace),
                ],
                env,
                workdir,
            ),
            _start_service(
                "daemon", [venv_executable("dagster-daemon"), "run", "-w", workspace], env, workdir
            ),
        ]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0)
        running = Stack(
            url=f"http://127.0.0.1:{port}",
            home=Path(env["DAGSTER_HOME"]),
            pipeline_path=pipeline_path,
            analyst_path=analyst_path,
            tasks_by_day=tasks_by_day,
            services=services,
            client=client,
            api=api,
            env=env,
            workdir=workdir,
            webhook=webhook,
        )
        try:
            _wait_until_ready(running)
            yield running
        finally:
            client.close()
            stragglers = stop_groups([s.process for s in services], running.home)
    assert not stragglers, f"processes outlived their webserver/daemon: {stragglers}"
    assert not pids_using_home(running.home)


def _wait_until_ready(stack: Stack) -> None:
    def webserver_up() -> bool | None:
        try:
            return True if stack.client.get("/server_info").status_code == 200 else None
        except httpx.HTTPError:
            return None

    stack.wait_for("the webserver to answer", webserver_up, STARTUP_TIMEOUT)

    def location_loaded() -> dict[str, Any] | None:
        entries = stack.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        if not entries or entries[0]["loadStatus"] != "LOADED":
            return None
        location = entries[0]["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", (
            f"the code location failed to load: {location}"
        )
        return location

    location = stack.wait_for("the code location to load", location_loaded, STARTUP_TIMEOUT)
    stack.location = location["name"]
    stack.repository = location["repositories"][0]["name"]

    def daemons_healthy() -> bool | None:
        statuses = stack.graphql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]
        required = [s for s in statuses["allDaemonStatuses"] if s["required"]]
        return True if required and all(s["healthy"] for s in required) else None

    stack.wait_for("every required daemon to report healthy", daemons_healthy, STARTUP_TIMEOUT)


# --- what the UI does -----------------------------------------------------------------


@dataclass(frozen=True)
class AssetNode:
    key: list[str]
    job_names: list[str]
    partition_definition: Mapping[str, Any] | None
    backfill_policy: Mapping[str, Any] | None
    location: str
    repository: str
    checks: list[Mapping[str, Any]]


def _asset_nodes(stack: Stack) -> dict[tuple[str, ...], AssetNode]:
    nodes = {}
    for node in stack.graphql(ASSET_NODES_QUERY)["assetNodes"]:
        if not node["isExecutable"] or node["isObservable"]:
            continue
        checks = node["assetChecksOrError"]
        nodes[tuple(node["assetKey"]["path"])] = AssetNode(
            key=node["assetKey"]["path"],
            job_names=node["jobNames"],
            partition_definition=node["partitionDefinition"],
            backfill_policy=node["backfillPolicy"],
            location=node["repository"]["location"]["name"],
            repository=node["repository"]["name"],
            checks=checks["checks"] if checks["__typename"] == "AssetChecks" else [],
        )
    return nodes


def _common_job(assets: Sequence[AssetNode]) -> str:
    """``getCommonJob``: the first job every selected asset belongs to."""
    common = [j for j in assets[0].job_names if all(j in a.job_names for a in assets)]
    assert common, f"no job holds all of {[a.key for a in assets]}"
    return common[0]


def _is_hidden_asset_job(job_name: str) -> bool:
    return job_name.startswith(("__ASSET_JOB", "__anonymous_asset_job"))


def _asset_key_inputs(assets: Sequence[AssetNode]) -> list[dict[str, list[str]]]:
    return [{"path": list(a.key)} for a in assets]


UI_TAG = {"key": "dagster/from_ui", "value": "true"}


def ui_materialize_partitions(
    stack: Stack, assets: Sequence[AssetNode], partition_keys: Sequence[str]
) -> str:
    """ "Materialize" → choose several partitions → "Launch backfill"; the backfill id."""
    assert len(partition_keys) > 1, "one partition is launched as a single run"
    job_name = _common_job(assets)
    params: dict[str, Any] = {
        "tags": [UI_TAG],
        "assetSelection": _asset_key_inputs(assets),
        "partitionNames": list(partition_keys),
        "fromFailure": False,
    }
    if not _is_hidden_asset_job(job_name):
        params["selector"] = {
            "partitionSetName": f"{job_name}_partition_set",
            "repositorySelector": stack.repository_selector,
        }
    result = stack.graphql(LAUNCH_PARTITION_BACKFILL, {"backfillParams": params})
    launched = result["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def ui_materialize_one_partition(
    stack: Stack, assets: Sequence[AssetNode], partition_key: str, tags: Sequence[Mapping]
) -> str:
    """ "Materialize" → one partition → "Launch 1 run"; the run id."""
    job_name = _common_job(assets)
    config = stack.graphql(
        PARTITION_CONFIG_QUERY,
        {
            "repositoryName": stack.repository,
            "repositoryLocationName": stack.location,
            "jobName": job_name,
            "partitionName": partition_key,
            "assetKeys": _asset_key_inputs(assets),
        },
    )["pipelineOrError"]
    assert config["__typename"] == "Pipeline", config
    partition = config["partition"]
    run_config = partition["runConfigOrError"]
    partition_tags = partition["tagsOrError"]
    assert "yaml" in run_config, run_config
    assert "results" in partition_tags, partition_tags
    all_tags = [*partition_tags["results"], *tags]
    execution_params = {
        "mode": "default",
        "executionMetadata": {
            "tags": [
                *(
                    {"key": t["key"], "value": t["value"]}
                    for t in all_tags
                    if t["key"] != UI_TAG["key"]
                ),
                UI_TAG,
            ]
        },
        "runConfigData": run_config["yaml"] or "{}",
        "selector": {
            **stack.repository_selector,
            "pipelineName": job_name,
            "assetSelection": _asset_key_inputs(assets),
            "assetCheckSelection": [
                {"name": check["name"], "assetKey": {"path": list(asset.key)}}
                for asset in assets
                for check in asset.checks
                if not check["jobNames"] or job_name in check["jobNames"]
            ],
        },
    }
    result = stack.graphql(LAUNCH_PIPELINE_EXECUTION, {"executionParams": execution_params})
    launched = result["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["id"]


# --- checks on the results ------------------------------------------------------------


def _tag(run: Mapping[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def _ids_by_day(path: Path, table: str, days: Sequence[date]) -> dict[date, set[str]]:
    with connect(path, read_only=True) as con:
        rows = con.execute(
            f"SELECT partition_date, id FROM {table} WHERE partition_date BETWEEN ? AND ?",
            [min(days), max(days)],
        ).fetchall()
    found: dict[date, set[str]] = defaultdict(set)
    for day, task_id in rows:
        found[day].add(str(task_id))
    return dict(found)


def _days_by_table(path: Path, days: Sequence[date]) -> dict[str, list[date]]:
    """The days in ``days`` each analytics table holds rows for."""
    found = {}
    with connect(path, read_only=True) as con:
        for table in ANALYTICS_TABLES:
            rows = con.execute(
                f"SELECT DISTINCT partition_date FROM warehouse.analytics.{table} "
                "WHERE partition_date BETWEEN ? AND ? ORDER BY 1",
                [min(days), max(days)],
            ).fetchall()
            found[table] = [day for (day,) in rows]
    return found


def _assert_no_lock_errors(stack: Stack, run_ids: Sequence[str]) -> None:
    offenders = {}
    for run_id in run_ids:
        text = stack.run_log_text(run_id)
        hits = [marker for marker in LOCK_ERROR_MARKERS if marker in text]
        if hits:
            offenders[run_id] = hits
    assert not offenders, f"DuckDB lock errors in run logs: {offenders}"


# --- the tests ------------------------------------------------------------------------


def test_every_schedule_and_sensor_in_defs_is_running(stack: Stack) -> None:
    from topo_pipeline.definitions import defs

    repository = defs.get_repository_def()
    schedules = {s.name for s in repository.schedule_defs}
    sensors = {s.name for s in repository.sensor_defs}
    # SPEC "Operating it": a daily schedule and a sensor for days with open tasks.
    assert schedules, "the code location defines no schedule"
    assert sensors, "the code location defines no sensor"

    data = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
    served_schedules = {
        s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]
    }
    served_sensors = {
        s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]
    }
    assert {name: served_schedules.get(name) for name in schedules} == dict.fromkeys(
        schedules, "RUNNING"
    )
    assert {name: served_sensors.get(name) for name in sensors} == dict.fromkeys(sensors, "RUNNING")

    # RUNNING in the UI must mean the daemon evaluates them: every sensor ticks, cleanly.
    def every_sensor_ticked() -> dict[str, list[dict[str, Any]]] | None:
        results = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
        ticks = {
            s["name"]: s["sensorState"]["ticks"]
            for s in results["sensorsOrError"]["results"]
            if s["name"] in sensors
        }
        return ticks if all(ticks.get(name) for name in sensors) else None

    ticks = stack.wait_for("every sensor's first tick", every_sensor_ticked, 180, POLL_SECONDS)
    failed = {
        name: [t["error"] for t in sensor_ticks if t["status"] == "FAILURE"]
        for name, sensor_ticks in ticks.items()
    }
    assert not any(failed.values()), f"sensor ticks failed: {failed}"


@pytest.mark.timeout(900)
def test_ui_materialize_of_a_partition_range_lands_every_table(stack: Stack) -> None:
    nodes = _asset_nodes(stack)
    tasks = nodes[tuple(TASKS_KEY)]
    assert tasks.partition_definition is not None
    # In the asset graph: select every asset on the daily partitions, "Materialize".
    selection = [n for n in nodes.values() if n.partition_definition == tasks.partition_definition]
    keys = [day.isoformat() for day in UI_DAYS]

    backfill_id = ui_materialize_partitions(stack, selection, keys)

    def backfill_done() -> dict[str, Any] | None:
        backfill = stack.graphql(BACKFILL_STATUS_QUERY, {"backfillId": backfill_id})
        backfill = backfill["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        return backfill if backfill["status"] in BACKFILL_DONE else None

    backfill = stack.wait_for("the backfill to finish", backfill_done, RUN_TIMEOUT, POLL_SECONDS)
    runs = stack.runs({"tags": [{"key": "dagster/backfill", "value": backfill_id}]})
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, runs)
    assert runs, "the backfill launched no run"
    assert {r["status"] for r in runs} == {"SUCCESS"}, runs
    # Single-run backfill policy: each run covers the whole range, never one day.
    for run in runs:
        assert _tag(run, "dagster/asset_partition_range_start") == keys[0], run["tags"]
        assert _tag(run, "dagster/asset_partition_range_end") == keys[-1], run["tags"]
    assert len(runs) <= len(selection), "more runs than assets: the range was split"
    _assert_no_lock_errors(stack, [r["runId"] for r in runs])

    stack.wait_until_idle(PUBLISH_TIMEOUT)
    expected = {day: stack.tasks_by_day[day] for day in UI_DAYS}
    assert _ids_by_day(stack.pipeline_path, "warehouse.topo.tasks", UI_DAYS) == expected
    with connect(stack.pipeline_path, read_only=True) as con:
        for node in selection:
            if node.key == TASKS_KEY:
                continue
            schema, table = node.key  # analytics/<table> lands in analytics.<table>
            days = con.execute(
                f"SELECT DISTINCT partition_date FROM warehouse.{schema}.{table} "
                "WHERE partition_date BETWEEN ? AND ? ORDER BY 1",
                [UI_DAYS[0], UI_DAYS[-1]],
            ).fetchall()
            assert [d for (d,) in days] == UI_DAYS, f"{schema}.{table} lacks some days"

    # Analysts read the published copy; it follows once the runs have finished.
    def published() -> bool | None:
        if not stack.analyst_path.exists():
            return None
        try:
            found = _ids_by_day(stack.analyst_path, "warehouse.topo.tasks", UI_DAYS)
        except Exception:  # noqa: BLE001 - not created yet, or swapped mid-open: poll again
            return None
        return True if found == expected else None

    stack.wait_for("the analyst copy to hold the new days", published, PUBLISH_TIMEOUT)


@pytest.mark.timeout(int(BACKFILL_RUNS_TIMEOUT) + 300)
def test_a_burst_of_partitions_as_separate_queued_runs_never_hit_the_duckdb_lock(
    stack: Stack,
) -> None:
    nodes = _asset_nodes(stack)
    tasks = nodes[tuple(TASKS_KEY)]
    batch = {"key": "topo_pipeline_tests/batch", "value": uuid.uuid4().hex}
    keys = [day.isoformat() for day in BACKFILL_DAYS]

    # One "Launch 1 run" per partition, as fast as the UI takes them: a run per partition,
    # of topo/tasks alone, for days more than a year old.
    assert max(BACKFILL_DAYS) < datetime.now(UTC).date() - timedelta(days=366)
    burst_started = time.time()
    run_ids = [ui_materialize_one_partition(stack, [tasks], key, [batch]) for key in keys]
    assert len(set(run_ids)) == len(keys)

    def all_finished() -> list[dict[str, Any]] | None:
        runs = stack.runs({"tags": [batch]})
        done = [r for r in runs if r["status"] in FINISHED]
        return runs if len(done) == len(keys) else None

    runs = stack.wait_for(f"{len(keys)} runs to finish", all_finished, BACKFILL_RUNS_TIMEOUT, 5.0)

    statuses = Counter(r["status"] for r in runs)
    assert statuses == {"SUCCESS": len(keys)}, statuses
    assert sorted(_tag(r, "dagster/partition") for r in runs) == keys
    _assert_no_lock_errors(stack, run_ids)
    for run_id in run_ids:
        # Launched into the run queue, then started by the daemon's queue coordinator.
        types = {event.get("eventType") for event in stack.run_events(run_id)}
        assert {"RUN_ENQUEUED", "RUN_STARTING"} <= types, (run_id, types)

    # Automation rebuilds the five analytics tables of every one of those days, and the
    # analyst copy ends up holding them all (checked in the copy: reading the pipeline's
    # file would take its lock from the runs still writing).
    expected = {day: stack.tasks_by_day[day] for day in BACKFILL_DAYS}

    def copy_complete() -> bool | None:
        try:
            tasks = _ids_by_day(stack.analyst_path, "warehouse.topo.tasks", BACKFILL_DAYS)
            task_sla = _ids_by_day(
                stack.analyst_path, "warehouse.analytics.task_sla", BACKFILL_DAYS
            )
            days = _days_by_table(stack.analyst_path, BACKFILL_DAYS)
        except Exception:  # noqa: BLE001 - not there yet, or swapped mid-open: poll again
            return None
        every_table = dict.fromkeys(ANALYTICS_TABLES, BACKFILL_DAYS)
        return True if (tasks, task_sla, days) == (expected, expected, every_table) else None

    stack.wait_for(
        "automation to rebuild the days' analytics and the copy to hold them",
        copy_complete,
        BACKFILL_RUNS_TIMEOUT,
        5.0,
    )
    stack.wait_until_idle(PUBLISH_TIMEOUT)
    # The burst was published, but not once per run: runs that end while others are on
    # their way leave the publish to the last of them.
    publishes = [t for t in stack.materialization_times(ANALYST_COPY_KEY) if t >= burst_started]
    assert 1 <= len(publishes) < len(keys), f"{len(publishes)} publishes for {len(keys)} runs"

    # Pool "duckdb" (limit 1): no two steps that open the file ever ran at the same time,
    # across these runs and every other run the instance made meanwhile (the UI test's
    # backfill, analyst-copy publishes, automation's runs, anything a sensor launched).
    every_run = stack.runs({"createdAfter": stack.started_at - 60})
    _assert_no_lock_errors(stack, [r["runId"] for r in every_run if r["runId"] not in run_ids])
    from topo_pipeline.definitions import defs

    freshness_steps = set(defs.resolve_job_def(FRESHNESS_JOB_NAME).graph.node_names())
    steps = sorted(
        (step["startTime"], step["endTime"], run["runId"], step["stepKey"])
        for run in every_run
        for step in run["stepStats"]
        # The freshness checks read Dagster's event log only, never the file.
        if step["stepKey"] not in freshness_steps
        if step["startTime"] is not None and step["endTime"] is not None
    )
    overlaps = []
    busy_until: tuple[float, float, str, str] | None = None
    for step in steps:
        if busy_until is not None and step[0] < busy_until[1]:
            overlaps.append((busy_until, step))
        if busy_until is None or step[1] > busy_until[1]:
            busy_until = step
    assert not overlaps, f"steps ran at the same time despite the pool: {overlaps[:3]}"

    assert _ids_by_day(stack.pipeline_path, "warehouse.topo.tasks", BACKFILL_DAYS) == expected

    # The daemon's sensors ran the whole time; none of their ticks failed.
    data = stack.graphql(INSTIGATORS_QUERY, {"selector": stack.repository_selector})
    failed = {
        s["name"]: [t["error"] for t in s["sensorState"]["ticks"] if t["status"] == "FAILURE"]
        for s in data["sensorsOrError"]["results"]
    }
    assert not any(failed.values()), f"sensor ticks failed: {failed}"


def _slot_holders(stack: Stack) -> list[str]:
    info = stack.graphql(POOL_QUERY, {"pool": "duckdb"})["instance"]["concurrencyLimit"]
    return [slot["runId"] for slot in info["claimedSlots"]]


def _run(stack: Stack, run_id: str) -> dict[str, Any]:
    (run,) = stack.runs({"runIds": [run_id]})
    return run


def _run_pid(stack: Stack, run_id: str) -> int:
    owner = parse_owner(_tag(_run(stack, run_id), PROCESS_TAG) or "")
    assert owner is not None, f"run {run_id} has no {PROCESS_TAG} tag"
    return owner.pid


@pytest.mark.timeout(900)
def test_runs_killed_inside_the_pool_step_do_not_wedge_the_runs_after_them(stack: Stack) -> None:
    """kill -9 inside topo/tasks, of a run from the UI and of a CLI run: no manual step."""
    stack.wait_until_idle(PUBLISH_TIMEOUT)
    tasks = _asset_nodes(stack)[tuple(TASKS_KEY)]
    batch = {"key": "topo_pipeline_tests/batch", "value": uuid.uuid4().hex}
    day, other_day = UI_DAYS[0].isoformat(), UI_DAYS[1].isoformat()
    # Every request now hangs, so a run sits in topo/tasks, holding the pool's slot.
    stack.api.faults = FaultPlan(latency_seconds=RUN_TIMEOUT)
    cli_log = stack.workdir / "cli_run.log"
    cli: subprocess.Popen[bytes] | None = None
    try:
        # 1. A run launched from the UI (started by the daemon, through the code server).
        first = ui_materialize_one_partition(stack, [tasks], day, [batch])
        stack.wait_for(
            "the UI run to hold the duckdb slot",
            lambda: True if _slot_holders(stack) == [first] else None,
            RUN_TIMEOUT,
            POLL_SECONDS,
        )

        # 2. A CLI run waits for the slot and says at INFO which run holds it.
        with cli_log.open("wb") as log:
            cli = subprocess.Popen(  # noqa: S603 - fixed argv
                [
                    venv_executable("dagster"),
                    *("asset", "materialize", "-m", "topo_pipeline.definitions"),
                    *("--select", "topo/tasks", "--partition", other_day),
                ],
                cwd=stack.workdir,
                env=dict(stack.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def cli_run_waiting() -> str | None:
            for run in stack.runs({"statuses": ["STARTED"]}):
                if run["runId"] == first or _tag(run, "dagster/partition") != other_day:
                    continue
                for event in stack.run_events(run["runId"]):
                    text = event.get("message") or ""
                    if "is waiting for a slot of pool 'duckdb'" in text:
                        assert event["level"] == "INFO", event
                        assert f"held by run {first} (job " in text, text
                        return run["runId"]
            return None

        cli_run = stack.wait_for(
            "the CLI run to name the slot holder", cli_run_waiting, RUN_TIMEOUT
        )
        assert f"held by run {first}" in cli_log.read_text(errors="replace")

        # 3. kill -9 the UI run inside its pool step: the CLI run gets the slot by itself.
        os.kill(_run_pid(stack, first), signal.SIGKILL)
        stack.wait_for(
            "the CLI run to take the freed slot",
            lambda: True if _slot_holders(stack) == [cli_run] else None,
            RUN_TIMEOUT,
            POLL_SECONDS,
        )
        assert _run(stack, first)["status"] == "FAILURE"

        # 4. kill -9 the CLI run, which no code server watches, while a UI run waits.
        stack.api.faults = FaultPlan()
        last = ui_materialize_one_partition(stack, [tasks], day, [batch])
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()

        def finished(run_id: str) -> dict[str, Any] | None:
            run = _run(stack, run_id)
            return run if run["status"] in FINISHED else None

        assert stack.wait_for("the next run", lambda: finished(last), RUN_TIMEOUT)["status"] == (
            "SUCCESS"
        )
    finally:
        stack.api.faults = FaultPlan()
        if cli is not None and cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()

    assert _run(stack, cli_run)["status"] == "FAILURE"
    failure = next(
        event["message"]
        for event in stack.run_events(cli_run)
        if event.get("eventType") == "RUN_FAILURE"
    )
    assert "is gone" in failure, failure
    assert _slot_holders(stack) == []


@pytest.mark.timeout(600)
def test_a_failed_run_is_posted_to_the_webhook_by_the_daemon(stack: Stack) -> None:
    nodes = _asset_nodes(stack)
    tasks = nodes[tuple(TASKS_KEY)]
    day = UI_DAYS[0].isoformat()
    stack.api.faults = FaultPlan(error_5xx_rate=1.0, retry_after_seconds=0)
    try:
        run_id = ui_materialize_one_partition(stack, [tasks], day, [])

        def finished() -> dict[str, Any] | None:
            runs = stack.runs({"runIds": [run_id]})
            return runs[0] if runs and runs[0]["status"] in FINISHED else None

        run = stack.wait_for("the run to fail", finished, RUN_TIMEOUT, POLL_SECONDS)
    finally:
        stack.api.faults = FaultPlan()
    assert run["status"] == "FAILURE", run

    def alerted() -> str | None:
        texts = [body.get("text", "") for body in stack.webhook.received()]
        return next((text for text in texts if run_id in text), None)

    # The daemon evaluates run_failure_alert_sensor about every 30 s.
    text = stack.wait_for("the alert to reach the webhook", alerted, 240, POLL_SECONDS)
    assert f"job `{run['jobName']}`" in text
    assert f"partitions {day}" in text
    assert "step `topo__tasks`" in text
    assert "TopoUnavailableError" in text
    assert f"{stack.url}/runs/{run_id}" in text
    assert DEMO_API_KEY not in text
