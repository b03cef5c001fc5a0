-- Evaluate the SLA of every task of the given partitions (rules: SPEC.md, analytics.task_sla).
-- $partition_dates: DATE[]; $as_of: TIMESTAMPTZ the open tasks are judged against;
-- $sla_priorities / $sla_target_minutes: parallel VARCHAR[] / INTEGER[] lists, the SLA target
-- per priority. A priority missing from the lists has no target: sla_target_minutes and
-- sla_due_at are NULL and, unless the task was skipped, sla_status is 'UNKNOWN'.
INSERT INTO warehouse.analytics.task_sla (
    id, partition_date, priority, type, status, assignee_user_id, created_at, completed_at,
    skipped_at, sla_target_minutes, sla_due_at, minutes_to_complete, sla_status, as_of
)
WITH targets AS (
    SELECT
        unnest($sla_priorities::VARCHAR[]) AS priority,
        unnest($sla_target_minutes::INTEGER[]) AS sla_target_minutes
),
evaluated AS (
    SELECT
        t.id,
        t.partition_date,
        t.priority,
        t.type,
        t.status,
        t.assignee_user_id,
        t.created_at,
        t.completed_at,
        t.skipped_at,
        targets.sla_target_minutes,
        -- to_minutes() is an exact duration: a 1440-minute target is 24 hours even on a DST
        -- change day (INTERVAL 1 DAY would follow the session's calendar instead).
        t.created_at + to_minutes(targets.sla_target_minutes) AS sla_due_at,
        -- Status is authoritative: only a COMPLETED task has a completion time, so a reopened
        -- task that still carries an old completed_at is not counted as completed.
        CASE
            WHEN t.status = 'COMPLETED'
                THEN (epoch_us(t.completed_at) - epoch_us(t.created_at)) / 60000000.0
        END AS minutes_to_complete,
        $as_of::TIMESTAMPTZ AS as_of
    FROM warehouse.topo.tasks AS t
    LEFT JOIN targets ON targets.priority = t.priority
    WHERE t.partition_date IN (SELECT unnest($partition_dates::DATE[]))
)
SELECT
    id, partition_date, priority, type, status, assignee_user_id, created_at, completed_at,
    skipped_at, sla_target_minutes, sla_due_at, minutes_to_complete,
    CASE
        -- Skipping ends the task whatever its priority, so it needs no target.
        WHEN status = 'SKIPPED' THEN 'SKIPPED'
        -- No target (unknown or NULL priority), or a COMPLETED task without completed_at:
        -- there is nothing to compare, and guessing MET or BREACHED would skew attainment.
        WHEN sla_due_at IS NULL THEN 'UNKNOWN'
        WHEN status = 'COMPLETED' AND completed_at IS NULL THEN 'UNKNOWN'
        WHEN status = 'COMPLETED' AND completed_at <= sla_due_at THEN 'MET'
        WHEN status = 'COMPLETED' THEN 'BREACHED'
        WHEN status IN ('PENDING', 'IN_PROGRESS') AND as_of > sla_due_at THEN 'BREACHED'
        WHEN status IN ('PENDING', 'IN_PROGRESS') THEN 'OPEN'
        -- A status Topo added later (or NULL): not judged until the rules know it.
        ELSE 'UNKNOWN'
    END AS sla_status,
    as_of
FROM evaluated;
