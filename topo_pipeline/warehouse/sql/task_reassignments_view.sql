-- analytics.task_reassignments: reassignments per task (a view's SELECT).
-- Template: <catalog> is empty, so names resolve in the view's own file whatever its
-- catalog, or a catalog name and a dot where the file's name clashes with a schema
-- (warehouse/file_names.py).
WITH versions AS (
    SELECT
        id,
        partition_date,
        version,
        valid_from,
        removed,
        priority,
        assignee_user_id,
        version > 1 AND assignee_user_id IS DISTINCT FROM
            lag(assignee_user_id) OVER (PARTITION BY id ORDER BY version) AS reassigned
    FROM {catalog}topo.task_history
)
SELECT
    id,
    last(partition_date ORDER BY version) AS partition_date,
    last(priority ORDER BY version) AS priority,
    first(assignee_user_id ORDER BY version) AS first_assignee_user_id,
    last(assignee_user_id ORDER BY version) AS assignee_user_id,
    count(*) FILTER (WHERE reassigned) AS reassignments,
    count(DISTINCT assignee_user_id) AS assignees,
    max(valid_from) FILTER (WHERE reassigned) AS last_reassigned_at,
    last(removed ORDER BY version) AS removed,
    count(*) AS versions
FROM versions
GROUP BY id
