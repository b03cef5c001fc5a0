"""``analytics/sla_alerts_sent``: a notification when an alerted task is at risk or breaches.

Downstream of ``analytics/task_sla`` (and the assignee directory, for names and teams), so
every refresh run (the live refresh of today every few minutes, the daily schedule, the
open-task sensor) judges the tasks it just rebuilt. For each task of
``TOPO_SLA_ALERT_PRIORITIES`` (default HOT) that ``analytics.sla_watch`` shows entering the
warning window (``TOPO_SLA_WARNING_MINUTES`` before its deadline) or past its deadline, it
posts one message per task and state to ``TOPO_ALERT_WEBHOOK_URL`` (the failure alerts'
Slack-compatible webhook: task type, assignee's name and team, minutes left, the task id,
linked when ``TOPO_TASK_URL_TEMPLATE`` is set), and records it in
``analytics.sla_alerts_sent`` once the webhook accepted it. The record lives in DuckDB, so
a later run, a restart or a failed run in between never posts it again; a notification
whose post failed is posted by the next refresh.

**At least once.** Recording after the post means a process that dies between the two
posts that notification again on the next run; recording first would lose it instead, and a
missed breach costs more than a repeated one. Posting stops at the first failed post (the
webhook is down or throttling), leaving the rest to the next run.

Without a webhook nothing is posted or recorded: the run log and the asset check
``no_alerted_tasks_at_risk`` say how many tasks are at risk and breached. Notifications are
posted only when the SLA was judged recently (``as_of`` within :data:`MAX_EVALUATION_AGE`
of now): a rebuild with a past ``as_of`` in run config never posts.
"""

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from topo_pipeline.defs.alerts import post_text, redact
from topo_pipeline.defs.assets.analytics import TASK_SLA_KEY
from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.clock import Clock, utc_now
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.warehouse.schema import ensure_schema
from topo_pipeline.warehouse.sla_watch import (
    ALERT_HORIZON_MINUTES,
    BREACHED,
    Notification,
    WatchCounts,
    notifications_due,
    record_sent,
    record_watch_settings,
    sent_count,
    watch_counts,
)

SLA_ALERTS_KEY = dg.AssetKey(["analytics", "sla_alerts_sent"])

AT_RISK_CHECK = "no_alerted_tasks_at_risk"
DELIVERED_CHECK = "notifications_delivered"

MAX_NOTIFICATIONS_PER_RUN = 30
"""Posts one run makes at most; the rest wait for the next refresh (a burst stays readable
and within a chat webhook's rate limit)."""

MAX_EVALUATION_AGE = timedelta(minutes=60)
"""Notifications are posted only for an SLA evaluation (``as_of``) at most this old."""

_LOGGED = 20
"""Notifications written to the run log one by one when there is no webhook."""


def notification_text(
    notification: Notification, *, timezone: str, task_url_template: str | None = None
) -> str:
    """The chat message of one notification (Slack ``mrkdwn``; plain text reads the same)."""
    zone = ZoneInfo(timezone)
    what = " ".join(part for part in (notification.priority, notification.type) if part) or "Task"
    left = round(notification.minutes_left)
    due = _local_time(notification.sla_due_at, notification.as_of, zone)
    if notification.state == BREACHED:
        headline = (
            f":red_circle: {what} task breached its SLA: {abs(left)} min overdue "
            f"(was due {due} {timezone})"
        )
    else:
        headline = f":warning: {what} task at risk: {left} min left (due {due} {timezone})"
    lines = [headline, f"Assignee: {_assignee(notification)}"]
    if notification.business_sla_due_at is not None:
        business_left = round(notification.business_minutes_left or 0)
        business_due = _local_time(notification.business_sla_due_at, notification.as_of, zone)
        lines.append(
            f"Business hours: {business_left} min left (due {business_due})"
            if business_left >= 0
            else f"Business hours: {abs(business_left)} min overdue (was due {business_due})"
        )
    created = _local_time(notification.created_at, notification.as_of, zone)
    task = (
        f"<{task_url_template.replace('{id}', notification.id)}|{notification.id}>"
        if task_url_template
        else f"`{notification.id}`"
    )
    lines.append(f"Task {task}: {notification.status}, created {created}")
    return "\n".join(lines)


def _assignee(notification: Notification) -> str:
    if notification.assignee_user_id is None:
        return "unassigned"
    if notification.assignee_name is None:
        return f"{notification.assignee_user_id} (not in the assignee directory)"
    team = f" ({notification.team})" if notification.team else ""
    return f"{notification.assignee_name}{team}"


