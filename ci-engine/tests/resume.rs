//! Resuming a run by its id (what a server does after a restart, and what a rerun of failed
//! jobs is): finished jobs keep their results and outputs and are not run again; named jobs
//! and what needs them run again, with the next attempt number.

use std::sync::Arc;

use ci_engine::store::runs::{JobRecord, NewRun, RunStore, SqliteRunStore, Status as Stored};
use ci_engine::{Engine, RunOptions, Source, Status};

const WORKFLOW: &str = r#"
on: push
jobs:
  a:
    runs-on: x
    outputs: { v: "${{ steps.s.outputs.v }}" }
    steps:
      - id: s
        run: echo a >> "$COUNT_FILE"; echo "v=from-a" >> "$GITHUB_OUTPUT"
  b:
    needs: a
    runs-on: x
    steps:
      - run: echo "b saw ${{ needs.a.outputs.v }}" >> "$COUNT_FILE"; test -e "$MARKER"
  c:
    needs: b
    runs-on: x
    steps:
      - run: echo c >> "$COUNT_FILE"
"#;

/// The workflow writing to files under `dir`.
fn workflow(dir: &std::path::Path) -> String {
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
    WORKFLOW
        .replace("$COUNT_FILE", &path("count"))
        .replace("$MARKER", &path("marker"))
}

async fn run(engine: &Engine, dir: &std::path::Path, options: RunOptions) -> ci_engine::RunSummary {
    let source = Source::new("ci.yml", workflow(dir), dir);
    let event = source.local_event();
    engine
        .start(source, event, options)
        .await
        .expect("starts")
        .wait()
        .await
}

#[tokio::test]
async fn rerun_of_a_failed_job_keeps_what_passed_and_runs_what_follows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = dir.path().join("count");
    let marker = dir.path().join("marker");
    let store = Arc::new(SqliteRunStore::open(":memory:").await.expect("store"));
    let engine = Engine::builder()
        .run_store(store.clone())
        .build()
        .await
        .expect("engine");
    let mut first = RunOptions::new();
    first.run_id = Some("run-resume-1".into());
    let summary = run(&engine, dir.path(), first).await;
    assert_eq!(summary.run_id, "run-resume-1");
    assert_eq!(summary.job("b").expect("b").status, Status::Failure);
    assert_eq!(summary.job("c").expect("c").status, Status::Skipped);

    // Resumed as is: nothing runs again, the results stand.
    let mut again = RunOptions::new();
    again.run_id = Some("run-resume-1".into());
    let summary = run(&engine, dir.path(), again).await;
    assert_eq!(summary.status, Status::Failure);
    assert_eq!(
        std::fs::read_to_string(&count).expect("count"),
        "a\nb saw from-a\n"
    );

    // Rerun of the failed job: a keeps its result and outputs, b and c run.
    std::fs::write(&marker, "").expect("marker");
    let mut rerun = RunOptions::new();
    rerun.run_id = Some("run-resume-1".into());
    rerun.rerun = vec!["b".into()];
    let summary = run(&engine, dir.path(), rerun).await;
    assert_eq!(summary.status, Status::Success, "{summary:?}");
    assert_eq!(
        std::fs::read_to_string(&count).expect("count"),
        "a\nb saw from-a\nb saw from-a\nc\n",
        "a ran once; b saw a's kept output"
    );
    let details = store
        .get_run("run-resume-1")
        .await
        .expect("store")
        .expect("the run");
    let attempt = |id: &str| {
        details
            .jobs
            .iter()
            .find(|(j, _)| j.job_id == id)
            .map(|(j, _)| (j.status, j.attempt))
    };
    assert_eq!(attempt("a"), Some((Stored::Success, 1)));
    assert_eq!(attempt("b"), Some((Stored::Success, 2)));
    assert_eq!(details.run.status, Stored::Success);
}

#[tokio::test]
async fn a_run_cut_short_resumes_after_its_last_finished_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = dir.path().join("count");
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").expect("marker");
    let store = Arc::new(SqliteRunStore::open(":memory:").await.expect("store"));
    // What a crash leaves: the run, `a` finished with its output, `b` running.
    store
        .create_run(&NewRun {
            id: "cut".into(),
            repo: "octo/app".into(),
            git_ref: "refs/heads/main".into(),
            sha: "abc".into(),
            event: "push".into(),
            workflow: "ci.yml".into(),
            created_at: 1,
        })
        .await
        .expect("store");
    let record = |id: &str, status| JobRecord {
        job_id: id.into(),
        name: id.into(),
        status,
        attempt: 1,
        started_at: Some(2),
        finished_at: Some(3),
        outputs: [("v".to_owned(), "kept".to_owned())].into_iter().collect(),
    };
    store
        .record_job("cut", &record("a", Stored::Success), &[])
        .await
        .expect("store");
    store
        .record_job("cut", &record("b", Stored::Running), &[])
        .await
        .expect("store");
    let engine = Engine::builder()
        .run_store(store.clone())
        .build()
        .await
        .expect("engine");
    let mut options = RunOptions::new();
    options.run_id = Some("cut".into());
    let summary = run(&engine, dir.path(), options).await;
    assert_eq!(summary.status, Status::Success, "{summary:?}");
    assert_eq!(
        std::fs::read_to_string(&count).expect("count"),
        "b saw kept\nc\n"
    );
    let details = store.get_run("cut").await.expect("store").expect("the run");
    assert_eq!(details.run.status, Stored::Success);
    assert_eq!(details.jobs.len(), 3);
}
