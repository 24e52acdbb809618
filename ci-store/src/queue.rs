//! The durable job queue behind the [`JobQueue`] seam, on SQLite (the single-node default) or
//! Postgres (several servers sharing one database), in the same database as the run history.
//!
//! A job is enqueued with labels, a project and a priority; a worker **leases** one whose labels
//! it has, with a deadline it extends by heartbeats, and **completes** it with the lease's token
//! (idempotently: the same completion twice is answered with the first outcome; a completion
//! with an older lease's token is refused as stale). A lease that expires is **lost**: the job is
//! queued again while its retry budget lasts (default 1 retry), else it ends with the outcome
//! `lost`. A finished job is never leased again.
//!
//! **Capacity** is gated per label and per project ([`Scope`]): a job is only leased while
//! every one of its labels and its project has a free slot. Between projects the queue is
//! fair: of the jobs a worker could take, the highest priority wins, then the project with
//! the fewest jobs leased, then the oldest. [`JobQueue::waiting`] says why each queued job
//! waits (`waiting for a 'linux-large' slot: 2/2 busy`), so nothing is "pending" without a
//! reason.
//!
//! Times are milliseconds since the epoch, passed in by the caller (tests control the clock).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use ci_store::queue::{JobQueue, NewJob, Outcome, SqliteQueue, Worker};
//! let store = ci_store::runs::SqliteRunStore::open(":memory:").await.unwrap();
//! let queue = SqliteQueue::new(&store);
//! queue.enqueue(&NewJob::new("job-1", "octo/app", "{}").label("linux"), 0).await.unwrap();
//! let worker = Worker::new("w1", ["linux", "docker"]);
//! let lease = queue.lease(&worker, 10, 30_000).await.unwrap().expect("a job to lease");
//! queue.complete(&lease.job_id, &lease.token, Outcome::Success, 20).await.unwrap();
//! assert!(queue.lease(&worker, 30, 30_000).await.unwrap().is_none());
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};

use crate::blob::StoreError;

/// How a queued job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The work succeeded.
    Success,
    /// The work failed.
    Failure,
    /// Cancelled before or while it ran.
    Cancelled,
    /// Its worker stopped answering and the retry budget was spent.
    Lost,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Cancelled => "cancelled",
            Outcome::Lost => "lost",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            "cancelled" => Outcome::Cancelled,
            "lost" => Outcome::Lost,
            other => return Err(StoreError::Corrupt(format!("unknown outcome '{other}'"))),
        })
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueState {
    /// Waiting for a worker.
    Queued,
    /// Leased to a worker.
    Leased,
    /// Ended (see the outcome).
    Done,
}

impl QueueState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::Queued => "queued",
            QueueState::Leased => "leased",
            QueueState::Done => "done",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => QueueState::Queued,
            "leased" => QueueState::Leased,
            "done" => QueueState::Done,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown queue state '{other}'"
                )))
            }
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewJob {
    /// Unique id (the caller's; enqueueing an id twice is a no-op).
    pub id: String,
    /// The project it counts against (capacity and fairness).
    pub project: String,
    /// A worker must have every one of these.
    pub labels: Vec<String>,
    /// Higher first.
    pub priority: i64,
    /// What the worker needs to do the work (opaque to the queue).
    pub payload: String,
    /// How many times a lost job is queued again (default 1).
    pub retries: u32,
}

impl NewJob {
    /// A job without labels, priority 0, one retry.
    pub fn new(
        id: impl Into<String>,
        project: impl Into<String>,
        payload: impl Into<String>,
    ) -> Self {
        NewJob {
            id: id.into(),
            project: project.into(),
            labels: Vec::new(),
            priority: 0,
            payload: payload.into(),
            retries: 1,
        }
    }

    /// Adds a label a worker must have.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the retry budget for lost leases.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// A worker asking for work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// Its id (stable across its leases).
    pub id: String,
    /// What it can run.
    pub labels: Vec<String>,
}

