"""A pipeline refreshed live on a driven clock, as the daemon would: the live refresh sensor's
run requests executed as they come, a simulated Topo whose users keep working
(``LiveTraffic``), and a webhook receiver standing in for the chat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from topo_pipeline.defs.assets.analytics import OP_NAME
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.jobs import REFRESH_JOB_NAME
from topo_pipeline.defs.live_refresh import LIVE_REFRESH_SENSOR_NAME, LIVE_REFRESH_TAG
from topo_pipeline.defs.location import build_defs
from topo_pipeline.simulator import DatasetSpec, LiveTraffic, assignee_ids
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.harness import SimulatedPipeline
from topo_pipeline_tests.webhook import WebhookReceiver

DAY = date(2026, 3, 10)
MORNING = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SPEC = DatasetSpec(
    seed=7, start_date=DAY, days=1, tasks_per_day=[60], as_of=MORNING, tie_group_size=0
)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMED = "858934d6-aa4a-4876-85c9-880b56e0e421"  # Maya Chen, Enterprise (examples/assignees.csv)


class DrivenClock:
    """The time the pipeline and the simulated Topo go by; tests move it forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Live(SimulatedPipeline):
    """A pipeline refreshed live on a driven clock, its webhook, and Topo's traffic."""

    clock: DrivenClock = field(default_factory=lambda: DrivenClock(MORNING))
    traffic: LiveTraffic | None = None
    receiver: WebhookReceiver | None = None

    def defs(self) -> dg.Definitions:
        return build_defs(self.settings, clock=self.clock)

    def load_directory(self) -> None:
        defs = self.defs()
        result = dg.materialize(
            defs.assets,
            selection=dg.AssetSelection.assets(ASSIGNEES_KEY),
            resources=defs.resources,
            instance=self.instance,
        )
        assert result.success

    def refresh(self, at: datetime, *, expect_success: bool = True) -> dg.ExecuteInProcessResult:
        """At ``at``: Topo's users work, then the live refresh sensor ticks and its run runs."""
        self.clock.now = at
        assert self.traffic is not None
        self.traffic.advance(at)
        defs = self.defs()
        sensor = defs.resolve_sensor_def(LIVE_REFRESH_SENSOR_NAME)
        request = sensor.evaluate_tick(
            dg.build_sensor_context(instance=self.instance, definitions=defs)
        )
        (run,) = request.run_requests
        assert run.tags[LIVE_REFRESH_TAG] == "true"
        return self.run(run, at, expect_success=expect_success)

    def run(
        self,
        request: dg.RunRequest,
        at: datetime,
        *,
        now: datetime | None = None,
        expect_success: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """Run ``request`` of ``topo_refresh_job``, its SLA judged at ``at`` (run config
        ``as_of``), the clock at ``now`` (default: ``at`` too)."""
        self.clock.now = now or at
        result = (
            self.defs()
            .resolve_job_def(REFRESH_JOB_NAME)
            .execute_in_process(
                instance=self.instance,
                partition_key=request.partition_key,
                tags=request.tags,
                run_config={"ops": {OP_NAME: {"config": {"as_of": at.isoformat()}}}},
                raise_on_error=False,
            )
        )
        assert result.success is expect_success
        return result

    def notified(self, task_id: str) -> list[str]:
        """The first line of every notification posted about ``task_id``, in order."""
        assert self.receiver is not None
        return [
            body["text"].splitlines()[0]
            for body in self.receiver.received()
            if task_id in body["text"]
        ]

    def watch(self, path: Path | None = None) -> dict[str, dict[str, Any]]:
        """``analytics.sla_watch`` of the pipeline's file (or of ``path``), by task id."""
        if path is None:
            with connect(self.settings.duckdb_path, read_only=True) as con:
                return _rows(con, "SELECT * FROM warehouse.analytics.sla_watch")
        with duckdb.connect(str(path), read_only=True) as con:
            return _rows(con, "SELECT * FROM analytics.sla_watch")


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, Any]]:
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def live_pipeline(factory: Callable[..., Live], receiver: WebhookReceiver) -> Live:
    """A :class:`Live` pipeline over :data:`SPEC` posting to ``receiver``, its assignee
    directory loaded, its Topo's users creating about 30 tasks an hour from 09:00."""
    pipeline = factory(SPEC, Live)
    pipeline.settings = pipeline.settings.model_copy(
        update={
            "alert_webhook_url": receiver.url,
            "assignees_path": EXAMPLES / "assignees.csv",
            "task_url_template": "https://app.topo.example/tasks/{id}",
            "max_attempts": 1,
        }
    )
    pipeline.receiver = receiver
    pipeline.traffic = LiveTraffic(
        pipeline.store, start=MORNING, tasks_per_hour=30, assignees=assignee_ids(SPEC), seed=3
    )
    pipeline.load_directory()
    return pipeline
