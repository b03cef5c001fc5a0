-- analytics.open_tasks_past_due: open tasks past their SLA deadline now (a view's SELECT).
-- Names are unqualified: a view resolves them in its own file, whatever its catalog.
SELECT
    sla.id,
    sla.partition_date,
    sla.priority,
    sla.type,
    sla.status,
    sla.assignee_user_id,
    sla.created_at,
    sla.sla_due_at,
    round((epoch(now()) - epoch(sla.sla_due_at)) / 60, 1) AS minutes_overdue,
    tasks.loaded_at AS status_loaded_at
FROM analytics.task_sla AS sla
JOIN topo.tasks AS tasks USING (id)
WHERE sla.status IN ('PENDING', 'IN_PROGRESS')
  AND sla.sla_due_at < now()
ORDER BY sla.sla_due_at, sla.id
