//! A job whose executor cannot set it up keeps the reason: a failed "Set up job" step whose
//! log says why, in the run store and the blob store (not only in the live event stream).

use std::sync::Arc;

use ci_engine::exec::{Capabilities, ExecError, Executor, JobEnvironment, JobSpec};
use ci_engine::store::runs::{RunStore, SqliteRunStore, Status as Stored};
use ci_engine::{Engine, RunOptions, Source, Status};

#[derive(Debug)]
struct NoMachine;

#[async_trait::async_trait]
impl Executor for NoMachine {
    fn name(&self) -> &str {
        "nomachine"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::host()
    }
    async fn available(&self) -> Result<(), ExecError> {
        Ok(())
    }
    async fn prepare(&self, _job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        Err(ExecError::Prepare(
            "no machine has the secret-labelled disk".into(),
        ))
    }
}

#[tokio::test]
async fn a_job_that_cannot_be_set_up_says_why_in_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteRunStore::open(":memory:").await.expect("store"));
    let engine = Engine::builder()
        .run_store(store.clone())
        .executor("broken", Arc::new(NoMachine))
        .build()
        .await
        .expect("engine");
    let workflow = "on: push\njobs:\n  j:\n    runs-on: broken\n    steps:\n      - run: 'true'\n";
    let source = Source::new("ci.yml", workflow, dir.path());
    let event = source.local_event();
    let summary = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts")
        .wait()
        .await;
    assert_eq!(summary.status, Status::Failure);
    let details = store
        .get_run(&summary.run_id)
        .await
        .expect("store")
        .expect("the run");
    let (job, steps) = &details.jobs[0];
    assert_eq!(job.status, Stored::Failure);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].name, "Set up job");
    let key = steps[0].log_key.clone().expect("a log");
    let log = ci_engine::job_log(engine.blobs(), &summary.run_id, &key)
        .read_all()
        .await
        .expect("log");
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("no machine has the secret-labelled disk"),
        "{text}"
    );
}
