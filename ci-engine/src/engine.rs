//! The engine: its configuration (executors, stores, secrets) and the start of runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ci_config::Diagnostic;
use ci_exec::{Executor, HostExecutor};
use ci_store::runs::{RunStore, SqliteRunStore};
use ci_store::{BlobStore, StoreError};
use ci_vcs::{Event, EventKind, RepositoryInfo};
use indexmap::IndexMap;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::{RunEvent, RunSummary};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The workflow has errors (rendered with [`Diagnostic::render`] against the source).
    #[error("{path} has {} error(s)", diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// The file.
        path: String,
        /// Its diagnostics.
        diagnostics: Vec<Diagnostic>,
    },
    /// Something the workflow asks for that Gantry cannot do (named).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Bad options (an unknown `--job`, a malformed `--matrix`…).
    #[error("{0}")]
    Usage(String),
    /// Nothing runs for this event (GitLab `workflow:rules`, or every job's rules said no).
    #[error("{0}")]
    NotCreated(String),
    /// Recording the run failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a file or making a directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A workflow to run: its text, where it was read from, and the repository it belongs to.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path shown in messages (relative to the repository root when possible).
    pub path: String,
    /// The file's text.
    pub text: String,
    /// The repository root: checkouts come from it and `./` actions and reusable workflows
    /// are found in it.
    pub root: PathBuf,
    /// The dialect; `None`: detected from the path and the file's top-level keys.
    pub dialect: Option<ci_config::Dialect>,
}

impl Source {
    /// Reads a workflow file; the root is the enclosing git repository (else the directory
    /// holding `.github`, else the file's directory).
    pub fn read(path: impl AsRef<Path>) -> Result<Source, EngineError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let absolute = std::path::absolute(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        let root = ci_vcs::Repository::open(&dir)
            .map(|r| r.root().to_path_buf())
            .ok()
            .or_else(|| {
                absolute
                    .ancestors()
                    .find(|a| a.file_name().is_some_and(|n| n == ".github"))
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
            })
            .unwrap_or(dir);
        let shown = absolute
            .strip_prefix(&root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf());
        Ok(Source {
            path: shown.display().to_string(),
            text,
            root,
            dialect: None,
        })
    }

    /// A workflow given as text, in the repository at `root`.
    pub fn new(path: impl Into<String>, text: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
            root: root.into(),
            dialect: None,
        }
    }

    /// Reads the file as `dialect` instead of detecting it.
    pub fn with_dialect(mut self, dialect: ci_config::Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// The event of a local run of this source: a push of the repository's HEAD, or (outside
    /// a git repository) a manual event without a commit.
    pub fn local_event(&self) -> Event {
        match ci_vcs::Repository::open(&self.root).and_then(|r| r.local_push()) {
            Ok(event) => event,
            Err(_) => {
                let name = self
                    .root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "workspace".into());
                Event {
                    kind: EventKind::Manual,
                    git_ref: "refs/heads/main".into(),
                    sha: ci_vcs::event::ZERO_SHA.into(),
                    before: None,
                    head_ref: None,
                    base_ref: None,
                    base_sha: None,
                    actor: std::env::var("USER").unwrap_or_else(|_| "gantry".into()),
                    repository: RepositoryInfo {
                        full_name: format!("local/{name}"),
                        owner: "local".into(),
                        name,
                        default_branch: "main".into(),
                        html_url: None,
                    },
                    inputs: IndexMap::new(),
                    message: None,
                    payload: serde_json::json!({}),
                }
            }
        }
    }
}

/// Per-run choices.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Run only these jobs (by job id) and what they need; empty: every job.
    pub jobs: Vec<String>,
    /// `inputs` (workflow_dispatch / workflow_call).
    pub inputs: IndexMap<String, String>,
    /// Run only matrix combinations with these values (`--matrix os:linux`).
    pub matrix: Vec<(String, String)>,
    /// Most jobs of this run at once (besides the engine's capacity).
    pub max_parallel: Option<usize>,
    /// Extra secrets for this run (added to the engine's).
    pub secrets: IndexMap<String, String>,
    /// Extra variables for this run (added to the engine's).
    pub vars: IndexMap<String, String>,
    /// Send [`RunEvent::Log`] events (on by default through [`RunOptions::new`]).
    pub log_events: bool,
    /// Manual jobs to start (GitLab `when: manual`); others are skipped with a notice.
    pub manual: Vec<String>,
    /// What `jobs` brings along.
    pub needs: NeedsMode,
}