impl Worker {
    /// A worker with these labels.
    pub fn new<L: Into<String>>(
        id: impl Into<String>,
        labels: impl IntoIterator<Item = L>,
    ) -> Self {
        Worker {
            id: id.into(),
            labels: labels.into_iter().map(Into::into).collect(),
        }
    }
}

/// A job leased to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: String,
    /// Proves the lease in heartbeats and the completion.
    pub token: String,
    /// 1 for the first lease of the job.
    pub attempt: u32,
    /// The lease ends here unless extended.
    pub deadline: i64,
    /// The job's project.
    pub project: String,
    /// The job's payload.
    pub payload: String,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was extended; `cancel` says the job was cancelled meanwhile.
    Extended {
        /// Stop the work and complete it as cancelled.
        cancel: bool,
    },
    /// The lease is gone (expired and given to another worker, or the job ended).
    Gone,
}

/// What a completion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Recorded now.
    Recorded,
    /// The same lease had completed it already, with this outcome.
    AlreadyDone(Outcome),
    /// The token is not the job's current lease (it was lost and retried, or never leased).
    Stale,
}

/// What [`JobQueue::expire`] did with one expired lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The job.
    pub job_id: String,
    /// The worker that held it.
    pub worker: String,
    /// Queued again (else it ended as lost).
    pub retried: bool,
}

/// A capacity gate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Jobs carrying this label.
    Label(String),
    /// Jobs of this project.
    Project(String),
}

impl Scope {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Label(l) => ("label", l),
            Scope::Project(p) => ("project", p),
        }
    }
}

/// A job as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// Id.
    pub id: String,
    /// Project.
    pub project: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Priority.
    pub priority: i64,
    /// Payload.
    pub payload: String,
    /// Where it is.
    pub state: QueueState,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Leases taken so far.
    pub attempt: u32,
    /// Leases lost so far.
    pub lost: u32,
    /// The worker holding (or that last held) it.
    pub worker: Option<String>,
    /// Cancellation was asked while leased.
    pub cancel_requested: bool,
    /// Why it was last queued again or ended without its worker (`lease expired on w1`).
    pub note: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
}

/// A queued job and why it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The job.
    pub job: QueuedJob,
    /// Why it is not leased yet.
    pub reason: String,
}

/// Workers seen this recently count as present in [`JobQueue::waiting`]'s reasons.
pub const WORKER_SEEN_MS: i64 = 60_000;

/// Most candidates one lease looks at (after the SQL filters for labels and full gates).
const CANDIDATES: i64 = 256;

/// The durable queue seam. Every method is one transaction.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job; `false` when a job with its id exists already (nothing changes).
    async fn enqueue(&self, job: &NewJob, now: i64) -> Result<bool, StoreError>;
    /// Leases the next job `worker` can run within the capacity gates, until `now + lease_ms`.
    async fn lease(
        &self,
        worker: &Worker,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>, StoreError>;
    /// Extends a lease to `now + lease_ms`.
    async fn heartbeat(
        &self,
        job_id: &str,
        token: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Heartbeat, StoreError>;
    /// Ends a leased job (idempotent for the same token).
    async fn complete(
        &self,
        job_id: &str,
        token: &str,
        outcome: Outcome,
        now: i64,
    ) -> Result<Completion, StoreError>;
    /// Leases whose deadline passed become lost: queued again within the retry budget, else
    /// ended as [`Outcome::Lost`].
    async fn expire(&self, now: i64) -> Result<Vec<Expired>, StoreError>;
    /// `worker` is known to be gone (a server restarting under the same id): its leases are
    /// lost now, as if they had expired (see [`JobQueue::expire`]).
    async fn abandon(&self, worker: &str, now: i64) -> Result<Vec<Expired>, StoreError>;
    /// Cancels a job: a queued one ends as cancelled (`true`); a leased one is flagged for its
    /// worker's next heartbeat (`true`); an ended one is left alone (`false`).
    async fn cancel(&self, job_id: &str, now: i64) -> Result<bool, StoreError>;
    /// Sets (or with `None` removes) a capacity gate.
    async fn set_capacity(&self, scope: &Scope, slots: Option<u32>) -> Result<(), StoreError>;
    /// The capacity gates.
    async fn capacities(&self) -> Result<BTreeMap<Scope, u32>, StoreError>;
    /// A job.
    async fn get(&self, job_id: &str) -> Result<Option<QueuedJob>, StoreError>;
    /// The queued jobs in lease order (per project), each with why it waits.
    async fn waiting(&self, now: i64) -> Result<Vec<Waiting>, StoreError>;
    /// The leased jobs.
    async fn leased(&self) -> Result<Vec<QueuedJob>, StoreError>;
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn labels_json(labels: &[String]) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".into())
}

fn parse_labels(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("queue labels: {e}")))
}

