-- Rows of one analytics table per partition_date of the given partitions, with the as_of
-- the SLA tables were evaluated at (<as_of> "max(as_of)"; NULL for tables without one).
-- The statements of every table are joined with UNION ALL into one query.
-- Template, filled from the registry: <table_name> the table's name, <table> its qualified name.
SELECT '{table_name}' AS table_name, partition_date, count(*) AS row_count, {as_of} AS as_of
FROM {table}
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date
