-- analytics.sla_watch: open tasks at risk of missing, or past, their SLA deadline at the last
-- refresh (a view's SELECT). The warning window is analytics.sla_watch_settings' (written by
-- every run of analytics/sla_alerts_sent); 15 minutes, TOPO_SLA_WARNING_MINUTES' default,
-- until one ran. Everything is judged at analytics.task_sla.as_of, as sla_status is.
-- Template: <catalog> is empty, so names resolve in the view's own file whatever its
-- catalog, or a catalog name and a dot where the file's name clashes with a schema
-- (warehouse/file_names.py).
WITH watch AS (
    SELECT coalesce(max(warning_minutes), 15) AS warning_minutes
    FROM {catalog}analytics.sla_watch_settings
),
open_tasks AS (
    SELECT
        sla.*,
        watch.warning_minutes,
        sla.as_of + to_minutes(watch.warning_minutes) AS warning_from
    FROM {catalog}analytics.task_sla AS sla
    CROSS JOIN watch
    WHERE sla.status IN ('PENDING', 'IN_PROGRESS')
)
SELECT
    t.id,
    t.partition_date,
    t.priority,
    t.type,
    t.status,
    t.assignee_user_id,
    a.name AS assignee_name,
    a.team,
    t.created_at,
    t.sla_due_at,
    round((epoch(t.sla_due_at) - epoch(t.as_of)) / 60, 1) AS minutes_left,
    CASE
        WHEN t.as_of > t.sla_due_at THEN 'BREACHED'
        WHEN t.sla_due_at <= t.warning_from THEN 'WARNING'
    END AS watch_state,
    t.business_sla_due_at,
    round((epoch(t.business_sla_due_at) - epoch(t.as_of)) / 60, 1) AS business_minutes_left,
    CASE
        WHEN t.as_of > t.business_sla_due_at THEN 'BREACHED'
        WHEN t.business_sla_due_at <= t.warning_from THEN 'WARNING'
    END AS business_watch_state,
    t.as_of,
    t.warning_minutes
FROM open_tasks AS t
LEFT JOIN {catalog}reference.assignees AS a ON a.user_id = t.assignee_user_id
-- A business-hours deadline is never earlier than the wall-clock one; both are named so
-- that the rule reads as documented.
WHERE t.sla_due_at <= t.warning_from OR t.business_sla_due_at <= t.warning_from
ORDER BY t.as_of > t.sla_due_at, abs(epoch(t.sla_due_at) - epoch(t.as_of)), t.id
