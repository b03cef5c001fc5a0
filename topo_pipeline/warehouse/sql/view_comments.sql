-- The comments of some views of one attached catalog and of their columns (column_name is
-- NULL on a view's own row). $views: VARCHAR[] of "schema.view" names.
SELECT schema_name, view_name, NULL AS column_name, comment
FROM duckdb_views()
WHERE database_name = $catalog AND schema_name || '.' || view_name = ANY($views::VARCHAR[])
UNION ALL
SELECT schema_name, table_name, column_name, comment
FROM duckdb_columns()
WHERE database_name = $catalog AND schema_name || '.' || table_name = ANY($views::VARCHAR[])
ORDER BY ALL;
