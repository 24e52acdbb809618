//! `gantry forgejo-runner register|daemon` and `gantry gitlab-runner register|run`: Gantry as a
//! Forgejo/Gitea Actions runner or a GitLab runner (the protocols live in `ci-forge`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ci_forge::forgejo::{self, Label, Registration};
use ci_forge::{gitlab, DaemonOptions, TaskOptions};
use clap::Subcommand;

/// `gantry forgejo-runner …`
#[derive(Debug, Subcommand)]
pub enum ForgejoRunner {
    /// Register with a Forgejo or Gitea instance and keep the credentials (mode 0600).
    Register {
        /// The instance (`https://forgejo.example.org`).
        #[arg(long)]
        instance: String,
        /// A registration token (the forge's runner settings, or `forgejo actions
        /// generate-runner-token`); also read from GANTRY_RUNNER_TOKEN.
        #[arg(long, env = "GANTRY_RUNNER_TOKEN", hide_env_values = true)]
        token: String,
        /// The runner's name.
        #[arg(long, default_value = "gantry")]
        name: String,
        /// A label `NAME[:host|:docker://IMAGE|:bwrap|:swarm://IMAGE]` (repeatable; default
        /// `ubuntu-latest:host`).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Where the credentials go.
        #[arg(long, default_value = ".runner")]
        file: PathBuf,
    },
    /// Take tasks and run them until SIGTERM or Ctrl-C (running tasks finish first).
    Daemon {
        /// The credentials `register` wrote.
        #[arg(long, default_value = ".runner")]
        file: PathBuf,
        /// Tasks at once.
        #[arg(long, default_value_t = 1)]
        capacity: usize,
        /// Where repositories are mirrored and tasks checked out.
        #[arg(long, default_value = ".gantry-runner")]
        work_dir: PathBuf,
        /// Stop after this many tasks.
        #[arg(long)]
        max_tasks: Option<usize>,
    },
}

/// `gantry gitlab-runner …`
#[derive(Debug, Subcommand)]
pub enum GitLabRunner {
    /// Verify a runner authentication token made in GitLab (`glrt-…`) and keep it (mode
    /// 0600).
    Register {
        /// GitLab (`https://gitlab.example.com`).
        #[arg(long)]
        url: String,
        /// The runner's authentication token; also read from GANTRY_RUNNER_TOKEN.
        #[arg(long, env = "GANTRY_RUNNER_TOKEN", hide_env_values = true)]
        token: String,
        /// Where the registration goes.
        #[arg(long, default_value = "gitlab-runner.json")]
        file: PathBuf,
    },
    /// Ask GitLab for jobs and run them until SIGTERM or Ctrl-C (running jobs finish first).
    Run {
        /// The registration `register` wrote.
        #[arg(long, default_value = "gitlab-runner.json")]
        file: PathBuf,
        /// Jobs at once.
        #[arg(long, default_value_t = 1)]
        capacity: usize,
        /// Where repositories are mirrored and jobs checked out.
        #[arg(long, default_value = ".gantry-runner")]
        work_dir: PathBuf,
        /// Stop after this many jobs.
        #[arg(long)]
        max_jobs: Option<usize>,
    },
}

/// A token cancelled by SIGTERM or Ctrl-C.
fn stop_on_signal() -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            } => {}
        }
        eprintln!("stopping: running jobs finish first");
        on_signal.cancel();
    });
    stop
}

/// Runs a `gitlab-runner` subcommand.
pub fn run_gitlab(command: GitLabRunner) -> Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            GitLabRunner::Register { url, token, file } => {
                let registration = gitlab::register(&url, &token)
                    .await
                    .with_context(|| format!("verifying the token with {url}"))?;
                registration.save(&file).map_err(anyhow::Error::msg)?;
                anstream::println!(
                    "runner #{} verified with {url}; registration in {}",
                    registration.id,
                    file.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            GitLabRunner::Run {
                file,
                capacity,
                work_dir,
                max_jobs,
            } => {
                let registration = gitlab::Registration::load(&file).map_err(anyhow::Error::msg)?;
                let engine = ci_engine::Engine::builder()
                    .capacity(capacity.max(1))
                    .work_dir(work_dir.join("engine"))
                    .fetcher(Some(crate::fetch::fetcher()))
                    .build()
                    .await?;
                let mut options = DaemonOptions::new(TaskOptions::new(&work_dir));
                options.capacity = capacity.max(1);
                options.max_tasks = max_jobs;
                anstream::println!(
                    "runner #{} asking {} for jobs",
                    registration.id,
                    registration.url
                );
                gitlab::run_daemon(&registration, Arc::new(engine), options, stop_on_signal())
                    .await
                    .with_context(|| format!("asking {} for jobs", registration.url))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a `forgejo-runner` subcommand.
pub fn run(command: ForgejoRunner) -> Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            ForgejoRunner::Register {
                instance,
                token,
                name,
                mut labels,
                file,
            } => {
                if labels.is_empty() {
                    labels.push("ubuntu-latest:host".into());
                }
                for l in &labels {
                    Label::parse(l).map_err(anyhow::Error::msg)?;
                }
                let registration = forgejo::register(&instance, &token, &name, &labels)
                    .await
                    .with_context(|| format!("registering with {instance}"))?;
                registration.save(&file).map_err(anyhow::Error::msg)?;
                anstream::println!(
                    "registered runner '{}' (#{}) with {instance}; credentials in {}",
                    registration.name,
                    registration.id,
                    file.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            ForgejoRunner::Daemon {
                file,
                capacity,
                work_dir,
                max_tasks,
            } => {
                let registration = Registration::load(&file).map_err(anyhow::Error::msg)?;
                let mut builder = ci_engine::Engine::builder()
                    .capacity(capacity.max(1))
                    .work_dir(work_dir.join("jobs"))
                    .fetcher(Some(crate::fetch::fetcher()));
                let mut docker = HashMap::new();
                for text in &registration.labels {
                    let label = Label::parse(text).map_err(anyhow::Error::msg)?;
                    let executor = crate::run::executor_for(&label.target, &mut docker)
                        .await
                        .with_context(|| format!("label {text}"))?;
                    builder = builder.executor(label.name, executor);
                }
                let engine = Arc::new(builder.build().await?);
                let mut options = DaemonOptions::new(TaskOptions::new(&work_dir));
                options.capacity = capacity.max(1);
                options.max_tasks = max_tasks;
                let stop = stop_on_signal();
                anstream::println!(
                    "runner '{}' taking tasks from {} (labels: {})",
                    registration.name,
                    registration.address,
                    registration.labels.join(", ")
                );
                forgejo::run_daemon(&registration, engine, options, stop)
                    .await
                    .with_context(|| format!("taking tasks from {}", registration.address))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
