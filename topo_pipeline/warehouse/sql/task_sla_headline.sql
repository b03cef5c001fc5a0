-- Headline numbers of analytics.task_sla for the given partitions (Dagster metadata).
-- $partition_dates: DATE[]. Counts are 0, and the rate NULL, when there are no rows.
SELECT
    count(*) AS tasks,
    count(*) FILTER (WHERE sla_status = 'MET') AS met,
    count(*) FILTER (WHERE sla_status = 'BREACHED') AS breached,
    count(*) FILTER (WHERE sla_status = 'OPEN') AS open_within_sla,
    count(*) FILTER (WHERE sla_status = 'SKIPPED') AS skipped,
    -- Non-zero means Topo sent a priority without a target or a status the rules do not know.
    count(*) FILTER (WHERE sla_status = 'UNKNOWN') AS unknown,
    (count(*) FILTER (WHERE sla_status = 'MET'))::DOUBLE
        / NULLIF(count(*) FILTER (WHERE sla_status IN ('MET', 'BREACHED')), 0) AS sla_attainment
FROM warehouse.analytics.task_sla
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
