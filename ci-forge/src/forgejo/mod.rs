//! Forgejo and Gitea Actions: Gantry as their runner. The forge dispatches each job of a
//! workflow run as a *task* over runner.v1 (five Connect RPCs: `Register`, `Declare`,
//! `FetchTask`, `UpdateTask`, `UpdateLog`); [`run_daemon`] takes tasks and runs each through
//! the Gantry engine — with whatever executors the engine was given for the runner's labels
//! — reporting its steps, log and outputs the way the reference runners do.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ci_forge::forgejo::{register, run_daemon, DaemonOptions, TaskOptions};
//! let registration = register(
//!     "https://forgejo.example.org",
//!     "REGISTRATION-TOKEN",
//!     "gantry-1",
//!     &["linux:host".to_owned()],
//! )
//! .await?;
//! registration.save(std::path::Path::new(".runner"))?;
//! let engine = Arc::new(ci_engine::Engine::builder().build().await?);
//! let options = DaemonOptions::new(TaskOptions::new("/var/lib/gantry-runner"));
//! run_daemon(&registration, engine, options, tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

mod client;
mod daemon;
pub mod proto;
mod task;

pub use crate::{DaemonOptions, TaskOptions};
pub use client::{Client, Credentials, RpcError};
pub use daemon::{register, run_daemon, Label, Registration};
pub use task::run_task;
