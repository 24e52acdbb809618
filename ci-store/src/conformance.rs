//! The public conformance suite of the [`RunStore`] seam, the way `object_store`'s
//! integration module works: one async function per behaviour, each panicking with a message
//! when the store under test misbehaves. Every backend calls [`run_all`] (or the functions
//! one by one) from its own tests; an embedder's own `RunStore` can too.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = ci_store::runs::SqliteRunStore::open(":memory:").await.unwrap();
//! ci_store::conformance::run_all(&store).await;
//! # });
//! ```

use indexmap::IndexMap;

use crate::runs::{JobRecord, NewRun, RunFilter, RunStore, Status, StepRecord};

/// Every behaviour, in order.
pub async fn run_all(store: &dyn RunStore) {
    record_and_read_back(store).await;
    unknown_runs_are_refused(store).await;
    list_newest_first_with_filters(store).await;
}

/// An id no other test (or process) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new run of `repo` at `git_ref`.
pub fn new_run(repo: &str, git_ref: &str, created_at: i64) -> NewRun {
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

fn build_job() -> (JobRecord, Vec<StepRecord>) {
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
    (build, steps)
}

/// A run with two jobs, steps, outputs and an artifact reads back as written; a retried
/// job's record replaces the earlier attempt with its steps.
pub async fn record_and_read_back(store: &dyn RunStore) {
    let repo = unique("octo/app");
    let r = new_run(&repo, "refs/heads/main", 1000);
    store.create_run(&r).await.expect("the store answers");
    store
        .set_run_status(&r.id, Status::Running, Some(1001), None)
        .await
        .expect("the store answers");
    let (build, steps) = build_job();
    store
        .record_job(&r.id, &build, &steps)
        .await
        .expect("the store answers");
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
        .expect("the store answers");
    let retried = JobRecord {
        status: Status::Success,
        attempt: 2,
        ..test_job.clone()
    };
    store
        .record_job(&r.id, &retried, &steps)
        .await
        .expect("the store answers");
    store
        .record_artifact(&r.id, "dist", "artifacts/x/dist/manifest.json")
        .await
        .expect("the store answers");
    store
        .set_run_status(&r.id, Status::Success, None, Some(1020))
        .await
        .expect("the store answers");

    let details = store
        .get_run(&r.id)
        .await
        .expect("the store answers")
        .expect("the run exists");
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
}

/// Unknown runs: reading finds nothing, updating and recording jobs are refused.
pub async fn unknown_runs_are_refused(store: &dyn RunStore) {
    let (build, steps) = build_job();
    assert!(store
        .get_run("no-such-run")
        .await
        .expect("the store answers")
        .is_none());
    assert!(store
        .set_run_status("no-such-run", Status::Failure, None, None)
        .await
        .is_err());
    // A job of an unknown run is refused and leaves nothing behind.
    assert!(store
        .record_job("no-such-run", &build, &steps)
        .await
        .is_err());
}

/// Listing filters by repository, ref and status and pages with a cursor, newest first.
pub async fn list_newest_first_with_filters(store: &dyn RunStore) {
    let repo = unique("octo/app");
    let r = new_run(&repo, "refs/heads/main", 1000);
    store.create_run(&r).await.expect("the store answers");
    store
        .set_run_status(&r.id, Status::Success, Some(1001), Some(1020))
        .await
        .expect("the store answers");
    // Listing with filters and cursor pagination, newest first.
    let mut ids = vec![r.id.clone()];
    for i in 0..5 {
        let more = new_run(
            &repo,
            if i % 2 == 0 {
                "refs/heads/main"
            } else {
                "refs/heads/dev"
            },
            2000 + i,
        );
        store.create_run(&more).await.expect("the store answers");
        ids.push(more.id);
    }
    let filter = RunFilter {
        repo: Some(repo.clone()),
        ..RunFilter::default()
    };
    let first = store
        .list_runs(&filter, 4, None)
        .await
        .expect("the store answers");
    assert_eq!(first.runs.len(), 4);
    assert_eq!(first.runs[0].run.id, ids[5], "newest first");
    let second = store
        .list_runs(&filter, 4, first.next)
        .await
        .expect("the store answers");
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
        .expect("the store answers");
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
        .expect("the store answers");
    assert_eq!(done.runs.len(), 1);
}
