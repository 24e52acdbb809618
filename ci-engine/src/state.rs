//! What a run shares between its jobs, and what jobs report back: the run's context, the
//! scope of a (called) workflow, a job attempt handed to a task, and the recorder's work.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ci_config::expr::{Contexts, Value};
use ci_config::model::Workflow;
use ci_graph::{JobInstance, Outcome};
use ci_store::runs::{JobRecord, StepRecord};
use ci_vcs::{Event, RunInfo};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{JobSummary, RunEvent, Status};
use crate::inner::Inner;
use crate::options::RunOptions;

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Everything a run shares between its jobs.
pub(crate) struct RunCtx {
    pub inner: Arc<Inner>,
    pub run_id: String,
    pub run_number: u64,
    pub event: Event,
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub workflow_name: String,
    pub options: RunOptions,
    pub tx: mpsc::Sender<RunEvent>,
    pub summaries: Mutex<Vec<JobSummary>>,
    pub errors: Arc<Mutex<Vec<String>>>,
    pub recorder: mpsc::Sender<Record>,
    pub event_file: std::sync::OnceLock<bool>,
    pub free_dirs: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// Commit statuses of the run and its jobs.
    #[cfg(feature = "reporters")]
    pub reporting: Option<crate::report::Reporting>,
    /// GitLab: the project at the event's commit, cloned once per run.
    pub snapshot: std::sync::OnceLock<Result<Option<Arc<crate::snapshot::Snapshot>>, String>>,
}

impl RunCtx {
    /// Sends an event; waits while the consumer is behind (the channel is bounded), and
    /// drops it when nobody listens any more.
    pub async fn emit(&self, event: RunEvent) {
        #[cfg(feature = "reporters")]
        if let Some(r) = &self.reporting {
            r.event(&event).await;
        }
        let _ = self.tx.send(event).await;
    }

    pub fn error(&self, message: String) {
        self.errors.lock().expect("never poisoned").push(message);
    }

    /// Queues a write for the recorder (waiting while its queue is full).
    pub async fn record(&self, record: Record) {
        if self.recorder.send(record).await.is_err() {
            self.error("the recorder stopped; the run is not fully recorded".into());
        }
    }

    /// The `github` context of a job with this workspace, as JSON.
    pub fn github_json(&self, workspace: &str, job: &str) -> serde_json::Value {
        let info = RunInfo {
            run_id: self.run_number_id(),
            run_number: self.run_number,
            run_attempt: 1,
            workspace: workspace.to_owned(),
            workflow: self.workflow_name.clone(),
            ..RunInfo::default()
        };
        let mut json = self.event.github_context(&info);
        json["job"] = serde_json::Value::from(job);
        json["run_id"] = serde_json::Value::from(self.run_id.as_str());
        json
    }

    /// An emptied workspace and temp directory of a finished job, if any.
    pub fn reuse_dirs(&self) -> Option<(PathBuf, PathBuf)> {
        self.free_dirs.lock().expect("never poisoned").pop()
    }

    /// Offers emptied directories to later jobs.
    pub fn offer_dirs(&self, dirs: (PathBuf, PathBuf)) {
        self.free_dirs.lock().expect("never poisoned").push(dirs);
    }

    /// `GITHUB_EVENT_PATH`: the payload, written once per run.
    pub fn event_path(&self) -> PathBuf {
        let path = self.run_dir.join("event.json");
        let _ = self.event_file.get_or_init(|| {
            std::fs::create_dir_all(&self.run_dir)
                .and_then(|()| std::fs::write(&path, self.event.payload.to_string()))
                .is_ok()
        });
        path
    }

    fn run_number_id(&self) -> u64 {
        self.run_id
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(self.run_number)
    }
}

/// A workflow being run: the top one, or one called by a job.
#[derive(Clone)]
pub(crate) struct WorkflowScope {
    /// Prefix of its job ids (`caller / `), empty at the top.
    pub prefix: String,
    /// `github`, `vars`, `inputs`, `secrets`.
    pub contexts: Contexts,
    /// Secret values to mask.
    pub secrets: Vec<String>,
    /// Nesting depth of calls.
    pub depth: u32,
    /// Variables of the run beside the jobs' own.
    pub vars: crate::env::RunVars,
    /// Named sets of secret variables jobs may name (CircleCI contexts).
    pub secret_sets: Arc<IndexMap<String, IndexMap<String, String>>>,
}

/// What a finished workflow reports to its caller.
#[derive(Debug, Clone)]
pub(crate) struct WorkflowResult {
    pub status: Status,
    /// Job id → (result, outputs), for `jobs.<id>` in workflow_call outputs.
    pub jobs: IndexMap<String, (Status, IndexMap<String, String>)>,
}

/// What a job attempt reports to the loop.
pub(crate) struct JobResult {
    pub outcome: ci_graph::Outcome,
    pub steps: Vec<StepRecord>,
    pub started_at: i64,
    pub duration: Duration,
    pub name: String,
}

/// Work for the recorder: stores are written off the scheduling path, in order.
pub(crate) enum Record {
    /// A job and its steps.
    Job(JobRecord, Vec<StepRecord>),
    /// A finished job log to compact.
    Log(String, ci_store::logs::LogWriter),
    /// Everything before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A job attempt handed to a task.
pub(crate) struct JobTask {
    pub ctx: Arc<RunCtx>,
    pub workflow: Arc<Workflow>,
    pub scope: WorkflowScope,
    pub needs: Value,
    pub instance: JobInstance,
    pub attempt: u32,
    pub cancel: CancellationToken,
    /// `strategy.job-index` and `strategy.job-total`.
    pub matrix_pos: (usize, usize),
    /// The instances this one waited for, as (job, instance id): artifacts come from them.
    pub needed: Vec<(String, String)>,
}

/// Whether an outcome status is a success for the scheduler.
pub(crate) fn outcome_of(status: Status) -> Outcome {
    match status {
        Status::Success | Status::Skipped => Outcome::success(),
        Status::Cancelled => Outcome::cancelled(),
        Status::Failure => Outcome::failure(1),
    }
}

impl JobTask {
    /// The id shown and recorded (`caller / job (a, b)` inside called workflows).
    pub fn id(&self) -> String {
        format!("{}{}", self.scope.prefix, self.instance.id)
    }

    /// Tells the run's listeners that the attempt started.
    pub async fn announce(&self) {
        self.ctx
            .emit(RunEvent::JobStarted {
                job: self.id(),
                name: self.instance.name.clone(),
                attempt: self.attempt,
            })
            .await;
    }
}
