-- Appends one batch of fetched tasks (the frame registered as staged_tasks_batch) to the
-- stage. BY NAME plus explicit casts, as for topo.tasks: never by position.
INSERT INTO staged_tasks BY NAME
SELECT
    CAST(arrival AS BIGINT)           AS arrival,
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
    CAST(raw AS VARCHAR)              AS raw
FROM staged_tasks_batch;
