-- make demo: SLA attainment and completion rate per priority over days $first..$last (DATE).
-- Rates are pooled over the days (sums over sums) and shown as percentages; the business-hours
-- attainment counts only working minutes (TOPO_BUSINESS_HOURS).
-- Template: <catalog> is the analyst copy's catalog, as DuckDB names it when opened.
WITH sla AS (
    SELECT
        priority,
        sum(tasks) AS tasks,
        sum(met) AS met,
        sum(breached) AS breached,
        sum(business_met) AS business_met,
        sum(business_breached) AS business_breached
    FROM {catalog}.analytics.sla_by_priority
    WHERE partition_date BETWEEN $first::DATE AND $last::DATE
    GROUP BY priority
),
completion AS (
    SELECT
        priority,
        sum(completed) AS completed,
        sum(skipped) AS skipped,
        sum(tasks) AS tasks
    FROM {catalog}.analytics.completion_rate_by_priority
    WHERE partition_date BETWEEN $first::DATE AND $last::DATE
    GROUP BY priority
)
SELECT
    sla.priority,
    sla.tasks,
    sla.met,
    sla.breached,
    round(100 * sla.met / NULLIF(sla.met + sla.breached, 0), 1) AS sla_attainment_pct,
    -- NULL (shown as -) without TOPO_BUSINESS_HOURS.
    round(100 * sla.business_met / NULLIF(sla.business_met + sla.business_breached, 0), 1)
        AS business_hours_sla_pct,
    round(100 * completion.completed / NULLIF(completion.tasks, 0), 1) AS completion_rate_pct,
    round(100 * completion.skipped / NULLIF(completion.tasks, 0), 1) AS skip_rate_pct
FROM sla
JOIN completion USING (priority)
ORDER BY CASE sla.priority WHEN 'HOT' THEN 1 WHEN 'TODAY' THEN 2 WHEN 'EXTRA' THEN 3 ELSE 4 END,
    sla.priority;
