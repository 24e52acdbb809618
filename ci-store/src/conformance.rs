//! The public conformance suites of the [`RunStore`] and [`JobQueue`] seams, the way `object_store`'s
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

use crate::queue::{
    Completion, Expired, Heartbeat, JobQueue, Lease, NewJob, Outcome, QueueState, Scope, Waiting,
    Worker,
};
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

/// The [`JobQueue`] suite: every behaviour, in order. Each test uses its own labels and
/// projects and a clock starting at the real time, so that a database shared with other
/// processes (or left over from earlier runs) does not disturb it.
pub async fn queue_all(queue: &dyn JobQueue) {
    queue_labels_priority_and_duplicates(queue).await;
    queue_completion_is_idempotent(queue).await;
    queue_lost_leases_are_retried_within_budget(queue).await;
    queue_capacity_gates_and_reasons(queue).await;
    queue_fair_between_projects(queue).await;
    queue_cancel(queue).await;
    queue_concurrent_leases(queue).await;
}

fn clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const LEASE: i64 = 60_000;

async fn lease_id(queue: &dyn JobQueue, worker: &Worker, now: i64) -> Option<Lease> {
    queue
        .lease(worker, now, LEASE)
        .await
        .expect("the queue answers")
}

async fn enqueue(queue: &dyn JobQueue, job: NewJob, now: i64) {
    assert!(
        queue.enqueue(&job, now).await.expect("the queue answers"),
        "a new id is enqueued"
    );
}

/// A worker gets only jobs whose every label it has, highest priority first, then oldest;
/// enqueueing an id twice changes nothing.
pub async fn queue_labels_priority_and_duplicates(queue: &dyn JobQueue) {
    let t = clock();
    let l = unique("linux");
    let gpu = unique("gpu");
    let project = unique("octo/app");
    let id = |n: &str| format!("{l}-{n}");
    enqueue(queue, NewJob::new(id("a"), &project, "A").label(&l), t).await;
    enqueue(
        queue,
        NewJob::new(id("b"), &project, "B").label(&l).priority(5),
        t + 1,
    )
    .await;
    enqueue(
        queue,
        NewJob::new(id("c"), &project, "C").label(&l).label(&gpu),
        t + 2,
    )
    .await;
    assert!(
        !queue
            .enqueue(&NewJob::new(id("a"), &project, "again"), t + 3)
            .await
            .expect("the queue answers"),
        "a duplicate id is refused"
    );
    let plain = Worker::new(unique("w"), [l.clone()]);
    let first = lease_id(queue, &plain, t + 10)
        .await
        .expect("a job for the worker");
    assert_eq!(
        (first.job_id.as_str(), first.payload.as_str()),
        (id("b").as_str(), "B")
    );
    assert_eq!(first.attempt, 1);
    assert_eq!(first.deadline, t + 10 + LEASE);
    let second = lease_id(queue, &plain, t + 11)
        .await
        .expect("a job for the worker");
    assert_eq!(
        second.job_id,
        id("a"),
        "then the oldest; the payload is the first one"
    );
    assert_eq!(second.payload, "A");
    assert!(
        lease_id(queue, &plain, t + 12).await.is_none(),
        "the gpu job needs a worker with both labels"
    );
    let both = Worker::new(unique("w"), [gpu.clone(), l.clone(), "docker".into()]);
    let third = lease_id(queue, &both, t + 13)
        .await
        .expect("a job for the worker");
    assert_eq!(third.job_id, id("c"));
    let got = queue
        .get(&id("c"))
        .await
        .expect("the queue answers")
        .expect("the job exists");
    assert_eq!(got.state, QueueState::Leased);
    assert_eq!(got.worker.as_deref(), Some(both.id.as_str()));
    assert_eq!(got.labels, [l.clone(), gpu.clone()]);
    for lease in [first, second, third] {
        queue
            .complete(&lease.job_id, &lease.token, Outcome::Success, t + 20)
            .await
            .expect("the queue answers");
    }
}

