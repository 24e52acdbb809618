//! Store figures in one run (used by `bench/store.sh`): log append throughput to the
//! local-filesystem store, and RunStore writes for a 1,000-job run on SQLite and Postgres.

use std::time::Instant;

use ci_store::logs::LogWriter;
use ci_store::runs::{
    JobRecord, NewRun, PostgresRunStore, RunStore, SqliteRunStore, Status, StepRecord,
};
use ci_store::BlobStore;

async fn thousand_jobs(store: &dyn RunStore, label: &str) {
    let id = format!("bench-{label}-{}", std::process::id());
    let start = Instant::now();
    store
        .create_run(&NewRun {
            id: id.clone(),
            repo: "o/r".into(),
            git_ref: "refs/heads/main".into(),
            sha: "s".into(),
            event: "push".into(),
            workflow: "w".into(),
            created_at: 0,
        })
        .await
        .expect("creates");
    let steps: Vec<StepRecord> = (0..3)
        .map(|i| StepRecord {
            index: i,
            name: format!("step {i}"),
            status: Status::Success,
            started_at: Some(1),
            finished_at: Some(2),
            log_key: None,
        })
        .collect();
    for j in 0..1000 {
        let job = JobRecord {
            job_id: format!("job-{j}"),
            name: "job".into(),
            status: Status::Success,
            attempt: 1,
            started_at: Some(1),
            finished_at: Some(2),
            outputs: Default::default(),
        };
        store.record_job(&id, &job, &steps).await.expect("records");
    }
    store
        .set_run_status(&id, Status::Success, Some(1), Some(2))
        .await
        .expect("finishes");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "runstore {label}: 1,000 jobs × (job + 3 steps) in {secs:.2} s → {:.0} job writes/s",
        1000.0 / secs
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = BlobStore::open(&format!("file://{}/blobs", dir.path().display())).expect("opens");
    let mut log = LogWriter::new(blobs, "bench", "job", "step");
    let line =
        "2026-11-23T09:00:00Z compiling crate with a typical log line of about eighty bytes\n"
            .repeat(64);
    let total = 256 * 1024 * 1024;
    let start = Instant::now();
    let mut written = 0;
    while written < total {
        log.append(line.as_bytes()).await.expect("appends");
        written += line.len();
    }
    log.finish().await.expect("finishes");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "log append to fs: {} MiB in {secs:.2} s → {:.0} MiB/s (compaction included)",
        written >> 20,
        (written >> 20) as f64 / secs
    );

    let sqlite = SqliteRunStore::open(&format!("{}/runs.db", dir.path().display()))
        .await
        .expect("sqlite");
    thousand_jobs(&sqlite, "sqlite").await;
    let url = std::env::var("GANTRY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://gantry:gantry@127.0.0.1:5432/gantry_test".into());
    match PostgresRunStore::connect(&url).await {
        Ok(pg) => thousand_jobs(&pg, "postgres").await,
        Err(e) => println!("runstore postgres: skipped ({e})"),
    }
}
