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
//! GitLab CI pipelines run on the same loop and the same job runtime: `ci-config` lowers
//! every dialect into one IR (steps of neutral kinds: commands, checkout, caches, artifacts,
//! cleanup steps), `rules`/`only`/`except`/`workflow:rules` are decided with the event's facts
//! before planning, and each job gets the runner environment of its own dialect from
//! `ci-vcs` (GitLab's `CI_*` variables with GitLab's precedence; never `GITHUB_*`); manual
//! jobs run when named in [`RunOptions::manual`].
//!
//! The engine touches a job's files only through its [`exec::JobEnvironment`] (with a local
//! fast path for host and Docker), posts commit statuses through
//! [`EngineBuilder::reporter`], and re-exports the crates it composes ([`config`], [`graph`],
//! [`exec`], [`store`], [`vcs`]), so one dependency is enough.
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
mod background;
mod context;
mod dirs;
mod engine;
mod env;
mod error;
mod events;
mod fetch;
mod groups;
mod inner;
mod job;
mod options;
#[cfg(feature = "reporters")]
mod report;
mod run;
mod runner;
mod snapshot;
mod source;
mod state;
mod timings;
mod transfer;

/// Job logs are stored as the step logs of this pseudo-job, one per job (keyed by the
/// steps' `log_key`), so that all of a run's logs share one directory.
const JOB_LOGS: &str = "jobs";

/// The log of a recorded job: `log_key` is what its steps' records hold.
pub fn job_log(
    blobs: &ci_store::BlobStore,
    run_id: &str,
    log_key: &str,
) -> ci_store::logs::LogReader {
    ci_store::logs::LogReader::new(blobs.clone(), run_id, JOB_LOGS, log_key)
}

/// The `log_key` of a job's attempt (1-based) in a run: what its steps' records hold, and
/// what a live view follows with [`job_log`] while the job runs.
pub fn job_log_key(job_id: &str, attempt: u32) -> String {
    let key = runner::storage_key(job_id);
    if attempt > 1 {
        format!("{key}.{attempt}")
    } else {
        key
    }
}

/// The test results (JUnit reports) a recorded job kept, by the job's id in the run.
pub async fn job_test_results(
    blobs: &ci_store::BlobStore,
    run_id: &str,
    job_id: &str,
) -> Result<Option<ci_store::junit::TestResults>, ci_store::StoreError> {
    ci_store::junit::load(blobs, run_id, &runner::storage_key(job_id)).await
}

/// Downloads the artifacts a job of a run uploaded (every artifact of that instance) into
/// `dir`; how many files.
pub async fn job_artifacts(
    blobs: &ci_store::BlobStore,
    run_id: &str,
    job: &str,
    instance: &str,
    dir: &std::path::Path,
) -> Result<usize, ci_store::StoreError> {
    let name = transfer::artifact_name(job, instance);
    let mut files = 0;
    for stored in ci_store::artifacts::list(blobs, run_id).await? {
        if stored == name {
            files += ci_store::artifacts::download(blobs, run_id, &stored, dir)
                .await?
                .entries
                .len();
        }
    }
    Ok(files)
}

pub use engine::{Engine, EngineBuilder, RunHandle};
pub use error::EngineError;
pub use fetch::FetchingIncludes;
pub use options::{NeedsMode, RunOptions};
pub use source::Source;

// The crates the engine composes, so that an embedder depends on this one crate.
pub use ci_config as config;
pub use ci_exec as exec;
pub use ci_graph as graph;
pub use ci_store as store;
pub use ci_vcs as vcs;
pub use events::{JobSummary, RunEvent, RunSummary, Status};
