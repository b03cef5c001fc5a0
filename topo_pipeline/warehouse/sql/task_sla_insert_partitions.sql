-- Evaluate the SLA of every task of the given partitions (rules: SPEC.md, analytics.task_sla).
-- $partition_dates: DATE[]; $as_of: TIMESTAMPTZ the open tasks are judged against;
-- $sla_priorities / $sla_target_minutes: parallel VARCHAR[] / INTEGER[] lists, the SLA target
-- per priority. A priority missing from the lists has no target: sla_target_minutes and
-- sla_due_at are NULL and, unless the task was skipped, sla_status is 'UNKNOWN'.
-- Business hours (all NULL unless $business): $timezone, the zone of the working calendar;
-- $work_weekdays INTEGER[] (ISO, Monday 1), $work_start_minute / $work_end_minute (minutes
-- after local midnight), $holidays DATE[] (local days without work), $horizon_days (calendar
-- days after creation within which every target is reached).
INSERT INTO warehouse.analytics.task_sla (
    id, partition_date, priority, type, status, assignee_user_id, created_at, completed_at,
    skipped_at, sla_target_minutes, sla_due_at, minutes_to_complete, sla_status, as_of,
    business_minutes_to_resolution, business_sla_due_at, business_sla_status
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
),
-- The working calendar: one interval [work_start, work_end) per working local day, from the
-- day before the first task to $horizon_days after the last (and past every completion and
-- as_of). timezone() reads a local wall-clock time in $timezone, so the intervals follow DST.
bounds AS (
    SELECT
        (min(created_at) AT TIME ZONE $timezone)::DATE - 1 AS first_day,
        greatest(
            (max(created_at) AT TIME ZONE $timezone)::DATE + $horizon_days::INTEGER,
            (max(completed_at) AT TIME ZONE $timezone)::DATE,
            ($as_of::TIMESTAMPTZ AT TIME ZONE $timezone)::DATE
        ) + 1 AS last_day
    FROM evaluated
    WHERE $business::BOOLEAN
),
working_days AS (
    SELECT
        day + to_minutes($work_start_minute::INTEGER) AS local_start,
        day + to_minutes($work_end_minute::INTEGER) AS local_end,
        timezone($timezone, local_start) AS start_read,
        timezone($timezone, local_end) AS end_read
    FROM bounds,
        range(bounds.first_day::TIMESTAMP, bounds.last_day::TIMESTAMP, INTERVAL 1 DAY) AS days(day)
    WHERE isodow(day) IN (SELECT unnest($work_weekdays::INTEGER[]))
      AND day::DATE NOT IN (SELECT unnest($holidays::DATE[]))
),
-- A local time that occurs twice (the hour repeated when DST ends) is its first occurrence,
-- and one that does not occur (skipped when DST starts) is read with the offset before the
-- change, as Python's zoneinfo does with fold=0. timezone() takes the second occurrence,
-- so step back the one hour of the change where that gives the same local time.
calendar AS (
    SELECT
        CASE
            WHEN (start_read - INTERVAL 1 HOUR) AT TIME ZONE $timezone = local_start
                THEN start_read - INTERVAL 1 HOUR
            ELSE start_read
        END AS work_start,
        CASE
            WHEN (end_read - INTERVAL 1 HOUR) AT TIME ZONE $timezone = local_end
                THEN end_read - INTERVAL 1 HOUR
            ELSE end_read
        END AS work_end
    FROM working_days
),
-- Each task's working time from creation on, piece by piece, with a running total (in
-- microseconds, so the deadline is exact): the piece where the total reaches the target
-- holds the business-hours deadline.
pieces AS (
    SELECT
        e.id,
        e.sla_target_minutes::BIGINT * 60000000 AS target_us,
        c.work_end,
        sum(epoch_us(c.work_end) - epoch_us(greatest(c.work_start, e.created_at))) OVER (
            PARTITION BY e.id ORDER BY c.work_start ROWS UNBOUNDED PRECEDING
        ) AS worked_us
    FROM evaluated AS e
    JOIN calendar AS c
        ON c.work_end > e.created_at
        AND c.work_start < e.created_at + to_minutes($horizon_days::INTEGER * 1440)
    WHERE e.sla_target_minutes IS NOT NULL
),
business_due AS (
    SELECT id, min(work_end - to_microseconds((worked_us - target_us)::BIGINT)) AS business_sla_due_at
    FROM pieces
    WHERE worked_us >= target_us
    GROUP BY id
),
-- Working minutes between creation and completion of each completed task.
business_resolution AS (
    SELECT
        e.id,
        sum(
            epoch_us(least(c.work_end, e.completed_at))
            - epoch_us(greatest(c.work_start, e.created_at))
        ) / 60000000.0 AS business_minutes
    FROM evaluated AS e
    JOIN calendar AS c ON c.work_end > e.created_at AND c.work_start < e.completed_at
    WHERE e.status = 'COMPLETED'
    GROUP BY e.id
),
judged AS (
    SELECT
        e.*,
        CASE
            WHEN $business::BOOLEAN AND e.status = 'COMPLETED' AND e.completed_at IS NOT NULL
                -- Completed outside working hours altogether: no working time spent.
                THEN coalesce(r.business_minutes, 0.0)
        END AS business_minutes_to_resolution,
        d.business_sla_due_at
    FROM evaluated AS e
    LEFT JOIN business_due AS d USING (id)
    LEFT JOIN business_resolution AS r USING (id)
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
    as_of,
    business_minutes_to_resolution,
    business_sla_due_at,
    -- The same rules against the business-hours deadline.
    CASE
        WHEN NOT $business::BOOLEAN THEN NULL
        WHEN status = 'SKIPPED' THEN 'SKIPPED'
        WHEN business_sla_due_at IS NULL THEN 'UNKNOWN'
        WHEN status = 'COMPLETED' AND completed_at IS NULL THEN 'UNKNOWN'
        WHEN status = 'COMPLETED' AND completed_at <= business_sla_due_at THEN 'MET'
        WHEN status = 'COMPLETED' THEN 'BREACHED'
        WHEN status IN ('PENDING', 'IN_PROGRESS') AND as_of > business_sla_due_at THEN 'BREACHED'
        WHEN status IN ('PENDING', 'IN_PROGRESS') THEN 'OPEN'
        ELSE 'UNKNOWN'
    END AS business_sla_status
FROM judged;
