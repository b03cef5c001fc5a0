-- What the file says about itself (topo.pipeline_info's one row), with the SLA targets as
-- parallel lists in the map's order.
SELECT
    published_at,
    partition_timezone,
    map_keys(sla_target_minutes) AS sla_priorities,
    map_values(sla_target_minutes) AS sla_minutes,
    first_partition_date,
    last_partition_date,
    partition_days,
    tasks,
    last_loaded_at,
    pipeline_version
FROM warehouse.topo.pipeline_info
LIMIT 1;
