-- make demo: SLA attainment and completion rate per team over days $first..$last (DATE),
-- pooled over the days; NULL team: unassigned tasks and assignees the directory lacks.
-- Template: <catalog> is the analyst copy's catalog, as DuckDB names it when opened.
SELECT
    coalesce(sla.team, '(no team)') AS team,
    sum(sla.tasks) AS tasks,
    sum(sla.met) AS met,
    sum(sla.breached) AS breached,
    round(100 * sum(sla.met) / NULLIF(sum(sla.met) + sum(sla.breached), 0), 1)
        AS sla_attainment_pct,
    round(100 * sum(c.completed) / NULLIF(sum(c.tasks), 0), 1) AS completion_rate_pct
FROM {catalog}.analytics.sla_by_team AS sla
JOIN {catalog}.analytics.completion_rate_by_team AS c
    ON c.partition_date = sla.partition_date AND c.team IS NOT DISTINCT FROM sla.team
WHERE sla.partition_date BETWEEN $first::DATE AND $last::DATE
GROUP BY sla.team
ORDER BY sla.team IS NULL, sla.team;
