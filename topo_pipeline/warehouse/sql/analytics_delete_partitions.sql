-- Removes the rows of the given partitions of one analytics table before they are
-- recomputed (same transaction as its insert). $partition_dates: DATE[].
-- Template: <table> is the table's qualified name, from the registry.
DELETE FROM {table}
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
