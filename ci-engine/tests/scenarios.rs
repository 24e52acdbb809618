//! Scenario tests on the scripted executor: failure modes an executor can produce (start
//! failure, OOM kill, a lost executor, signals, timeouts), and engine behaviour around them
//! (recording, cancellation, concurrency groups across runs, capacity).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ci_engine::{Engine, RunEvent, RunOptions, RunSummary, Source, Status};
use ci_exec::{
    ExecError, Executor, FakeExecutor, FakeStep, JobEnvironment, JobSpec, StepOutcome, Stream,
};

async fn engine(fake: FakeExecutor) -> Engine {
    Engine::builder()
        .default_executor(Arc::new(fake))
        .build()
        .await
        .expect("engine")
}

async fn run(engine: &Engine, workflow: &str) -> RunSummary {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Source::new("ci.yml", workflow, dir.path());
    let event = source.local_event();
    engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts")
        .wait()
        .await
}

fn status(summary: &RunSummary, job: &str) -> Status {
    summary
        .job(job)
        .unwrap_or_else(|| panic!("no job {job} in {summary:#?}"))
        .status
}

const CHAIN: &str = r#"
on: push
jobs:
  a:
    runs-on: x
    steps:
      - id: work
        run: work
      - id: cleanup
        if: always()
        run: cleanup
  b:
    needs: a
    runs-on: x
    steps:
      - run: next
"#;

#[tokio::test]
async fn start_failure_fails_the_job_and_skips_dependents() {
    let fake = FakeExecutor::new().step(
        "work",
        FakeStep {
            outcome: StepOutcome::StartFailed("no such shell".into()),
            ..FakeStep::default()
        },
    );
    let engine = engine(fake).await;
    let summary = run(&engine, CHAIN).await;
    assert_eq!(summary.status, Status::Failure);
    assert_eq!(status(&summary, "a"), Status::Failure);
    assert_eq!(status(&summary, "b"), Status::Skipped);
    // Recorded: the run and both jobs, with the failing step.
    let details = engine
        .run_store()
        .get_run(&summary.run_id)
        .await
        .expect("store")
        .expect("recorded");
    assert_eq!(details.run.status.as_str(), "failure");
    let (job, steps) = details
        .jobs
        .iter()
        .find(|(j, _)| j.job_id == "a")
        .expect("job a");
    assert_eq!(job.status.as_str(), "failure");
    assert_eq!(steps[0].status.as_str(), "failure");
    assert_eq!(steps[1].status.as_str(), "success", "always() cleanup ran");
}

#[tokio::test]
async fn oom_kill_is_a_failure_with_a_clear_message() {
    let fake = FakeExecutor::new().step(
        "work",
        FakeStep {
            output: vec![(Stream::Stdout, b"allocating\n".to_vec())],
            outcome: StepOutcome::OomKilled,
            ..FakeStep::default()
        },
    );
    let engine = engine(fake).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Source::new("ci.yml", CHAIN, dir.path());
    let event = source.local_event();
    let mut handle = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts");
    let mut messages = Vec::new();
    let mut lines = Vec::new();
    while let Some(e) = handle.next_event().await {
        match e {
            RunEvent::Annotation { message, .. } => messages.push(message),
            RunEvent::Log { line, .. } => lines.push(line),
            _ => {}
        }
    }
    let summary = handle.wait().await;
    assert_eq!(status(&summary, "a"), Status::Failure);
    assert!(lines.contains(&"allocating".to_owned()));
    assert!(
        messages.iter().any(|m| m.contains("out of memory")),
        "{messages:?}"
    );
}

/// An executor whose machine is gone: `prepare` fails.
#[derive(Debug)]
struct Lost;

#[async_trait::async_trait]
impl Executor for Lost {
    fn name(&self) -> &str {
        "lost"
    }

    fn capabilities(&self) -> ci_exec::Capabilities {
        ci_exec::Capabilities::host()
    }

