-- The tables of the published schemas in one attached catalog, with their comments.
SELECT schema_name, table_name, comment
FROM duckdb_tables()
WHERE database_name = $catalog
  AND schema_name = ANY($schemas::VARCHAR[])
ORDER BY schema_name, table_name;
