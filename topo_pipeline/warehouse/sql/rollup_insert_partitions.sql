-- One rollup of the given partitions, from analytics.task_sla so the rollup always agrees
-- with the per-task rows. GROUP BY keeps NULL as its own group, and a group exists only if
-- it has a task, so empty partitions get no rows. $partition_dates: DATE[].
-- Template, filled from the registry: <table> the rollup's qualified name, <group> its
-- grouping columns, <columns> its column list, <measures> "expression AS column" for each
-- measure of its family, <source> analytics.task_sla (joined to the assignee directory for
-- the rollups that need names or teams, task_sla_with_directory.sql).
INSERT INTO {table} ({columns})
SELECT
    partition_date,
    {group},
    {measures}
FROM {source}
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
GROUP BY partition_date, {group};
