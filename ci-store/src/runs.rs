//! Run history: runs, jobs, steps and artifacts with their statuses and timestamps, behind the
//! [`RunStore`] trait, on SQLite (the embedded default, WAL) or Postgres, each with its own
//! migrations. Every multi-row change runs in a transaction.

use indexmap::IndexMap;

use crate::blob::StoreError;

/// What a run, job or step is doing or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Waiting.
    Queued,
    /// In progress.
    Running,
    /// Succeeded.
    Success,
    /// Failed.
    Failure,
    /// Cancelled.
    Cancelled,
    /// Did not run.
    Skipped,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "success" => Status::Success,
            "failure" => Status::Failure,
            "cancelled" => Status::Cancelled,
            "skipped" => Status::Skipped,
            other => return Err(StoreError::Corrupt(format!("unknown status '{other}'"))),
        })
    }
}

/// A run to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRun {
    /// Unique id (the caller's).
    pub id: String,
    /// `owner/name`.
    pub repo: String,
    /// The full ref.
    pub git_ref: String,
    /// The commit.
    pub sha: String,
    /// The event name.
    pub event: String,
    /// The workflow file.
    pub workflow: String,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// What was created.
    pub run: NewRun,
    /// Insertion order (the pagination cursor).
    pub seq: i64,
    /// Status.
    pub status: Status,
    /// Start time, ms.
    pub started_at: Option<i64>,
    /// End time, ms.
    pub finished_at: Option<i64>,
}

/// A job of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Job instance id.
    pub job_id: String,
    /// Display name.
    pub name: String,
    /// Status.
    pub status: Status,
    /// Attempt (1 for the first).
    pub attempt: i64,
    /// Start time, ms.
    pub started_at: Option<i64>,
    /// End time, ms.
    pub finished_at: Option<i64>,
    /// Job outputs.
    pub outputs: IndexMap<String, String>,
}

/// A step of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Position in the job.
    pub index: i64,
    /// Display name.
    pub name: String,
    /// Status.
    pub status: Status,
    /// Start time, ms.
    pub started_at: Option<i64>,
    /// End time, ms.
    pub finished_at: Option<i64>,
    /// Where its log is in the blob store.
    pub log_key: Option<String>,
}

/// A run with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDetails {
    /// The run.
    pub run: RunRecord,
    /// Its jobs with their steps, by job id.
    pub jobs: Vec<(JobRecord, Vec<StepRecord>)>,
    /// Artifact name → manifest key.
    pub artifacts: Vec<(String, String)>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this repository.
    pub repo: Option<String>,
    /// Only this ref.
    pub git_ref: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
}

/// A page of runs, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The runs.
    pub runs: Vec<RunRecord>,
    /// Pass to get the next page; `None` at the end.
    pub next: Option<i64>,
}

/// Where run history lives.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run (queued).
    async fn create_run(&self, run: &NewRun) -> Result<(), StoreError>;
    /// Sets a run's status and times.
    async fn set_run_status(
        &self,
        id: &str,
        status: Status,
        started_at: Option<i64>,
        finished_at: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Records a job and its steps (replacing what was recorded), in one transaction.
    async fn record_job(
        &self,
        run_id: &str,
        job: &JobRecord,
        steps: &[StepRecord],
    ) -> Result<(), StoreError>;
    /// Records several jobs in one transaction (what a busy engine batches).
    async fn record_jobs(
        &self,
        run_id: &str,
        jobs: &[(JobRecord, Vec<StepRecord>)],
    ) -> Result<(), StoreError> {
        for (job, steps) in jobs {
            self.record_job(run_id, job, steps).await?;
        }
        Ok(())
    }
    /// Records an artifact's manifest key.
    async fn record_artifact(
        &self,
        run_id: &str,
        name: &str,
        manifest_key: &str,
    ) -> Result<(), StoreError>;
    /// A run with its jobs, steps and artifacts.
    async fn get_run(&self, id: &str) -> Result<Option<RunDetails>, StoreError>;
    /// Runs matching `filter`, newest first, `limit` per page, after `cursor`.
    async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<Page, StoreError>;
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn outputs_json(outputs: &IndexMap<String, String>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = outputs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn parse_outputs(s: &str) -> Result<IndexMap<String, String>, StoreError> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default())
}

/// `?` placeholders → `$1, $2 …` (Postgres).
#[cfg(any(feature = "postgres", test))]
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

