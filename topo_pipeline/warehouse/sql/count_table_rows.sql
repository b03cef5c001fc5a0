-- Rows in one table, named as a (quoted) qualified name string: catalog.schema.table.
SELECT count(*) FROM query_table($table);
