-- Headline numbers of analytics.sla_by_priority for the given partitions (Dagster metadata).
-- Rates are pooled (sum of met over sum of met + breached), never averages of daily rates.
-- $partition_dates: DATE[]. Counts are 0, and rates NULL, when there are no rows.
SELECT
    coalesce(sum(tasks), 0)::BIGINT AS tasks,
    coalesce(sum(met), 0)::BIGINT AS met,
    coalesce(sum(breached), 0)::BIGINT AS breached,
    sum(met)::DOUBLE / NULLIF(sum(met + breached), 0) AS sla_attainment,
    (sum(met) FILTER (WHERE priority = 'HOT'))::DOUBLE
        / NULLIF(sum(met + breached) FILTER (WHERE priority = 'HOT'), 0) AS hot_sla_attainment
FROM warehouse.analytics.sla_by_priority
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
