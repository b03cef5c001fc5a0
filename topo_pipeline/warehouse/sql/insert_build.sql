-- One row of analytics.builds: the settings a build of the analytics tables ran with.
-- Template: <table> the qualified analytics.builds.
INSERT INTO {table}
SELECT
    $built_at::TIMESTAMPTZ,
    $as_of::TIMESTAMPTZ,
    $timezone,
    map($priorities::VARCHAR[], $minutes::INTEGER[]),
    $business_hours,
    (SELECT count(*) FROM warehouse.reference.assignees),
    $tables::VARCHAR[]
