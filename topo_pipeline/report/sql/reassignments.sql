-- Reassignments observed in ($since, $through] (a version whose assignee differs from the
-- task's version before, to or from unassigned included), from topo.task_history: the
-- latest first, at most $limit rows, each with the total.
WITH changed AS (
    SELECT DISTINCT id
    FROM warehouse.topo.task_history
    WHERE valid_from > $since::TIMESTAMPTZ AND valid_from <= $through::TIMESTAMPTZ
      AND version > 1
),
versions AS (
    SELECT
        h.id,
        h.partition_date,
        h.version,
        h.valid_from,
        h.removed,
        h.priority,
        h.assignee_user_id,
        lag(h.assignee_user_id) OVER (PARTITION BY h.id ORDER BY h.version) AS previous_assignee
    FROM warehouse.topo.task_history AS h
    JOIN changed USING (id)
)
SELECT
    v.id,
    v.partition_date,
    v.priority,
    v.previous_assignee,
    before.name AS previous_name,
    v.assignee_user_id,
    after.name AS assignee_name,
    v.valid_from AS observed_at,
    count(*) OVER () AS reassignments
FROM versions AS v
LEFT JOIN warehouse.reference.assignees AS before ON before.user_id = v.previous_assignee
LEFT JOIN warehouse.reference.assignees AS after ON after.user_id = v.assignee_user_id
WHERE v.version > 1 AND NOT v.removed
  AND v.valid_from > $since::TIMESTAMPTZ AND v.valid_from <= $through::TIMESTAMPTZ
  AND v.assignee_user_id IS DISTINCT FROM v.previous_assignee
ORDER BY v.valid_from DESC, v.priority = 'HOT' DESC, v.id
LIMIT $limit;