const INSERT_RUN: &str = "INSERT INTO runs (id, repo, git_ref, sha, event, workflow, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)";
const SET_STATUS: &str = "UPDATE runs SET status = ?, started_at = COALESCE(?, started_at), finished_at = COALESCE(?, finished_at) WHERE id = ?";
const UPSERT_JOB: &str = "INSERT INTO jobs (run_id, job_id, name, status, attempt, started_at, finished_at, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (run_id, job_id) DO UPDATE SET name = excluded.name, status = excluded.status, attempt = excluded.attempt, \
     started_at = excluded.started_at, finished_at = excluded.finished_at, outputs = excluded.outputs";
const DELETE_STEPS: &str = "DELETE FROM steps WHERE run_id = ? AND job_id = ?";
const INSERT_STEP: &str = "INSERT INTO steps (run_id, job_id, step_index, name, status, started_at, finished_at, log_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const UPSERT_ARTIFACT: &str = "INSERT INTO artifacts (run_id, name, manifest_key) VALUES (?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET manifest_key = excluded.manifest_key";
const RUN_COLUMNS: &str =
    "seq, id, repo, git_ref, sha, event, workflow, status, created_at, started_at, finished_at";

/// Implements [`RunStore`] for one sqlx backend; the SQL is shared, placeholders adapted.
macro_rules! sql_store {
    ($name:ident, $db:ty, $sql:expr) => {
        #[async_trait::async_trait]
        impl RunStore for $name {
            async fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(INSERT_RUN)))
                    .bind(&run.id)
                    .bind(&run.repo)
                    .bind(&run.git_ref)
                    .bind(&run.sha)
                    .bind(&run.event)
                    .bind(&run.workflow)
                    .bind(run.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(())
            }

            async fn set_run_status(&self, id: &str, status: Status, started_at: Option<i64>, finished_at: Option<i64>) -> Result<(), StoreError> {
                let done = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(SET_STATUS)))
                    .bind(status.as_str())
                    .bind(started_at)
                    .bind(finished_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("run {id}")));
                }
                Ok(())
            }

            async fn record_job(&self, run_id: &str, job: &JobRecord, steps: &[StepRecord]) -> Result<(), StoreError> {
                self.record_jobs(run_id, &[(job.clone(), steps.to_vec())]).await
            }

            async fn record_jobs(&self, run_id: &str, jobs: &[(JobRecord, Vec<StepRecord>)]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(db)?;
                for (job, steps) in jobs {
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(UPSERT_JOB)))
                    .bind(run_id)
                    .bind(&job.job_id)
                    .bind(&job.name)
                    .bind(job.status.as_str())
                    .bind(job.attempt)
                    .bind(job.started_at)
                    .bind(job.finished_at)
                    .bind(outputs_json(&job.outputs))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(DELETE_STEPS))).bind(run_id).bind(&job.job_id).execute(&mut *tx).await.map_err(db)?;
                for s in steps {
                    sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(INSERT_STEP)))
                        .bind(run_id)
                        .bind(&job.job_id)
                        .bind(s.index)
                        .bind(&s.name)
                        .bind(s.status.as_str())
                        .bind(s.started_at)
                        .bind(s.finished_at)
                        .bind(s.log_key.as_deref())
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                }
                tx.commit().await.map_err(db)
            }

            async fn record_artifact(&self, run_id: &str, name: &str, manifest_key: &str) -> Result<(), StoreError> {
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(UPSERT_ARTIFACT))).bind(run_id).bind(name).bind(manifest_key).execute(&self.pool).await.map_err(db)?;
                Ok(())
            }

            async fn get_run(&self, id: &str) -> Result<Option<RunDetails>, StoreError> {
                use sqlx::Row;
                let mut tx = self.pool.begin().await.map_err(db)?;
                let row = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                let Some(row) = row else { return Ok(None) };
                let run = run_record(&row)?;
                let job_rows = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("SELECT job_id, name, status, attempt, started_at, finished_at, outputs FROM jobs WHERE run_id = ? ORDER BY job_id")))
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                let mut jobs = Vec::new();
                for r in job_rows {
                    let job = JobRecord {
                        job_id: r.try_get("job_id").map_err(db)?,
                        name: r.try_get("name").map_err(db)?,
                        status: Status::parse(&r.try_get::<String, _>("status").map_err(db)?)?,
                        attempt: r.try_get("attempt").map_err(db)?,
                        started_at: r.try_get("started_at").map_err(db)?,
                        finished_at: r.try_get("finished_at").map_err(db)?,
                        outputs: parse_outputs(&r.try_get::<String, _>("outputs").map_err(db)?)?,
                    };
                    let step_rows = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("SELECT step_index, name, status, started_at, finished_at, log_key FROM steps WHERE run_id = ? AND job_id = ? ORDER BY step_index")))
                        .bind(id)
                        .bind(&job.job_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                    let mut steps = Vec::new();
                    for s in step_rows {
                        steps.push(StepRecord {
                            index: s.try_get("step_index").map_err(db)?,
                            name: s.try_get("name").map_err(db)?,
                            status: Status::parse(&s.try_get::<String, _>("status").map_err(db)?)?,
                            started_at: s.try_get("started_at").map_err(db)?,
                            finished_at: s.try_get("finished_at").map_err(db)?,
                            log_key: s.try_get("log_key").map_err(db)?,
                        });
                    }
                    jobs.push((job, steps));
                }
                let artifacts = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("SELECT name, manifest_key FROM artifacts WHERE run_id = ? ORDER BY name")))
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(|r| Ok((r.try_get("name").map_err(db)?, r.try_get("manifest_key").map_err(db)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                tx.commit().await.map_err(db)?;
                Ok(Some(RunDetails { run, jobs, artifacts }))
            }

            async fn list_runs(&self, filter: &RunFilter, limit: u32, cursor: Option<i64>) -> Result<Page, StoreError> {
                let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
                if filter.repo.is_some() { sql.push_str(" AND repo = ?"); }
                if filter.git_ref.is_some() { sql.push_str(" AND git_ref = ?"); }
                if filter.status.is_some() { sql.push_str(" AND status = ?"); }
                if cursor.is_some() { sql.push_str(" AND seq < ?"); }
                sql.push_str(" ORDER BY seq DESC LIMIT ?");
                let sql = $sql(&sql);
                let mut q = sqlx::query::<$db>(sqlx::AssertSqlSafe(sql));
                if let Some(r) = &filter.repo { q = q.bind(r); }
                if let Some(r) = &filter.git_ref { q = q.bind(r); }
                if let Some(s) = filter.status { q = q.bind(s.as_str()); }
                if let Some(c) = cursor { q = q.bind(c); }
                let rows = q.bind(i64::from(limit) + 1).fetch_all(&self.pool).await.map_err(db)?;
                let mut runs = rows.iter().map(run_record).collect::<Result<Vec<_>, _>>()?;
                let next = if runs.len() > limit as usize {
                    runs.truncate(limit as usize);
                    runs.last().map(|r| r.seq)
                } else {
                    None
                };
                Ok(Page { runs, next })
            }
        }
    };
}