/// Completing twice with the same lease answers the first outcome; another token is stale;
/// a finished job is never leased again.
pub async fn queue_completion_is_idempotent(queue: &dyn JobQueue) {
    let t = clock();
    let l = unique("linux");
    let worker = Worker::new(unique("w"), [l.clone()]);
    enqueue(
        queue,
        NewJob::new(unique("job"), unique("p"), "x").label(&l),
        t,
    )
    .await;
    let lease = lease_id(queue, &worker, t + 1)
        .await
        .expect("a job for the worker");
    let complete = |token: String, outcome| {
        let id = lease.job_id.clone();
        async move {
            queue
                .complete(&id, &token, outcome, t + 5)
                .await
                .expect("the queue answers")
        }
    };
    assert_eq!(
        complete(lease.token.clone(), Outcome::Failure).await,
        Completion::Recorded
    );
    assert_eq!(
        complete(lease.token.clone(), Outcome::Success).await,
        Completion::AlreadyDone(Outcome::Failure),
        "a repeated completion keeps the first outcome"
    );
    assert_eq!(
        complete("1.forged".into(), Outcome::Success).await,
        Completion::Stale
    );
    assert!(
        lease_id(queue, &worker, t + 6).await.is_none(),
        "a finished job is not leased again"
    );
    assert_eq!(
        queue
            .heartbeat(&lease.job_id, &lease.token, t + 7, LEASE)
            .await
            .expect("the queue answers"),
        Heartbeat::Gone
    );
    let job = queue
        .get(&lease.job_id)
        .await
        .expect("the queue answers")
        .expect("the job exists");
    assert_eq!(
        (job.state, job.outcome, job.finished_at),
        (QueueState::Done, Some(Outcome::Failure), Some(t + 5))
    );
    assert!(queue
        .complete("no-such-job", "t", Outcome::Success, t)
        .await
        .is_err());
}

/// A lease not extended in time is lost: queued again within the budget (the old lease is
/// stale from then on), then ended as lost. Heartbeats keep a lease.
pub async fn queue_lost_leases_are_retried_within_budget(queue: &dyn JobQueue) {
    let t = clock();
    let l = unique("linux");
    let id = unique("job");
    let worker = Worker::new(unique("w"), [l.clone()]);
    enqueue(queue, NewJob::new(&id, unique("p"), "x").label(&l), t).await;
    let ours = |expired: Vec<Expired>| -> Vec<Expired> {
        expired.into_iter().filter(|e| e.job_id == id).collect()
    };
    let first = queue
        .lease(&worker, t, 100)
        .await
        .expect("the queue answers")
        .expect("a job");
    assert_eq!(
        queue
            .heartbeat(&id, &first.token, t + 90, 100)
            .await
            .expect("the queue answers"),
        Heartbeat::Extended { cancel: false }
    );
    assert!(
        ours(queue.expire(t + 150).await.expect("the queue answers")).is_empty(),
        "the heartbeat moved the deadline to t+190"
    );
    let expired = ours(queue.expire(t + 200).await.expect("the queue answers"));
    assert_eq!(expired.len(), 1);
    assert!(expired[0].retried, "one retry by default");
    assert_eq!(expired[0].worker, worker.id);
    let job = queue
        .get(&id)
        .await
        .expect("the queue answers")
        .expect("the job exists");
    assert_eq!((job.state, job.lost), (QueueState::Queued, 1));
    assert!(
        job.note.as_deref().unwrap_or_default().contains("expired"),
        "{:?}",
        job.note
    );
    let second = queue
        .lease(&worker, t + 210, 100)
        .await
        .expect("the queue answers")
        .expect("the retry");
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, first.token);
    assert_eq!(
        queue
            .complete(&id, &first.token, Outcome::Success, t + 220)
            .await
            .expect("the queue answers"),
        Completion::Stale,
        "the lost worker's late completion is refused"
    );
    assert_eq!(
        queue
            .heartbeat(&id, &first.token, t + 220, 100)
            .await
            .expect("the queue answers"),
        Heartbeat::Gone
    );
    let expired = ours(queue.expire(t + 400).await.expect("the queue answers"));
    assert_eq!(expired.len(), 1);
    assert!(!expired[0].retried, "the budget is spent");
    let job = queue
        .get(&id)
        .await
        .expect("the queue answers")
        .expect("the job exists");
    assert_eq!(
        (job.state, job.outcome, job.lost),
        (QueueState::Done, Some(Outcome::Lost), 2)
    );
    assert!(queue
        .lease(&worker, t + 500, 100)
        .await
        .expect("the queue answers")
        .is_none());
}

