-- Remove analytics.completion_rate_by_priority rows of the partitions about to be recomputed.
-- $partition_dates: DATE[]. Runs in the same transaction as
-- completion_rate_by_priority_insert_partitions.
DELETE FROM warehouse.analytics.completion_rate_by_priority
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
