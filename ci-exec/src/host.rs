//! The host executor: steps run as local processes, each in its own process group.
//!
//! Timeout and cancel send SIGTERM to the step's group, then SIGKILL after a grace period.
//! Processes a step leaves running in its group (`server &`) survive into later steps, as on
//! GitHub's runners, and are killed at teardown — no orphans.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, JobEnvironment};
use crate::spec::{Chunk, JobSpec, StepOutcome, StepSpec, Stream};

/// Runs steps as processes on this machine.
#[derive(Debug, Clone)]
pub struct HostExecutor {
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How long output is still read after the step's main process exited without any new
    /// output arriving (background processes may keep the pipes open; reading stops then).
    pub drain: Duration,
}

impl Default for HostExecutor {
    fn default() -> Self {
        HostExecutor {
            grace: Duration::from_secs(5),
            drain: Duration::from_secs(1),
        }
    }
}

#[async_trait::async_trait]
impl Executor for HostExecutor {
    fn name(&self) -> &str {
        "host"
    }

    fn capabilities(&self) -> crate::executor::Capabilities {
        crate::executor::Capabilities::host()
    }

    async fn available(&self) -> Result<(), ExecError> {
        Ok(())
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        Ok(Box::new(self.host_job(job, None)?))
    }
}

/// How a sandboxing executor wraps each step's process (the bubblewrap executor).
#[cfg_attr(not(feature = "bwrap"), allow(dead_code))]
pub(crate) trait Sandbox: Send + Sync {
    /// The program and arguments put before the step's shell command line, for a step
    /// running in `workdir` of `job` with its scripts in `scripts`.
    fn wrap(
        &self,
        job: &JobSpec,
        scripts: &std::path::Path,
        workdir: &std::path::Path,
    ) -> Vec<std::ffi::OsString>;
    /// The environment a step starts from (the host's is never inherited).
    fn base_env(&self) -> Vec<(String, String)>;
}

impl HostExecutor {
    /// A job environment whose steps run wrapped by `sandbox`.
    #[cfg_attr(not(feature = "bwrap"), allow(dead_code))]
    pub(crate) fn prepare_sandboxed(
        &self,
        job: &JobSpec,
        sandbox: Arc<dyn Sandbox>,
    ) -> Result<Box<dyn JobEnvironment>, ExecError> {
        Ok(Box::new(self.host_job(job, Some(sandbox))?))
    }

    fn host_job(
        &self,
        job: &JobSpec,
        sandbox: Option<Arc<dyn Sandbox>>,
    ) -> Result<HostJob, ExecError> {
        let workspace = job.workspace.clone();
        let own_scripts = job.scratch.is_none();
        let scripts = job.scratch.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "gantry-{}-{}-{}",
                sanitize(&job.run_id),
                sanitize(&job.job_id),
                crate::spec::unique_suffix()
            ))
        });
        for dir in [&workspace, &scripts] {
            if !dir.is_dir() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ExecError::Prepare(format!("{}: {e}", dir.display())))?;
            }
        }
        Ok(HostJob {
            job: job.clone(),
            scripts,
            own_scripts,
            deadline: job.timeout.map(|t| Instant::now() + t),
            groups: Mutex::new(Vec::new()),
            grace: self.grace,
            drain: self.drain,
            sandbox,
        })
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct HostJob {
    job: JobSpec,
    scripts: PathBuf,
    /// Whether `scripts` is ours to remove.
    own_scripts: bool,
    deadline: Option<Instant>,
    /// Process groups started by steps, killed at teardown.
    groups: Mutex<Vec<i32>>,
    grace: Duration,
    drain: Duration,
    /// Steps run wrapped (bubblewrap); `None`: plain processes.
    sandbox: Option<Arc<dyn Sandbox>>,
}

enum End {
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
}

impl HostJob {
    fn time_left(&self, step: &StepSpec) -> Option<Duration> {
        crate::spec::time_left(step, self.deadline)
    }

