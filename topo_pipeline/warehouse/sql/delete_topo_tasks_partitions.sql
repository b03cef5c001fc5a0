-- Removes every row of the given partitions before they are landed again (same transaction).
DELETE FROM warehouse.topo.tasks
WHERE partition_date = ANY($partition_dates::DATE[]);
