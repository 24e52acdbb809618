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
use super::proto::{Job, JobRequest, RunnerInfo};
use crate::{serve, Asked, DaemonOptions};

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
    let last_update: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let ask = || {
        let request = JobRequest {
            info: RunnerInfo::gantry(),
            token: registration.token.clone(),
            system_id: registration.system_id.clone(),
            last_update: last_update.lock().expect("never poisoned").clone(),
        };
        let (client, last_update) = (client.clone(), Arc::clone(&last_update));
        async move {
            match client.request_job(&request).await {
                Ok((job, update)) => {
                    if update.is_some() {
                        *last_update.lock().expect("never poisoned") = update;
                    }
                    job.map_or(Asked::Nothing, Asked::Work)
                }
                Err(e) if e.is_forbidden() => {
                    tracing::error!("GitLab refused the runner's token: {e}");
                    Asked::Fatal(e)
                }
                Err(e) => Asked::Failed(format!("requesting a job: {e}")),
            }
        }
    };
    let run = |job: Job| {
        let (client, engine, mirrors, task) = (
            client.clone(),
            Arc::clone(&engine),
            mirrors.clone(),
            options.task.clone(),
        );
        tracing::info!(job = job.id, "running a GitLab job");
        async move {
            run_job(&client, &engine, &mirrors, job, &task).await;
        }
    };
    serve(&options, &stop, ask, run).await
}
