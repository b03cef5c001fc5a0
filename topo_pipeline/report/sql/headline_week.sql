-- The headline numbers of the days $first..$last (DATE, one week), pooled over the days:
-- HOT tasks met and breached, tasks and completed ones (every priority), and tasks still
-- open (PENDING or IN_PROGRESS) past their due time when the SLA was evaluated (as_of).
SELECT
    (SELECT coalesce(sum(met), 0) FROM warehouse.analytics.sla_by_priority
     WHERE priority = 'HOT' AND partition_date BETWEEN $first::DATE AND $last::DATE) AS hot_met,
    (SELECT coalesce(sum(breached), 0) FROM warehouse.analytics.sla_by_priority
     WHERE priority = 'HOT' AND partition_date BETWEEN $first::DATE AND $last::DATE)
        AS hot_breached,
    (SELECT coalesce(sum(tasks), 0) FROM warehouse.analytics.completion_rate_by_priority
     WHERE partition_date BETWEEN $first::DATE AND $last::DATE) AS tasks,
    (SELECT coalesce(sum(completed), 0) FROM warehouse.analytics.completion_rate_by_priority
     WHERE partition_date BETWEEN $first::DATE AND $last::DATE) AS completed,
    (SELECT count(*) FROM warehouse.analytics.task_sla
     WHERE partition_date BETWEEN $first::DATE AND $last::DATE
       AND status IN ('PENDING', 'IN_PROGRESS') AND sla_status = 'BREACHED') AS open_past_due,
    (SELECT count(DISTINCT partition_date) FROM warehouse.analytics.task_sla
     WHERE partition_date BETWEEN $first::DATE AND $last::DATE) AS days_with_tasks;