    async fn available(&self) -> Result<(), ExecError> {
        Err(ExecError::Unavailable {
            executor: "lost".into(),
            reason: "connection refused".into(),
        })
    }

    async fn prepare(&self, _job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        Err(ExecError::Unavailable {
            executor: "lost".into(),
            reason: "connection refused".into(),
        })
    }
}

#[tokio::test]
async fn lost_executor_fails_only_its_jobs() {
    let engine = Engine::builder()
        .default_executor(Arc::new(FakeExecutor::new()))
        .executor("gone", Arc::new(Lost))
        .build()
        .await
        .expect("engine");
    let summary = run(
        &engine,
        r#"
on: push
jobs:
  fine:
    runs-on: x
    steps:
      - run: ok
  remote:
    runs-on: gone
    steps:
      - run: ok
  report:
    needs: [fine, remote]
    if: always()
    runs-on: x
    steps:
      - run: report
"#,
    )
    .await;
    assert_eq!(summary.status, Status::Failure);
    assert_eq!(status(&summary, "fine"), Status::Success);
    assert_eq!(status(&summary, "remote"), Status::Failure);
    assert_eq!(status(&summary, "report"), Status::Success);
}

#[tokio::test]
async fn signals_and_exit_codes_and_continue_on_error() {
    let fake = FakeExecutor::new()
        .step(
            "killed",
            FakeStep {
                outcome: StepOutcome::Signaled(9),
                ..FakeStep::default()
            },
        )
        .step("soft", FakeStep::exits(2));
    let engine = engine(fake).await;
    let summary = run(
        &engine,
        r#"
on: push
jobs:
  a:
    runs-on: x
    steps:
      - id: soft
        continue-on-error: true
        run: soft
      - run: "true"
  b:
    runs-on: x
    steps:
      - id: killed
        run: killed
"#,
    )
    .await;
    assert_eq!(status(&summary, "a"), Status::Success);
    assert_eq!(status(&summary, "b"), Status::Failure);
}

/// Jobs whose id contains `fail` exit 1 at once; the others run until cancelled.
#[derive(Debug)]
struct ByJob;

struct ByJobEnv(bool);

#[async_trait::async_trait]
impl Executor for ByJob {
    fn name(&self) -> &str {
        "by-job"
    }

    fn capabilities(&self) -> ci_exec::Capabilities {
        ci_exec::Capabilities::host()
    }

    async fn available(&self) -> Result<(), ExecError> {
        Ok(())
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        Ok(Box::new(ByJobEnv(job.job_id.contains("fail"))))
    }
}

