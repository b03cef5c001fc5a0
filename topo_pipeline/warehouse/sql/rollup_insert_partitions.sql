-- One rollup of the given partitions, from analytics.task_sla so the rollup always agrees
-- with the per-task rows. GROUP BY keeps NULL as its own group, and a group exists only if
-- it has a task, so empty partitions get no rows. $partition_dates: DATE[].
-- Template, filled from the registry: <table> the rollup's qualified name, <group> its
-- grouping column, <columns> its column list, <measures> "expression AS column" for each
-- measure of its family.
INSERT INTO {table} ({columns})
SELECT
    partition_date,
    {group},
    {measures}
FROM warehouse.analytics.task_sla
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date, {group};
