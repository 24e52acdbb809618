//! Registration (credentials kept in a file readable by the owner only) and the daemon:
//! `Declare`, then `FetchTask` with backoff and jitter while there is capacity, each task run
//! on its own, until told to stop — then the running tasks finish.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ci_engine::vcs::mirror::Mirrors;
use ci_engine::Engine;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client::{Client, Credentials, RpcError};
use super::proto::RegisterRequest;
use super::proto::{FetchTaskResponse, Task};
use super::task::run_task;
use crate::{serve, Asked, DaemonOptions};

/// What registration leaves: the runner's identity with the forge (`.runner`, as
/// act_runner keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The runner's number.
    pub id: i64,
    /// Its UUID.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Its secret.
    pub token: String,
    /// The forge (`https://forgejo.example.org`).
    pub address: String,
    /// Its labels (`name:host`, `name:docker://image`).
    pub labels: Vec<String>,
}

impl Registration {
    /// The credentials calls carry.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            uuid: self.uuid.clone(),
            token: self.token.clone(),
        }
    }

    /// Reads a registration file.
    pub fn load(path: &Path) -> Result<Registration, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: {e} (register first: gantry forgejo-runner register)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes it, readable and writable by its owner only (it holds a secret).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        crate::write_private(path, text.as_bytes())
    }
}

/// A runner label: the name jobs ask for (`runs-on`) and what runs them (`host`,
/// `docker://IMAGE`, …; `host` when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The name.
    pub name: String,
    /// The executor (`host`, `docker://node:20`, `bwrap`, `swarm://IMAGE`).
    pub target: String,
}

impl Label {
    /// `ubuntu-latest:docker://node:20` → `ubuntu-latest` run by `docker://node:20`.
    pub fn parse(text: &str) -> Result<Label, String> {
        let (name, target) = text.split_once(':').unwrap_or((text, "host"));
        if name.is_empty() {
            return Err(format!("label {text:?} has no name"));
        }
        Ok(Label {
            name: name.to_owned(),
            target: if target.is_empty() { "host" } else { target }.to_owned(),
        })
    }
}

/// Registers a runner with the forge at `instance` with a registration `token`.
pub async fn register(
    instance: &str,
    token: &str,
    name: &str,
    labels: &[String],
) -> Result<Registration, RpcError> {
    let client = Client::new(instance, Duration::from_secs(30))?;
    let runner = client
        .register(&RegisterRequest {
            name: name.to_owned(),
            token: token.to_owned(),
            version: client.version().to_owned(),
            labels: labels.to_vec(),
            ephemeral: false,
        })
        .await?;
    Ok(Registration {
        id: runner.id,
        uuid: runner.uuid,
        name: runner.name,
        token: runner.token,
        address: instance.to_owned(),
        labels: labels.to_vec(),
    })
}

/// Polls the forge for tasks and runs them through `engine` until `stop` fires (or
/// `max_tasks` were taken); running tasks finish before it returns. The forge no longer
/// knowing the runner ends it with that error.
pub async fn run_daemon(
    registration: &Registration,
    engine: Arc<Engine>,
    options: DaemonOptions,
    stop: CancellationToken,
) -> Result<(), RpcError> {
    let client = Client::new(&registration.address, options.fetch_timeout)?
        .with_credentials(registration.credentials());
    match client.declare(&registration.labels).await {
        Ok(_) => {}
        Err(e) if e.is_unimplemented() => {
            tracing::info!("the forge does not know Declare (an older forge): going on")
        }
        Err(e) => return Err(e),
    }
    let mirrors = Mirrors::new(options.task.work_dir.join("mirrors"));
    let version = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let ask = || {
        let (client, version) = (client.clone(), Arc::clone(&version));
        async move {
            use std::sync::atomic::Ordering;
            match client.fetch_task(version.load(Ordering::Relaxed)).await {
                // A task taken: the next fetch asks afresh.
                Ok(FetchTaskResponse {
                    task: Some(task), ..
                }) => {
                    version.store(0, Ordering::Relaxed);
                    Asked::Work(task)
                }
                Ok(answer) => {
                    version.store(answer.tasks_version, Ordering::Relaxed);
                    Asked::Nothing
                }
                Err(e) if e.is_unauthenticated() => {
                    tracing::error!("the forge does not know this runner any more: {e}");
                    Asked::Fatal(e)
                }
                Err(e) => Asked::Failed(format!("fetching a task: {e}")),
            }
        }
    };
    let run = |task: Task| {
        let (client, engine, mirrors, task_options) = (
            client.clone(),
            Arc::clone(&engine),
            mirrors.clone(),
            options.task.clone(),
        );
        tracing::info!(task = task.id, "running a task");
        async move {
            run_task(&client, &engine, &mirrors, task, &task_options).await;
        }
    };
    serve(&options, &stop, ask, run).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_executor() {
        assert_eq!(
            Label::parse("ubuntu-latest:docker://node:20").expect("a label"),
            Label {
                name: "ubuntu-latest".into(),
                target: "docker://node:20".into()
            }
        );
        assert_eq!(Label::parse("linux").expect("a label").target, "host");
        assert!(Label::parse(":host").is_err());
    }
}
