-- The one row of analytics.sla_watch_settings: the warning window, the alerted priorities
-- and since when the watch runs.
INSERT INTO warehouse.analytics.sla_watch_settings
    (warning_minutes, alert_priorities, updated_at, watching_since)
VALUES (
    $warning_minutes, $priorities::VARCHAR[], $updated_at::TIMESTAMPTZ,
    $watching_since::TIMESTAMPTZ
)
