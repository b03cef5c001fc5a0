-- The run-local stage: every task a run fetched, in arrival order, before it is landed.
-- Lives in its own DuckDB file (never the pipeline's), so fetching holds no lock on the
-- warehouse. The same id may arrive more than once (ties moving between pages, re-reads);
-- landing keeps the highest arrival of each id.
CREATE TABLE staged_tasks (
    arrival           BIGINT NOT NULL,
    id                VARCHAR NOT NULL,
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
    raw               VARCHAR NOT NULL
);
