//! What every request and worker shares: the configuration, the stores (run history, queue,
//! blobs), the mirrors and the executors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use ci_engine::exec::Executor;
use ci_engine::store::queue::JobQueue;
use ci_engine::store::runs::RunStore;
use ci_engine::store::BlobStore;

use crate::config::Config;
use crate::git::Mirrors;

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The server's shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// Run history.
    pub runs: Arc<dyn RunStore>,
    /// The durable queue (deliveries and runs).
    pub queue: Arc<dyn JobQueue>,
    /// Logs, artifacts, caches, the server's own notes.
    pub blobs: BlobStore,
    /// Repository mirrors.
    pub mirrors: Mirrors,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Executors by `runs-on` label (`default` for the rest).
    pub executors: Vec<(String, Arc<dyn Executor>)>,
    /// Woken when work is queued or freed.
    pub wake: Arc<tokio::sync::Notify>,
    /// Remote agents.
    pub hub: crate::agent::Hub,
    /// Requests per client in the current minute.
    pub rate: Arc<Mutex<(i64, HashMap<std::net::IpAddr, u32>)>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the stores the configuration names (migrating them) and connects executors.
    pub async fn open(config: Config) -> Result<AppState> {
        let state_dir = config.state_dir.clone();
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let state_dir = std::fs::canonicalize(&state_dir)?;
        let (runs, queue): (Arc<dyn RunStore>, Arc<dyn JobQueue>) = match config.database.as_deref()
        {
            Some(url) if url.starts_with("postgres") => {
                let store = ci_engine::store::runs::PostgresRunStore::connect(url)
                    .await
                    .context("connecting to the database")?;
                let queue = ci_engine::store::queue::PostgresQueue::new(&store);
                (Arc::new(store), Arc::new(queue))
            }
            _ => {
                let path = state_dir.join("gantry.db");
                let store = ci_engine::store::runs::SqliteRunStore::open(
                    path.to_str().context("a UTF-8 state dir")?,
                )
                .await
                .context("opening the database")?;
                let queue = ci_engine::store::queue::SqliteQueue::new(&store);
                (Arc::new(store), Arc::new(queue))
            }
        };
        let blob_url = config
            .blobs
            .clone()
            .unwrap_or_else(|| format!("file://{}", state_dir.join("blobs").display()));
        if let Some(dir) = blob_url.strip_prefix("file://") {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        }
        let blobs = BlobStore::open(&blob_url).with_context(|| format!("blobs: {blob_url}"))?;
        let hub = crate::agent::Hub::default();
        let mut executors: Vec<(String, Arc<dyn Executor>)> = Vec::new();
        for (label, target) in &config.executors {
            let executor: Arc<dyn Executor> = match target.strip_prefix("agent:") {
                Some(agent_label) => {
                    Arc::new(crate::agent::AgentExecutor::new(hub.clone(), agent_label))
                }
                None => ci_exec::executor_for_target(target)
                    .await
                    .with_context(|| format!("executors.{label}: {target}"))?,
            };
            executors.push((label.clone(), executor));
        }
        for (scope, slots) in capacities(&config) {
            queue.set_capacity(&scope, Some(slots)).await?;
        }
        Ok(AppState {
            mirrors: Mirrors::new(state_dir.join("mirrors")),
            config: Arc::new(config),
            runs,
            queue,
            blobs,
            state_dir,
            executors,
            wake: Arc::default(),
            rate: Arc::default(),
            hub,
        })
    }
}

/// The capacity gates a configuration sets.
fn capacities(config: &Config) -> Vec<(ci_engine::store::queue::Scope, u32)> {
    use ci_engine::store::queue::Scope;
    let mut out: Vec<(Scope, u32)> = config
        .label_capacity
        .iter()
        .map(|(l, n)| (Scope::Label(l.clone()), *n))
        .collect();
    for (name, p) in &config.projects {
        if let Some(n) = p.capacity {
            out.push((Scope::Project(name.clone()), n));
        }
    }
    out
}
