-- What topo.task_history holds: its versions, its current versions (one per task) and
-- of them the removed ones, its newest valid_from, and the rows of topo.tasks to compare
-- with the current versions that are not removed. Plain aggregates: no hash of the ids.
SELECT
    count(*) AS versions,
    count(*) FILTER (WHERE valid_to IS NULL) AS tasks,
    count(*) FILTER (WHERE valid_to IS NULL AND removed) AS removed,
    max(valid_from) AS latest_version_at,
    (SELECT count(*) FROM warehouse.topo.tasks) AS stored_tasks
FROM warehouse.topo.task_history;
