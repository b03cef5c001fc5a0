-- Versions topo.task_history recorded in ($since, $through]: tasks seen for the first
-- time, changed versions of known tasks, and tasks Topo stopped returning.
SELECT
    count(*) FILTER (WHERE version = 1) AS new_tasks,
    count(*) FILTER (WHERE version > 1 AND NOT removed) AS changed_versions,
    count(*) FILTER (WHERE removed) AS removed
FROM warehouse.topo.task_history
WHERE valid_from > $since::TIMESTAMPTZ AND valid_from <= $through::TIMESTAMPTZ;
