-- Open HOT tasks (PENDING or IN_PROGRESS when last fetched) whose due time is before
-- $now + $near_minutes, from analytics.task_sla: most overdue first, at most $limit rows,
-- each with the totals past due and due soon.
SELECT
    s.id,
    s.partition_date,
    s.status,
    s.assignee_user_id,
    a.name AS assignee_name,
    a.team,
    s.created_at,
    s.sla_due_at,
    (epoch_us($now::TIMESTAMPTZ) - epoch_us(s.sla_due_at)) / 60000000.0 AS minutes_past_due,
    count(*) FILTER (WHERE s.sla_due_at <= $now::TIMESTAMPTZ) OVER () AS past_due,
    count(*) FILTER (WHERE s.sla_due_at > $now::TIMESTAMPTZ) OVER () AS due_soon
FROM warehouse.analytics.task_sla AS s
LEFT JOIN warehouse.reference.assignees AS a ON a.user_id = s.assignee_user_id
WHERE s.priority = 'HOT'
  AND s.status IN ('PENDING', 'IN_PROGRESS')
  AND s.sla_due_at <= $now::TIMESTAMPTZ + to_minutes($near_minutes::BIGINT)
ORDER BY s.sla_due_at, s.id
LIMIT $limit;
