-- Which of the tables the analytics are computed from exist: topo.tasks (read by task_sla)
-- and analytics.task_sla (read by the rollups). Returns 'topo.tasks' and/or
-- 'analytics.task_sla'.
SELECT schema_name || '.' || table_name AS qualified_name
FROM duckdb_tables()
WHERE database_name = 'warehouse'
  AND ((schema_name = 'topo' AND table_name = 'tasks')
    OR (schema_name = 'analytics' AND table_name = 'task_sla'));
