-- Observed status changes in ($since, $through], per transition, from topo.task_history:
-- most frequent first. <changes> is the body of the view analytics.task_status_changes
-- for catalog warehouse (the copy's own views name its file's catalog where that name
-- clashes with a schema, which the report's alias does not match).
WITH task_status_changes AS (
{changes}
)
SELECT
    from_status,
    to_status,
    count(*) AS changes,
    count(*) FILTER (WHERE priority = 'HOT') AS hot
FROM task_status_changes
WHERE changed_at > $since::TIMESTAMPTZ AND changed_at <= $through::TIMESTAMPTZ
GROUP BY ALL
ORDER BY changes DESC, from_status, to_status;
