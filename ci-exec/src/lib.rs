//! `ci-exec` runs CI steps and nothing else.
//!
//! What it is for: the [`Executor`] seam (prepare a job environment, run steps with streamed
//! output, time out or cancel them without leaving processes behind, tear down), its
//! implementations — [`HostExecutor`] (local processes in their own process groups),
//! `DockerExecutor` (feature `docker`, on by default: containers over the Docker Engine API),
//! `BwrapExecutor` (feature `bwrap`), `SwarmExecutor` (feature `swarm`), `KubernetesExecutor`
//! (feature `kubernetes`: a pod per job, steps by `exec`) and [`FakeExecutor`] (scripted, for
//! tests), all named by platform targets through [`executor_for_target`] — and the log
//! pipeline every step's output goes through: line framing, workflow commands
//! (`::add-mask::`, `::group::`, `::error::` …), secret masking with all the variants a secret
//! leaks as, and the env-file protocol of `GITHUB_OUTPUT` / `GITHUB_ENV` / `GITHUB_PATH`.
//!
//! What it is not for: workflow files (it takes its own [`JobSpec`]/[`StepSpec`]), or
//! deciding what runs when (`ci-graph`).
//!
//! # Example
//!
//! ```
//! use ci_exec::{Executor, HostExecutor, JobSpec, LogPipeline, Shell, StepSpec};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = std::env::temp_dir().join("ci-exec-doc");
//! let job = JobSpec { run_id: "1".into(), job_id: "build".into(), workspace: dir, ..Default::default() };
//! let env = HostExecutor::default().prepare(&job).await.unwrap();
//! let step = StepSpec { id: "hello".into(), script: "echo token=hunter2".into(), shell: Shell::Sh, ..Default::default() };
//! let (tx, mut rx) = tokio::sync::mpsc::channel(16);
//! let outcome = env.run_step(&step, tx, CancellationToken::new()).await;
//! assert!(outcome.success());
//! let mut logs = LogPipeline::new(&["hunter2"]);
//! let mut text = Vec::new();
//! while let Some(chunk) = rx.recv().await {
//!     for event in logs.push(&chunk).into_iter().chain(logs.finish()) {
//!         if let ci_exec::LogEvent::Output { data, .. } = event {
//!             text.extend_from_slice(&data);
//!         }
//!     }
//! }
//! assert_eq!(text, b"token=***\n");
//! env.teardown().await.unwrap();
//! # }
//! ```

#[cfg(feature = "bwrap")]
mod bwrap;
pub mod conformance;
#[cfg(feature = "docker")]
mod docker;
pub mod envfile;
mod executor;
mod fake;
mod fake_shell;
pub mod files;
mod host;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod log;
pub mod mask;
mod sink;
mod spec;
#[cfg(feature = "swarm")]
mod swarm;
mod target;

#[cfg(feature = "bwrap")]
pub use bwrap::BwrapExecutor;
#[cfg(feature = "docker")]
pub use docker::DockerExecutor;
pub use executor::{Capabilities, ExecError, Executor, JobEnvironment};
pub use fake::{FakeExecutor, FakeStep};
pub use host::HostExecutor;
#[cfg(feature = "kubernetes")]
pub use kubernetes::{KubernetesExecutor, KubernetesSettings};
pub use log::{LogEvent, LogPipeline};
pub use sink::{Fanout, LogSink};
pub use spec::{
    split_words, Chunk, ContainerSpec, JobSpec, ServiceSpec, Shell, StepOutcome, StepSpec, Stream,
};
#[cfg(feature = "swarm")]
pub use swarm::SwarmExecutor;
pub use target::{executor_for_target, TARGETS};
