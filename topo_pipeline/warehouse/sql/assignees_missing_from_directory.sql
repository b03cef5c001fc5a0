-- Assignees of topo.tasks that the directory (reference.assignees) does not name, with how
-- many tasks each holds and the last day they were seen, most tasks first.
SELECT
    t.assignee_user_id AS user_id,
    count(*) AS tasks,
    max(t.partition_date) AS last_seen_partition
FROM warehouse.topo.tasks AS t
ANTI JOIN warehouse.reference.assignees AS a ON a.user_id = t.assignee_user_id
WHERE t.assignee_user_id IS NOT NULL
GROUP BY t.assignee_user_id
ORDER BY tasks DESC, user_id;
