"""``run_failure_alert_sensor``: every failed run is logged and, if configured, posted to a chat.

The sensor is on by default and watches every job of the code location (the daily
schedule's, the open-task sensor's, the analyst copy's, UI and CLI runs alike). For each
failed run it logs an ERROR line in its tick log and, when ``TOPO_ALERT_WEBHOOK_URL`` is
set, POSTs ``{"text": ...}`` to it: the shape Slack's incoming webhooks take (Mattermost,
Rocket.Chat, Discord's ``/slack`` endpoints and most chat bridges take it too). The text
names the job, the partitions, the failing step and the error's class and first line, and
links to the run in the UI (``TOPO_UI_BASE_URL``).

A live refresh of today (``defs/live_refresh.py``) runs every few minutes, so while Topo is
down each of its runs would fail: only the first failure of such a streak is posted (the
live refresh before it succeeded); the later ones are logged in the tick log only. Every
other failed run is posted.

The API key never appears in an alert: the pipeline's errors never contain it, and any
text that would is redacted here as well. The webhook URL itself (a secret for Slack) is
never logged. A webhook that cannot be reached is logged and does not fail the tick, so
one broken chat integration never stalls the sensor.
"""

import json
import os
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from topo_pipeline.defs.jobs import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from topo_pipeline.defs.live_refresh import LIVE_REFRESH_TAG
from topo_pipeline.settings import API_KEY_ENV

RUN_FAILURE_ALERT_SENSOR_NAME = "run_failure_alert_sensor"

WEBHOOK_TIMEOUT_SECONDS = 10.0
MESSAGE_CHARS = 600
"""The error message's first line is cut to this many characters."""

_REDACTED = "[redacted]"


@dataclass(frozen=True)
class FailureAlert:
    """What an operator needs to know about one failed run."""

    job: str
    run_id: str
    partitions: str | None
    step: str | None
    error_class: str | None
    message: str
    run_url: str

    def text(self) -> str:
        """The chat message (Slack ``mrkdwn``; plain text elsewhere reads the same)."""
        where = f" for partitions {self.partitions}" if self.partitions else ""
        step = f" in step `{self.step}`" if self.step else ""
        error = f"{self.error_class}: {self.message}" if self.error_class else self.message
        return (
            f":rotating_light: topo_pipeline run failed: job `{self.job}`{where}{step}\n"
            f"{error}\n"
            f"Run {self.run_id}: {self.run_url}"
        )


def describe_failure(
    *,
    job: str,
    run_id: str,
    tags: Mapping[str, str],
    run_message: str,
    step_failures: Iterable[dg.DagsterEvent],
    ui_base_url: str,
    secrets: Iterable[str] = (),
) -> FailureAlert:
    """The alert for a failed run, from its tags and its step failure events.

    Args:
        job: the run's job name.
        run_id: the run's id.
        tags: the run's tags (its partition or partition range).
        run_message: the run failure event's message (used when no step failed).
        step_failures: the run's STEP_FAILURE events; the first one is reported.
        ui_base_url: the Dagster UI's root (``http://127.0.0.1:3000``).
        secrets: values that must not appear in the alert (the API key).
    """
    step = error_class = None
    message = run_message
    for event in step_failures:
        step = event.step_key
        error = event.step_failure_data.error
        if error is not None:
            chain = [error]
            while chain[-1].cause is not None:
                chain.append(chain[-1].cause)
            # Dagster wraps the user's exception (and the assets turn errors a user causes
            # into a dg.Failure explaining them): the message is the first one that is not
            # Dagster's wrapper, the class an operator acts on is the root cause's.
            told = next((e for e in chain if not e.cls_name.startswith("Dagster")), chain[-1])
            error_class = chain[-1].cls_name
            message = _without_class_prefix(told.message, told.cls_name)
        break
    first_line = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return FailureAlert(
        job=job,
        run_id=run_id,
        partitions=_partitions(tags),
        step=step,
        error_class=error_class,
        message=redact(first_line, secrets)[:MESSAGE_CHARS],
        run_url=f"{ui_base_url.rstrip('/')}/runs/{run_id}",
    )


