-- SLA outcome per (partition_date, assignee_user_id) of the given partitions, from analytics.task_sla
-- so the rollup always agrees with the per-task rows. GROUP BY keeps NULL assignee_user_id as its own
-- group, and a group exists only if it has a task, so empty partitions get no rows.
-- $partition_dates: DATE[].
INSERT INTO warehouse.analytics.sla_by_assignee (
    partition_date, assignee_user_id, tasks, completed, skipped, open, met, breached, sla_attainment,
    median_minutes_to_complete, p90_minutes_to_complete, as_of
)
SELECT
    partition_date,
    assignee_user_id,
    count(*) AS tasks,
    count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
    count(*) FILTER (WHERE status = 'SKIPPED') AS skipped,
    count(*) FILTER (WHERE status IN ('PENDING', 'IN_PROGRESS')) AS open,
    count(*) FILTER (WHERE sla_status = 'MET') AS met,
    count(*) FILTER (WHERE sla_status = 'BREACHED') AS breached,
    (count(*) FILTER (WHERE sla_status = 'MET'))::DOUBLE
        / NULLIF(count(*) FILTER (WHERE sla_status IN ('MET', 'BREACHED')), 0) AS sla_attainment,
    -- quantile_cont skips NULLs, so a COMPLETED task without completed_at does not count.
    quantile_cont(minutes_to_complete, 0.5) FILTER (WHERE status = 'COMPLETED')
        AS median_minutes_to_complete,
    quantile_cont(minutes_to_complete, 0.9) FILTER (WHERE status = 'COMPLETED')
        AS p90_minutes_to_complete,
    -- One replace_task_sla run writes a whole partition with one as_of; max() is that value.
    max(as_of) AS as_of
FROM warehouse.analytics.task_sla
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date, assignee_user_id;