fn run_record<R: sqlx::Row>(row: &R) -> Result<RunRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RunRecord {
        seq: row.try_get("seq").map_err(db)?,
        run: NewRun {
            id: row.try_get("id").map_err(db)?,
            repo: row.try_get("repo").map_err(db)?,
            git_ref: row.try_get("git_ref").map_err(db)?,
            sha: row.try_get("sha").map_err(db)?,
            event: row.try_get("event").map_err(db)?,
            workflow: row.try_get("workflow").map_err(db)?,
            created_at: row.try_get("created_at").map_err(db)?,
        },
        status: Status::parse(&row.try_get::<String, _>("status").map_err(db)?)?,
        started_at: row.try_get("started_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
    })
}

/// The embedded default: a SQLite file (WAL, foreign keys on), created when missing.
#[derive(Debug, Clone)]
pub struct SqliteRunStore {
    pool: sqlx::SqlitePool,
}

impl SqliteRunStore {
    /// Opens (and migrates) the database at `path`; `:memory:` for a private in-memory one.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let options = if path == ":memory:" {
            SqliteConnectOptions::new().in_memory(true)
        } else {
            if let Some(parent) = std::path::Path::new(path).parent() {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL with NORMAL: a commit survives a crash of the process (the WAL is
                // written before the commit returns); only an OS crash may lose the last ones.
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        }
        .foreign_keys(true);
        // One connection for in-memory databases: each connection would have its own.
        let max = if path == ":memory:" { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await
            .map_err(db)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteRunStore { pool })
    }

    /// The connection pool (the job queue shares the database).
    pub(crate) fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

fn same(sql: &str) -> String {
    sql.to_owned()
}

sql_store!(SqliteRunStore, sqlx::Sqlite, same);

/// Run history on Postgres.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresRunStore {
    pool: sqlx::PgPool,
}

#[cfg(feature = "postgres")]
impl PostgresRunStore {
    /// Connects to `url` (`postgres://user:pass@host/db`) and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
            .map_err(db)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(PostgresRunStore { pool })
    }

    /// The connection pool (the job queue shares the database).
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

#[cfg(feature = "postgres")]
sql_store!(PostgresRunStore, sqlx::Postgres, numbered);

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(super::numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
    }
}