def post_alert(url: str, alert: FailureAlert) -> None:
    """POST the alert to a Slack-compatible webhook (:func:`post_text`).

    Raises:
        OSError: as :func:`post_text`.
    """
    post_text(url, alert.text())


def post_text(url: str, text: str) -> None:
    """POST ``{"text": text}`` to a Slack-compatible webhook.

    Plain ``urllib`` rather than ``httpx``: httpx logs every request's URL at INFO, and a
    webhook URL is a credential. Every alert of the code location is posted here.

    Raises:
        OSError: if the webhook could not be reached or did not answer 2xx
            (``urllib.error.URLError`` and ``HTTPError`` are ``OSError``).
    """
    request = urllib.request.Request(  # noqa: S310 - Settings admits http(s) URLs only
        url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):  # noqa: S310
        pass


def repeated_live_failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """The id of the live refresh that ended before ``run``, if ``run`` is a live refresh
    and that one failed too (the streak's first failure was posted already); else ``None``."""
    if run.tags.get(LIVE_REFRESH_TAG) != "true":
        return None
    record = instance.get_run_record_by_id(run.run_id)
    if record is None:
        return None
    earlier = instance.get_run_records(
        filters=dg.RunsFilter(
            tags={LIVE_REFRESH_TAG: "true"},
            statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
            created_before=record.create_timestamp,
        ),
        limit=1,
    )
    if earlier and earlier[0].dagster_run.status == dg.DagsterRunStatus.FAILURE:
        return earlier[0].dagster_run.run_id
    return None


def build_run_failure_alert_sensor(
    *, webhook_url: str | None, ui_base_url: str
) -> dg.SensorDefinition:
    """The :data:`RUN_FAILURE_ALERT_SENSOR_NAME` sensor, on by default."""

    @dg.run_failure_sensor(
        name=RUN_FAILURE_ALERT_SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Logs every failed run of this code location and, when TOPO_ALERT_WEBHOOK_URL "
            "is set, posts it to that Slack-compatible webhook: job, partitions, failing "
            "step, error class and a link to the run."
        ),
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        alert = describe_failure(
            job=run.job_name,
            run_id=run.run_id,
            tags=run.tags,
            run_message=context.failure_event.message or "",
            step_failures=context.get_step_failure_events(),
            ui_base_url=ui_base_url,
            secrets=[os.environ.get(API_KEY_ENV, "")],
        )
        context.log.error(alert.text())
        if not webhook_url:
            return
        streak = repeated_live_failure(context.instance, run)
        if streak:
            context.log.info(
                "not posted: the live refresh before it (run %s) failed too, and the first "
                "failure of the streak was posted",
                streak,
            )
            return
        try:
            post_alert(webhook_url, alert)
        except OSError as error:
            # Never the URL: a Slack webhook URL is itself a credential.
            context.log.error(
                "could not post the alert for run %s to TOPO_ALERT_WEBHOOK_URL: %s",
                run.run_id,
                type(error).__name__,
            )
        else:
            context.log.info("posted the alert for run %s to the webhook", run.run_id)

    return run_failure_alert_sensor


def _partitions(tags: Mapping[str, str]) -> str | None:
    start, end = tags.get(PARTITION_RANGE_START_TAG), tags.get(PARTITION_RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}..{end}"
    return tags.get("dagster/partition")


def _without_class_prefix(message: str, cls_name: str) -> str:
    """``message`` without the ``package.module.ClassName: `` Dagster puts before it."""
    head, sep, rest = message.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == cls_name:
        return rest
    return message


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret of ``secrets`` (4 characters or more) replaced."""
    for secret in secrets:
        if secret and len(secret.strip()) >= 4:
            text = text.replace(secret.strip(), _REDACTED)
    return text
