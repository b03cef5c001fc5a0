-- analytics.task_status_changes: every observed status change of a task (a view's SELECT).
-- Template: <catalog> is empty, so names resolve in the view's own file whatever its
-- catalog, or a catalog name and a dot where the file's name clashes with a schema
-- (warehouse/file_names.py).
WITH versions AS (
    SELECT
        id,
        partition_date,
        version,
        valid_from,
        priority,
        assignee_user_id,
        CASE WHEN removed THEN 'REMOVED' ELSE status END AS observed_status
    FROM {catalog}topo.task_history
),
compared AS (
    SELECT
        *,
        lag(observed_status) OVER (PARTITION BY id ORDER BY version) AS previous_status
    FROM versions
),
status_starts AS (
    -- The first version of each task, and every version that shows a new status.
    SELECT
        *,
        lag(valid_from) OVER (PARTITION BY id ORDER BY version) AS previous_status_since
    FROM compared
    WHERE version = 1 OR observed_status IS DISTINCT FROM previous_status
)
SELECT
    id,
    partition_date,
    version,
    priority,
    assignee_user_id,
    previous_status AS from_status,
    observed_status AS to_status,
    previous_status_since AS from_status_since,
    valid_from AS changed_at,
    (epoch_us(valid_from) - epoch_us(previous_status_since)) / 60000000.0
        AS minutes_in_from_status
FROM status_starts
WHERE previous_status_since IS NOT NULL
