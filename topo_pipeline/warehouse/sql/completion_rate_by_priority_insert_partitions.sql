-- Task outcomes per (partition_date, priority) of the given partitions, from
-- analytics.task_sla so the rollup always agrees with the per-task rows. GROUP BY keeps NULL
-- priority as its own group, and a group exists only if it has a task, so empty partitions
-- get no rows. $partition_dates: DATE[].
INSERT INTO warehouse.analytics.completion_rate_by_priority (
    partition_date, priority, tasks, completed, skipped, pending, in_progress, completion_rate,
    skip_rate
)
SELECT
    partition_date,
    priority,
    count(*) AS tasks,
    count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
    count(*) FILTER (WHERE status = 'SKIPPED') AS skipped,
    count(*) FILTER (WHERE status = 'PENDING') AS pending,
    count(*) FILTER (WHERE status = 'IN_PROGRESS') AS in_progress,
    -- NULLIF cannot trigger while every group has a task; it keeps the rate NULL, not an
    -- error, should that ever change.
    (count(*) FILTER (WHERE status = 'COMPLETED'))::DOUBLE / NULLIF(count(*), 0)
        AS completion_rate,
    (count(*) FILTER (WHERE status = 'SKIPPED'))::DOUBLE / NULLIF(count(*), 0) AS skip_rate
FROM warehouse.analytics.task_sla
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date, priority;
