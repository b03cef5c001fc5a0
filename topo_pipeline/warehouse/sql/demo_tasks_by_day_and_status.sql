-- make demo: tasks per partition day and status, for days $first..$last (DATE).
-- Template: <catalog> is the analyst copy's catalog, as DuckDB names it when opened.
SELECT
    partition_date AS day,
    count(*) AS tasks,
    count(*) FILTER (WHERE status = 'PENDING') AS pending,
    count(*) FILTER (WHERE status = 'IN_PROGRESS') AS in_progress,
    count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
    count(*) FILTER (WHERE status = 'SKIPPED') AS skipped,
    count(*) FILTER (WHERE status NOT IN ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'SKIPPED'))
        AS other
FROM {catalog}.topo.tasks
WHERE partition_date BETWEEN $first::DATE AND $last::DATE
GROUP BY partition_date
ORDER BY partition_date;
