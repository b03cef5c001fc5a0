"""Views for the analyst guide's most common questions, in schema ``analytics``.

* ``analytics.daily_by_priority``: SLA attainment and completion rate per creation day and
  priority, a row for every calendar day from the first to the last partition and every
  priority, zero-filled on days without tasks (the rollup tables have no such rows).
* ``analytics.open_tasks_past_due``: open tasks already past their SLA deadline, judged
  against ``now()`` when queried.
* ``analytics.sla_watch``: open tasks within the warning window of their deadline or past
  it, judged at the last refresh's ``as_of``, with their assignee's name and team (what the
  SLA notifications of :mod:`~topo_pipeline.warehouse.sla_watch` are sent from).

They are declarations (:class:`~topo_pipeline.warehouse.tables.View`) that
:mod:`topo_pipeline.warehouse.schema` creates with the tables, so the pipeline's file
holds them and every publish copies them. Their ``SELECT`` is in
``sql/<view>_view.sql``. Nothing here imports Dagster.
"""

from __future__ import annotations

from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.tables import PARTITION_ZONE, View

"""Restated with the zone's name at every publish (:mod:`~.pipeline_info`)."""

DAILY_BY_PRIORITY = View(
    "analytics",
    "daily_by_priority",
    "SLA attainment and completion rate per creation day and priority, with a row for every "
    "calendar day from the first to the last partition_date in topo.tasks and every priority "
    "(configured or seen): counts are 0 on a day without tasks of that priority, rates NULL. "
    "From analytics.sla_by_priority and analytics.completion_rate_by_priority; partition_date "
    f"is the day the tasks were created in {PARTITION_ZONE}.",
    load_sql("daily_by_priority_view"),
    (
        (
            "partition_date",
            f"Calendar day the tasks were created in {PARTITION_ZONE}; "
            "every day of the range is present.",
        ),
        (
            "priority",
            "Priority: every configured one (topo.pipeline_info.sla_target_minutes) and every "
            "one seen; NULL is the group of tasks without priority.",
        ),
        ("tasks", "Tasks created that day with that priority, every status; 0 when none."),
        ("completed", "Of those, status COMPLETED; 0 when none."),
        ("skipped", "Of those, status SKIPPED; 0 when none."),
        ("open", "Of those, status PENDING or IN_PROGRESS (overdue ones included); 0 when none."),
        ("met", "Of those, sla_status MET; 0 when none."),
        (
            "breached",
            "Of those, sla_status BREACHED (completed late, or open past due at as_of); 0 when "
            "none.",
        ),
        (
            "sla_attainment",
            "met / (met + breached); NULL when met + breached = 0 (no tasks, or none with a "
            "verdict yet).",
        ),
        ("completion_rate", "completed / tasks; NULL when tasks = 0."),
        ("skip_rate", "skipped / tasks; NULL when tasks = 0."),
    ),
)

OPEN_TASKS_PAST_DUE = View(
    "analytics",
    "open_tasks_past_due",
    "Open tasks (PENDING or IN_PROGRESS when last fetched) already past their SLA deadline "
    "now, when you query, most overdue first. Live: compared with now(), not with as_of, so "
    "it also lists tasks that were still OPEN when the SLA was evaluated. Tasks without an "
    "SLA target are not listed.",
    load_sql("open_tasks_past_due_view"),
    (
        ("id", "Task id, as in topo.tasks."),
        ("partition_date", f"Day the task was created in {PARTITION_ZONE}."),
        ("priority", "HOT, TODAY, EXTRA (Topo may add values)."),
        ("type", "CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW (Topo may add values)."),
        ("status", "PENDING or IN_PROGRESS when last fetched (see status_loaded_at)."),
        ("assignee_user_id", "Assigned user; NULL = unassigned."),
        ("created_at", "When Topo created the task; the SLA clock starts here."),
        ("sla_due_at", "created_at + the SLA target of its priority."),
        ("minutes_overdue", "Minutes from sla_due_at to now (when queried), to one decimal."),
        (
            "status_loaded_at",
            "When the task was last fetched from Topo (topo.tasks.loaded_at): it may have been "
            "done since.",
        ),
    ),
)

SLA_WATCH = View(
    "analytics",
    "sla_watch",
    "Open tasks (PENDING or IN_PROGRESS at the last refresh) whose SLA deadline is past, or "
    "within the warning window (analytics.sla_watch_settings.warning_minutes, "
    "TOPO_SLA_WARNING_MINUTES) of as_of: at risk first, closest to their deadline first, "
    "then the breached ones, most recent first. Judged at analytics.task_sla.as_of (the last "
    "refresh; today's partition is refreshed every few minutes), on the wall-clock deadline "
    "and, where business hours are configured, the business-hours one. Every priority is "
    "listed; the notifications cover TOPO_SLA_ALERT_PRIORITIES (analytics.sla_alerts_sent).",
    load_sql("sla_watch_view"),
    (
        ("id", "Task id, as in topo.tasks."),
        ("partition_date", f"Day the task was created in {PARTITION_ZONE}."),
        ("priority", "HOT, TODAY, EXTRA (Topo may add values)."),
        ("type", "CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW (Topo may add values)."),
        ("status", "PENDING or IN_PROGRESS at the last refresh."),
        ("assignee_user_id", "Assigned user; NULL = unassigned."),
        (
            "assignee_name",
            "The assignee's name from reference.assignees; NULL when unassigned or not in the "
            "directory.",
        ),
        ("team", "The assignee's team from reference.assignees; NULL likewise."),
        ("created_at", "When Topo created the task; the SLA clock starts here."),
        ("sla_due_at", "The wall-clock deadline: created_at + the SLA target of its priority."),
        (
            "minutes_left",
            "Minutes from as_of to sla_due_at, to one decimal; negative once breached.",
        ),
        (
            "watch_state",
            "BREACHED: past sla_due_at at as_of (sla_status BREACHED); WARNING: due within "
            "warning_minutes of as_of. NULL only when the task is listed for its "
            "business-hours deadline alone.",
        ),
        (
            "business_sla_due_at",
            "The business-hours deadline (TOPO_BUSINESS_HOURS); NULL when not configured.",
        ),
        (
            "business_minutes_left",
            "Minutes from as_of to business_sla_due_at, to one decimal; negative once breached; "
            "NULL when business hours are not configured.",
        ),
        (
            "business_watch_state",
            "watch_state judged against business_sla_due_at: BREACHED, WARNING, or NULL when "
            "neither (or business hours are not configured).",
        ),
        ("as_of", "When the SLA was evaluated: the last refresh's time (analytics.task_sla)."),
        ("warning_minutes", "The warning window in force, in minutes."),
    ),
)

ANALYST_VIEWS: tuple[View, ...] = (DAILY_BY_PRIORITY, OPEN_TASKS_PAST_DUE, SLA_WATCH)
"""The views, in creation order."""
