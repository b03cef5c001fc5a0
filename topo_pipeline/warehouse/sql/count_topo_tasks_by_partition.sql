-- Rows held per partition, for the given partition dates (a date with no rows is absent).
SELECT partition_date, count(*) AS tasks
FROM warehouse.topo.tasks
WHERE partition_date = ANY($partition_dates::DATE[])
GROUP BY partition_date;
