//! Crash safety: a child process writing log segments and run updates is killed with SIGKILL
//! mid-way; the store must open cleanly, every acknowledged segment must be readable, and the
//! run must be consistent (each recorded job has exactly the steps recorded with it).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ci_store::logs::{LogReader, LogWriter};
use ci_store::runs::{JobRecord, NewRun, RunStore, SqliteRunStore, Status, StepRecord};
use ci_store::BlobStore;

const CHILD: &str = "GANTRY_CRASH_CHILD";

/// The child: writes forever, printing an acknowledgement after each durable write.
async fn child(dir: &str) {
    let blobs = BlobStore::open(&format!("file://{dir}/blobs")).unwrap();
    let runs = SqliteRunStore::open(&format!("{dir}/runs.db"))
        .await
        .unwrap();
    runs.create_run(&NewRun {
        id: "crash".into(),
        repo: "o/r".into(),
        git_ref: "refs/heads/main".into(),
        sha: "s".into(),
        event: "push".into(),
        workflow: "w".into(),
        created_at: 1,
    })
    .await
    .unwrap();
    println!("run");
    let mut log = LogWriter::new(blobs, "crash", "job", "step");
    for i in 0u64.. {
        log.append(format!("line {i:08}\n").repeat(500).as_bytes())
            .await
            .unwrap();
        log.flush().await.unwrap();
        println!("segment {i}");
        let steps: Vec<StepRecord> = (0..=(i % 5) as i64)
            .map(|s| StepRecord {
                index: s,
                name: format!("s{s}"),
                status: Status::Success,
                started_at: None,
                finished_at: None,
                log_key: None,
            })
            .collect();
        let job = JobRecord {
            job_id: format!("j{}", i % 7),
            name: "j".into(),
            status: Status::Running,
            attempt: i as i64 + 1,
            started_at: None,
            finished_at: None,
            outputs: Default::default(),
        };
        runs.record_job("crash", &job, &steps).await.unwrap();
        println!("job {} {} {}", job.job_id, job.attempt, steps.len());
    }
}

#[tokio::test]
async fn sigkill_mid_write_leaves_a_consistent_store() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(&dir).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_mid_write_leaves_a_consistent_store",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked_segments = 0u64;
    let mut acked_jobs: std::collections::HashMap<String, (i64, usize)> = Default::default();
    let lines = BufReader::new(process.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["segment", n] => acked_segments = n.parse::<u64>().unwrap() + 1,
            ["job", id, attempt, steps] => {
                acked_jobs.insert(
                    (*id).to_owned(),
                    (attempt.parse().unwrap(), steps.parse().unwrap()),
                );
            }
            _ => {}
        }
        if acked_segments >= 40 {
            break;
        }
    }
    assert!(
        acked_segments >= 40,
        "the writer stopped early after {acked_segments} segments"
    );
    // SIGKILL, mid-write.
    kill9(process.id()).expect("the writer is killed");
    let _ = process.wait();

    let blobs = BlobStore::open(&format!("file://{path}/blobs")).unwrap();
    let log = LogReader::new(blobs, "crash", "job", "step")
        .read_all()
        .await
        .unwrap();
    let segment = format!("line {:08}\n", 0).repeat(500).len() as u64;
    assert!(
        log.len() as u64 >= acked_segments * segment,
        "acknowledged segments were lost"
    );
    assert_eq!(log.len() as u64 % segment, 0, "a torn segment is visible");
    let runs = SqliteRunStore::open(&format!("{path}/runs.db"))
        .await
        .expect("the database opens after a crash");
    let details = runs
        .get_run("crash")
        .await
        .unwrap()
        .expect("the run survived");
    for (job, steps) in &details.jobs {
        assert_eq!(
            steps.len(),
            (0..).take_while(|s| *s <= (job.attempt - 1) % 5).count(),
            "job {} is half-written",
            job.job_id
        );
        let (acked_attempt, _) = acked_jobs.get(&job.job_id).copied().unwrap_or((0, 0));
        assert!(
            job.attempt >= acked_attempt,
            "an acknowledged update of {} was lost",
            job.job_id
        );
    }
}

fn kill9(pid: u32) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}
