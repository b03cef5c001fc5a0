-- The new versions a landing observes, compared with the current versions of the run's
-- partitions (run in the landing's transaction, before topo.tasks is replaced):
--   * a fetched task with no current version, a removed one, or one whose fields differ:
--     the fetched state, as the next version;
--   * a current version (not removed) whose task was not fetched: a removed version that
--     repeats its last fields.
-- An unchanged task yields nothing. The result is a temporary table, as big as the
-- changes; both sides are restricted to the run's partitions and its stage.
-- $partition_dates: DATE[]. Template: <fetched_fields>, <current_fields> are the history's
-- task fields prefixed "f." / "c."; <changed> is true when any of them differs;
-- <latest_arrivals> is staged_latest_arrivals.sql (the copy of each id that lands).
CREATE OR REPLACE TEMP TABLE observed_task_versions AS
WITH fetched AS (
    SELECT s.*
    FROM stage.main.staged_tasks AS s
    WHERE s.arrival IN ({latest_arrivals})
),
current_versions AS (
    SELECT *
    FROM warehouse.topo.task_history
    WHERE partition_date = ANY($partition_dates::DATE[]) AND valid_to IS NULL
)
SELECT
    f.id,
    f.partition_date,
    coalesce(c.version, 0) + 1 AS version,
    false                      AS removed,
    {fetched_fields}
FROM fetched AS f
LEFT JOIN current_versions AS c ON c.id = f.id
WHERE c.id IS NULL OR c.removed OR {changed}
UNION ALL
SELECT
    c.id,
    c.partition_date,
    c.version + 1 AS version,
    true          AS removed,
    {current_fields}
FROM current_versions AS c
WHERE NOT c.removed
  AND c.id NOT IN (SELECT id FROM stage.main.staged_tasks);
