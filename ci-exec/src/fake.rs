//! A scripted executor for tests and users' test harnesses: per step, the output, exit
//! code, delay and faults to produce — no process is started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, JobEnvironment};
use crate::spec::{Chunk, JobSpec, StepOutcome, StepSpec, Stream};

/// What a scripted step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStep {
    /// Output, in order.
    pub output: Vec<(Stream, Vec<u8>)>,
    /// How long it "runs" (after the output).
    pub delay: Duration,
    /// How it ends.
    pub outcome: StepOutcome,
    /// Output sent after the end (a tail a sloppy executor would lose).
    pub tail: Vec<(Stream, Vec<u8>)>,
}

impl Default for FakeStep {
    fn default() -> Self {
        FakeStep {
            output: Vec::new(),
            delay: Duration::ZERO,
            outcome: StepOutcome::Exited(0),
            tail: Vec::new(),
        }
    }
}

impl FakeStep {
    /// Succeeds after printing `stdout`.
    pub fn prints(stdout: &str) -> Self {
        FakeStep {
            output: vec![(Stream::Stdout, stdout.as_bytes().to_vec())],
            ..FakeStep::default()
        }
    }

    /// Exits with `code`.
    pub fn exits(code: i32) -> Self {
        FakeStep {
            outcome: StepOutcome::Exited(code),
            ..FakeStep::default()
        }
    }
}

/// The scripted executor. Steps without a script succeed silently.
#[derive(Debug, Default)]
pub struct FakeExecutor {
    steps: HashMap<String, FakeStep>,
    unavailable: Option<String>,
    ran: Arc<Mutex<Vec<String>>>,
}

impl FakeExecutor {
    /// An executor where every step succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts the step with this id.
    pub fn step(mut self, id: &str, step: FakeStep) -> Self {
        self.steps.insert(id.to_owned(), step);
        self
    }

    /// Step ids in the order they ran, across jobs (for assertions).
    pub fn ran(&self) -> Vec<String> {
        self.ran.lock().expect("never poisoned").clone()
    }

    /// Makes `available` fail.
    pub fn unavailable(mut self, reason: &str) -> Self {
        self.unavailable = Some(reason.to_owned());
        self
    }
}

#[async_trait::async_trait]
impl Executor for FakeExecutor {
    fn name(&self) -> &str {
        "fake"
    }

    fn capabilities(&self) -> crate::executor::Capabilities {
        crate::executor::Capabilities::host()
    }

    async fn available(&self) -> Result<(), ExecError> {
        match &self.unavailable {
            Some(reason) => Err(ExecError::Unavailable {
                executor: "fake".into(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        self.available().await?;
        Ok(Box::new(FakeJob {
            steps: self.steps.clone(),
            deadline: job.timeout.map(|t| Instant::now() + t),
            ran: Arc::clone(&self.ran),
        }))
    }
}

struct FakeJob {
    steps: HashMap<String, FakeStep>,
    deadline: Option<Instant>,
    ran: Arc<Mutex<Vec<String>>>,
}

async fn send(output: &mpsc::Sender<Chunk>, parts: &[(Stream, Vec<u8>)]) {
    for (stream, bytes) in parts {
        let _ = output
            .send(Chunk {
                stream: *stream,
                data: Bytes::copy_from_slice(bytes),
            })
            .await;
    }
}

#[async_trait::async_trait]
impl JobEnvironment for FakeJob {
    async fn run_step(
        &self,
        step: &StepSpec,
        output: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> StepOutcome {
        self.ran
            .lock()
            .expect("never poisoned")
            .push(step.id.clone());
        let script = self.steps.get(&step.id).cloned().unwrap_or_default();
        if let StepOutcome::StartFailed(reason) = &script.outcome {
            return StepOutcome::StartFailed(reason.clone());
        }
        send(&output, &script.output).await;
        let limit = crate::spec::time_left(step, self.deadline);
        let timed_out = limit.is_some_and(|l| l < script.delay);
        let wait = limit.map_or(script.delay, |l| l.min(script.delay));
        if cancel.is_cancelled() {
            return StepOutcome::Cancelled;
        }
        // A zero sleep would still wait for the timer's next tick (a millisecond).
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return StepOutcome::Cancelled,
            }
        }
        if timed_out {
            return StepOutcome::TimedOut;
        }
        send(&output, &script.tail).await;
        script.outcome
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        Ok(())
    }
}
