-- Every table in one attached catalog, with its COMMENT.
SELECT schema_name, table_name, comment
FROM duckdb_tables()
WHERE database_name = $catalog
ORDER BY schema_name, table_name;
