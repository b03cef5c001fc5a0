-- analytics.*: the SLA and completion-rate tables built from topo.tasks. Idempotent; run at
-- the start of every analytics write. Every table is replaced one partition_date at a time.
CREATE SCHEMA IF NOT EXISTS warehouse.analytics;

-- analytics.task_sla ------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS warehouse.analytics.task_sla (
    id                   VARCHAR NOT NULL PRIMARY KEY,
    partition_date       DATE NOT NULL,
    priority             VARCHAR,
    type                 VARCHAR,
    status               VARCHAR,
    assignee_user_id     VARCHAR,
    created_at           TIMESTAMPTZ NOT NULL,
    completed_at         TIMESTAMPTZ,
    skipped_at           TIMESTAMPTZ,
    sla_target_minutes   INTEGER,
    sla_due_at           TIMESTAMPTZ,
    minutes_to_complete  DOUBLE,
    sla_status           VARCHAR NOT NULL,
    as_of                TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE warehouse.analytics.task_sla IS 'SLA evaluation of every Topo task. One row per task id (same tasks as topo.tasks); partition_date is the day the task was created in the pipeline''s timezone (TOPO_TIMEZONE).';
COMMENT ON COLUMN warehouse.analytics.task_sla.id IS 'Task id (UUID), as in topo.tasks. Unique.';
COMMENT ON COLUMN warehouse.analytics.task_sla.partition_date IS 'Day of created_at in the pipeline''s timezone (TOPO_TIMEZONE); the Dagster partition.';
COMMENT ON COLUMN warehouse.analytics.task_sla.priority IS 'Priority from topo.tasks: HOT, TODAY, EXTRA (Topo may add values; NULL if the API sent none).';
COMMENT ON COLUMN warehouse.analytics.task_sla.type IS 'Task type from topo.tasks: CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW (Topo may add values).';
COMMENT ON COLUMN warehouse.analytics.task_sla.status IS 'Status when last fetched: PENDING, IN_PROGRESS, COMPLETED, SKIPPED (Topo may add values). Decides sla_status.';
COMMENT ON COLUMN warehouse.analytics.task_sla.assignee_user_id IS 'Workspace user the task is assigned to; NULL means unassigned.';
COMMENT ON COLUMN warehouse.analytics.task_sla.created_at IS 'When Topo created the task; the SLA clock starts here.';
COMMENT ON COLUMN warehouse.analytics.task_sla.completed_at IS 'When the task was completed, as Topo reports it. A reopened task can keep an earlier completed_at while its status is open again; status decides.';
COMMENT ON COLUMN warehouse.analytics.task_sla.skipped_at IS 'When the task was skipped; NULL if not skipped.';
COMMENT ON COLUMN warehouse.analytics.task_sla.sla_target_minutes IS 'SLA target for the task''s priority in minutes (defaults HOT 60, TODAY 1440, EXTRA 4320; configurable). NULL when no target is configured for the priority (a priority Topo added later, or NULL priority).';
COMMENT ON COLUMN warehouse.analytics.task_sla.sla_due_at IS 'created_at + sla_target_minutes (exact minutes, not calendar days: 1440 minutes is 24 hours also across DST changes). NULL when sla_target_minutes is NULL.';
COMMENT ON COLUMN warehouse.analytics.task_sla.minutes_to_complete IS 'For status COMPLETED: (completed_at - created_at) in fractional minutes. NULL for every other status, and for a COMPLETED task without completed_at.';
COMMENT ON COLUMN warehouse.analytics.task_sla.sla_status IS 'MET: COMPLETED with completed_at <= sla_due_at. BREACHED: COMPLETED after sla_due_at, or PENDING/IN_PROGRESS with as_of > sla_due_at. OPEN: PENDING/IN_PROGRESS not yet due at as_of. SKIPPED: status SKIPPED. UNKNOWN: cannot be judged (no target for the priority, a COMPLETED task without completed_at, or a status other than the four known ones).';
COMMENT ON COLUMN warehouse.analytics.task_sla.as_of IS 'When the SLA was evaluated (the run''s time unless configured); open tasks are judged against it.';

-- analytics.sla_by_priority -----------------------------------------------------------------
CREATE TABLE IF NOT EXISTS warehouse.analytics.sla_by_priority (
    partition_date             DATE NOT NULL,
    priority                   VARCHAR,
    tasks                      BIGINT NOT NULL,
    completed                  BIGINT NOT NULL,
    skipped                    BIGINT NOT NULL,
    open                       BIGINT NOT NULL,
    met                        BIGINT NOT NULL,
    breached                   BIGINT NOT NULL,
    sla_attainment             DOUBLE,
    median_minutes_to_complete DOUBLE,
    p90_minutes_to_complete    DOUBLE,
    as_of                      TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE warehouse.analytics.sla_by_priority IS 'SLA outcome per creation day and priority, from analytics.task_sla. One row per (partition_date, priority) with at least one task; NULL priority is its own group.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.partition_date IS 'Day the tasks were created in the pipeline''s timezone (TOPO_TIMEZONE).';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.priority IS 'Task priority: HOT, TODAY, EXTRA, or a value Topo added later; NULL groups tasks without a priority.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.tasks IS 'Tasks in the group (every status).';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.completed IS 'Tasks with status COMPLETED.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.skipped IS 'Tasks with status SKIPPED.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.open IS 'Tasks with status PENDING or IN_PROGRESS (overdue ones included).';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.met IS 'Tasks with sla_status MET.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.breached IS 'Tasks with sla_status BREACHED: completed late, or still open past sla_due_at at as_of.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.sla_attainment IS 'met / (met + breached), in [0, 1]; NULL when met + breached is 0. Across days, sum met and breached first; do not average this column.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.median_minutes_to_complete IS 'Median minutes_to_complete over the group''s COMPLETED tasks (quantile_cont 0.5); NULL when none has a completion time.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.p90_minutes_to_complete IS '90th percentile of minutes_to_complete over the group''s COMPLETED tasks (quantile_cont 0.9, linear interpolation); NULL when none has a completion time.';
COMMENT ON COLUMN warehouse.analytics.sla_by_priority.as_of IS 'When the SLA of these tasks was evaluated (analytics.task_sla.as_of).';

-- analytics.sla_by_assignee -----------------------------------------------------------------
CREATE TABLE IF NOT EXISTS warehouse.analytics.sla_by_assignee (
    partition_date             DATE NOT NULL,
    assignee_user_id           VARCHAR,
    tasks                      BIGINT NOT NULL,
    completed                  BIGINT NOT NULL,
    skipped                    BIGINT NOT NULL,
    open                       BIGINT NOT NULL,
    met                        BIGINT NOT NULL,
    breached                   BIGINT NOT NULL,
    sla_attainment             DOUBLE,
    median_minutes_to_complete DOUBLE,
    p90_minutes_to_complete    DOUBLE,
    as_of                      TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE warehouse.analytics.sla_by_assignee IS 'SLA outcome per creation day and assignee, from analytics.task_sla. One row per (partition_date, assignee_user_id) with at least one task; NULL assignee_user_id (unassigned) is its own group.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.partition_date IS 'Day the tasks were created in the pipeline''s timezone (TOPO_TIMEZONE).';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.assignee_user_id IS 'Workspace user the tasks are assigned to; NULL groups the unassigned tasks.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.tasks IS 'Tasks in the group (every status).';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.completed IS 'Tasks with status COMPLETED.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.skipped IS 'Tasks with status SKIPPED.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.open IS 'Tasks with status PENDING or IN_PROGRESS (overdue ones included).';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.met IS 'Tasks with sla_status MET.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.breached IS 'Tasks with sla_status BREACHED: completed late, or still open past sla_due_at at as_of.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.sla_attainment IS 'met / (met + breached), in [0, 1]; NULL when met + breached is 0. Across days, sum met and breached first; do not average this column.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.median_minutes_to_complete IS 'Median minutes_to_complete over the group''s COMPLETED tasks (quantile_cont 0.5); NULL when none has a completion time.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.p90_minutes_to_complete IS '90th percentile of minutes_to_complete over the group''s COMPLETED tasks (quantile_cont 0.9, linear interpolation); NULL when none has a completion time.';
COMMENT ON COLUMN warehouse.analytics.sla_by_assignee.as_of IS 'When the SLA of these tasks was evaluated (analytics.task_sla.as_of).';

-- analytics.completion_rate_by_priority -----------------------------------------------------
CREATE TABLE IF NOT EXISTS warehouse.analytics.completion_rate_by_priority (
    partition_date   DATE NOT NULL,
    priority         VARCHAR,
    tasks            BIGINT NOT NULL,
    completed        BIGINT NOT NULL,
    skipped          BIGINT NOT NULL,
    pending          BIGINT NOT NULL,
    in_progress      BIGINT NOT NULL,
    completion_rate  DOUBLE,
    skip_rate        DOUBLE
);

COMMENT ON TABLE warehouse.analytics.completion_rate_by_priority IS 'Task outcomes per creation day and priority, from analytics.task_sla. One row per (partition_date, priority) with at least one task; NULL priority is its own group.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.partition_date IS 'Day the tasks were created in the pipeline''s timezone (TOPO_TIMEZONE).';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.priority IS 'Task priority: HOT, TODAY, EXTRA, or a value Topo added later; NULL groups tasks without a priority.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.tasks IS 'Tasks in the group (every status, unknown ones included).';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.completed IS 'Tasks with status COMPLETED.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.skipped IS 'Tasks with status SKIPPED.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.pending IS 'Tasks with status PENDING (reopened tasks included).';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.in_progress IS 'Tasks with status IN_PROGRESS.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.completion_rate IS 'completed / tasks, in [0, 1]; NULL when tasks is 0. Across days, sum completed and tasks first; do not average this column.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_priority.skip_rate IS 'skipped / tasks, in [0, 1]; NULL when tasks is 0. Across days, sum skipped and tasks first.';

-- analytics.completion_rate_by_assignee -----------------------------------------------------
CREATE TABLE IF NOT EXISTS warehouse.analytics.completion_rate_by_assignee (
    partition_date   DATE NOT NULL,
    assignee_user_id VARCHAR,
    tasks            BIGINT NOT NULL,
    completed        BIGINT NOT NULL,
    skipped          BIGINT NOT NULL,
    pending          BIGINT NOT NULL,
    in_progress      BIGINT NOT NULL,
    completion_rate  DOUBLE,
    skip_rate        DOUBLE
);

COMMENT ON TABLE warehouse.analytics.completion_rate_by_assignee IS 'Task outcomes per creation day and assignee, from analytics.task_sla. One row per (partition_date, assignee_user_id) with at least one task; NULL assignee_user_id (unassigned) is its own group.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.partition_date IS 'Day the tasks were created in the pipeline''s timezone (TOPO_TIMEZONE).';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.assignee_user_id IS 'Workspace user the tasks are assigned to; NULL groups the unassigned tasks.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.tasks IS 'Tasks in the group (every status, unknown ones included).';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.completed IS 'Tasks with status COMPLETED.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.skipped IS 'Tasks with status SKIPPED.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.pending IS 'Tasks with status PENDING (reopened tasks included).';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.in_progress IS 'Tasks with status IN_PROGRESS.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.completion_rate IS 'completed / tasks, in [0, 1]; NULL when tasks is 0. Across days, sum completed and tasks first; do not average this column.';
COMMENT ON COLUMN warehouse.analytics.completion_rate_by_assignee.skip_rate IS 'skipped / tasks, in [0, 1]; NULL when tasks is 0. Across days, sum skipped and tasks first.';