/// A lease token: unique per lease and not guessable from the job id alone.
fn new_token(job_id: &str, attempt: u32, now: i64) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(job_id.as_bytes());
    h.update(format!(
        "{attempt}:{now}:{nanos}:{}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    format!("{attempt}.{}", &hex::encode(h.finalize())[..32])
}

/// How busy each gate is: leased jobs per project and per label.
#[derive(Default)]
struct Busy {
    projects: HashMap<String, u32>,
    labels: HashMap<String, u32>,
}

impl Busy {
    fn add(&mut self, project: &str, labels: &[String]) {
        *self.projects.entry(project.to_owned()).or_default() += 1;
        for l in labels {
            *self.labels.entry(l.clone()).or_default() += 1;
        }
    }

    /// The first full gate of a job, as a reason.
    fn blocked(
        &self,
        caps: &BTreeMap<Scope, u32>,
        project: &str,
        labels: &[String],
    ) -> Option<String> {
        if let Some(&slots) = caps.get(&Scope::Project(project.to_owned())) {
            let used = self.projects.get(project).copied().unwrap_or(0);
            if used >= slots {
                return Some(format!(
                    "waiting for a slot of project '{project}': {used}/{slots} busy"
                ));
            }
        }
        for l in labels {
            if let Some(&slots) = caps.get(&Scope::Label(l.clone())) {
                let used = self.labels.get(l).copied().unwrap_or(0);
                if used >= slots {
                    return Some(format!("waiting for a '{l}' slot: {used}/{slots} busy"));
                }
            }
        }
        None
    }

    /// Projects and labels whose gates are full.
    fn full(&self, caps: &BTreeMap<Scope, u32>) -> (Vec<String>, Vec<String>) {
        let mut projects = Vec::new();
        let mut labels = Vec::new();
        for (scope, &slots) in caps {
            match scope {
                Scope::Project(p) if self.projects.get(p).copied().unwrap_or(0) >= slots => {
                    projects.push(p.clone())
                }
                Scope::Label(l) if self.labels.get(l).copied().unwrap_or(0) >= slots => {
                    labels.push(l.clone())
                }
                _ => {}
            }
        }
        (projects, labels)
    }
}

/// `?, ?, ?` for `n` values.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

const JOB_COLUMNS: &str =
    "seq, id, project, labels, priority, payload, state, outcome, attempt, lost, worker, \
     cancel_requested, note, enqueued_at, finished_at";

fn queued_job<R: sqlx::Row>(row: &R) -> Result<QueuedJob, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let outcome: Option<String> = row.try_get("outcome").map_err(db)?;
    Ok(QueuedJob {
        id: row.try_get("id").map_err(db)?,
        project: row.try_get("project").map_err(db)?,
        labels: parse_labels(&row.try_get::<String, _>("labels").map_err(db)?)?,
        priority: row.try_get("priority").map_err(db)?,
        payload: row.try_get("payload").map_err(db)?,
        state: QueueState::parse(&row.try_get::<String, _>("state").map_err(db)?)?,
        outcome: outcome.as_deref().map(Outcome::parse).transpose()?,
        attempt: row.try_get::<i64, _>("attempt").map_err(db)? as u32,
        lost: row.try_get::<i64, _>("lost").map_err(db)? as u32,
        worker: row.try_get("worker").map_err(db)?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested").map_err(db)? != 0,
        note: row.try_get("note").map_err(db)?,
        enqueued_at: row.try_get("enqueued_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
    })
}

/// Implements [`JobQueue`] for one sqlx backend: `$begin` opens a transaction that serializes
/// lease decisions (so that capacity gates hold across processes), `$lock` is what candidate
/// rows are selected with.
macro_rules! sql_queue {
    ($name:ident, $db:ty, $sql:expr, $begin:expr, $lock:expr) => {
        impl $name {
            async fn busy(
                tx: &mut sqlx::Transaction<'static, $db>,
            ) -> Result<(Busy, BTreeMap<Scope, u32>), StoreError> {
                use sqlx::Row;
                let mut busy = Busy::default();
                for r in sqlx::query::<$db>("SELECT project, labels FROM queue_jobs WHERE state = 'leased'")
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db)?
                {
                    let labels = parse_labels(&r.try_get::<String, _>("labels").map_err(db)?)?;
                    busy.add(&r.try_get::<String, _>("project").map_err(db)?, &labels);
                }
                let caps = Self::caps(&mut **tx).await?;
                Ok((busy, caps))
            }

            async fn caps<'e, E>(executor: E) -> Result<BTreeMap<Scope, u32>, StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                use sqlx::Row;
                let mut caps = BTreeMap::new();
                for r in sqlx::query::<$db>("SELECT scope, name, slots FROM queue_capacity")
                    .fetch_all(executor)
                    .await
                    .map_err(db)?
                {
                    let name: String = r.try_get("name").map_err(db)?;
                    let scope = match r.try_get::<String, _>("scope").map_err(db)?.as_str() {
                        "label" => Scope::Label(name),
                        "project" => Scope::Project(name),
                        other => return Err(StoreError::Corrupt(format!("unknown capacity scope '{other}'"))),
                    };
                    caps.insert(scope, r.try_get::<i64, _>("slots").map_err(db)?.max(0) as u32);
                }
                Ok(caps)
            }
        }

        #[async_trait::async_trait]
        impl JobQueue for $name {
            async fn enqueue(&self, job: &NewJob, now: i64) -> Result<bool, StoreError> {
                use sqlx::Row;
                let mut tx = self.pool.begin().await.map_err(db)?;
                let inserted = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "INSERT INTO queue_jobs (id, project, labels, priority, payload, state, attempt, max_attempts, lost, cancel_requested, enqueued_at) \
                     VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, 0, 0, ?) ON CONFLICT (id) DO NOTHING RETURNING seq",
                )))
                .bind(&job.id)
                .bind(&job.project)
                .bind(labels_json(&job.labels))
                .bind(job.priority)
                .bind(&job.payload)
                .bind(i64::from(job.retries) + 1)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let Some(row) = inserted else { return Ok(false) };
                let seq: i64 = row.try_get("seq").map_err(db)?;
                let mut labels = job.labels.clone();
                labels.sort();
                labels.dedup();
                for l in &labels {
                    sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("INSERT INTO queue_job_labels (job_seq, label) VALUES (?, ?)")))
                        .bind(seq)
                        .bind(l)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(true)
            }

            async fn lease(&self, worker: &Worker, now: i64, lease_ms: i64) -> Result<Option<Lease>, StoreError> {
                use sqlx::Row;
                let mut tx = $begin(&self.pool).await?;
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "INSERT INTO queue_workers (id, labels, last_seen) VALUES (?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET labels = excluded.labels, last_seen = excluded.last_seen",
                )))
                .bind(&worker.id)
                .bind(labels_json(&worker.labels))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                let (busy, caps) = Self::busy(&mut tx).await?;
                let (full_projects, full_labels) = busy.full(&caps);
                // Jobs whose every label the worker has, outside full gates.
                let mut sql = format!("SELECT {JOB_COLUMNS} FROM queue_jobs j WHERE state = 'queued'");
                let others = |column: &str, n: usize| {
                    format!(" AND NOT EXISTS (SELECT 1 FROM queue_job_labels l WHERE l.job_seq = j.seq{})",
                        if n == 0 { String::new() } else { format!(" AND l.label {column} ({})", marks(n)) })
                };
                sql.push_str(&others("NOT IN", worker.labels.len()));
                if !full_projects.is_empty() {
                    sql.push_str(&format!(" AND project NOT IN ({})", marks(full_projects.len())));
                }
                if !full_labels.is_empty() {
                    sql.push_str(&others("IN", full_labels.len()));
                }
                sql.push_str(" ORDER BY priority DESC, seq ASC LIMIT ?");
                sql.push_str($lock);
                let sql = $sql(&sql);
                let mut q = sqlx::query::<$db>(sqlx::AssertSqlSafe(sql));
                for value in worker.labels.iter().chain(&full_projects).chain(&full_labels) {
                    q = q.bind(value.clone());
                }
                let rows = q.bind(CANDIDATES).fetch_all(&mut *tx).await.map_err(db)?;
                let mut best: Option<(i64, u32, i64, QueuedJob)> = None;
                for r in &rows {
                    let job = queued_job(r)?;
                    let seq: i64 = r.try_get("seq").map_err(db)?;
                    let running = busy.projects.get(&job.project).copied().unwrap_or(0);
                    let better = match &best {
                        None => true,
                        Some((p, run, s, _)) => (-job.priority, running, seq) < (-*p, *run, *s),
                    };
                    if better {
                        best = Some((job.priority, running, seq, job));
                    }
                }
                let Some((_, _, _, job)) = best else {
                    tx.commit().await.map_err(db)?;
                    return Ok(None);
                };
                let attempt = job.attempt + 1;
                let token = new_token(&job.id, attempt, now);
                let deadline = now + lease_ms;
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "UPDATE queue_jobs SET state = 'leased', attempt = ?, worker = ?, lease_token = ?, lease_deadline = ? \
                     WHERE id = ? AND state = 'queued'",
                )))
                .bind(i64::from(attempt))
                .bind(&worker.id)
                .bind(&token)
                .bind(deadline)
                .bind(&job.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(Some(Lease { job_id: job.id, token, attempt, deadline, project: job.project, payload: job.payload }))
            }

            async fn heartbeat(&self, job_id: &str, token: &str, now: i64, lease_ms: i64) -> Result<Heartbeat, StoreError> {
                use sqlx::Row;
                let row = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "UPDATE queue_jobs SET lease_deadline = ? WHERE id = ? AND lease_token = ? AND state = 'leased' RETURNING cancel_requested",
                )))
                .bind(now + lease_ms)
                .bind(job_id)
                .bind(token)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
                Ok(match row {
                    Some(r) => Heartbeat::Extended { cancel: r.try_get::<i64, _>("cancel_requested").map_err(db)? != 0 },
                    None => Heartbeat::Gone,
                })
            }

            async fn complete(&self, job_id: &str, token: &str, outcome: Outcome, now: i64) -> Result<Completion, StoreError> {
                use sqlx::Row;
                let mut tx = $begin(&self.pool).await?;
                let row = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("SELECT state, outcome, lease_token FROM queue_jobs WHERE id = ?")))
                    .bind(job_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                let Some(row) = row else {
                    return Err(StoreError::NotFound(format!("queued job {job_id}")));
                };
                let state = QueueState::parse(&row.try_get::<String, _>("state").map_err(db)?)?;
                let current: Option<String> = row.try_get("lease_token").map_err(db)?;
                let done: Option<String> = row.try_get("outcome").map_err(db)?;
                let answer = if current.as_deref() != Some(token) {
                    Completion::Stale
                } else if state == QueueState::Done {
                    Completion::AlreadyDone(Outcome::parse(done.as_deref().unwrap_or("lost"))?)
                } else if state == QueueState::Leased {
                    sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                        "UPDATE queue_jobs SET state = 'done', outcome = ?, finished_at = ?, lease_deadline = NULL WHERE id = ?",
                    )))
                    .bind(outcome.as_str())
                    .bind(now)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    Completion::Recorded
                } else {
                    Completion::Stale
                };
                tx.commit().await.map_err(db)?;
                Ok(answer)
            }

            async fn expire(&self, now: i64) -> Result<Vec<Expired>, StoreError> {
                use sqlx::Row;
                let mut tx = $begin(&self.pool).await?;
                let rows = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(&format!(
                    "SELECT id, worker, attempt, max_attempts, cancel_requested FROM queue_jobs WHERE state = 'leased' AND lease_deadline < ?{}",
                    $lock
                ))))
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
                let mut expired = Vec::new();
                for r in rows {
                    let id: String = r.try_get("id").map_err(db)?;
                    let worker: String = r.try_get::<Option<String>, _>("worker").map_err(db)?.unwrap_or_default();
                    let attempt: i64 = r.try_get("attempt").map_err(db)?;
                    let max: i64 = r.try_get("max_attempts").map_err(db)?;
                    let cancelled = r.try_get::<i64, _>("cancel_requested").map_err(db)? != 0;
                    let retried = attempt < max && !cancelled;
                    let note = format!("lease of attempt {attempt} expired on worker '{worker}'");
                    let sql = if retried {
                        "UPDATE queue_jobs SET state = 'queued', lost = lost + 1, note = ?, lease_deadline = NULL WHERE id = ?"
                    } else if cancelled {
                        "UPDATE queue_jobs SET state = 'done', outcome = 'cancelled', lost = lost + 1, note = ?, lease_deadline = NULL WHERE id = ?"
                    } else {
                        "UPDATE queue_jobs SET state = 'done', outcome = 'lost', lost = lost + 1, note = ?, lease_deadline = NULL WHERE id = ?"
                    };
                    sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(sql)))
                        .bind(&note)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    if !retried {
                        sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("UPDATE queue_jobs SET finished_at = ? WHERE id = ?")))
                            .bind(now)
                            .bind(&id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db)?;
                    }
                    expired.push(Expired { job_id: id, worker, retried });
                }
                tx.commit().await.map_err(db)?;
                Ok(expired)
            }

            async fn abandon(&self, worker: &str, now: i64) -> Result<Vec<Expired>, StoreError> {
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "UPDATE queue_jobs SET lease_deadline = ? WHERE worker = ? AND state = 'leased'",
                )))
                .bind(now - 1)
                .bind(worker)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(self.expire(now).await?.into_iter().filter(|e| e.worker == worker).collect())
            }

            async fn cancel(&self, job_id: &str, now: i64) -> Result<bool, StoreError> {
                let queued = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "UPDATE queue_jobs SET state = 'done', outcome = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'",
                )))
                .bind(now)
                .bind(job_id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                if queued.rows_affected() > 0 {
                    return Ok(true);
                }
                let leased = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                    "UPDATE queue_jobs SET cancel_requested = 1 WHERE id = ? AND state = 'leased'",
                )))
                .bind(job_id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(leased.rows_affected() > 0)
            }

            async fn set_capacity(&self, scope: &Scope, slots: Option<u32>) -> Result<(), StoreError> {
                let (kind, name) = scope.parts();
                match slots {
                    Some(n) => sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(
                        "INSERT INTO queue_capacity (scope, name, slots) VALUES (?, ?, ?) \
                         ON CONFLICT (scope, name) DO UPDATE SET slots = excluded.slots",
                    )))
                    .bind(kind)
                    .bind(name)
                    .bind(i64::from(n)),
                    None => sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("DELETE FROM queue_capacity WHERE scope = ? AND name = ?")))
                        .bind(kind)
                        .bind(name),
                }
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn capacities(&self) -> Result<BTreeMap<Scope, u32>, StoreError> {
                Self::caps(&self.pool).await
            }

            async fn get(&self, job_id: &str) -> Result<Option<QueuedJob>, StoreError> {
                sqlx::query::<$db>(sqlx::AssertSqlSafe($sql(&format!("SELECT {JOB_COLUMNS} FROM queue_jobs WHERE id = ?"))))
                    .bind(job_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?
                    .as_ref()
                    .map(queued_job)
                    .transpose()
            }

            async fn waiting(&self, now: i64) -> Result<Vec<Waiting>, StoreError> {
                use sqlx::Row;
                let mut tx = self.pool.begin().await.map_err(db)?;
                let (busy, caps) = Self::busy(&mut tx).await?;
                let workers: Vec<Vec<String>> = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql("SELECT labels FROM queue_workers WHERE last_seen >= ?")))
                    .bind(now - WORKER_SEEN_MS)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(|r| parse_labels(&r.try_get::<String, _>("labels").map_err(db)?))
                    .collect::<Result<_, _>>()?;
                let rows = sqlx::query::<$db>(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM queue_jobs WHERE state = 'queued' ORDER BY priority DESC, seq ASC"
                )))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
                tx.commit().await.map_err(db)?;
                let mut ahead: HashMap<String, usize> = HashMap::new();
                let mut out = Vec::new();
                for r in &rows {
                    let job = queued_job(r)?;
                    let reason = if let Some(why) = busy.blocked(&caps, &job.project, &job.labels) {
                        why
                    } else if !workers.iter().any(|w| job.labels.iter().all(|l| w.contains(l))) {
                        if job.labels.is_empty() {
                            "no worker has asked for work in the last minute".to_owned()
                        } else {
                            format!(
                                "no worker with the labels {} has asked for work in the last minute",
                                job.labels.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", ")
                            )
                        }
                    } else {
                        let key = labels_json(&job.labels);
                        let n = ahead.entry(key).or_default();
                        *n += 1;
                        if *n == 1 {
                            "next for a free worker".to_owned()
                        } else {
                            format!("waiting for a free worker ({} ahead)", *n - 1)
                        }
                    };
                    out.push(Waiting { job, reason });
                }
                Ok(out)
            }

            async fn leased(&self) -> Result<Vec<QueuedJob>, StoreError> {
                sqlx::query::<$db>(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM queue_jobs WHERE state = 'leased' ORDER BY seq"
                )))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
                .iter()
                .map(queued_job)
                .collect()
            }
        }
    };
}

