-- Remove analytics.task_sla rows of the partitions about to be recomputed.
-- $partition_dates: DATE[]. Runs in the same transaction as task_sla_insert_partitions.
DELETE FROM warehouse.analytics.task_sla
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