/// Capacity per label and per project: a full gate holds jobs back, with the reason shown;
/// a freed slot lets the next one go.
pub async fn queue_capacity_gates_and_reasons(queue: &dyn JobQueue) {
    let t = clock();
    let large = unique("linux-large");
    let project = unique("octo/busy");
    let worker = Worker::new(unique("w"), [large.clone()]);
    queue
        .set_capacity(&Scope::Label(large.clone()), Some(1))
        .await
        .expect("the queue answers");
    let a = unique("job");
    let b = unique("job");
    enqueue(queue, NewJob::new(&a, &project, "a").label(&large), t).await;
    enqueue(queue, NewJob::new(&b, &project, "b").label(&large), t + 1).await;
    let reason = |waiting: Vec<Waiting>, id: &str| {
        waiting
            .into_iter()
            .find(|w| w.job.id == id)
            .map(|w| w.reason)
            .expect("the job waits")
    };
    let before = reason(queue.waiting(t + 2).await.expect("the queue answers"), &a);
    assert!(before.contains("no worker with the labels"), "{before}");
    let first = lease_id(queue, &worker, t + 3).await.expect("a job");
    assert_eq!(first.job_id, a);
    assert!(
        lease_id(queue, &worker, t + 4).await.is_none(),
        "the label's one slot is busy"
    );
    let why = reason(queue.waiting(t + 5).await.expect("the queue answers"), &b);
    assert_eq!(why, format!("waiting for a '{large}' slot: 1/1 busy"));
    queue
        .complete(&a, &first.token, Outcome::Success, t + 6)
        .await
        .expect("the queue answers");
    let next = lease_id(queue, &worker, t + 7)
        .await
        .expect("the freed slot");
    assert_eq!(next.job_id, b);
    queue
        .complete(&b, &next.token, Outcome::Success, t + 8)
        .await
        .expect("the queue answers");
    queue
        .set_capacity(&Scope::Label(large.clone()), None)
        .await
        .expect("the queue answers");

    // Per project, and the gates read back.
    let l = unique("linux");
    let worker = Worker::new(unique("w"), [l.clone()]);
    let project = unique("octo/plan");
    queue
        .set_capacity(&Scope::Project(project.clone()), Some(2))
        .await
        .expect("the queue answers");
    assert_eq!(
        queue
            .capacities()
            .await
            .expect("the queue answers")
            .get(&Scope::Project(project.clone())),
        Some(&2)
    );
    let ids: Vec<String> = (0..3).map(|_| unique("job")).collect();
    for (i, id) in ids.iter().enumerate() {
        enqueue(
            queue,
            NewJob::new(id, &project, "x").label(&l),
            t + i as i64,
        )
        .await;
    }
    let leases = [
        lease_id(queue, &worker, t + 10).await.expect("slot 1"),
        lease_id(queue, &worker, t + 11).await.expect("slot 2"),
    ];
    assert!(
        lease_id(queue, &worker, t + 12).await.is_none(),
        "the project's 2 slots are busy"
    );
    let why = reason(
        queue.waiting(t + 13).await.expect("the queue answers"),
        &ids[2],
    );
    assert_eq!(
        why,
        format!("waiting for a slot of project '{project}': 2/2 busy")
    );
    let leased = queue.leased().await.expect("the queue answers");
    assert_eq!(leased.iter().filter(|j| j.project == project).count(), 2);
    for lease in &leases {
        queue
            .complete(&lease.job_id, &lease.token, Outcome::Success, t + 14)
            .await
            .expect("the queue answers");
    }
    let last = lease_id(queue, &worker, t + 15)
        .await
        .expect("a freed slot");
    assert_eq!(last.job_id, ids[2]);
    queue
        .complete(&last.job_id, &last.token, Outcome::Success, t + 16)
        .await
        .expect("the queue answers");
    queue
        .set_capacity(&Scope::Project(project), None)
        .await
        .expect("the queue answers");
}

