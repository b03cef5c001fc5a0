"""Failure alerts: a failed run is described and posted to a loopback webhook, key-free."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

import dagster as dg
import pytest

from topo_pipeline.defs.alerts import (
    RUN_FAILURE_ALERT_SENSOR_NAME,
    build_run_failure_alert_sensor,
    describe_failure,
)
from topo_pipeline.defs.jobs import partition_range_tags
from topo_pipeline.defs.live_refresh import LIVE_REFRESH_TAG
from topo_pipeline.defs.location import build_defs
from topo_pipeline.simulator import DEMO_API_KEY, DatasetSpec, FaultPlan
from topo_pipeline_tests.harness import SimulatedPipeline
from topo_pipeline_tests.webhook import WebhookReceiver

DAY = date(2026, 3, 2)
SPEC = DatasetSpec(seed=9, start_date=DAY, days=2, tasks_per_day=[20, 20])
UI = "http://dagster.example:3000/"


class Pipeline(SimulatedPipeline):
    def failed_run(self, tags: Mapping[str, str] | None = None) -> dg.DagsterRun:
        """A run of topo/tasks over two days that fails: the API answers only 5xx."""
        self.api.faults = FaultPlan(error_5xx_rate=1.0, retry_after_seconds=0)
        return self.run_tasks(tags, success=False)

    def run_tasks(
        self, tags: Mapping[str, str] | None = None, *, success: bool = True
    ) -> dg.DagsterRun:
        defs = build_defs(self.settings.model_copy(update={"max_attempts": 1}))
        result = dg.materialize(
            defs.assets,
            selection=dg.AssetSelection.assets(["topo", "tasks"]),
            resources=defs.resources,
            instance=self.instance,
            tags={**partition_range_tags("2026-03-02", "2026-03-03"), **(tags or {})},
            raise_on_error=False,
        )
        assert result.success is success
        return result.dagster_run

    def alert_sensor_on(self, run: dg.DagsterRun, webhook_url: str | None) -> None:
        """Evaluate the alert sensor for ``run`` as the daemon would."""
        sensor = build_run_failure_alert_sensor(webhook_url=webhook_url, ui_base_url=UI)
        failure = self.instance.get_records_for_run(
            run_id=run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records[0]
        context = dg.build_run_status_sensor_context(
            sensor_name=RUN_FAILURE_ALERT_SENSOR_NAME,
            dagster_event=failure.event_log_entry.dagster_event,
            dagster_instance=self.instance,
            dagster_run=run,
        ).for_run_failure()
        sensor(context)


@pytest.fixture
def pipeline(pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    return pipeline_factory(SPEC, Pipeline)


def test_a_failed_run_is_posted_naming_job_partitions_step_error_and_link(
    pipeline: Pipeline, capfd: pytest.CaptureFixture[str]
) -> None:
    run = pipeline.failed_run()

    capfd.readouterr()
    with WebhookReceiver() as hook:
        pipeline.alert_sensor_on(run, hook.url)
        bodies = hook.received()
    logged = capfd.readouterr().err

    assert len(bodies) == 1
    assert set(bodies[0]) == {"text"}
    text = bodies[0]["text"]
    assert f"job `{run.job_name}`" in text
    assert "partitions 2026-03-02..2026-03-03" in text
    assert "step `topo__tasks`" in text
    assert "\nTopoUnavailableError: " in text
    assert "Topo kept failing with server errors" in text
    assert f"http://dagster.example:3000/runs/{run.run_id}" in text
    assert DEMO_API_KEY not in text
    # Always logged, with or without a webhook; the webhook URL never is.
    assert text.splitlines()[0] in logged
    assert "posted the alert" in logged
    assert hook.url not in logged


def test_without_a_webhook_the_failure_is_still_logged(
    pipeline: Pipeline, capfd: pytest.CaptureFixture[str]
) -> None:
    run = pipeline.failed_run()

    capfd.readouterr()
    pipeline.alert_sensor_on(run, None)
    logged = capfd.readouterr().err

    assert f"/runs/{run.run_id}" in logged
    assert "TopoUnavailableError" in logged
    assert "posted" not in logged


def test_an_unreachable_webhook_is_logged_without_its_url(
    pipeline: Pipeline, capfd: pytest.CaptureFixture[str]
) -> None:
    run = pipeline.failed_run()
    with WebhookReceiver() as hook:
        gone = hook.url  # closed when the block ends: nothing listens there any more

    capfd.readouterr()
    pipeline.alert_sensor_on(run, gone)
    logged = capfd.readouterr().err

    assert "could not post the alert" in logged
    assert gone not in logged


def test_a_failing_live_refresh_is_posted_once_per_streak(pipeline: Pipeline) -> None:
    live = {LIVE_REFRESH_TAG: "true"}
    first = pipeline.failed_run(live)
    other = pipeline.failed_run()  # not a live refresh: always posted
    second = pipeline.failed_run(live)
    with WebhookReceiver() as hook:
        for run in (first, other, second):
            pipeline.alert_sensor_on(run, hook.url)
        assert [b["text"] for b in hook.received() if first.run_id in b["text"]]
        assert [b["text"] for b in hook.received() if other.run_id in b["text"]]
        assert not [b["text"] for b in hook.received() if second.run_id in b["text"]]

        # Once a live refresh succeeded, the next failure starts a new streak: posted.
        pipeline.api.faults = FaultPlan()
        pipeline.run_tasks(live)
        third = pipeline.failed_run(live)
        pipeline.alert_sensor_on(third, hook.url)
        assert [b["text"] for b in hook.received() if third.run_id in b["text"]]


def test_a_key_inside_an_error_message_is_redacted() -> None:
    alert = describe_failure(
        job="topo_refresh_job",
        run_id="abc",
        tags={"dagster/partition": "2026-03-02"},
        run_message="Execution of run failed: bearer sk-live-123456 rejected",
        step_failures=[],
        ui_base_url=UI,
        secrets=["sk-live-123456"],
    )

    assert "sk-live-123456" not in alert.text()
    assert "[redacted]" in alert.text()
    assert "partitions 2026-03-02" in alert.text()
    assert alert.run_url == "http://dagster.example:3000/runs/abc"
