//! The engine: its configuration (executors, stores, secrets) and the start of runs.

use std::path::PathBuf;
use std::sync::Arc;

use ci_exec::{Executor, HostExecutor};
use ci_store::runs::{RunStore, SqliteRunStore};
use ci_store::BlobStore;
use ci_vcs::Event;
use indexmap::IndexMap;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::events::{RunEvent, RunSummary};
use crate::inner::Inner;
use crate::options::RunOptions;
use crate::source::Source;

/// Runs workflows. Cheap to clone; runs started from clones share capacity, stores and
/// concurrency groups.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Configures an [`Engine`].
#[derive(Default)]
pub struct EngineBuilder {
    executors: IndexMap<String, Arc<dyn Executor>>,
    default_executor: Option<Arc<dyn Executor>>,
    blobs: Option<BlobStore>,
    runs: Option<Arc<dyn RunStore>>,
    secrets: IndexMap<String, String>,
    vars: IndexMap<String, String>,
    capacity: Option<usize>,
    work_dir: Option<PathBuf>,
    action_dirs: IndexMap<String, PathBuf>,
    fetcher: Option<Option<ci_vcs::fetch::Fetcher>>,
    containers: Option<Arc<dyn Executor>>,
    live_logs: Option<std::time::Duration>,
    lost_retries: u32,
    #[cfg(feature = "reporters")]
    reporter: Option<Arc<dyn ci_vcs::status::StatusReporter>>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("executors", &self.executors.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Jobs whose `runs-on` names `label` run on `executor`.
    pub fn executor(mut self, label: impl Into<String>, executor: Arc<dyn Executor>) -> Self {
        self.executors.insert(label.into(), executor);
        self
    }

    /// The executor for labels without one of their own (default: the host executor).
    pub fn default_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.default_executor = Some(executor);
        self
    }

    /// The executor for job `container:`/`services:`/`image:` and `docker://` steps when a
    /// job's label maps to an executor without containers (default: the first mapped
    /// executor with containers, else — feature `docker` — the local Docker daemon, connected
    /// when a job first needs it).
    pub fn container_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.containers = Some(executor);
        self
    }

    /// Posts a commit status for each run (context `gantry/<workflow>`) and each job
    /// (`gantry/<workflow> / <job>`): running when it starts, then its result. Posting
    /// happens in order on a task of its own; failures end up in the run's errors.
    #[cfg(feature = "reporters")]
    pub fn reporter(mut self, reporter: Arc<dyn ci_vcs::status::StatusReporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Where logs, artifacts and caches go (default: in memory).
    pub fn blobs(mut self, blobs: BlobStore) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Where runs are recorded (default: an in-memory SQLite database).
    pub fn run_store(mut self, runs: Arc<dyn RunStore>) -> Self {
        self.runs = Some(runs);
        self
    }

    /// A secret (`secrets.NAME`), masked in every log.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// A configuration variable (`vars.NAME`).
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Most jobs running at once across all runs (default: the number of CPUs).
    pub fn capacity(mut self, jobs: usize) -> Self {
        self.capacity = Some(jobs.max(1));
        self
    }

    /// Runs a job whose machine was lost (`StepOutcome::Lost`: a remote agent stopped
    /// answering) again up to `n` times, where the job has no retry rule of its own.
    pub fn retry_lost_jobs(mut self, n: u32) -> Self {
        self.lost_retries = n;
        self
    }

    /// Writes jobs' logs out while output arrives, at most `interval` apart (and at each step's
    /// end), so that a live view following [`ci_store::logs::LogReader`] sees them; without it
    /// logs are written in 64 KiB segments and when a job ends.
    pub fn live_logs(mut self, interval: std::time::Duration) -> Self {
        self.live_logs = Some(interval);
        self
    }

    /// Where job workspaces are made (default: a `gantry` directory under the system temp
    /// directory).
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    /// Maps a remote action (`owner/repo@ref`, or `owner/repo` for every ref) to a local
    /// directory holding it.
    pub fn action_dir(mut self, action: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.action_dirs.insert(action.into(), dir.into());
        self
    }

    /// How remote actions, reusable workflows and GitLab includes are fetched (default: the
    /// fetch layer configured from the environment, see
    /// [`FetchConfig::from_env`](ci_vcs::fetch::FetchConfig::from_env)); `None`: nothing is
    /// fetched, and what would have to be is an error naming the fix.
    pub fn fetcher(mut self, fetcher: Option<ci_vcs::fetch::Fetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// The engine.
    pub async fn build(self) -> Result<Engine, EngineError> {
        let runs: Arc<dyn RunStore> = match self.runs {
            Some(r) => r,
            None => Arc::new(SqliteRunStore::open(":memory:").await?),
        };
        let blobs = match self.blobs {
            Some(b) => b,
            None => BlobStore::open("memory://")?,
        };
        let capacity = self.capacity.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let work_dir = self
            .work_dir
            .unwrap_or_else(|| std::env::temp_dir().join("gantry"));
        std::fs::create_dir_all(&work_dir).map_err(|source| EngineError::Io {
            path: work_dir.clone(),
            source,
        })?;
        // Resolved once: each step then starts bash without a PATH search.
        let bash = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("bash"))
                .find(|p| p.is_file())
        });
        Ok(Engine {
            inner: Arc::new(Inner {
                executors: self.executors,
                default_executor: self
                    .default_executor
                    .unwrap_or_else(|| Arc::new(HostExecutor::default())),
                blobs,
                runs,
                secrets: self.secrets,
                vars: self.vars,
                capacity: Arc::new(Semaphore::new(capacity)),
                work_dir,
                action_dirs: self.action_dirs,
                fetcher: self.fetcher.unwrap_or_else(|| {
                    Some(ci_vcs::fetch::Fetcher::new(
                        ci_vcs::fetch::FetchConfig::from_env(),
                    ))
                }),
                groups: crate::groups::Groups::default(),
                bash,
                containers: self.containers,
                live_logs: self.live_logs,
                lost_retries: self.lost_retries,
                docker: tokio::sync::OnceCell::new(),
                #[cfg(feature = "reporters")]
                reporter: self.reporter,
            }),
        })
    }
}

