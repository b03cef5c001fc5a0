-- Rows per analytics table and partition_date of the given partitions, with the as_of the
-- SLA tables were evaluated at (NULL for the completion-rate tables, which have none), for
-- the assets' per-partition metadata. A partition without rows in a table is absent.
-- $partition_dates: DATE[].
SELECT 'task_sla' AS table_name, partition_date, count(*) AS row_count, max(as_of) AS as_of
FROM warehouse.analytics.task_sla
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date
UNION ALL
SELECT 'sla_by_priority', partition_date, count(*), max(as_of)
FROM warehouse.analytics.sla_by_priority
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date
UNION ALL
SELECT 'sla_by_assignee', partition_date, count(*), max(as_of)
FROM warehouse.analytics.sla_by_assignee
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date
UNION ALL
SELECT 'completion_rate_by_priority', partition_date, count(*), NULL
FROM warehouse.analytics.completion_rate_by_priority
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date
UNION ALL
SELECT 'completion_rate_by_assignee', partition_date, count(*), NULL
FROM warehouse.analytics.completion_rate_by_assignee
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date;
