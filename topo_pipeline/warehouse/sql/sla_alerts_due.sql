-- The SLA notifications to send now: one per task of an alerted priority and watch state
-- (WARNING, BREACHED) not sent yet, from analytics.sla_watch. A task already notified as
-- BREACHED gets no WARNING; one that breached unseen (a refresh failed meanwhile) gets the
-- BREACHED notification alone. Only deadlines at most $horizon_minutes before as_of, and
-- none before the watch first ran (watching_since): a task breached long ago, or before
-- the pipeline watched, is in the view, not worth a message.
-- $priorities: VARCHAR[]; $horizon_minutes: INTEGER.
SELECT
    w.id,
    w.watch_state AS state,
    w.partition_date,
    w.priority,
    w.type,
    w.status,
    w.assignee_user_id,
    w.assignee_name,
    w.team,
    w.created_at,
    w.sla_due_at,
    w.minutes_left,
    w.business_sla_due_at,
    w.business_minutes_left,
    w.as_of
FROM warehouse.analytics.sla_watch AS w
WHERE w.priority = ANY($priorities::VARCHAR[])
  AND w.watch_state IS NOT NULL
  AND w.sla_due_at >= w.as_of - to_minutes($horizon_minutes::INTEGER)
  AND w.sla_due_at >= (
      SELECT coalesce(min(watching_since), '-infinity'::TIMESTAMPTZ)
      FROM warehouse.analytics.sla_watch_settings
  )
  AND NOT EXISTS (
      SELECT 1
      FROM warehouse.analytics.sla_alerts_sent AS sent
      WHERE sent.task_id = w.id
        AND (sent.state = w.watch_state OR sent.state = 'BREACHED')
  )
ORDER BY w.watch_state = 'WARNING', w.sla_due_at, w.id
