-- Every column of the analytics tables with its type and COMMENT, in table order, for the
-- assets' column schema in Dagster.
SELECT table_name, column_name, data_type, comment
FROM duckdb_columns()
WHERE database_name = 'warehouse' AND schema_name = 'analytics'
ORDER BY table_name, column_index;
