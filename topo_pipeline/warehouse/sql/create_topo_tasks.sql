-- topo.tasks: the landed Topo tasks. Idempotent; run at the start of every write.
CREATE SCHEMA IF NOT EXISTS warehouse.topo;

CREATE TABLE IF NOT EXISTS warehouse.topo.tasks (
    id                VARCHAR NOT NULL PRIMARY KEY,
    organization_id   VARCHAR,
    type              VARCHAR,
    priority          VARCHAR,
    status            VARCHAR,
    sequence_id       VARCHAR,
    assignee_user_id  VARCHAR,
    disposition       VARCHAR,
    reopened_at       TIMESTAMPTZ,
    reopen_reason     VARCHAR,
    skipped_at        TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ,
    partition_date    DATE NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL,
    raw               JSON NOT NULL
);

COMMENT ON TABLE warehouse.topo.tasks IS 'Topo tasks from GET /v1/tasks. One row per task id, holding its latest fetched state; partition_date is the day the task was created in the pipeline''s timezone.';
COMMENT ON COLUMN warehouse.topo.tasks.id IS 'Task id (UUID). Unique.';
COMMENT ON COLUMN warehouse.topo.tasks.organization_id IS 'Topo workspace (organization) the task belongs to.';
COMMENT ON COLUMN warehouse.topo.tasks.type IS 'Task type: CALL, EMAIL_REPLY, LINKEDIN_REPLY, NEW_LEAD_REVIEW (Topo may add values).';
COMMENT ON COLUMN warehouse.topo.tasks.priority IS 'Priority bucket set by Topo: HOT, TODAY, EXTRA (Topo may add values).';
COMMENT ON COLUMN warehouse.topo.tasks.status IS 'Status when fetched: PENDING, IN_PROGRESS, COMPLETED, SKIPPED (Topo may add values).';
COMMENT ON COLUMN warehouse.topo.tasks.sequence_id IS 'Sequence run that created the task.';
COMMENT ON COLUMN warehouse.topo.tasks.assignee_user_id IS 'Workspace user the task is assigned to; NULL means unassigned.';
COMMENT ON COLUMN warehouse.topo.tasks.disposition IS 'Outcome of a CALL task: ANSWERED, VOICEMAIL_LEFT, NO_ANSWER; NULL otherwise.';
COMMENT ON COLUMN warehouse.topo.tasks.reopened_at IS 'When the task was last reopened; NULL if never.';
COMMENT ON COLUMN warehouse.topo.tasks.reopen_reason IS 'Why it was last reopened: REMINDER_RULE; NULL if never.';
COMMENT ON COLUMN warehouse.topo.tasks.skipped_at IS 'When the task was skipped; NULL if not skipped.';
COMMENT ON COLUMN warehouse.topo.tasks.completed_at IS 'When the task was completed; NULL if not completed.';
COMMENT ON COLUMN warehouse.topo.tasks.created_at IS 'When Topo created the task. Decides partition_date.';
COMMENT ON COLUMN warehouse.topo.tasks.updated_at IS 'When Topo last modified the task.';
COMMENT ON COLUMN warehouse.topo.tasks.partition_date IS 'Day of created_at in the pipeline''s timezone (TOPO_TIMEZONE); the Dagster partition.';
COMMENT ON COLUMN warehouse.topo.tasks.loaded_at IS 'When this row was fetched from the API.';
COMMENT ON COLUMN warehouse.topo.tasks.raw IS 'The task object exactly as the API returned it, including fields added after this table was defined.';
