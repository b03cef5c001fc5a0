-- Headline numbers of analytics.sla_by_assignee for the given partitions (Dagster metadata).
-- Rates are pooled (sum of met over sum of met + breached), never averages of daily rates.
-- $partition_dates: DATE[]. Counts are 0, and rates NULL, when there are no rows.
SELECT
    coalesce(sum(tasks), 0)::BIGINT AS tasks,
    coalesce(sum(met), 0)::BIGINT AS met,
    coalesce(sum(breached), 0)::BIGINT AS breached,
    sum(met)::DOUBLE / NULLIF(sum(met + breached), 0) AS sla_attainment,
    count(DISTINCT assignee_user_id) AS assignees,
    coalesce(sum(open) FILTER (WHERE assignee_user_id IS NULL), 0)::BIGINT AS unassigned_open
FROM warehouse.analytics.sla_by_assignee
WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]));