/// Which jobs a `--job` selection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NeedsMode {
    /// The selected jobs and everything they need (GitHub's way; GitLab's `--needs`).
    #[default]
    Include,
    /// Only the selected jobs.
    Exclude,
    /// Only what the selected jobs need, not the jobs themselves (`--only-needs`).
    Only,
}

impl Default for RunOptions {
    /// Every job, log events on.
    fn default() -> Self {
        RunOptions {
            jobs: Vec::new(),
            inputs: IndexMap::new(),
            matrix: Vec::new(),
            max_parallel: None,
            secrets: IndexMap::new(),
            vars: IndexMap::new(),
            log_events: true,
            manual: Vec::new(),
            needs: NeedsMode::default(),
        }
    }
}

impl RunOptions {
    /// The defaults (the same as [`Default`]): every job, log events on.
    pub fn new() -> Self {
        RunOptions::default()
    }
}

pub(crate) struct Inner {
    pub executors: IndexMap<String, Arc<dyn Executor>>,
    pub default_executor: Arc<dyn Executor>,
    pub blobs: BlobStore,
    pub runs: Arc<dyn RunStore>,
    pub secrets: IndexMap<String, String>,
    pub vars: IndexMap<String, String>,
    pub capacity: Arc<Semaphore>,
    pub work_dir: PathBuf,
    pub action_dirs: IndexMap<String, PathBuf>,
    pub groups: crate::run::Groups,
    pub bash: Option<PathBuf>,
    pub containers: Option<Arc<dyn Executor>>,
    /// Posts commit statuses of runs and jobs.
    #[cfg(feature = "reporters")]
    pub reporter: Option<Arc<dyn ci_vcs::status::StatusReporter>>,
    /// The local Docker daemon, connected the first time a job needs containers.
    pub docker: tokio::sync::OnceCell<Option<Arc<dyn Executor>>>,
}

impl Inner {
    /// The executor for job containers, services and docker steps: the one configured, else
    /// the first mapped executor that runs containers, else (feature `docker`) the local
    /// Docker daemon when it answers.
    pub async fn container_executor(&self) -> Option<Arc<dyn Executor>> {
        if let Some(c) = self.containers.clone().or_else(|| {
            self.executors
                .values()
                .find(|e| e.capabilities().containers)
                .cloned()
        }) {
            return Some(c);
        }
        self.docker
            .get_or_init(|| async {
                #[cfg(feature = "docker")]
                if let Ok(d) = ci_exec::DockerExecutor::connect("busybox").await {
                    return Some(Arc::new(d) as Arc<dyn Executor>);
                }
                None
            })
            .await
            .clone()
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("executors", &self.executors.keys().collect::<Vec<_>>())
            .field("default_executor", &self.default_executor.name())
            .field("secrets", &self.secrets.len())
            .field("work_dir", &self.work_dir)
            .finish_non_exhaustive()
    }
}

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
    containers: Option<Arc<dyn Executor>>,
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
                groups: crate::run::Groups::default(),
                bash,
                containers: self.containers,
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
        let prepared = crate::run::prepare(self, source, event, options).await?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        let run_id = prepared.run_id.clone();
        let task = tokio::spawn(crate::run::execute(prepared, tx, cancel.clone()));
        Ok(RunHandle {
            run_id,
            events: rx,
            cancel,
            task,
        })
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

/// Which executor runs a job with these `runs-on` labels.
pub(crate) fn executor_for(inner: &Inner, labels: &[String]) -> Arc<dyn Executor> {
    labels
        .iter()
        .find_map(|l| inner.executors.get(l))
        .cloned()
        .unwrap_or_else(|| Arc::clone(&inner.default_executor))
}

/// Actions mapped to directories, by `owner/repo@ref` or `owner/repo`.
pub(crate) fn mapped_action(inner: &Inner, uses: &str) -> Option<(PathBuf, String)> {
    let (name, reference) = uses.split_once('@').unwrap_or((uses, ""));
    // `owner/repo/sub/path@ref`: the mapping is for the repository.
    let mut parts = name.splitn(3, '/');
    let repo = format!("{}/{}", parts.next()?, parts.next()?);
    let sub = parts.next().unwrap_or("").to_owned();
    let dir = inner
        .action_dirs
        .get(&format!("{repo}@{reference}"))
        .or_else(|| inner.action_dirs.get(&repo))?;
    Some((dir.clone(), sub))
}
