"""The stack the UI tests drive: ``dagster-webserver`` and ``dagster-daemon`` as real processes.

:func:`running_stack` starts one (each UI test module keeps one for its tests, so the
modules run side by side on separate workers): the simulated Topo API (in this process), a
temporary ``DAGSTER_HOME`` holding the repository's ``dagster.yaml`` (so the run queue,
pools and telemetry settings under test are the committed ones), temporary DuckDB files,
and the webserver and daemon on a free loopback port, loading ``workspace.yaml``.

Everything is driven through the webserver's GraphQL API with the operations the UI
sends (checked against the UI source shipped in dagster-webserver 1.13:
``LaunchAssetExecutionButton.tsx``, ``LaunchAssetChoosePartitionsDialog.tsx``): a
multi-partition "Materialize" is ``launchPartitionBackfill`` with the asset selection and
the partition keys; a single-partition one is ``launchPipelineExecution`` on the assets'
job with the partition's tags.

The simulated days lie far in the past, outside the open-task sensor's maximum age, and
the live refresh of today is off, so only the runs launched here and the automation they
trigger touch them (the analytics of
days more than a year old follow a ``topo/tasks`` run of those days alone); the schedule,
the sensors and the automation run in the daemon the whole time.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.instance import INSTANCE_YAML, REPO_ROOT
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.processes import (
    deployment_env,
    free_port,
    pids_using_home,
    stop_groups,
    venv_executable,
)
from topo_pipeline_tests.webhook import WebhookReceiver

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


@contextmanager
def running_stack(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    instance_yaml: Path = INSTANCE_YAML,
    instance_env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Start the stack in a new temporary folder; stop it, and check nothing outlived it.

    ``instance_yaml`` replaces the repository's ``dagster.yaml`` in its ``DAGSTER_HOME``
    (``deploy/postgres/dagster.yaml``), ``instance_env`` adds the variables it reads.
    """
    workdir = tmp_path_factory.mktemp("dagster_e2e")
    days = [*UI_DAYS, *BACKFILL_DAYS]
    spec = DatasetSpec(
        seed=23, start_date=days[0], days=len(days), tasks_per_day=[TASKS_PER_DAY] * len(days)
    )
    dataset = generate_dataset(spec)
    tasks_by_day: dict[date, set[str]] = defaultdict(set)
    for task in dataset.tasks:
        tasks_by_day[parse_timestamp(task["created_at"]).astimezone(UTC).date()].add(task["id"])

    # The environment a deployment would have, minus anything TOPO_* from this shell; the
    # instance's storage is created before the webserver and the daemon share it.
    env = deployment_env(
        workdir / "dagster_home", instance_yaml=instance_yaml, instance_env=instance_env
    )
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
                # No live refresh of today: only the runs these tests launch touch the data
                # (the sensor still ticks, saying it is off).
                "TOPO_LIVE_REFRESH_MINUTES": "0",
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


def asset_nodes(stack: Stack) -> dict[tuple[str, ...], AssetNode]:
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


def tag_of(run: Mapping[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def ids_by_day(path: Path, table: str, days: Sequence[date]) -> dict[date, set[str]]:
    with connect(path, read_only=True) as con:
        rows = con.execute(
            f"SELECT partition_date, id FROM {table} WHERE partition_date BETWEEN ? AND ?",
            [min(days), max(days)],
        ).fetchall()
    found: dict[date, set[str]] = defaultdict(set)
    for day, task_id in rows:
        found[day].add(str(task_id))
    return dict(found)


def days_by_table(path: Path, days: Sequence[date]) -> dict[str, list[date]]:
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


def overlapping_steps(
    runs: Sequence[Mapping[str, Any]], ignore: Collection[str] = ()
) -> list[tuple[tuple[float, float, str, str], tuple[float, float, str, str]]]:
    """Pairs of finished steps of ``runs`` (as :meth:`Stack.runs` reads them) that ran at
    the same time, as ``(start, end, run id, step key)``; steps named in ``ignore`` aside.

    Every step that opens the DuckDB file is in pool ``duckdb`` (limit 1): there must be
    none among them.
    """
    steps = sorted(
        (step["startTime"], step["endTime"], run["runId"], step["stepKey"])
        for run in runs
        for step in run["stepStats"]
        if step["stepKey"] not in ignore
        if step["startTime"] is not None and step["endTime"] is not None
    )
    overlaps = []
    busy_until: tuple[float, float, str, str] | None = None
    for step in steps:
        if busy_until is not None and step[0] < busy_until[1]:
            overlaps.append((busy_until, step))
        if busy_until is None or step[1] > busy_until[1]:
            busy_until = step
    return overlaps


def assert_no_lock_errors(stack: Stack, run_ids: Sequence[str]) -> None:
    offenders = {}
    for run_id in run_ids:
        text = stack.run_log_text(run_id)
        hits = [marker for marker in LOCK_ERROR_MARKERS if marker in text]
        if hits:
            offenders[run_id] = hits
    assert not offenders, f"DuckDB lock errors in run logs: {offenders}"


# --- the tests ------------------------------------------------------------------------
