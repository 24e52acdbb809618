//! GitLab: Gantry as a GitLab runner over the runner job API (`/api/v4/runners/verify`,
//! `/jobs/request`, `/jobs/:id/trace`, `/jobs/:id`, `/jobs/:id/artifacts`). Each job GitLab
//! sends is made into a one-job pipeline and run by the Gantry engine with its executors
//! (a job with an `image` runs in Docker when a daemon is here).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ci_forge::gitlab::{register, run_daemon};
//! use ci_forge::{DaemonOptions, TaskOptions};
//! let registration = register("https://gitlab.example.com", "glrt-…").await?;
//! registration.save(std::path::Path::new("gitlab-runner.json"))?;
//! let engine = Arc::new(ci_engine::Engine::builder().build().await?);
//! let options = DaemonOptions::new(TaskOptions::new("/var/lib/gantry-runner"));
//! run_daemon(&registration, engine, options, tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

mod client;
mod daemon;
mod job;
pub mod proto;

pub use client::{ApiError, Client, TraceAnswer, UpdateAnswer};
pub use daemon::{register, run_daemon, Registration};
pub use job::run_job;
