-- make demo: the changes topo.task_history recorded for days $first..$last (DATE), through
-- the views analysts use.
-- Template: <catalog> is the analyst copy's catalog, as DuckDB names it when opened.
SELECT 'status changes' AS change, count(*) AS observed
FROM {catalog}.analytics.task_status_changes
WHERE partition_date BETWEEN $first::DATE AND $last::DATE AND to_status <> 'REMOVED'
UNION ALL
SELECT 'reassignments', coalesce(sum(reassignments), 0)
FROM {catalog}.analytics.task_reassignments
WHERE partition_date BETWEEN $first::DATE AND $last::DATE
UNION ALL
SELECT 'tasks no longer returned', count(*) FILTER (WHERE removed)
FROM {catalog}.analytics.task_reassignments
WHERE partition_date BETWEEN $first::DATE AND $last::DATE;
