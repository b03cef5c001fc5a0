-- Lands a run's stage (attached read-only as catalog "stage") in topo.tasks: the last
-- arrival of each id, so a task handed over twice lands once, in its latest fetched state.
-- The de-duplication reads only (id, arrival); the wide rows are then streamed through.
INSERT INTO warehouse.topo.tasks BY NAME
SELECT
    s.id,
    s.organization_id,
    s.type,
    s.priority,
    s.status,
    s.sequence_id,
    s.assignee_user_id,
    s.disposition,
    s.reopened_at,
    s.reopen_reason,
    s.skipped_at,
    s.completed_at,
    s.created_at,
    s.updated_at,
    s.partition_date,
    CAST($loaded_at AS TIMESTAMPTZ) AS loaded_at,
    CAST(s.raw AS JSON)             AS raw
FROM stage.main.staged_tasks AS s
WHERE s.arrival IN (
    SELECT max(arrival) FROM stage.main.staged_tasks GROUP BY id
);
