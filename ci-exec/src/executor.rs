//! The `Executor` seam: prepare a job environment, run steps in it, tear it down.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
}

/// Runs jobs. Object-safe, shared as `Arc<dyn Executor>`.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// A short name (`host`, `fake`, `docker`).
    fn name(&self) -> &str;

    /// Whether the executor can run here.
    async fn available(&self) -> Result<(), ExecError>;

    /// Prepares a job environment.
    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError>;
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
}
