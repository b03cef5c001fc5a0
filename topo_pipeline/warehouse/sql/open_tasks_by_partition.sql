-- Partitions from $oldest_date on that hold tasks still PENDING or IN_PROGRESS, with the
-- number of such tasks and when the partition was last loaded.
SELECT
    partition_date,
    count(*) FILTER (WHERE status IN ('PENDING', 'IN_PROGRESS')) AS open_tasks,
    max(loaded_at) AS loaded_at
FROM warehouse.topo.tasks
WHERE partition_date >= $oldest_date
GROUP BY partition_date
HAVING count(*) FILTER (WHERE status IN ('PENDING', 'IN_PROGRESS')) > 0
ORDER BY partition_date;
