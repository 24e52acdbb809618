//! The `Executor` seam: prepare a job environment, run steps in it, tear it down.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use std::path::Path;

use bytes::Bytes;

use crate::spec::{Chunk, JobSpec, StepOutcome, StepSpec};

/// Why an executor could not do what was asked (a step's own failure is a [`StepOutcome`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The executor cannot run here (no docker daemon, …).
    #[error("executor '{executor}' is not available: {reason}")]
    Unavailable {
        /// Which executor.
        executor: String,
        /// Why.
        reason: String,
    },
    /// Preparing the job environment failed.
    #[error("preparing the job failed: {0}")]
    Prepare(String),
    /// Tearing the job environment down failed.
    #[error("tearing the job down failed: {0}")]
    Teardown(String),
    /// Reading or writing the job's files failed.
    #[error("job files: {0}")]
    Files(String),
}

/// What an executor can do: callers decide by these, never by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Runs a job in a container image and starts service containers beside it.
    pub containers: bool,
    /// Steps run in an image of the job's choosing: its shell and tools, not the engine's
    /// machine's, and the engine's own environment is not inherited.
    pub runs_in_image: bool,
    /// The job's workspace is a directory of the engine's machine at the same path, so file
    /// operations may take a local fast path.
    pub shares_host_filesystem: bool,
    /// The operating system steps run on (`linux`, `macos`, …).
    pub os: &'static str,
}

impl Capabilities {
    /// Processes on the engine's own machine.
    pub const fn host() -> Self {
        Capabilities {
            containers: false,
            runs_in_image: false,
            shares_host_filesystem: true,
            os: std::env::consts::OS,
        }
    }

    /// Containers of a local container engine, with the workspace bind-mounted.
    pub const fn local_containers() -> Self {
        Capabilities {
            containers: true,
            runs_in_image: true,
            shares_host_filesystem: true,
            os: "linux",
        }
    }

    /// Jobs that run elsewhere: the workspace is reached only through the job's file
    /// operations.
    pub const fn remote(containers: bool) -> Self {
        Capabilities {
            containers,
            runs_in_image: containers,
            shares_host_filesystem: false,
            os: "linux",
        }
    }
}

/// Runs jobs. Object-safe, shared as `Arc<dyn Executor>`.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// A short name (`host`, `fake`, `docker`) for messages.
    fn name(&self) -> &str;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// Whether the executor can run here.
    async fn available(&self) -> Result<(), ExecError>;

    /// Prepares a job environment.
    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError>;

    /// Whether `image` is here without pulling it (executors without images: `true`).
    async fn has_image(&self, _image: &str) -> bool {
        true
    }

    /// Builds the image `tag` from a directory holding a `Dockerfile` (GitHub's Dockerfile
    /// actions) and returns what its containers run: (`ENTRYPOINT`, `CMD`). Executors
    /// without images say so.
    async fn build_image(
        &self,
        _context: &Path,
        tag: &str,
    ) -> Result<(Vec<String>, Vec<String>), ExecError> {
        Err(ExecError::Unavailable {
            executor: self.name().to_owned(),
            reason: format!("it cannot build images (wanted: {tag})"),
        })
    }
}

/// A prepared job: steps run in it one after another.
#[async_trait::async_trait]
pub trait JobEnvironment: Send + Sync {
    /// Runs one step, sending its output as it comes. Ends at exit, at the step's or the
    /// job's timeout, or when `cancel` fires; never leaves the step's processes behind on
    /// timeout or cancel.
    async fn run_step(
        &self,
        step: &StepSpec,
        output: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> StepOutcome;

    /// Removes everything the job left (processes, temporary files, containers).
    /// Idempotent: calling it twice, or after a failed step, is fine.
    async fn teardown(&self) -> Result<(), ExecError>;

    // The job's files belong to the job environment: callers reach them only through the
    // operations below, so a job can run on another machine. Paths are relative to the
    // workspace (they may not leave it), or absolute inside the job's filesystem. The
    // defaults describe an environment that keeps no files (a test double): nothing to
    // read, and writing is refused; every executor with a workspace implements all four.

    /// The workspace as a directory of the caller's machine, when the job's files are there
    /// at that path (host, local Docker): a fast path for the operations below.
    fn local_workspace(&self) -> Option<&Path> {
        None
    }

    /// Reads one file; `None` when it does not exist.
    async fn read_file(&self, _path: &Path) -> Result<Option<Bytes>, ExecError> {
        Ok(None)
    }

    /// Unpacks a tar archive into the directory `at` (made if missing).
    async fn write_tar(&self, at: &Path, _archive: Bytes) -> Result<(), ExecError> {
        Err(ExecError::Files(format!(
            "{}: this job environment keeps no files",
            at.display()
        )))
    }

    /// Packs `paths` (relative to `from`; `.` for all of it) into a tar archive; paths that
    /// do not exist are left out.
    async fn read_tar(&self, _from: &Path, _paths: &[String]) -> Result<Bytes, ExecError> {
        tar::Builder::new(Vec::new())
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| ExecError::Files(e.to_string()))
    }
}
