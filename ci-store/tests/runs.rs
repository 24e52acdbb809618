//! The shared RunStore suite on SQLite (file and in-memory) and Postgres (the server
//! `.ci/services` starts; `GANTRY_POSTGRES_URL` overrides). Without Postgres the test skips
//! loudly, and fails when CI=true.

use ci_store::runs::{JobRecord, NewRun, RunFilter, RunStore, SqliteRunStore, Status, StepRecord};
use indexmap::IndexMap;

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(repo: &str, git_ref: &str, created_at: i64) -> NewRun {
    NewRun {
        id: unique("run"),
        repo: repo.into(),
        git_ref: git_ref.into(),
        sha: "0123abcd".into(),
        event: "push".into(),
        workflow: ".github/workflows/ci.yml".into(),
        created_at,
    }
}

/// The suite every backend runs.
async fn suite(store: &dyn RunStore) {
    let repo = unique("octo/app");
    // A run with two jobs, steps, outputs and an artifact.
    let r = run(&repo, "refs/heads/main", 1000);
    store.create_run(&r).await.unwrap();
    store
        .set_run_status(&r.id, Status::Running, Some(1001), None)
        .await
        .unwrap();
    let mut outputs = IndexMap::new();
    outputs.insert("version".to_owned(), "1.2.3".to_owned());
    let build = JobRecord {
        job_id: "build".into(),
        name: "Build".into(),
        status: Status::Success,
        attempt: 1,
        started_at: Some(1002),
        finished_at: Some(1010),
        outputs,
    };
    let steps = vec![
        StepRecord {
            index: 0,
            name: "checkout".into(),
            status: Status::Success,
            started_at: Some(1002),
            finished_at: Some(1003),
            log_key: Some("logs/x/0".into()),
        },
        StepRecord {
            index: 1,
            name: "make".into(),
            status: Status::Success,
            started_at: Some(1003),
            finished_at: Some(1010),
            log_key: None,
        },
    ];
    store.record_job(&r.id, &build, &steps).await.unwrap();
    // A retry replaces the job's record and its steps.
    let test_job = JobRecord {
        job_id: "test".into(),
        name: "Test".into(),
        status: Status::Failure,
        attempt: 1,
        started_at: Some(1011),
        finished_at: Some(1012),
        outputs: IndexMap::new(),
    };
    store
        .record_job(&r.id, &test_job, &steps[..1])
        .await
        .unwrap();
    let retried = JobRecord {
        status: Status::Success,
        attempt: 2,
        ..test_job.clone()
    };
    store.record_job(&r.id, &retried, &steps).await.unwrap();
    store
        .record_artifact(&r.id, "dist", "artifacts/x/dist/manifest.json")
        .await
        .unwrap();
    store
        .set_run_status(&r.id, Status::Success, None, Some(1020))
        .await
        .unwrap();

    let details = store.get_run(&r.id).await.unwrap().expect("the run exists");
    assert_eq!(details.run.status, Status::Success);
    assert_eq!(
        (details.run.started_at, details.run.finished_at),
        (Some(1001), Some(1020))
    );
    assert_eq!(details.run.run, r);
    assert_eq!(details.jobs.len(), 2);
    assert_eq!(details.jobs[0].0, build);
    assert_eq!(details.jobs[0].1, steps);
    assert_eq!(details.jobs[1].0.attempt, 2);
    assert_eq!(details.jobs[1].1.len(), 2);
    assert_eq!(
        details.artifacts,
        [(
            "dist".to_owned(),
            "artifacts/x/dist/manifest.json".to_owned()
        )]
    );
    assert!(store.get_run("no-such-run").await.unwrap().is_none());
    assert!(store
        .set_run_status("no-such-run", Status::Failure, None, None)
        .await
        .is_err());
    // A job of an unknown run is refused and leaves nothing behind.
    assert!(store
        .record_job("no-such-run", &build, &steps)
        .await
        .is_err());

    // Listing with filters and cursor pagination, newest first.
    let mut ids = vec![r.id.clone()];
    for i in 0..5 {
        let more = run(
            &repo,
            if i % 2 == 0 {
                "refs/heads/main"
            } else {
                "refs/heads/dev"
            },
            2000 + i,
        );
        store.create_run(&more).await.unwrap();
        ids.push(more.id);
    }
    let filter = RunFilter {
        repo: Some(repo.clone()),
        ..RunFilter::default()
    };
    let first = store.list_runs(&filter, 4, None).await.unwrap();
    assert_eq!(first.runs.len(), 4);
    assert_eq!(first.runs[0].run.id, ids[5], "newest first");
    let second = store.list_runs(&filter, 4, first.next).await.unwrap();
    assert_eq!(second.runs.len(), 2);
    assert_eq!(second.next, None);
    let listed: Vec<&str> = first
        .runs
        .iter()
        .chain(&second.runs)
        .map(|r| r.run.id.as_str())
        .collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.reverse();
    assert_eq!(listed, expected);
    let dev = store
        .list_runs(
            &RunFilter {
                repo: Some(repo.clone()),
                git_ref: Some("refs/heads/dev".into()),
                status: None,
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(dev.runs.len(), 2);
    let done = store
        .list_runs(
            &RunFilter {
                repo: Some(repo),
                git_ref: None,
                status: Some(Status::Success),
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.runs.len(), 1);
}

#[tokio::test]
async fn sqlite_in_memory() {
    suite(&SqliteRunStore::open(":memory:").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_file_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".gantry/runs.db");
    let path = path.to_str().unwrap();
    let store = SqliteRunStore::open(path).await.unwrap();
    suite(&store).await;
    let r = run("octo/reopen", "refs/heads/main", 1);
    store.create_run(&r).await.unwrap();
    drop(store);
    let again = SqliteRunStore::open(path).await.unwrap();
    assert!(
        again.get_run(&r.id).await.unwrap().is_some(),
        "migrations run again without losing data"
    );
}

#[tokio::test]
async fn postgres() {
    let url = std::env::var("GANTRY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://gantry:gantry@127.0.0.1:5432/gantry_test".into());
    match ci_store::runs::PostgresRunStore::connect(&url).await {
        Ok(store) => suite(&store).await,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and no Postgres at {url}: {e}"
            );
            eprintln!("SKIPPED postgres test: {e}; run `.ci/services start`");
        }
    }
}
