-- The settings of the latest build of the analytics tables (analytics.builds).
-- Template: <table> the qualified analytics.builds.
SELECT partition_timezone, sla_target_minutes, business_hours
FROM {table}
ORDER BY built_at DESC
LIMIT 1