/// A project that enqueued many jobs does not starve one that enqueued later: of equal
/// priority, the project with fewer jobs leased goes first.
pub async fn queue_fair_between_projects(queue: &dyn JobQueue) {
    let t = clock();
    let l = unique("linux");
    let worker = Worker::new(unique("w"), [l.clone()]);
    let (big, small) = (unique("octo/big"), unique("octo/small"));
    for i in 0..3 {
        enqueue(
            queue,
            NewJob::new(format!("{big}-{i}"), &big, "x").label(&l),
            t + i,
        )
        .await;
    }
    enqueue(
        queue,
        NewJob::new(format!("{small}-0"), &small, "x").label(&l),
        t + 10,
    )
    .await;
    let mut order = Vec::new();
    let mut leases = Vec::new();
    while let Some(lease) = lease_id(queue, &worker, t + 20).await {
        order.push(lease.project.clone());
        leases.push(lease);
    }
    assert_eq!(
        order,
        [big.clone(), small.clone(), big.clone(), big.clone()]
    );
    let waiting = queue.waiting(t + 21).await.expect("the queue answers");
    assert!(!waiting
        .iter()
        .any(|w| w.job.project == big || w.job.project == small));
    for lease in leases {
        queue
            .complete(&lease.job_id, &lease.token, Outcome::Success, t + 30)
            .await
            .expect("the queue answers");
    }
}

/// Cancelling a queued job ends it; a leased one is flagged for its worker's heartbeat; an
/// ended one is left alone.
pub async fn queue_cancel(queue: &dyn JobQueue) {
    let t = clock();
    let l = unique("linux");
    let worker = Worker::new(unique("w"), [l.clone()]);
    let project = unique("p");
    let (queued, running) = (unique("job"), unique("job"));
    enqueue(queue, NewJob::new(&running, &project, "x").label(&l), t).await;
    enqueue(queue, NewJob::new(&queued, &project, "x").label(&l), t + 1).await;
    let lease = lease_id(queue, &worker, t + 2).await.expect("a job");
    assert_eq!(lease.job_id, running);
    assert!(queue
        .cancel(&queued, t + 3)
        .await
        .expect("the queue answers"));
    let job = queue
        .get(&queued)
        .await
        .expect("the queue answers")
        .expect("the job exists");
    assert_eq!(
        (job.state, job.outcome),
        (QueueState::Done, Some(Outcome::Cancelled))
    );
    assert!(
        lease_id(queue, &worker, t + 4).await.is_none(),
        "a cancelled job is not leased"
    );
    assert!(queue
        .cancel(&running, t + 5)
        .await
        .expect("the queue answers"));
    assert_eq!(
        queue
            .heartbeat(&running, &lease.token, t + 6, LEASE)
            .await
            .expect("the queue answers"),
        Heartbeat::Extended { cancel: true }
    );
    assert_eq!(
        queue
            .complete(&running, &lease.token, Outcome::Cancelled, t + 7)
            .await
            .expect("the queue answers"),
        Completion::Recorded
    );
    assert!(
        !queue
            .cancel(&running, t + 8)
            .await
            .expect("the queue answers"),
        "it had ended"
    );
}

/// Workers leasing at the same moment never get the same job, and a capacity gate holds
/// under the race.
pub async fn queue_concurrent_leases(queue: &dyn JobQueue) {
    let t = clock();
    let l = unique("linux");
    let capped = unique("linux-capped");
    let project = unique("p");
    for i in 0..12 {
        enqueue(
            queue,
            NewJob::new(unique("job"), &project, "x").label(&l),
            t + i,
        )
        .await;
        enqueue(
            queue,
            NewJob::new(unique("job"), &project, "x").label(&capped),
            t + i,
        )
        .await;
    }
    queue
        .set_capacity(&Scope::Label(capped.clone()), Some(3))
        .await
        .expect("the queue answers");
    let workers: Vec<Worker> = (0..6)
        .map(|_| Worker::new(unique("w"), [l.clone(), capped.clone()]))
        .collect();
    let grab = |w: &Worker| {
        let w = w.clone();
        async move {
            let mut got = Vec::new();
            while let Some(lease) = lease_id(queue, &w, t + 50).await {
                got.push(lease.job_id);
            }
            got
        }
    };
    let all: Vec<String> = futures_util::future::join_all(workers.iter().map(grab))
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut unique_ids = all.clone();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), all.len(), "no job leased twice: {all:?}");
    assert_eq!(all.len(), 12 + 3, "every plain job and three capped ones");
    queue
        .set_capacity(&Scope::Label(capped), None)
        .await
        .expect("the queue answers");
}
