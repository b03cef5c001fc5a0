-- Lands a run's stage (attached read-only as catalog "stage") in topo.tasks: one copy of
-- each id, so a task handed over twice lands once, in its latest state (the copy
-- staged_latest_arrivals.sql picks: latest updated_at, then last arrival). The
-- de-duplication reads only (id, updated_at, arrival); the wide rows are then streamed through.
-- raw goes in as text: the JSON column validates it on insert, and that takes half the
-- time of an explicit CAST(... AS JSON), which stores the same text.
-- Template: <staged_columns> is "s.column" for each task field and partition_date
-- (schema.TASK_COLUMNS); <latest_arrivals> is staged_latest_arrivals.sql.
INSERT INTO warehouse.topo.tasks BY NAME
SELECT
    {staged_columns},
    CAST($loaded_at AS TIMESTAMPTZ) AS loaded_at,
    s.raw                           AS raw
FROM stage.main.staged_tasks AS s
WHERE s.arrival IN (
    {latest_arrivals}
);
