-- The first rows of the given partitions, for the materialization's preview.
SELECT id, partition_date, type, priority, status, assignee_user_id, created_at, completed_at
FROM warehouse.topo.tasks
WHERE partition_date = ANY($partition_dates::DATE[])
ORDER BY created_at, id
LIMIT $limit;
