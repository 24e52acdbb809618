//! Runs CI workflows end to end: `ci-config` reads them, `ci-graph` plans and schedules the
//! jobs, `ci-exec` runs the steps (host processes, Docker), `ci-store` records runs, logs,
//! artifacts and caches, and `ci-vcs` supplies checkouts and the event.
//!
//! GitHub Actions semantics: `runs-on` labels map to executors; `env` layers workflow → job →
//! step; contexts `github`, `env`, `vars`, `secrets`, `job`, `jobs`, `steps`, `runner`,
//! `matrix`, `strategy`, `needs`, `inputs`; `GITHUB_OUTPUT`/`GITHUB_ENV`/`GITHUB_PATH`/
//! `GITHUB_STEP_SUMMARY`; step and job `if` with status functions; `continue-on-error`;
//! timeouts; concurrency groups across the runs of one engine; local composite, node and
//! docker actions; `docker://` steps; local reusable workflows; built-in `actions/checkout`,
//! `actions/upload-artifact`, `actions/download-artifact` and `actions/cache`. Any other remote
//! action is an error that says how to map it to a local directory
//! ([`EngineBuilder::action_dir`]).
//!
//! ```
//! use ci_engine::{Engine, RunOptions, Source, Status};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let workflow = r#"
//! on: push
//! jobs:
//!   hello:
//!     runs-on: ubuntu-latest
//!     steps:
//!       - id: greet
//!         run: echo "greeting=hello $WHO" >> "$GITHUB_OUTPUT"
//!         env: { WHO: world }
//!     outputs:
//!       greeting: ${{ steps.greet.outputs.greeting }}
//! "#;
//! let engine = Engine::builder().build().await.unwrap();
//! let source = Source::new("ci.yml", workflow, dir.path());
//! let event = source.local_event();
//! let run = engine.start(source, event, RunOptions::new()).await.unwrap();
//! let summary = run.wait().await;
//! assert_eq!(summary.status, Status::Success);
//! assert_eq!(summary.job("hello").unwrap().outputs["greeting"], "hello world");
//! # });
//! ```

mod actions;
mod context;
mod engine;
mod events;
mod job;
mod run;

pub use engine::{Engine, EngineBuilder, EngineError, RunHandle, RunOptions, Source};
pub use events::{JobSummary, RunEvent, RunSummary, Status};
