-- make demo: SLA attainment per assignee, with name and team, over days $first..$last (DATE).
-- Template: <catalog> is the analyst copy's catalog, as DuckDB names it when opened.
SELECT
    -- An assignee the directory does not name shows as the id.
    coalesce(assignee_name, assignee_user_id, '(unassigned)') AS assignee,
    coalesce(team, '-') AS team,
    sum(tasks) AS tasks,
    sum(met) AS met,
    sum(breached) AS breached,
    round(100 * sum(met) / NULLIF(sum(met) + sum(breached), 0), 1) AS sla_attainment_pct
FROM {catalog}.analytics.sla_by_assignee
WHERE partition_date BETWEEN $first::DATE AND $last::DATE
GROUP BY assignee_user_id, assignee_name, team
ORDER BY team IS NULL, team, tasks DESC;
