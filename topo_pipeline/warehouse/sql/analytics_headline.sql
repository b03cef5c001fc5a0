-- Headline numbers of one analytics table per partition_date, for the given partitions
-- (Dagster metadata). Rates are pooled over the day's rows (sums over sums).
-- $partition_dates: DATE[].
-- Template, filled from the registry: <table> the qualified name, <headlines> one
-- "expression AS name" per headline number.
SELECT
    partition_date,
    {headlines}
FROM {table}
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date;
