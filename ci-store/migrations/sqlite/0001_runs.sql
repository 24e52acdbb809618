CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    repo TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    sha TEXT NOT NULL,
    event TEXT NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX runs_by_repo ON runs (repo, git_ref, status, seq);
CREATE TABLE jobs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    outputs TEXT NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE steps (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    step_index BIGINT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    log_key TEXT,
    PRIMARY KEY (run_id, job_id, step_index),
    FOREIGN KEY (run_id, job_id) REFERENCES jobs (run_id, job_id) ON DELETE CASCADE
);
CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    manifest_key TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
