-- Remove analytics.sla_by_assignee rows of the partitions about to be recomputed.
-- $partition_dates: DATE[]. Runs in the same transaction as sla_by_assignee_insert_partitions.
DELETE FROM warehouse.analytics.sla_by_assignee
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
