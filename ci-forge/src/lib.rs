//! Gantry as a forge's runner: the forge dispatches jobs, Gantry runs them with its engine
//! and executors and reports back over the forge's runner protocol. The protocols live here;
//! the engine does not know them.
//!
//! - [`forgejo`] (feature `forgejo`): Forgejo and Gitea Actions (runner.v1).
//! - [`gitlab`] (feature `gitlab`): GitLab's runner job API.
//! - [`agent`]: Gantry's own: a server (`gantry-server`, or `gantry run --agent-listen`) hands
//!   jobs to `gantry agent` processes on other machines.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod agent;
#[cfg(feature = "forgejo")]
pub mod forgejo;
#[cfg(feature = "gitlab")]
pub mod gitlab;

/// How a task is run and reported.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// Where each task's repository checkout goes (`tasks/ID/`), and the mirrors.
    pub work_dir: PathBuf,
    /// How often log rows and the state (a heartbeat) are sent while the task runs.
    pub report_interval: Duration,
    /// Attempts of each final report (the log's end, the result).
    pub close_attempts: u32,
    /// The wait between failed final reports.
    pub retry_delay: Duration,
}

impl TaskOptions {
    /// Reports every 2 s, ten attempts one second apart at the end.
    pub fn new(work_dir: impl Into<PathBuf>) -> TaskOptions {
        TaskOptions {
            work_dir: work_dir.into(),
            report_interval: Duration::from_secs(2),
            close_attempts: 10,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// How the daemon polls.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Tasks at once.
    pub capacity: usize,
    /// The wait after an empty or failed fetch, doubled each time up to `fetch_interval_max`.
    pub fetch_interval: Duration,
    /// The longest wait between fetches.
    pub fetch_interval_max: Duration,
    /// How long one `FetchTask` may take (a forge may hold it as a long poll).
    pub fetch_timeout: Duration,
    /// Stop after this many tasks (`None`: run until told to stop).
    pub max_tasks: Option<usize>,
    /// How tasks are run and reported.
    pub task: TaskOptions,
}

impl DaemonOptions {
    /// One task at a time, fetching every 2 s (up to 20 s when idle).
    pub fn new(task: TaskOptions) -> DaemonOptions {
        DaemonOptions {
            capacity: 1,
            fetch_interval: Duration::from_secs(2),
            fetch_interval_max: Duration::from_secs(20),
            fetch_timeout: Duration::from_secs(60),
            max_tasks: None,
            task,
        }
    }
}

/// What asking a forge for work answered.
pub(crate) enum Asked<T, E> {
    /// A task or job to run.
    Work(T),
    /// Nothing now.
    Nothing,
    /// The ask failed; ask again later.
    Failed(String),
    /// The forge no longer takes this runner: stop.
    Fatal(E),
}

/// The runner loop both protocols share: while there is capacity, `ask` for work and `run`
/// it on its own task; after an empty or failed ask wait (doubling up to the maximum, with
/// jitter); stop when `stop` fires, `max_tasks` were taken or `ask` says so — running work
/// finishes first.
pub(crate) async fn serve<T, E, A, AF, R, RF>(
    options: &DaemonOptions,
    stop: &tokio_util::sync::CancellationToken,
    mut ask: A,
    run: R,
) -> Result<(), E>
where
    A: FnMut() -> AF,
    AF: std::future::Future<Output = Asked<T, E>>,
    R: Fn(T) -> RF,
    RF: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(options.capacity.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut wait = options.fetch_interval;
    let mut taken = 0usize;
    loop {
        if stop.is_cancelled() || options.max_tasks.is_some_and(|m| taken >= m) {
            break;
        }
        let permit = tokio::select! {
            p = std::sync::Arc::clone(&slots).acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let asked = tokio::select! {
            a = ask() => a,
            _ = stop.cancelled() => break,
        };
        match asked {
            Asked::Work(work) => {
                wait = options.fetch_interval;
                taken += 1;
                let work = run(work);
                running.spawn(async move {
                    work.await;
                    drop(permit);
                });
                continue;
            }
            Asked::Fatal(e) => {
                while running.join_next().await.is_some() {}
                return Err(e);
            }
            Asked::Failed(message) => tracing::warn!("{message}"),
            Asked::Nothing => {}
        }
        drop(permit);
        tokio::select! {
            _ = tokio::time::sleep(jitter(wait)) => {}
            _ = stop.cancelled() => break,
        }
        wait = (wait * 2).min(options.fetch_interval_max);
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

/// ±20 % of `d`, from the clock (enough to spread runners' polls apart).
pub(crate) fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let factor = 0.8 + f64::from(nanos % 1000) / 1000.0 * 0.4;
    d.mul_f64(factor)
}

/// Writes `data` to `path`, readable and writable by its owner only (credentials).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    file.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        let d = jitter(Duration::from_secs(10));
        assert!(
            d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
            "{d:?}"
        );
    }
}
