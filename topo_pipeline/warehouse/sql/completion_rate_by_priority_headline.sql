-- Headline numbers of analytics.completion_rate_by_priority for the given partitions (Dagster
-- metadata). Rates are pooled (sums over sums), never averages of daily rates.
-- $partition_dates: DATE[]. Counts are 0, and rates NULL, when there are no rows.
SELECT
    coalesce(sum(tasks), 0)::BIGINT AS tasks,
    coalesce(sum(completed), 0)::BIGINT AS completed,
    coalesce(sum(skipped), 0)::BIGINT AS skipped,
    sum(completed)::DOUBLE / NULLIF(sum(tasks), 0) AS completion_rate,
    sum(skipped)::DOUBLE / NULLIF(sum(tasks), 0) AS skip_rate,
    (sum(completed) FILTER (WHERE priority = 'HOT'))::DOUBLE
        / NULLIF(sum(tasks) FILTER (WHERE priority = 'HOT'), 0) AS hot_completion_rate
FROM warehouse.analytics.completion_rate_by_priority
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
