-- Tasks, completed and skipped per week (its Monday) and team from the week of $first (DATE,
-- a Monday) on, pooled over the week's days; NULL team: unassigned tasks and assignees the
-- directory does not name.
SELECT
    date_trunc('week', partition_date)::DATE AS week,
    team,
    sum(tasks) AS tasks,
    sum(completed) AS completed,
    sum(skipped) AS skipped
FROM warehouse.analytics.completion_rate_by_team
WHERE partition_date >= $first::DATE
GROUP BY ALL
ORDER BY week, team;