    async fn stop_group(&self, pgid: i32, child: &mut tokio::process::Child) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        if tokio::time::timeout(self.grace, child.wait())
            .await
            .is_err()
        {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            let _ = child.wait().await;
        }
        // Whatever else is left in the group goes too.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

async fn pump(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::Sender<Chunk>,
    progress: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                progress.fetch_add(n as u64, Ordering::Relaxed);
                let chunk = Chunk {
                    stream,
                    data: Bytes::copy_from_slice(&buf[..n]),
                };
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl JobEnvironment for HostJob {
    async fn run_step(
        &self,
        step: &StepSpec,
        output: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> StepOutcome {
        if self.time_left(step) == Some(Duration::ZERO) {
            return StepOutcome::TimedOut;
        }
        let script =
            self.scripts
                .join(format!("{}.{}", sanitize(&step.id), step.shell.extension()));
        // A script is small: written at once rather than through the blocking pool (a thread
        // hand-off each way per step).
        if let Err(e) = std::fs::write(&script, &step.script) {
            return StepOutcome::StartFailed(format!("writing {}: {e}", script.display()));
        }
        let shell_argv = step.shell.argv(&script.to_string_lossy());
        let workdir = match &step.workdir {
            Some(dir) => self.job.workspace.join(dir),
            None => self.job.workspace.clone(),
        };
        let mut argv: Vec<std::ffi::OsString> = match &self.sandbox {
            Some(sandbox) => sandbox.wrap(&self.job, &self.scripts, &workdir),
            None => Vec::new(),
        };
        argv.extend(shell_argv.iter().map(std::ffi::OsString::from));
        let Some((program, args)) = argv.split_first() else {
            return StepOutcome::StartFailed("the shell command line is empty".to_owned());
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(sandbox) = &self.sandbox {
            // A sandboxed step never sees the host's environment.
            command.env_clear();
            command.envs(sandbox.base_env());
        } else if !step.inherit_env {
            command.env_clear();
            // A step without PATH cannot find its shell; keep the host's unless one is given.
            if let Ok(path) = std::env::var("PATH") {
                command.env("PATH", path);
            }
        }
        command.envs(&self.job.env).envs(&step.env);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                return StepOutcome::StartFailed(format!("{}: {e}", program.to_string_lossy()))
            }
        };
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return StepOutcome::StartFailed("the process ended before it could be tracked".into());
        };
        self.groups
            .lock()
            .expect("the group list is never poisoned")
            .push(pid);
        let progress = Arc::new(AtomicU64::new(0));
        let readers = [
            child.stdout.take().map(|r| {
                tokio::spawn(pump(
                    r,
                    Stream::Stdout,
                    output.clone(),
                    Arc::clone(&progress),
                ))
            }),
            child.stderr.take().map(|r| {
                tokio::spawn(pump(
                    r,
                    Stream::Stderr,
                    output.clone(),
                    Arc::clone(&progress),
                ))
            }),
        ];
        drop(output);
        let timeout = self.time_left(step);
        let end = tokio::select! {
            status = child.wait() => match status {
                Ok(s) => End::Exited(s),
                Err(e) => return StepOutcome::StartFailed(e.to_string()),
            },
            _ = crate::spec::expire(timeout) => End::TimedOut,
            _ = cancel.cancelled() => End::Cancelled,
        };
        if !matches!(end, End::Exited(_)) {
            self.stop_group(pid, &mut child).await;
        }
        for mut reader in readers.into_iter().flatten() {
            // Background processes may hold the pipes open: read while output still flows,
            // stop once it has been quiet for `drain`.
            loop {
                let seen = progress.load(Ordering::Relaxed);
                match tokio::time::timeout(self.drain, &mut reader).await {
                    Ok(_) => break,
                    Err(_) if progress.load(Ordering::Relaxed) != seen => continue,
                    Err(_) => {
                        reader.abort();
                        break;
                    }
                }
            }
        }
        match end {
            End::TimedOut => StepOutcome::TimedOut,
            End::Cancelled => StepOutcome::Cancelled,
            End::Exited(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    (Some(code), _) => StepOutcome::Exited(code),
                    (None, Some(signal)) => StepOutcome::Signaled(signal),
                    (None, None) => StepOutcome::Exited(-1),
                }
            }
        }
    }

    fn local_workspace(&self) -> Option<&std::path::Path> {
        Some(&self.job.workspace)
    }

    async fn read_file(&self, path: &std::path::Path) -> Result<Option<bytes::Bytes>, ExecError> {
        crate::files::read_file(&self.job.workspace, path).await
    }

    async fn write_tar(
        &self,
        at: &std::path::Path,
        archive: bytes::Bytes,
    ) -> Result<(), ExecError> {
        crate::files::write_tar(&self.job.workspace, at, archive).await
    }

    async fn read_tar(
        &self,
        from: &std::path::Path,
        paths: &[String],
    ) -> Result<bytes::Bytes, ExecError> {
        crate::files::read_tar(&self.job.workspace, from, paths).await
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        let groups = std::mem::take(
            &mut *self
                .groups
                .lock()
                .expect("the group list is never poisoned"),
        );
        for pgid in groups {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        if !self.own_scripts {
            return Ok(());
        }
        match tokio::fs::remove_dir_all(&self.scripts).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecError::Teardown(format!(
                "{}: {e}",
                self.scripts.display()
            ))),
        }
    }
}