impl Engine {
    /// Starts configuring an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The run store (for listing runs and reading their details).
    pub fn run_store(&self) -> &Arc<dyn RunStore> {
        &self.inner.runs
    }

    /// The blob store (logs, artifacts, caches).
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Reads, checks and plans `source`, then starts running it in the background.
    /// Configuration errors come back here; everything later arrives as [`RunEvent`]s and in
    /// the [`RunSummary`] of [`RunHandle::wait`]. Must be called inside a Tokio runtime.
    pub async fn start(
        &self,
        source: Source,
        event: Event,
        options: RunOptions,
    ) -> Result<RunHandle, EngineError> {
        let prepared = crate::run::prepare(Arc::clone(&self.inner), source, event, options).await?;
        Ok(self.launch(prepared))
    }

    /// Like [`Engine::start`] for a file already read with [`ci_config::load`] — and perhaps
    /// changed, or built in code: the IR is the engine's input, whatever wrote it. `root` is
    /// the repository the run checks out.
    pub async fn start_loaded(
        &self,
        loaded: ci_config::Loaded,
        root: impl Into<PathBuf>,
        event: Event,
        options: RunOptions,
    ) -> Result<RunHandle, EngineError> {
        let path = loaded
            .workflows
            .first()
            .map(|w| w.path.clone())
            .unwrap_or_default();
        let source = Source::new(path, String::new(), root).with_dialect(loaded.dialect);
        let prepared =
            crate::run::prepare_loaded(Arc::clone(&self.inner), loaded, source, event, options)
                .await?;
        Ok(self.launch(prepared))
    }

    /// Runs a prepared run in the background.
    fn launch(&self, prepared: crate::run::Prepared) -> RunHandle {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        let run_id = prepared.run_id.clone();
        let span = tracing::info_span!("run", id = %run_id);
        let task = tokio::spawn(tracing::Instrument::instrument(
            crate::run::execute(prepared, tx, cancel.clone()),
            span,
        ));
        RunHandle {
            run_id,
            events: rx,
            cancel,
            task,
        }
    }
}

/// Events a run may get ahead of its reader before it waits for it.
const EVENT_BUFFER: usize = 1024;

/// A run in progress. Read its events with [`RunHandle::next_event`] or call
/// [`RunHandle::wait`]: the event channel is bounded, so a run whose events are neither read
/// nor dropped waits for its reader.
#[derive(Debug)]
pub struct RunHandle {
    run_id: String,
    events: mpsc::Receiver<RunEvent>,
    cancel: CancellationToken,
    task: JoinHandle<RunSummary>,
}

impl RunHandle {
    /// The run id.
    pub fn id(&self) -> &str {
        &self.run_id
    }

    /// The next event; `None` once the run has finished and every event was read.
    pub async fn next_event(&mut self) -> Option<RunEvent> {
        self.events.recv().await
    }

    /// Cancels the run: running steps are stopped (process groups, containers), jobs whose
    /// condition uses `always()` or `cancelled()` still run, everything is torn down.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled (for signal handlers).
    pub fn canceller(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the end of the run (events not yet read are dropped).
    pub async fn wait(self) -> RunSummary {
        let run_id = self.run_id.clone();
        drop(self.events);
        match self.task.await {
            Ok(summary) => summary,
            Err(e) => RunSummary {
                run_id,
                status: crate::Status::Failure,
                duration: std::time::Duration::ZERO,
                jobs: Vec::new(),
                errors: vec![format!("the run task failed: {e}")],
            },
        }
    }
}
