-- Migration to schema version 3: every stored task becomes the first version of its
-- history, valid from when it was fetched. Runs once, in the migration's transaction.
-- Template: <fields> is the history's task fields (schema.HISTORY_FIELDS).
INSERT INTO warehouse.topo.task_history BY NAME
SELECT
    id,
    partition_date,
    1         AS version,
    loaded_at AS valid_from,
    NULL      AS valid_to,
    false     AS removed,
    {fields}
FROM warehouse.topo.tasks;
