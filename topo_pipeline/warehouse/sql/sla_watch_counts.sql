-- How many tasks of the alerted priorities analytics.sla_watch holds, by watch state:
-- WARNING, BREACHED within $horizon_minutes before as_of (recent), and BREACHED in all.
-- $priorities: VARCHAR[]; $horizon_minutes: INTEGER.
SELECT
    count(*) FILTER (WHERE watch_state = 'WARNING') AS at_risk,
    count(*) FILTER (
        WHERE watch_state = 'BREACHED'
          AND sla_due_at >= as_of - to_minutes($horizon_minutes::INTEGER)
    ) AS recently_breached,
    count(*) FILTER (WHERE watch_state = 'BREACHED') AS breached,
    (SELECT max(as_of) FROM warehouse.analytics.task_sla) AS evaluated_at
FROM warehouse.analytics.sla_watch
WHERE priority = ANY($priorities::VARCHAR[])
