-- Per assignee over the days $first..$last (DATE): SLA outcomes and completion, pooled,
-- worst SLA attainment first (no verdict last); at most $limit rows, each with the total
-- number of assignees. NULL assignee: unassigned tasks.
WITH sla AS (
    SELECT
        assignee_user_id,
        any_value(assignee_name) AS assignee_name,
        any_value(team) AS team,
        sum(tasks) AS tasks,
        sum(met) AS met,
        sum(breached) AS breached
    FROM warehouse.analytics.sla_by_assignee
    WHERE partition_date BETWEEN $first::DATE AND $last::DATE
    GROUP BY assignee_user_id
),
completion AS (
    SELECT assignee_user_id, sum(tasks) AS tasks, sum(completed) AS completed,
        sum(skipped) AS skipped
    FROM warehouse.analytics.completion_rate_by_assignee
    WHERE partition_date BETWEEN $first::DATE AND $last::DATE
    GROUP BY assignee_user_id
)
SELECT
    sla.assignee_user_id,
    sla.assignee_name,
    sla.team,
    sla.tasks,
    sla.met,
    sla.breached,
    sla.met / NULLIF(sla.met + sla.breached, 0) AS sla_attainment,
    completion.completed / NULLIF(completion.tasks, 0) AS completion_rate,
    completion.skipped / NULLIF(completion.tasks, 0) AS skip_rate,
    count(*) OVER () AS assignees
FROM sla
LEFT JOIN completion ON completion.assignee_user_id IS NOT DISTINCT FROM sla.assignee_user_id
ORDER BY sla_attainment ASC NULLS LAST, sla.breached DESC, sla.tasks DESC,
    sla.assignee_name NULLS LAST, sla.assignee_user_id NULLS LAST
LIMIT $limit;
