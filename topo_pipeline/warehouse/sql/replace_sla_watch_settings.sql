-- The one row of analytics.sla_watch_settings: the warning window and alerted priorities.
INSERT INTO warehouse.analytics.sla_watch_settings (warning_minutes, alert_priorities, updated_at)
VALUES ($warning_minutes, $priorities::VARCHAR[], $updated_at::TIMESTAMPTZ)
