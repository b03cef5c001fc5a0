"""Live refreshes of today and the SLA notifications, end to end on a driven clock.

A simulated Topo whose users keep creating and answering tasks (``LiveTraffic``), the live
refresh sensor's run requests executed as the daemon would launch them every ten minutes
of simulated time, and a webhook receiver standing in for the chat: a HOT task nobody
answers is notified once when it enters the warning window and once when it breaches, at
the refreshes where that happens; ``analytics.sla_watch`` lists it; a task answered in time
gets no breach; a failed refresh or webhook loses nothing; a restart repeats nothing. For
the live refresh itself, the day's completeness and the day's final results:
``test_live_refresh.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from topo_pipeline.defs.assets.sla_alerts import (
    AT_RISK_CHECK,
    DELIVERED_CHECK,
    hold_back_reason,
    notification_text,
)
from topo_pipeline.settings import API_KEY_ENV
from topo_pipeline.simulator import DEMO_API_KEY
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.sla_watch import Notification, sent_notifications
from topo_pipeline_tests.harness import fresh_instance
from topo_pipeline_tests.live_harness import MORNING, NAMED, Live, live_pipeline, minutes
from topo_pipeline_tests.webhook import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def live(pipeline_factory: Callable[..., Live], receiver: WebhookReceiver) -> Live:
    return live_pipeline(pipeline_factory, receiver)


@pytest.mark.slow  # many runs on a driven clock
def test_a_hot_task_nobody_answers_is_notified_once_at_risk_and_once_breached(
    live: Live,
) -> None:
    assert live.traffic is not None
    unanswered = live.traffic.add(
        created_at=MORNING + minutes(2), priority="HOT", type="CALL", assignee_user_id=NAMED
    )["id"]  # due 10:02
    answered = live.traffic.add(
        created_at=MORNING + minutes(5), priority="HOT", type="EMAIL_REPLY"
    )["id"]  # due 10:05

    for m in range(10, 50, 10):
        live.refresh(MORNING + minutes(m))
    assert live.notified(unanswered) == []  # 22 minutes left at 09:40: not yet at risk
    assert unanswered not in live.watch()

    live.refresh(MORNING + minutes(50))  # 12 minutes left
    assert live.notified(unanswered) == [
        ":warning: HOT CALL task at risk: 12 min left (due 10:02 UTC)"
    ]
    (text,) = [b["text"] for b in live.receiver.received() if unanswered in b["text"]]
    assert "Assignee: Maya Chen (Enterprise)" in text
    assert f"<https://app.topo.example/tasks/{unanswered}|{unanswered}>" in text
    # Listed with its name and team, in the pipeline's file and in the analyst copy.
    row = live.watch()[unanswered]
    assert (row["watch_state"], row["minutes_left"]) == ("WARNING", 12.0)
    assert (row["assignee_name"], row["team"], row["priority"], row["type"]) == (
        "Maya Chen",
        "Enterprise",
        "HOT",
        "CALL",
    )
    assert row["as_of"] == MORNING + minutes(50)
    assert live.watch(live.settings.analyst_duckdb_path)[unanswered]["watch_state"] == "WARNING"
    # The other HOT task is at risk too (15 minutes left), then answered in time.
    assert live.notified(answered) == [
        ":warning: HOT EMAIL_REPLY task at risk: 15 min left (due 10:05 UTC)"
    ]
    live.traffic.answer(answered, MORNING + minutes(58))

    live.refresh(MORNING + minutes(60))  # 2 minutes left: still at risk, nothing new
    assert len(live.notified(unanswered)) == 1
    assert answered not in live.watch()

    result = live.refresh(MORNING + minutes(70))  # 8 minutes past its deadline
    assert live.notified(unanswered)[1:] == [
        ":red_circle: HOT CALL task breached its SLA: 8 min overdue (was due 10:02 UTC)"
    ]
    assert live.watch()[unanswered]["watch_state"] == "BREACHED"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[AT_RISK_CHECK].passed  # one HOT task breached in the last 24 hours
    assert checks[AT_RISK_CHECK].metadata["recently_breached"].value >= 1
    assert checks[DELIVERED_CHECK].passed

    for m in (80, 90):
        live.refresh(MORNING + minutes(m))
    assert len(live.notified(unanswered)) == 2
    assert live.notified(answered) == [live.notified(answered)[0]]  # never breached

    # Answered at last: it leaves the watch, and nothing more is said about it.
    live.traffic.answer(unanswered, MORNING + minutes(95))
    live.refresh(MORNING + minutes(100))
    assert unanswered not in live.watch()
    assert len(live.notified(unanswered)) == 2
    with connect(live.settings.duckdb_path, read_only=True) as con:
        sent = sent_notifications(con)
    assert {s for s in sent if s[0] in (unanswered, answered)} == {
        (unanswered, "WARNING"),
        (answered, "WARNING"),
        (unanswered, "BREACHED"),
    }
    # Every notification of the morning went out once per task and state.
    assert len(sent) == len(set(sent)) == len(live.receiver.received())


@pytest.mark.slow  # many runs on a driven clock
def test_a_failed_refresh_or_webhook_loses_nothing_and_a_restart_repeats_nothing(
    live: Live, monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver
) -> None:
    assert live.traffic is not None
    task = live.traffic.add(
        created_at=MORNING + minutes(2), priority="HOT", type="CALL", assignee_user_id=NAMED
    )["id"]
    live.refresh(MORNING + minutes(40))

    # 09:50: Topo rejects the key, the refresh fails: nothing is judged or posted.
    monkeypatch.setenv(API_KEY_ENV, "revoked-key")
    live.refresh(MORNING + minutes(50), expect_success=False)
    monkeypatch.setenv(API_KEY_ENV, DEMO_API_KEY)
    assert live.notified(task) == []

    # 10:00: the webhook is down: the warning is not recorded as sent ...
    reachable = live.settings
    live.settings = reachable.model_copy(
        update={"alert_webhook_url": "http://127.0.0.1:9/unreachable"}
    )
    result = live.refresh(MORNING + minutes(60))
    (delivered,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == DELIVERED_CHECK
    ]
    assert not delivered.passed
    assert live.notified(task) == []

    # ... so the next refresh posts it, once.
    live.settings = reachable
    live.refresh(MORNING + minutes(61))
    assert live.notified(task) == [":warning: HOT CALL task at risk: 1 min left (due 10:02 UTC)"]

    # 10:10 on a restarted Dagster (a new instance, the same DuckDB file): the breach, once.
    with fresh_instance() as restarted:
        live.instance = restarted
        live.refresh(MORNING + minutes(70))
        live.refresh(MORNING + minutes(80))
    assert live.notified(task)[1:] == [
        ":red_circle: HOT CALL task breached its SLA: 8 min overdue (was due 10:02 UTC)"
    ]


def test_a_task_breached_unseen_gets_the_breach_alone(live: Live) -> None:
    assert live.traffic is not None
    task = live.traffic.add(
        created_at=MORNING + minutes(2), priority="HOT", type="CALL", assignee_user_id=NAMED
    )["id"]
    live.refresh(MORNING + minutes(40))
    live.refresh(MORNING + minutes(75))  # the refreshes in between did not happen
    assert live.notified(task) == [
        ":red_circle: HOT CALL task breached its SLA: 13 min overdue (was due 10:02 UTC)"
    ]


def test_the_first_run_posts_what_is_at_risk_not_the_backlog_it_finds(live: Live) -> None:
    assert live.traffic is not None
    backlog = live.traffic.add(created_at=MORNING - minutes(120), priority="HOT", type="CALL")[
        "id"
    ]  # due 08:00, an hour before the pipeline first watched
    at_risk = live.traffic.add(created_at=MORNING - minutes(50), priority="HOT", type="CALL")[
        "id"
    ]  # due 09:10
    live.refresh(MORNING)
    assert live.watch()[backlog]["watch_state"] == "BREACHED"  # listed all the same
    assert live.notified(backlog) == []
    assert live.notified(at_risk) == [
        ":warning: HOT CALL task at risk: 10 min left (due 09:10 UTC)"
    ]
    live.refresh(MORNING + minutes(20))
    assert live.notified(backlog) == []
    assert live.notified(at_risk)[1:] == [
        ":red_circle: HOT CALL task breached its SLA: 10 min overdue (was due 09:10 UTC)"
    ]


# -- the message and when it is held back -------------------------------------------------


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "id": "0d6f6c5e-1111-4a4a-8b8b-222233334444",
        "state": "WARNING",
        "partition_date": MORNING.date(),
        "priority": "HOT",
        "type": "LINKEDIN_REPLY",
        "status": "IN_PROGRESS",
        "assignee_user_id": NAMED,
        "assignee_name": "Maya Chen",
        "team": None,
        "created_at": MORNING,
        "sla_due_at": MORNING + minutes(60),
        "minutes_left": 9.6,
        "business_sla_due_at": None,
        "business_minutes_left": None,
        "as_of": MORNING + minutes(50),
    }
    values.update(overrides)
    return Notification(**values)


@pytest.mark.parametrize(
    ("overrides", "timezone", "lines"),
    [
        (
            {},
            "UTC",
            [
                ":warning: HOT LINKEDIN_REPLY task at risk: 10 min left (due 10:00 UTC)",
                "Assignee: Maya Chen",
                "Task `0d6f6c5e-1111-4a4a-8b8b-222233334444`: IN_PROGRESS, created 09:00",
            ],
        ),
        (
            # Times in the pipeline's zone; a deadline on another day names its date.
            {
                "state": "BREACHED",
                "minutes_left": -75.2,
                "sla_due_at": datetime(2026, 3, 9, 23, 30, tzinfo=UTC),
                "assignee_name": None,
            },
            "Europe/Berlin",
            [
                ":red_circle: HOT LINKEDIN_REPLY task breached its SLA: 75 min overdue "
                "(was due 00:30 Europe/Berlin)",
                f"Assignee: {NAMED} (not in the assignee directory)",
                "Task `0d6f6c5e-1111-4a4a-8b8b-222233334444`: IN_PROGRESS, created 10:00",
            ],
        ),
        (
            {
                "assignee_user_id": None,
                "assignee_name": None,
                "business_sla_due_at": datetime(2026, 3, 11, 9, 30, tzinfo=UTC),
                "business_minutes_left": 1420.0,
            },
            "UTC",
            [
                ":warning: HOT LINKEDIN_REPLY task at risk: 10 min left (due 10:00 UTC)",
                "Assignee: unassigned",
                "Business hours: 1420 min left (due 2026-03-11 09:30)",
                "Task `0d6f6c5e-1111-4a4a-8b8b-222233334444`: IN_PROGRESS, created 09:00",
            ],
        ),
    ],
)
def test_the_message_names_what_a_manager_acts_on(
    overrides: dict[str, Any], timezone: str, lines: list[str]
) -> None:
    text = notification_text(notification(**overrides), timezone=timezone)
    assert text.splitlines() == lines


def test_notifications_are_held_back_for_an_old_or_future_evaluation() -> None:
    now = MORNING + minutes(50)
    assert hold_back_reason(now - minutes(59), now) is None
    assert "more than 60 minutes ago" in (hold_back_reason(now - minutes(61), now) or "")
    assert "in the future" in (hold_back_reason(now + minutes(61), now) or "")
    assert "not been built" in (hold_back_reason(None, now) or "")


def test_a_rebuild_with_a_past_as_of_posts_nothing(live: Live) -> None:
    assert live.traffic is not None
    task = live.traffic.add(created_at=MORNING + minutes(2), priority="HOT")["id"]
    live.refresh(MORNING + minutes(40))  # not at risk yet
    live.traffic.advance(MORNING + minutes(50))
    # A day later someone recomputes 09:50 (run config as_of): the SLA is judged then, the
    # task is at risk in it, but nothing is posted for a past evaluation.
    request = dg.RunRequest(partition_key=MORNING.date().isoformat())
    result = live.run(request, MORNING + minutes(50), now=MORNING + timedelta(days=1))
    assert live.watch()[task]["watch_state"] == "WARNING"
    assert live.notified(task) == []
    (delivered,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == DELIVERED_CHECK
    ]
    assert "more than 60 minutes ago" in (delivered.description or "")