def _local_time(instant: datetime, as_of: datetime, zone: ZoneInfo) -> str:
    """``HH:MM`` in ``zone``, with the date when it is not ``as_of``'s day."""
    local = instant.astimezone(zone)
    if local.date() == as_of.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def hold_back_reason(evaluated_at: datetime | None, now: datetime) -> str | None:
    """Why nothing may be posted for an SLA evaluated at ``evaluated_at``, or ``None``."""
    if evaluated_at is None:
        return "analytics.task_sla has not been built yet"
    if evaluated_at < now - MAX_EVALUATION_AGE:
        return (
            f"the SLA was evaluated at {evaluated_at.isoformat()}, more than "
            f"{int(MAX_EVALUATION_AGE.total_seconds() // 60)} minutes ago (a rebuild with a "
            "past as_of, or a step that waited long): nothing is posted"
        )
    if evaluated_at > now + MAX_EVALUATION_AGE:
        return (
            f"the SLA was evaluated at {evaluated_at.isoformat()}, in the future: nothing is posted"
        )
    return None


def build_sla_alerts_asset(
    *,
    webhook_url: str | None,
    warning_minutes: int,
    priorities: Sequence[str],
    timezone: str,
    task_url_template: str | None = None,
    clock: Clock = utc_now,
) -> dg.AssetsDefinition:
    """The ``analytics/sla_alerts_sent`` asset.

    Args:
        webhook_url: ``TOPO_ALERT_WEBHOOK_URL``; ``None`` posts nothing.
        warning_minutes: ``TOPO_SLA_WARNING_MINUTES``.
        priorities: ``TOPO_SLA_ALERT_PRIORITIES``.
        timezone: ``TOPO_TIMEZONE``, for the times in the messages.
        task_url_template: ``TOPO_TASK_URL_TEMPLATE`` (``{id}`` is the task id).
        clock: the current time (posting is held back for an old ``as_of``; ``sent_at``).
    """
    priorities = tuple(priorities)
    named = ", ".join(priorities)

    @dg.asset(
        key=SLA_ALERTS_KEY,
        deps=[TASK_SLA_KEY, ASSIGNEES_KEY],
        # In a range run of topo/tasks (the CLI requires it of every selected asset).
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POOL,
        kinds={"duckdb"},
        group_name="alerts",
        check_specs=[
            dg.AssetCheckSpec(
                AT_RISK_CHECK,
                asset=SLA_ALERTS_KEY,
                description=(
                    f"No open {named} task is within {warning_minutes} minutes of its SLA "
                    f"deadline or breached it in the last {ALERT_HORIZON_MINUTES // 60} hours, "
                    "at the last refresh (analytics.sla_watch); warns with the counts."
                ),
            ),
            dg.AssetCheckSpec(
                DELIVERED_CHECK,
                asset=SLA_ALERTS_KEY,
                description=(
                    "Every notification due was posted to TOPO_ALERT_WEBHOOK_URL (the rest "
                    "are posted by the next refresh)."
                ),
            ),
        ],
        description=(
            "SLA notifications, one row per task and state (WARNING, BREACHED) posted to "
            f"TOPO_ALERT_WEBHOOK_URL, in DuckDB table analytics.sla_alerts_sent: open {named} "
            f"tasks {warning_minutes} minutes before their deadline and once past it, from "
            "analytics.sla_watch. Each is posted once, recorded after the webhook accepted it "
            "(at least once)."
        ),
    )
    def sla_alerts_sent(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        with user_errors("analytics/sla_alerts_sent"):
            now = clock()
            with warehouse.get_connection() as con:
                ensure_schema(con)
                record_watch_settings(
                    con, warning_minutes=warning_minutes, priorities=priorities, at=now
                )
                counts = watch_counts(con, priorities)
                due = notifications_due(con, priorities)
                _log_counts(context, counts, named, warning_minutes)
                held_back = hold_back_reason(counts.evaluated_at, now) if due else None
                secrets = [os.environ.get(API_KEY_ENV, "")]
                texts = [
                    redact(
                        notification_text(
                            n, timezone=timezone, task_url_template=task_url_template
                        ),
                        secrets,
                    )
                    for n in due
                ]
                delivery = Delivery(due=len(due), webhook=bool(webhook_url), held_back=held_back)
                if held_back:
                    context.log.warning("%d notification(s) due; %s", len(due), held_back)
                elif due and not webhook_url:
                    context.log.warning(
                        "%d notification(s) due; TOPO_ALERT_WEBHOOK_URL is not set, so none "
                        "is posted:\n%s",
                        len(due),
                        "\n".join(text.splitlines()[0] for text in texts[:_LOGGED]),
                    )
                elif webhook_url:
                    for notification, text in list(zip(due, texts, strict=True))[
                        :MAX_NOTIFICATIONS_PER_RUN
                    ]:
                        if not _post(context, webhook_url, notification, text):
                            delivery = dataclasses.replace(delivery, failed=True)
                            break
                        record_sent(con, notification, sent_at=clock())
                        delivery = dataclasses.replace(delivery, posted=delivery.posted + 1)
                recorded = sent_count(con)
            metadata: dict[str, object] = {
                "dagster/row_count": recorded,
                "notifications_due": delivery.due,
                "notifications_posted": delivery.posted,
                "notifications_waiting": delivery.waiting,
                "webhook_configured": delivery.webhook,
                "at_risk": counts.at_risk,
                "recently_breached": counts.recently_breached,
            }
            if counts.evaluated_at:
                metadata["as_of"] = dg.MetadataValue.timestamp(counts.evaluated_at)
            return dg.MaterializeResult(
                metadata=metadata,
                check_results=[
                    _at_risk_result(counts, named, warning_minutes),
                    _delivered_result(delivery),
                ],
            )

    return sla_alerts_sent


def _post(
    context: dg.AssetExecutionContext, url: str, notification: Notification, text: str
) -> bool:
    """Post one notification; ``False`` (logged, never the URL) if the webhook failed."""
    try:
        post_text(url, text)
    except OSError as error:
        # Never the URL: a Slack webhook URL is itself a credential.
        context.log.error(
            "could not post the %s notification of task %s to TOPO_ALERT_WEBHOOK_URL (%s); "
            "the next refresh posts it",
            notification.state,
            notification.id,
            type(error).__name__,
        )
        return False
    context.log.info("posted %s for task %s", notification.state, notification.id)
    return True


def _log_counts(
    context: dg.AssetExecutionContext, counts: WatchCounts, named: str, warning_minutes: int
) -> None:
    context.log.info(
        "SLA watch (%s, as of %s): %d at risk (within %d minutes of the deadline), %d breached "
        "in the last %d hours, %d breached in all",
        named,
        counts.evaluated_at.isoformat() if counts.evaluated_at else "never evaluated",
        counts.at_risk,
        warning_minutes,
        counts.recently_breached,
        ALERT_HORIZON_MINUTES // 60,
        counts.breached,
    )


def _at_risk_result(counts: WatchCounts, named: str, warning_minutes: int) -> dg.AssetCheckResult:
    passed = counts.at_risk == 0 and counts.recently_breached == 0
    return dg.AssetCheckResult(
        check_name=AT_RISK_CHECK,
        asset_key=SLA_ALERTS_KEY,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "at_risk": counts.at_risk,
            "recently_breached": counts.recently_breached,
            "breached_in_all": counts.breached,
            "warning_minutes": warning_minutes,
        },
        description=(
            f"No open {named} task at risk or recently breached."
            if passed
            else f"{counts.at_risk} open {named} task(s) within {warning_minutes} minutes of "
            f"their deadline and {counts.recently_breached} breached in the last "
            f"{ALERT_HORIZON_MINUTES // 60} hours: see analytics.sla_watch."
        ),
    )


