//! `ci-graph` plans a workflow and schedules it.
//!
//! What it is for: turning a dialect-neutral [`ci_config::Workflow`] plus what is known about
//! the run ([`RunFacts`]) into a [`Plan`] — matrix and `parallel` instances with GitHub's
//! names (`build (ubuntu-latest, 18)`), resolved `needs`, stage ordering, the DAG — and
//! driving it with a [`Scheduler`]: a pure state machine (no I/O, no clock) that decides what
//! may start, applies conditions, skip propagation, fail-fast, max-parallel, capacity,
//! concurrency groups, continue-on-error, retries and GitLab's `when`/`allow_failure`.
//!
//! What it is not for: running anything (`ci-exec`) or storing results (`ci-store`).
//!
//! # Example
//!
//! ```
//! use ci_graph::{ExprConditions, Outcome, Plan, RunFacts, Scheduler, SchedulerOptions};
//!
//! let src = "on: push\njobs:\n  build:\n    runs-on: x\n    strategy:\n      matrix:\n        os: [a, b]\n    steps: [{run: make}]\n  test:\n    needs: build\n    runs-on: x\n    steps: [{run: make test}]\n";
//! let workflow = ci_config::github::parse_workflow("ci.yml", src).value.unwrap();
//! let plan = Plan::new(&workflow, &RunFacts::default()).unwrap();
//! assert_eq!(plan.instances[0].id, "build (a)");
//!
//! let mut scheduler = Scheduler::new(plan, SchedulerOptions::default());
//! let mut conditions = ExprConditions::default();
//! while !scheduler.is_finished() {
//!     for i in scheduler.ready(&mut conditions) {
//!         scheduler.start(i).unwrap();
//!         scheduler.finish(i, Outcome::success()).unwrap();
//!     }
//! }
//! assert!(scheduler.succeeded());
//! ```

pub mod export;
pub mod matrix;
mod plan;
mod scheduler;

pub use plan::{node_value, ConcurrencyGroup, JobInstance, Plan, RunFacts};
pub use scheduler::{
    evaluate_deferred_matrix, Conclusion, ConditionEvaluator, ExprConditions, Outcome,
    OutcomeStatus, ScheduleError, Scheduler, SchedulerOptions, State, StatusSnapshot, RUNNER_LOST,
};
