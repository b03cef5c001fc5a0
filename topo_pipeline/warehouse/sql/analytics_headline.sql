-- Headline numbers of one analytics table for the given partitions (Dagster metadata),
-- either per partition_date (<day> "partition_date," and <group_by> "GROUP BY
-- partition_date") or over all of them (<day> and <group_by> empty). Rates are pooled
-- (sums over sums), never averages of daily rates. $partition_dates: DATE[].
-- Template, filled from the registry: <table> the qualified name, <headlines> one
-- "expression AS name" per headline number.
SELECT
    {day}
    {headlines}
FROM {table}
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
{group_by};
