-- The durable job queue (ci_store::queue): one row per queued unit of work, kept after it ends
-- so that completion stays idempotent and a finished job is never run again.
CREATE TABLE queue_jobs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL,
    labels TEXT NOT NULL,
    priority BIGINT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    attempt BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    lost BIGINT NOT NULL,
    worker TEXT,
    lease_token TEXT,
    lease_deadline BIGINT,
    cancel_requested BIGINT NOT NULL,
    note TEXT,
    enqueued_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX queue_jobs_by_state ON queue_jobs (state, priority, seq);
CREATE TABLE queue_capacity (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    slots BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE queue_workers (
    id TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    last_seen BIGINT NOT NULL
);
-- A job's labels, one row each, so that leasing filters by a worker's labels in SQL.
CREATE TABLE queue_job_labels (
    job_seq BIGINT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (job_seq, label)
);
CREATE INDEX queue_job_labels_by_label ON queue_job_labels (label);
