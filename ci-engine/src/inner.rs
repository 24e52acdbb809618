//! What every run of an engine shares: executors, stores, secrets, capacity, concurrency
//! groups.

use std::path::PathBuf;
use std::sync::Arc;

use ci_exec::Executor;
use ci_store::runs::RunStore;
use ci_store::BlobStore;
use indexmap::IndexMap;
use tokio::sync::Semaphore;

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
    pub fetcher: Option<ci_vcs::fetch::Fetcher>,
    pub groups: crate::groups::Groups,
    pub bash: Option<PathBuf>,
    pub containers: Option<Arc<dyn Executor>>,
    /// How many times a job whose machine was lost is run again (where it has no retry of
    /// its own).
    pub lost_retries: u32,
    /// Live logs: how often a job's log is written out while output arrives.
    pub live_logs: Option<std::time::Duration>,
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
