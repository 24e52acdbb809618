//! Registration (verifying a `glrt-…` authentication token; kept in a file readable by its
//! owner only) and the loop asking GitLab for jobs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ci_engine::vcs::mirror::Mirrors;
use ci_engine::Engine;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client::{ApiError, Client};
use super::job::run_job;
use super::proto::{JobRequest, RunnerInfo};
use crate::{jitter, DaemonOptions};

/// A runner registered with GitLab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// GitLab (`https://gitlab.example.com`).
    pub url: String,
    /// The runner's authentication token (`glrt-…`).
    pub token: String,
    /// The runner's number.
    pub id: i64,
    /// This machine's id (`s_…`), as gitlab-runner makes one.
    pub system_id: String,
}

impl Registration {
    /// Reads a registration file.
    pub fn load(path: &Path) -> Result<Registration, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: {e} (register first: gantry gitlab-runner register)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes it, readable and writable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        crate::write_private(path, text.as_bytes())
    }
}

/// A system id for this machine: `s_` and 12 hex digits from the host name.
fn system_id() -> String {
    use std::hash::{Hash, Hasher};
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    host.trim().hash(&mut h);
    format!("s_{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Verifies an authentication token made in GitLab (`glrt-…`) and makes the registration.
pub async fn register(url: &str, token: &str) -> Result<Registration, ApiError> {
    let client = Client::new(url, Duration::from_secs(30))?;
    let system_id = system_id();
    let verified = client.verify(token, &system_id).await?;
    Ok(Registration {
        url: url.to_owned(),
        token: if verified.token.is_empty() {
            token.to_owned()
        } else {
            verified.token
        },
        id: verified.id,
        system_id,
    })
}

/// Asks GitLab for jobs and runs them through `engine` until `stop` fires (or `max_tasks`
/// were taken); running jobs finish first. A refused token ends it with that error.
pub async fn run_daemon(
    registration: &Registration,
    engine: Arc<Engine>,
    options: DaemonOptions,
    stop: CancellationToken,
) -> Result<(), ApiError> {
    let client = Client::new(&registration.url, options.fetch_timeout)?;
    let mirrors = Mirrors::new(options.task.work_dir.join("mirrors"));
    let slots = Arc::new(tokio::sync::Semaphore::new(options.capacity.max(1)));
    let mut jobs = tokio::task::JoinSet::new();
    let mut last_update = None;
    let mut wait = options.fetch_interval;
    let mut taken = 0usize;
    loop {
        if stop.is_cancelled() || options.max_tasks.is_some_and(|m| taken >= m) {
            break;
        }
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let request = JobRequest {
            info: RunnerInfo::gantry(),
            token: registration.token.clone(),
            system_id: registration.system_id.clone(),
            last_update: last_update.clone(),
        };
        let asked = tokio::select! {
            a = client.request_job(&request) => a,
            _ = stop.cancelled() => break,
        };
        match asked {
            Ok((job, update)) => {
                if update.is_some() {
                    last_update = update;
                }
                if let Some(job) = job {
                    wait = options.fetch_interval;
                    taken += 1;
                    tracing::info!(job = job.id, "running a GitLab job");
                    let (client, engine, mirrors, task) = (
                        client.clone(),
                        Arc::clone(&engine),
                        mirrors.clone(),
                        options.task.clone(),
                    );
                    jobs.spawn(async move {
                        let ok = run_job(&client, &engine, &mirrors, job, &task).await;
                        drop(permit);
                        ok
                    });
                    continue;
                }
            }
            Err(e) if e.is_forbidden() => {
                tracing::error!("GitLab refused the runner's token: {e}");
                while jobs.join_next().await.is_some() {}
                return Err(e);
            }
            Err(e) => tracing::warn!("requesting a job: {e}"),
        }
        drop(permit);
        tokio::select! {
            _ = tokio::time::sleep(jitter(wait)) => {}
            _ = stop.cancelled() => break,
        }
        wait = (wait * 2).min(options.fetch_interval_max);
    }
    while jobs.join_next().await.is_some() {}
    Ok(())
}