/// The queue in the SQLite database of a [`crate::runs::SqliteRunStore`].
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    pool: sqlx::SqlitePool,
}

impl SqliteQueue {
    /// The queue in `store`'s database (its migrations created the tables).
    pub fn new(store: &crate::runs::SqliteRunStore) -> Self {
        SqliteQueue {
            pool: store.pool().clone(),
        }
    }
}

/// SQLite serializes writers: `BEGIN IMMEDIATE` takes the write lock up front, so two lease
/// decisions never interleave (nor fail to upgrade a read lock).
async fn sqlite_begin(
    pool: &sqlx::SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
}

fn same(sql: &str) -> String {
    sql.to_owned()
}

sql_queue!(SqliteQueue, sqlx::Sqlite, same, sqlite_begin, "");

/// The queue in the Postgres database of a [`crate::runs::PostgresRunStore`]; several servers
/// may share it.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresQueue {
    pool: sqlx::PgPool,
}

#[cfg(feature = "postgres")]
impl PostgresQueue {
    /// The queue in `store`'s database (its migrations created the tables).
    pub fn new(store: &crate::runs::PostgresRunStore) -> Self {
        PostgresQueue {
            pool: store.pool().clone(),
        }
    }
}

/// Lease decisions are serialized by a transaction-scoped advisory lock (capacity gates must
/// count what other servers leased); candidate rows are locked with `SKIP LOCKED` besides.
#[cfg(feature = "postgres")]
async fn postgres_begin(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock(7263001)")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    Ok(tx)
}

#[cfg(feature = "postgres")]
sql_queue!(
    PostgresQueue,
    sqlx::Postgres,
    crate::runs::numbered,
    postgres_begin,
    " FOR UPDATE SKIP LOCKED"
);
