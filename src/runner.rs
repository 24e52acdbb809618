//! `gantry forgejo-runner register|daemon`: Gantry as a Forgejo or Gitea Actions runner
//! (the protocol lives in `ci-forge`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ci_forge::forgejo::{self, DaemonOptions, Label, Registration, TaskOptions};
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
                let stop = tokio_util::sync::CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                    }
                    eprintln!("stopping: running tasks finish first");
                    on_signal.cancel();
                });
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
