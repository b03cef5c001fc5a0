-- SLA outcomes per week (its Monday) and priority from the week of $first (DATE, a Monday)
-- on, pooled over the week's days; the business-hours sums are NULL where business hours
-- were not configured.
SELECT
    date_trunc('week', partition_date)::DATE AS week,
    priority,
    sum(met) AS met,
    sum(breached) AS breached,
    sum(business_met) AS business_met,
    sum(business_breached) AS business_breached
FROM warehouse.analytics.sla_by_priority
WHERE partition_date >= $first::DATE
GROUP BY ALL
ORDER BY week, priority;
