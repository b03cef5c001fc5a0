-- Appends one batch of fetched tasks (the frame registered as staged_tasks_batch) to the
-- stage. BY NAME plus explicit casts, as for topo.tasks: never by position.
-- Template: <casts> is "CAST(column AS type) AS column" for each column of the stage
-- (schema.STAGED_TASKS).
INSERT INTO staged_tasks BY NAME
SELECT
    {casts}
FROM staged_tasks_batch;
