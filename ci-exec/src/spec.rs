//! What an executor is asked to run, and how a step ended.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;

/// A suffix unique within this machine for the life of the process: prepared jobs never share
/// temporary directories, even with equal run and job ids.
pub(crate) fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// How long a step may still run: the shorter of its own timeout and what is left of the
/// job's `deadline` (every executor applies the same rule).
pub(crate) fn time_left(step: &StepSpec, deadline: Option<std::time::Instant>) -> Option<Duration> {
    let job_left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
    match (step.timeout, job_left) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Ends when `limit` has passed; never without one (the time-limit arm of a step's
/// `select!`).
pub(crate) async fn expire(limit: Option<Duration>) {
    match limit {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending::<()>().await,
    }
}

/// A job environment to prepare.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    /// The run, for labels and temporary names.
    pub run_id: String,
    /// The job instance, for labels and temporary names.
    pub job_id: String,
    /// The workspace directory (created if missing).
    pub workspace: PathBuf,
    /// Environment of every step (steps add their own).
    pub env: IndexMap<String, String>,
    /// Longest the whole job may take.
    pub timeout: Option<Duration>,
    /// The job container (container executors; the host executor ignores it).
    pub container: Option<ContainerSpec>,
    /// Service containers, reachable from the job by their names.
    pub services: Vec<ServiceSpec>,
    /// Whether the job needs a network (container executors run without one otherwise).
    pub network: bool,
    /// Further host directories the job's steps read and write (the engine's per-job temp
    /// directory with the `GITHUB_OUTPUT`-style files); container executors mount them at the
    /// same paths.
    pub mounts: Vec<PathBuf>,
    /// A directory the caller made for this job where the executor may keep its own files
    /// (step scripts); the caller removes it. `None`: the executor makes and removes one.
    pub scratch: Option<PathBuf>,
}

/// A job container.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ContainerSpec {
    /// The image.
    pub image: String,
    /// Container environment (steps add theirs).
    pub env: IndexMap<String, String>,
    /// `user` to run as.
    pub user: Option<String>,
}

/// A service container (a database, a cache …) the job talks to.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ServiceSpec {
    /// Its name: the host name the job reaches it by.
    pub name: String,
    /// The image.
    pub image: String,
    /// Its environment.
    pub env: IndexMap<String, String>,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// A shell command run inside the service until it exits 0 (readiness).
    pub health_cmd: Option<String>,
    /// Longest to wait for readiness.
    pub health_timeout: Option<Duration>,
}

/// The shell a step's script runs in, as GitHub defines them.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Shell {
    /// `bash --noprofile --norc -eo pipefail {0}` (GitHub's default on Linux).
    #[default]
    Bash,
    /// `sh -e {0}`
    Sh,
    /// `python {0}`
    Python,
    /// `pwsh -command ". '{0}'"`
    Pwsh,
    /// A custom command line where `{0}` is the script file (`perl {0}`).
    Custom(String),
}

impl Shell {
    /// Parses a workflow's `shell:` value.
    pub fn parse(s: &str) -> Shell {
        match s.trim() {
            "bash" => Shell::Bash,
            "sh" => Shell::Sh,
            "python" => Shell::Python,
            "pwsh" => Shell::Pwsh,
            other if other.contains("{0}") => Shell::Custom(other.to_owned()),
            other => Shell::Custom(format!("{other} {{0}}")),
        }
    }

    /// The command line template.
    pub fn template(&self) -> &str {
        match self {
            Shell::Bash => "bash --noprofile --norc -eo pipefail {0}",
            Shell::Sh => "sh -e {0}",
            Shell::Python => "python {0}",
            Shell::Pwsh => "pwsh -command \". '{0}'\"",
            Shell::Custom(t) => t,
        }
    }

    /// The script file's extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Shell::Python => "py",
            Shell::Pwsh => "ps1",
            _ => "sh",
        }
    }

    /// The argv for a script file: the template split on whitespace (quotes respected), with
    /// `{0}` replaced by the path.
    pub fn argv(&self, script: &str) -> Vec<String> {
        split_words(self.template())
            .into_iter()
            .map(|w| w.replace("{0}", script))
            .collect()
    }
}

/// Splits a command line into words as a shell would (quotes group; nothing is expanded).
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// One step to run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StepSpec {
    /// The step id (for temporary names and fakes).
    pub id: String,
    /// The script.
    pub script: String,
    /// The shell.
    pub shell: Shell,
    /// Step environment (over the job's).
    pub env: IndexMap<String, String>,
    /// Working directory (relative to the workspace, or absolute).
    pub workdir: Option<PathBuf>,
    /// Longest the step may take.
    pub timeout: Option<Duration>,
    /// Pass the caller's own environment through (off: the step sees exactly `env`).
    pub inherit_env: bool,
}

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of output, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its stream.
    pub stream: Stream,
    /// The bytes.
    pub data: Bytes,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum StepOutcome {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal.
    Signaled(i32),
    /// The step (or its job) ran out of time.
    TimedOut,
    /// The step was cancelled.
    Cancelled,
    /// The step could not be started.
    StartFailed(String),
    /// The kernel killed it for memory.
    OomKilled,
    /// The machine running it went away (a remote agent stopped answering): the step may or
    /// may not have run; the job can be run again elsewhere.
    Lost(String),
}

impl StepOutcome {
    /// Whether the step succeeded (exit code 0).
    pub fn success(&self) -> bool {
        *self == StepOutcome::Exited(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_expand_like_github() {
        assert_eq!(
            Shell::Bash.argv("/t/s.sh"),
            [
                "bash",
                "--noprofile",
                "--norc",
                "-eo",
                "pipefail",
                "/t/s.sh"
            ]
        );
        assert_eq!(
            Shell::Pwsh.argv("/t/s.ps1"),
            ["pwsh", "-command", ". '/t/s.ps1'"]
        );
        assert_eq!(Shell::parse("perl {0}").argv("x"), ["perl", "x"]);
        assert_eq!(Shell::parse("node").argv("x"), ["node", "x"]);
    }
}
