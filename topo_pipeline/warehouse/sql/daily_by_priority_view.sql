-- analytics.daily_by_priority: every calendar day and priority, zero-filled (a view's SELECT).
-- Template: <catalog> is empty, so names resolve in the view's own file whatever its
-- catalog, or a catalog name and a dot where the file's name clashes with a schema
-- (warehouse/file_names.py).
WITH days AS (
    SELECT unnest(generate_series(min(partition_date), max(partition_date), INTERVAL 1 DAY))::DATE
        AS partition_date
    FROM {catalog}topo.tasks
),
priorities AS (
    SELECT DISTINCT priority FROM {catalog}analytics.task_sla
    UNION
    SELECT unnest(map_keys(sla_target_minutes)) FROM {catalog}topo.pipeline_info
)
SELECT
    days.partition_date,
    priorities.priority,
    coalesce(rate.tasks, 0) AS tasks,
    coalesce(rate.completed, 0) AS completed,
    coalesce(rate.skipped, 0) AS skipped,
    coalesce(sla.open, 0) AS open,
    coalesce(sla.met, 0) AS met,
    coalesce(sla.breached, 0) AS breached,
    sla.sla_attainment,
    rate.completion_rate,
    rate.skip_rate
FROM days
CROSS JOIN priorities
LEFT JOIN {catalog}analytics.sla_by_priority AS sla
    ON sla.partition_date = days.partition_date
    AND sla.priority IS NOT DISTINCT FROM priorities.priority
LEFT JOIN {catalog}analytics.completion_rate_by_priority AS rate
    ON rate.partition_date = days.partition_date
    AND rate.priority IS NOT DISTINCT FROM priorities.priority
ORDER BY days.partition_date, priorities.priority NULLS LAST
