-- The storage version an attached catalog's file is written in, e.g. 'v1.4.0+'.
SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = $catalog;
