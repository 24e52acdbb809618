//! The shared conformance suite on the fake and host executors, and the host's no-orphan
//! guarantee checked through /proc.

use std::time::Duration;

use ci_exec::{conformance, Executor, HostExecutor, JobSpec, Shell, StepOutcome, StepSpec};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn fake_executor_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&ci_exec::FakeExecutor::shell(), dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn host_executor_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = HostExecutor {
        grace: Duration::from_millis(500),
        ..HostExecutor::default()
    };
    let failures = conformance::run_all(&host, dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Processes whose process group is `pgid` (from /proc/*/stat, field 5).
fn members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …` — comm may hold spaces, so split after the `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) == Some(pgid) {
            // Zombies are gone as far as the user is concerned.
            if fields.first() != Some(&"Z") {
                out.push(pid);
            }
        }
    }
    out
}

/// Whether the group is empty within 2 s: a process killed with SIGKILL needs the kernel a
/// moment to exit on a loaded machine, and none may survive that.
async fn gone(pgid: i32) -> bool {
    for _ in 0..40 {
        if members(pgid).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn run_and_find_group(
    step: StepSpec,
    cancel_after: Option<Duration>,
) -> (StepOutcome, i32, Box<dyn ci_exec::JobEnvironment>) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let host = HostExecutor {
        grace: Duration::from_millis(300),
        ..HostExecutor::default()
    };
    let job = JobSpec {
        run_id: "orphans".into(),
        job_id: "j".into(),
        workspace: dir.clone(),
        ..JobSpec::default()
    };
    let env = host.prepare(&job).await.expect("prepares");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(16);
    let cancel = CancellationToken::new();
    if let Some(after) = cancel_after {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            c.cancel();
        });
    }
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk.data);
        }
        out
    });
    let outcome = env.run_step(&step, tx, cancel).await;
    let out = reader.await.expect("reader");
    // The script prints its process group first.
    let pgid: i32 = String::from_utf8_lossy(&out)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the group id");
    (outcome, pgid, env)
}

fn daemonising(id: &str) -> StepSpec {
    StepSpec {
        id: id.into(),
        script: "cut -d' ' -f5 /proc/$$/stat\nsleep 1000 &\n(sleep 1000 &)\nsleep 1000 </dev/null >/dev/null 2>&1 &\nsleep 30\n".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    }
}

#[tokio::test]
async fn a_timed_out_step_leaves_no_process() {
    let mut step = daemonising("timeout");
    step.timeout = Some(Duration::from_millis(500));
    let (outcome, pgid, env) = run_and_find_group(step, None).await;
    assert_eq!(outcome, StepOutcome::TimedOut);
    assert!(gone(pgid).await, "left running: {:?}", members(pgid));
    env.teardown().await.expect("teardown");
}

#[tokio::test]
async fn a_cancelled_step_leaves_no_process() {
    let (outcome, pgid, env) =
        run_and_find_group(daemonising("cancel"), Some(Duration::from_millis(500))).await;
    assert_eq!(outcome, StepOutcome::Cancelled);
    assert!(gone(pgid).await, "left running: {:?}", members(pgid));
    env.teardown().await.expect("teardown");
}

#[tokio::test]
async fn background_processes_live_until_teardown() {
    let step = StepSpec {
        id: "bg".into(),
        script: "cut -d' ' -f5 /proc/$$/stat\nsleep 1000 >/dev/null 2>&1 &\n".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    let (outcome, pgid, env) = run_and_find_group(step, None).await;
    assert_eq!(outcome, StepOutcome::Exited(0));
    assert!(
        !members(pgid).is_empty(),
        "the background process should still run for later steps"
    );
    env.teardown().await.expect("teardown");
    assert!(
        gone(pgid).await,
        "left running after teardown: {:?}",
        members(pgid)
    );
}

#[tokio::test]
async fn shells_and_start_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = HostExecutor::default();
    let job = JobSpec {
        workspace: dir.path().to_path_buf(),
        job_id: "shells".into(),
        ..JobSpec::default()
    };
    let env = host.prepare(&job).await.expect("prepares");
    let run = |script: &str, shell: Shell| StepSpec {
        id: "s".into(),
        script: script.into(),
        shell,
        ..StepSpec::default()
    };
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    // bash -eo pipefail: a failing stage of a pipeline fails the step.
    let outcome = env
        .run_step(
            &run("false | true", Shell::Bash),
            tx.clone(),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(outcome, StepOutcome::Exited(1));
    let outcome = env
        .run_step(
            &run("exit 0", Shell::Custom("definitely-not-a-shell {0}".into())),
            tx,
            CancellationToken::new(),
        )
        .await;
    assert!(
        matches!(outcome, StepOutcome::StartFailed(_)),
        "{outcome:?}"
    );
    env.teardown().await.expect("teardown");
}