@dataclass(frozen=True)
class Delivery:
    """What one run did with the notifications due."""

    due: int
    webhook: bool
    held_back: str | None = None
    posted: int = 0
    failed: bool = False

    @property
    def waiting(self) -> int:
        """Due but not posted, left to the next refresh (0 without a webhook or held back)."""
        return self.due - self.posted if self.webhook and not self.held_back else 0


def _delivered_result(delivery: Delivery) -> dg.AssetCheckResult:
    if delivery.held_back:
        description = f"Nothing posted: {delivery.held_back}."
    elif not delivery.webhook:
        description = (
            f"TOPO_ALERT_WEBHOOK_URL is not set: {delivery.due} notification(s) due, not posted."
        )
    elif delivery.waiting:
        description = (
            f"{delivery.posted} of {delivery.due} notification(s) posted"
            + (", then a post failed" if delivery.failed else "")
            + f"; the next refresh posts the other {delivery.waiting}."
        )
    else:
        description = f"{delivery.posted} notification(s) posted."
    return dg.AssetCheckResult(
        check_name=DELIVERED_CHECK,
        asset_key=SLA_ALERTS_KEY,
        passed=delivery.waiting == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"due": delivery.due, "posted": delivery.posted, "waiting": delivery.waiting},
        description=description,
    )
