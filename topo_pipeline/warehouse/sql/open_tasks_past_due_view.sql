-- analytics.open_tasks_past_due: open tasks past their SLA deadline now (a view's SELECT).
-- Template: <catalog> is empty, so names resolve in the view's own file whatever its
-- catalog, or a catalog name and a dot where the file's name clashes with a schema
-- (warehouse/file_names.py).
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
FROM {catalog}analytics.task_sla AS sla
JOIN {catalog}topo.tasks AS tasks USING (id)
WHERE sla.status IN ('PENDING', 'IN_PROGRESS')
  AND sla.sla_due_at < now()
ORDER BY sla.sla_due_at, sla.id
