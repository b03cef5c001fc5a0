-- Every column of every table in one attached catalog, with its type and COMMENT, in
-- table order (the column schemas of the Dagster catalog).
SELECT schema_name, table_name, column_name, data_type, comment
FROM duckdb_columns()
WHERE database_name = $catalog
ORDER BY schema_name, table_name, column_index;
