-- The one row of topo.pipeline_info, from the settings and the current topo.tasks.
INSERT INTO warehouse.topo.pipeline_info
SELECT
    $published_at::TIMESTAMPTZ,
    $timezone,
    map($sla_priorities::VARCHAR[], $sla_target_minutes::INTEGER[]),
    $start_date::DATE,
    min(partition_date),
    max(partition_date),
    count(DISTINCT partition_date),
    count(*),
    max(loaded_at),
    $version
FROM warehouse.topo.tasks;
