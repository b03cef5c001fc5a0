-- Whether the table or view $schema.$name exists in the attached file.
SELECT
    (SELECT count(*) FROM duckdb_tables()
     WHERE database_name = 'warehouse' AND schema_name = $schema AND table_name = $name)
    + (SELECT count(*) FROM duckdb_views()
       WHERE database_name = 'warehouse' AND schema_name = $schema AND view_name = $name)
    > 0;
