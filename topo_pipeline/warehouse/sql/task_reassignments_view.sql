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
    FROM topo.task_history
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
