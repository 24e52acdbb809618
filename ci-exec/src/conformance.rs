//! The shared executor suite: every implementation runs these checks from its own tests
//! (echo output, exit codes, environment, working directory, timeouts, cancel, large output,
//! stdout/stderr separation).
//!
//! [`scripted_fake`] is a [`FakeExecutor`] scripted to behave like the suite's scripts, so the
//! fake passes the same suite as the real executors.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::Executor;
use crate::fake::{FakeExecutor, FakeStep};
use crate::spec::{JobSpec, Shell, StepOutcome, StepSpec, Stream};

const LARGE: usize = 5_000_000;

/// The output and outcome of one step.
struct Ran {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    outcome: StepOutcome,
    took: Duration,
}

async fn run(
    executor: &dyn Executor,
    job: &JobSpec,
    step: StepSpec,
    cancel_after: Option<Duration>,
) -> Result<Ran, String> {
    let env = executor.prepare(job).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel::<crate::spec::Chunk>(64);
    let cancel = CancellationToken::new();
    if let Some(after) = cancel_after {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            c.cancel();
        });
    }
    let collect = tokio::spawn(async move {
        let (mut out, mut err) = (BytesMut::new(), BytesMut::new());
        while let Some(chunk) = rx.recv().await {
            match chunk.stream {
                Stream::Stdout => out.extend_from_slice(&chunk.data),
                Stream::Stderr => err.extend_from_slice(&chunk.data),
            }
        }
        (out.to_vec(), err.to_vec())
    });
    let start = Instant::now();
    let outcome = env.run_step(&step, tx, cancel).await;
    let took = start.elapsed();
    let (stdout, stderr) = collect.await.map_err(|e| e.to_string())?;
    env.teardown().await.map_err(|e| e.to_string())?;
    env.teardown()
        .await
        .map_err(|e| format!("second teardown: {e}"))?;
    Ok(Ran {
        stdout,
        stderr,
        outcome,
        took,
    })
}

fn step(id: &str, script: &str) -> StepSpec {
    StepSpec {
        id: id.to_owned(),
        script: script.to_owned(),
        shell: Shell::Sh,
        ..StepSpec::default()
    }
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

/// Runs every check against `executor` in a fresh workspace under `root`; returns the
/// failures (empty when the executor conforms).
pub async fn run_all(executor: &dyn Executor, root: &std::path::Path) -> Vec<String> {
    let mut failures = Vec::new();
    let job = JobSpec {
        run_id: "conformance".into(),
        job_id: executor.name().into(),
        workspace: root.join("ws"),
        ..JobSpec::default()
    };
    if let Err(e) = std::fs::create_dir_all(job.workspace.join("sub")) {
        return vec![format!("cannot make the workspace: {e}")];
    }
    let checks: Vec<(&str, Result<(), String>)> = vec![
        (
            "echo output",
            async {
                let r = run(executor, &job, step("echo", "echo hello"), None).await?;
                expect("stdout", r.stdout.as_slice(), b"hello\n".as_slice())?;
                expect("outcome", r.outcome, StepOutcome::Exited(0))
            }
            .await,
        ),
        (
            "exit codes",
            async {
                let r = run(executor, &job, step("exit", "exit 3"), None).await?;
                expect("outcome", r.outcome, StepOutcome::Exited(3))
            }
            .await,
        ),
        (
            "environment exactly as given",
            async {
                let mut s = step(
                    "env",
                    "echo \"$FOO\"; echo \"${GANTRY_CONFORMANCE_LEAK:-unset}\"",
                );
                s.env.insert("FOO".into(), "bar baz".into());
                std::env::set_var("GANTRY_CONFORMANCE_LEAK", "leaked");
                let r = run(executor, &job, s, None).await?;
                expect(
                    "stdout",
                    String::from_utf8_lossy(&r.stdout).into_owned(),
                    "bar baz\nunset\n".into(),
                )
            }
            .await,
        ),
        (
            "working directory",
            async {
                let mut s = step("workdir", "pwd");
                s.workdir = Some("sub".into());
                let r = run(executor, &job, s, None).await?;
                let out = String::from_utf8_lossy(&r.stdout).trim().to_owned();
                if out.ends_with("/sub") {
                    Ok(())
                } else {
                    Err(format!("pwd printed {out:?}"))
                }
            }
            .await,
        ),
        (
            "step timeout",
            async {
                let mut s = step("timeout", "sleep 30");
                s.timeout = Some(Duration::from_millis(300));
                let r = run(executor, &job, s, None).await?;
                expect("outcome", r.outcome, StepOutcome::TimedOut)?;
                if r.took > Duration::from_secs(10) {
                    return Err(format!("the timeout took {:?}", r.took));
                }
                Ok(())
            }
            .await,
        ),
        (
            "job timeout",
            async {
                let timed = JobSpec {
                    timeout: Some(Duration::from_millis(300)),
                    ..job.clone()
                };
                let r = run(executor, &timed, step("jobtimeout", "sleep 30"), None).await?;
                expect("outcome", r.outcome, StepOutcome::TimedOut)
            }
            .await,
        ),
        (
            "cancel",
            async {
                let r = run(
                    executor,
                    &job,
                    step("cancel", "sleep 30"),
                    Some(Duration::from_millis(200)),
                )
                .await?;
                expect("outcome", r.outcome, StepOutcome::Cancelled)?;
                if r.took > Duration::from_secs(10) {
                    return Err(format!("cancelling took {:?}", r.took));
                }
                Ok(())
            }
            .await,
        ),
        (
            "large output",
            async {
                let r = run(
                    executor,
                    &job,
                    step("large", &format!("yes | head -c {LARGE}")),
                    None,
                )
                .await?;
                expect("bytes", r.stdout.len(), LARGE)?;
                expect("outcome", r.outcome, StepOutcome::Exited(0))
            }
            .await,
        ),
        (
            "stdout and stderr kept apart",
            async {
                let r = run(
                    executor,
                    &job,
                    step("streams", "echo out; echo err >&2; echo out2"),
                    None,
                )
                .await?;
                expect("stdout", r.stdout.as_slice(), b"out\nout2\n".as_slice())?;
                expect("stderr", r.stderr.as_slice(), b"err\n".as_slice())
            }
            .await,
        ),
    ];
    for (name, result) in checks {
        if let Err(e) = result {
            failures.push(format!("{}: {name}: {e}", executor.name()));
        }
    }
    failures
}

/// A fake scripted to behave like the suite's scripts.
pub fn scripted_fake() -> FakeExecutor {
    let long = FakeStep {
        delay: Duration::from_secs(30),
        ..FakeStep::default()
    };
    FakeExecutor::new()
        .step("echo", FakeStep::prints("hello\n"))
        .step("exit", FakeStep::exits(3))
        .step("env", FakeStep::prints("bar baz\nunset\n"))
        .step("workdir", FakeStep::prints("/fake/ws/sub\n"))
        .step("timeout", long.clone())
        .step("jobtimeout", long.clone())
        .step("cancel", long)
        .step(
            "large",
            FakeStep {
                output: vec![(Stream::Stdout, b"y\n".repeat(LARGE / 2))],
                ..FakeStep::default()
            },
        )
        .step(
            "streams",
            FakeStep {
                output: vec![
                    (Stream::Stdout, b"out\n".to_vec()),
                    (Stream::Stderr, b"err\n".to_vec()),
                    (Stream::Stdout, b"out2\n".to_vec()),
                ],
                ..FakeStep::default()
            },
        )
}
