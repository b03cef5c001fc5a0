-- Every column of the published schemas in one attached catalog, with its comment.
SELECT schema_name, table_name, column_name, comment
FROM duckdb_columns()
WHERE database_name = $catalog
  AND schema_name = ANY($schemas::VARCHAR[])
ORDER BY schema_name, table_name, column_index;
