-- The newest valid_from among the current versions of the run's partitions (NULL if none):
-- a landing must not be older than the history it extends. $partition_dates: DATE[].
SELECT max(valid_from)
FROM warehouse.topo.task_history
WHERE partition_date = ANY($partition_dates::DATE[]) AND valid_to IS NULL;
