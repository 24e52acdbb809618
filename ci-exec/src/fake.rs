//! A scripted executor for tests and users' test harnesses: per step, the output, exit
//! code, delay and faults to produce — no process is started. Steps nobody scripted succeed
//! silently ([`FakeExecutor::new`]) or run in a small shell over the job's in-memory files
//! ([`FakeExecutor::shell`]); the job's file operations work on those files. The shell fake
//! passes the conformance suite by behaving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, JobEnvironment};
use crate::fake_shell::{interpret, Effect, Files};
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
    /// Steps nobody scripted run in the small shell (else they succeed silently).
    shell: bool,
    unavailable: Option<String>,
    ran: Arc<Mutex<Vec<String>>>,
}

impl FakeExecutor {
    /// An executor where every step nobody scripted succeeds silently.
    pub fn new() -> Self {
        Self::default()
    }

    /// An executor where steps nobody scripted run in a small shell over the job's
    /// in-memory files (`echo`, `printf`, `exit`, `sleep`, `pwd`, `cat`, variables, quotes,
    /// `>`/`>>`/`>&2`; see the module doc), so tests can write real scripts.
    pub fn shell() -> Self {
        FakeExecutor {
            shell: true,
            ..Self::default()
        }
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
        // Its files live in memory: callers reach them only through the job's operations.
        crate::executor::Capabilities::remote(false)
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
            shell: self.shell,
            env: job.env.clone(),
            workspace: job.workspace.clone(),
            files: Mutex::new(Files::new()),
        }))
    }
}

struct FakeJob {
    steps: HashMap<String, FakeStep>,
    deadline: Option<Instant>,
    ran: Arc<Mutex<Vec<String>>>,
    shell: bool,
    /// The job's environment, under each step's own.
    env: indexmap::IndexMap<String, String>,
    workspace: PathBuf,
    files: Mutex<Files>,
}

impl FakeJob {
    fn path(&self, path: &Path) -> Result<PathBuf, ExecError> {
        crate::files::resolve(&self.workspace, path)
    }

    /// Runs a step nobody scripted in the small shell.
    async fn interpret(
        &self,
        step: &StepSpec,
        output: &mpsc::Sender<Chunk>,
        cancel: &CancellationToken,
    ) -> StepOutcome {
        let cwd = match &step.workdir {
            Some(dir) => self.workspace.join(dir),
            None => self.workspace.clone(),
        };
        let mut env = self.env.clone();
        env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let run = {
            let mut files = self.files.lock().expect("never poisoned");
            interpret(&step.script, &env, &cwd, &mut files)
        };
        let limit = crate::spec::time_left(step, self.deadline).map(|l| Instant::now() + l);
        for effect in run.effects {
            match effect {
                Effect::Output(stream, data) => {
                    let _ = output
                        .send(Chunk {
                            stream,
                            data: Bytes::from(data),
                        })
                        .await;
                }
                Effect::Sleep(d) => {
                    let until = Instant::now() + d;
                    let (wake, timed_out) = match limit {
                        Some(l) if l < until => (l, true),
                        _ => (until, false),
                    };
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake.into()) => {}
                        _ = cancel.cancelled() => return StepOutcome::Cancelled,
                    }
                    if timed_out {
                        return StepOutcome::TimedOut;
                    }
                }
            }
        }
        StepOutcome::Exited(run.exit)
    }
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
        let script = match self.steps.get(&step.id) {
            Some(script) => script.clone(),
            None if self.shell => return self.interpret(step, &output, &cancel).await,
            None => FakeStep::default(),
        };
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

    fn local_workspace(&self) -> Option<&Path> {
        None
    }

    async fn read_file(&self, path: &Path) -> Result<Option<Bytes>, ExecError> {
        let path = self.path(path)?;
        Ok(self
            .files
            .lock()
            .expect("never poisoned")
            .get(&path)
            .cloned())
    }

    async fn write_tar(&self, at: &Path, archive: Bytes) -> Result<(), ExecError> {
        let at = self.path(at)?;
        let mut archive = tar::Archive::new(archive.as_ref());
        let entries = archive
            .entries()
            .map_err(|e| ExecError::Files(e.to_string()))?;
        let mut files = self.files.lock().expect("never poisoned");
        for entry in entries {
            let mut entry = entry.map_err(|e| ExecError::Files(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| ExecError::Files(e.to_string()))?
                .into_owned();
            let path = crate::files::resolve(&at, &name)?;
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)
                .map_err(|e| ExecError::Files(e.to_string()))?;
            files.insert(path, Bytes::from(data));
        }
        Ok(())
    }

    async fn read_tar(&self, from: &Path, paths: &[String]) -> Result<Bytes, ExecError> {
        let from = self.path(from)?;
        let mut wanted = Vec::new();
        for p in paths {
            let rel = Path::new(p.trim_start_matches("./"));
            wanted.push(crate::files::resolve(&from, rel)?);
        }
        let files = self.files.lock().expect("never poisoned");
        let mut builder = tar::Builder::new(Vec::new());
        let mut names: Vec<&PathBuf> = files
            .keys()
            .filter(|f| wanted.iter().any(|w| f.starts_with(w)))
            .collect();
        names.sort();
        for name in names {
            let rel = name.strip_prefix(&from).unwrap_or(name);
            let data = &files[name];
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, rel, data.as_ref())
                .map_err(|e| ExecError::Files(e.to_string()))?;
        }
        builder
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| ExecError::Files(e.to_string()))
    }
}
