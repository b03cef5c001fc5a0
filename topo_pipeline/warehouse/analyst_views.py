"""Views for the analyst guide's most common questions, in schema ``analytics``.

* ``analytics.daily_by_priority``: SLA attainment and completion rate per creation day and
  priority, a row for every calendar day from the first to the last partition and every
  priority, zero-filled on days without tasks (the rollup tables have no such rows).
* ``analytics.open_tasks_past_due``: open tasks already past their SLA deadline, judged
  against ``now()`` when queried.

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

ANALYST_VIEWS: tuple[View, ...] = (DAILY_BY_PRIORITY, OPEN_TASKS_PAST_DUE)
"""The views, in creation order."""
