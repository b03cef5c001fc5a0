-- Table, view and column comments of the published schemas, to state the time zone in.
SELECT 'TABLE' AS kind, schema_name, table_name AS object_name, NULL AS column_name, comment
FROM duckdb_tables()
WHERE database_name = 'warehouse' AND schema_name = ANY($schemas::VARCHAR[])
UNION ALL
SELECT 'VIEW', schema_name, view_name, NULL, comment
FROM duckdb_views()
WHERE database_name = 'warehouse' AND schema_name = ANY($schemas::VARCHAR[]) AND NOT internal
UNION ALL
SELECT 'COLUMN', schema_name, table_name, column_name, comment
FROM duckdb_columns()
WHERE database_name = 'warehouse' AND schema_name = ANY($schemas::VARCHAR[])
ORDER BY ALL;
