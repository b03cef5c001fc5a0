-- Record one SLA notification as sent (after the webhook accepted it); a repeat is a no-op.
INSERT INTO warehouse.analytics.sla_alerts_sent
    (task_id, state, priority, minutes_left, as_of, sent_at)
SELECT $task_id, $state, $priority, $minutes_left, $as_of::TIMESTAMPTZ, $sent_at::TIMESTAMPTZ
WHERE NOT EXISTS (
    SELECT 1 FROM warehouse.analytics.sla_alerts_sent
    WHERE task_id = $task_id AND state = $state
)
