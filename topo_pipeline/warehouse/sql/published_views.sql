-- The views of the published schemas in one attached catalog.
SELECT schema_name, view_name
FROM duckdb_views()
WHERE database_name = $catalog
  AND NOT internal
  AND schema_name = ANY($schemas::VARCHAR[])
ORDER BY schema_name, view_name;
