-- analytics.daily_by_priority: every calendar day and priority, zero-filled (a view's SELECT).
-- Names are unqualified: a view resolves them in its own file, whatever its catalog.
WITH days AS (
    SELECT unnest(generate_series(min(partition_date), max(partition_date), INTERVAL 1 DAY))::DATE
        AS partition_date
    FROM topo.tasks
),
priorities AS (
    SELECT DISTINCT priority FROM analytics.task_sla
    UNION
    SELECT unnest(map_keys(sla_target_minutes)) FROM topo.pipeline_info
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
LEFT JOIN analytics.sla_by_priority AS sla
    ON sla.partition_date = days.partition_date
    AND sla.priority IS NOT DISTINCT FROM priorities.priority
LEFT JOIN analytics.completion_rate_by_priority AS rate
    ON rate.partition_date = days.partition_date
    AND rate.priority IS NOT DISTINCT FROM priorities.priority
ORDER BY days.partition_date, priorities.priority NULLS LAST