#[async_trait::async_trait]
impl JobEnvironment for ByJobEnv {
    async fn run_step(
        &self,
        _step: &ci_exec::StepSpec,
        _output: tokio::sync::mpsc::Sender<ci_exec::Chunk>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> StepOutcome {
        if self.0 {
            return StepOutcome::Exited(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => StepOutcome::Exited(0),
            _ = cancel.cancelled() => StepOutcome::Cancelled,
        }
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        Ok(())
    }
}

#[tokio::test]
async fn fail_fast_cancels_matrix_siblings() {
    let engine = Engine::builder()
        .default_executor(Arc::new(ByJob))
        .build()
        .await
        .expect("engine");
    let workflow = r#"
on: push
jobs:
  m:
    runs-on: x
    strategy:
      matrix:
        kind: [slow, fail]
    steps:
      - run: work
"#;
    let summary = tokio::time::timeout(Duration::from_secs(20), run(&engine, workflow))
        .await
        .expect("fail-fast stops the slow sibling");
    assert_eq!(status(&summary, "m (fail)"), Status::Failure);
    assert_eq!(status(&summary, "m (slow)"), Status::Cancelled);
    assert_eq!(summary.status, Status::Failure);
}

#[tokio::test]
async fn cancel_stops_running_jobs_and_records_cancelled() {
    let fake = FakeExecutor::new().step(
        "work",
        FakeStep {
            delay: Duration::from_secs(60),
            ..FakeStep::default()
        },
    );
    let engine = engine(fake).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Source::new("ci.yml", CHAIN, dir.path());
    let event = source.local_event();
    let mut handle = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts");
    while let Some(e) = handle.next_event().await {
        if matches!(e, RunEvent::StepStarted { .. }) {
            handle.cancel();
        }
    }
    let summary = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("cancel is prompt");
    assert_eq!(summary.status, Status::Cancelled);
    assert_eq!(status(&summary, "a"), Status::Cancelled);
    assert_eq!(status(&summary, "b"), Status::Cancelled);
    let details = engine
        .run_store()
        .get_run(&summary.run_id)
        .await
        .expect("store")
        .expect("recorded");
    assert_eq!(details.run.status.as_str(), "cancelled");
}

/// Counts jobs running at once.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

#[derive(Debug)]
struct Counting(Arc<Gauge>);

struct CountingJob(Arc<Gauge>);

#[async_trait::async_trait]
impl Executor for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn capabilities(&self) -> ci_exec::Capabilities {
        ci_exec::Capabilities::host()
    }

    async fn available(&self) -> Result<(), ExecError> {
        Ok(())
    }

    async fn prepare(&self, _job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        let n = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max.fetch_max(n, Ordering::SeqCst);
        Ok(Box::new(CountingJob(Arc::clone(&self.0))))
    }
}

#[async_trait::async_trait]
impl JobEnvironment for CountingJob {
    async fn run_step(
        &self,
        _step: &ci_exec::StepSpec,
        _output: tokio::sync::mpsc::Sender<ci_exec::Chunk>,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> StepOutcome {
        tokio::time::sleep(Duration::from_millis(50)).await;
        StepOutcome::Exited(0)
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn capacity_bounds_jobs_across_runs() {
    let gauge = Arc::new(Gauge::default());
    let engine = Engine::builder()
        .default_executor(Arc::new(Counting(Arc::clone(&gauge))))
        .capacity(2)
        .build()
        .await
        .expect("engine");
    let wide = "on: push\njobs:\n".to_owned()
        + &(0..6)
            .map(|i| format!("  j{i}:\n    runs-on: x\n    steps:\n      - run: work\n"))
            .collect::<String>();
    let (a, b) = tokio::join!(run(&engine, &wide), run(&engine, &wide));
    assert!(a.success() && b.success());
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrency_group_cancels_the_older_run() {
    let fake = FakeExecutor::new().step(
        "work",
        FakeStep {
            delay: Duration::from_secs(30),
            ..FakeStep::default()
        },
    );
    let engine = engine(fake).await;
    let workflow = r#"
on: push
concurrency:
  group: deploy-${{ github.ref }}
  cancel-in-progress: true
jobs:
  a:
    runs-on: x
    steps:
      - id: work
        run: work
"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let start = |engine: Engine| {
        let source = Source::new("ci.yml", workflow, dir.path());
        let event = source.local_event();
        async move {
            engine
                .start(source, event, RunOptions::new())
                .await
                .expect("starts")
        }
    };
    let mut first = start(engine.clone()).await;
    while let Some(e) = first.next_event().await {
        if matches!(e, RunEvent::StepStarted { .. }) {
            break;
        }
    }
    let second = start(engine.clone()).await;
    let first = tokio::time::timeout(Duration::from_secs(10), first.wait())
        .await
        .expect("the older run is cancelled");
    assert_eq!(first.status, Status::Cancelled);
    second.cancel();
    let second = second.wait().await;
    assert_eq!(second.status, Status::Cancelled);
}

#[tokio::test]
async fn huge_time_limits_are_taken_as_no_limit() {
    let engine = engine(FakeExecutor::new()).await;
    let summary = run(
        &engine,
        "on: push\njobs:\n  a:\n    runs-on: x\n    timeout-minutes: 1e30\n    steps:\n      - run: work\n        timeout-minutes: 1e300\n",
    )
    .await;
    assert_eq!(status(&summary, "a"), Status::Success, "{summary:#?}");
}
