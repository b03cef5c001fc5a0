-- Observed status changes in ($since, $through], per transition, from the view
-- analytics.task_status_changes: most frequent first.
SELECT
    from_status,
    to_status,
    count(*) AS changes,
    count(*) FILTER (WHERE priority = 'HOT') AS hot
FROM warehouse.analytics.task_status_changes
WHERE changed_at > $since::TIMESTAMPTZ AND changed_at <= $through::TIMESTAMPTZ
GROUP BY ALL
ORDER BY changes DESC, from_status, to_status;
