-- Lands one batch of tasks from the frame registered as topo_tasks_batch.
-- BY NAME plus explicit casts: columns match on name and type, never on position, so a
-- reordered frame cannot swap values, and a field the API adds later only lives in raw.
INSERT INTO warehouse.topo.tasks BY NAME
SELECT
    CAST(id AS VARCHAR)               AS id,
    CAST(organization_id AS VARCHAR)  AS organization_id,
    CAST(type AS VARCHAR)             AS type,
    CAST(priority AS VARCHAR)         AS priority,
    CAST(status AS VARCHAR)           AS status,
    CAST(sequence_id AS VARCHAR)      AS sequence_id,
    CAST(assignee_user_id AS VARCHAR) AS assignee_user_id,
    CAST(disposition AS VARCHAR)      AS disposition,
    CAST(reopened_at AS TIMESTAMPTZ)  AS reopened_at,
    CAST(reopen_reason AS VARCHAR)    AS reopen_reason,
    CAST(skipped_at AS TIMESTAMPTZ)   AS skipped_at,
    CAST(completed_at AS TIMESTAMPTZ) AS completed_at,
    CAST(created_at AS TIMESTAMPTZ)   AS created_at,
    CAST(updated_at AS TIMESTAMPTZ)   AS updated_at,
    CAST(partition_date AS DATE)      AS partition_date,
    CAST($loaded_at AS TIMESTAMPTZ)   AS loaded_at,
    CAST(raw AS JSON)                 AS raw
FROM temp.main.topo_tasks_batch;
