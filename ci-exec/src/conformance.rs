//! The public conformance suite of the [`Executor`] seam, the way `object_store`'s
//! integration module works: one async function per behaviour (output, exit codes, the
//! environment, the working directory, timeouts, cancellation, large output, stdout/stderr,
//! steps side by side, and the job's file operations), each answering what is wrong. Every implementation calls
//! [`run_all`] (or the functions one by one) from its own tests: the fake, host and Docker
//! executors pass the same suite, the fake by behaving (its small shell over in-memory
//! files), not by being scripted with the suite's answers.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let root = tempfile::tempdir().unwrap();
//! let failures = ci_exec::conformance::run_all(&ci_exec::FakeExecutor::shell(), root.path()).await;
//! assert!(failures.is_empty(), "{failures:?}");
//! # });
//! ```

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use std::path::Path;

use bytes::Bytes;

use crate::executor::{Executor, JobEnvironment};
use crate::spec::{JobSpec, Shell, StepOutcome, StepSpec, Stream};

/// What a behaviour answers: `Err` says what is wrong.
pub type Check = Result<(), String>;

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

/// The job every behaviour prepares: a fresh workspace under `root` (with `sub/`).
fn job(executor: &dyn Executor, root: &Path, name: &str) -> Result<JobSpec, String> {
    let workspace = root.join(name);
    std::fs::create_dir_all(workspace.join("sub"))
        .map_err(|e| format!("cannot make the workspace: {e}"))?;
    Ok(JobSpec {
        run_id: "conformance".into(),
        job_id: format!("{}-{name}", executor.name()),
        workspace,
        ..JobSpec::default()
    })
}

/// A step's stdout is streamed as written.
pub async fn echo_output(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "echo")?;
    let r = run(executor, &job, step("echo", "echo hello"), None).await?;
    expect("stdout", r.stdout.as_slice(), b"hello\n".as_slice())?;
    expect("outcome", r.outcome, StepOutcome::Exited(0))
}

/// The exit code is the step's outcome.
pub async fn exit_codes(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "exit")?;
    let r = run(executor, &job, step("exit", "exit 3"), None).await?;
    expect("outcome", r.outcome, StepOutcome::Exited(3))
}

/// A step sees the environment it is given, not the caller's (a variable of the caller's
/// own environment stays unset in the step).
pub async fn environment_exactly_as_given(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "env")?;
    // A variable of this process that no executor sets on its own.
    let leak = std::env::vars().map(|(k, _)| k).find(|k| {
        k.len() > 3
            && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && ![
                "PATH", "HOME", "HOSTNAME", "TERM", "USER", "SHLVL", "PWD", "OLDPWD",
            ]
            .contains(&k.as_str())
    });
    let probe = leak.unwrap_or_else(|| "GANTRY_NOT_SET".into());
    let mut s = step(
        "env",
        &format!("echo \"$FOO\"; echo \"${{{probe}:-unset}}\""),
    );
    s.env.insert("FOO".into(), "bar baz".into());
    let r = run(executor, &job, s, None).await?;
    expect(
        "stdout",
        String::from_utf8_lossy(&r.stdout).into_owned(),
        "bar baz\nunset\n".into(),
    )
}

/// The job's environment reaches every step, under the step's own.
pub async fn job_environment_under_the_steps(executor: &dyn Executor, root: &Path) -> Check {
    let mut job = job(executor, root, "jobenv")?;
    job.env.insert("FROM_JOB".into(), "job".into());
    job.env.insert("BOTH".into(), "job".into());
    let mut s = step("jobenv", "echo \"$FROM_JOB $BOTH\"");
    s.env.insert("BOTH".into(), "step".into());
    let r = run(executor, &job, s, None).await?;
    expect(
        "stdout",
        String::from_utf8_lossy(&r.stdout).into_owned(),
        "job step\n".into(),
    )
}

/// A relative working directory is taken from the workspace.
pub async fn working_directory(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "workdir")?;
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

/// A step's own time limit stops it.
pub async fn step_timeout(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "timeout")?;
    let mut s = step("timeout", "sleep 30");
    s.timeout = Some(Duration::from_millis(300));
    let r = run(executor, &job, s, None).await?;
    expect("outcome", r.outcome, StepOutcome::TimedOut)?;
    if r.took > Duration::from_secs(10) {
        return Err(format!("the timeout took {:?}", r.took));
    }
    Ok(())
}

/// The job's time limit stops a step.
pub async fn job_timeout(executor: &dyn Executor, root: &Path) -> Check {
    let timed = JobSpec {
        timeout: Some(Duration::from_millis(300)),
        ..job(executor, root, "jobtimeout")?
    };
    let r = run(executor, &timed, step("jobtimeout", "sleep 30"), None).await?;
    expect("outcome", r.outcome, StepOutcome::TimedOut)
}

/// Cancelling stops a step at once.
pub async fn cancel(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "cancel")?;
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

/// Output larger than any buffer arrives whole.
pub async fn large_output(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "large")?;
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

/// stdout and stderr are told apart.
pub async fn stdout_and_stderr_kept_apart(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "streams")?;
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

/// A tar archive of one file at `name`.
fn archive(name: &str, data: &[u8]) -> Result<Bytes, String> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, name, data)
        .map_err(|e| e.to_string())?;
    builder
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// The files of a tar archive, by name.
fn unpack(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(archive);
    for entry in a.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| e.to_string())?;
        let name = name.to_string_lossy().trim_start_matches("./").to_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| e.to_string())?;
        out.push((name, data));
    }
    out.sort();
    Ok(out)
}

async fn with_env<F, Fut>(executor: &dyn Executor, job: &JobSpec, body: F) -> Check
where
    F: FnOnce(Box<dyn JobEnvironment>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn JobEnvironment>, Check)>,
{
    let env = executor.prepare(job).await.map_err(|e| e.to_string())?;
    let (env, result) = body(env).await;
    env.teardown().await.map_err(|e| e.to_string())?;
    result
}

/// Files written as a tar archive are read back one by one and as an archive; a missing
/// file reads as `None`.
pub async fn files_round_trip(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "files")?;
    with_env(executor, &job, |env| async move {
        let check = async {
            let tar = archive("dir/a.txt", b"alpha\n")?;
            env.write_tar(Path::new("in"), tar)
                .await
                .map_err(|e| e.to_string())?;
            let read = env
                .read_file(Path::new("in/dir/a.txt"))
                .await
                .map_err(|e| e.to_string())?;
            expect("read_file", read.as_deref(), Some(b"alpha\n".as_slice()))?;
            let missing = env
                .read_file(Path::new("in/none.txt"))
                .await
                .map_err(|e| e.to_string())?;
            expect("missing file", missing, None)?;
            let back = env
                .read_tar(Path::new("in"), &["dir".into(), "nothing-here".into()])
                .await
                .map_err(|e| e.to_string())?;
            expect(
                "read_tar",
                unpack(&back)?,
                vec![("dir/a.txt".to_owned(), b"alpha\n".to_vec())],
            )
        }
        .await;
        (env, check)
    })
    .await
}

/// Relative paths may not leave the workspace.
pub async fn files_stay_in_the_workspace(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "escape")?;
    with_env(executor, &job, |env| async move {
        let check = async {
            if env.read_file(Path::new("../outside")).await.is_ok() {
                return Err("read_file accepted ../outside".into());
            }
            let tar = archive("x", b"x")?;
            if env.write_tar(Path::new("../outside"), tar).await.is_ok() {
                return Err("write_tar accepted ../outside".into());
            }
            if env.read_tar(Path::new("."), &["../x".into()]).await.is_ok() {
                return Err("read_tar accepted ../x".into());
            }
            Ok(())
        }
        .await;
        (env, check)
    })
    .await
}

/// Steps see the files written into the job, and the caller reads what steps wrote.
pub async fn steps_and_file_operations_share_the_workspace(
    executor: &dyn Executor,
    root: &Path,
) -> Check {
    let job = job(executor, root, "shared")?;
    with_env(executor, &job, |env| async move {
        let check = async {
            env.write_tar(Path::new("."), archive("given.txt", b"given\n")?)
                .await
                .map_err(|e| e.to_string())?;
            let (tx, mut rx) = mpsc::channel::<crate::spec::Chunk>(64);
            let collect = tokio::spawn(async move {
                let mut out = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    out.extend_from_slice(&chunk.data);
                }
                out
            });
            let outcome = env
                .run_step(
                    &step("shared", "cat given.txt; echo made > made.txt"),
                    tx,
                    CancellationToken::new(),
                )
                .await;
            let out = collect.await.map_err(|e| e.to_string())?;
            expect("outcome", outcome, StepOutcome::Exited(0))?;
            expect("the step read", out.as_slice(), b"given\n".as_slice())?;
            let made = env
                .read_file(Path::new("made.txt"))
                .await
                .map_err(|e| e.to_string())?;
            expect(
                "the step wrote",
                made.as_deref(),
                Some(b"made\n".as_slice()),
            )
        }
        .await;
        (env, check)
    })
    .await
}

/// Two steps of one job run side by side (background steps): a quick one ends while a
/// slow one still runs, and both keep their own output and outcome.
pub async fn steps_side_by_side(executor: &dyn Executor, root: &Path) -> Check {
    let job = job(executor, root, "side")?;
    with_env(executor, &job, |env| async move {
        let check = async {
            let run = |id: &'static str, script: &'static str| {
                let env = &env;
                async move {
                    let (tx, mut rx) = mpsc::channel::<crate::spec::Chunk>(64);
                    let collect = async {
                        let mut out = Vec::new();
                        while let Some(chunk) = rx.recv().await {
                            out.extend_from_slice(&chunk.data);
                        }
                        out
                    };
                    let spec = step(id, script);
                    let (outcome, out) =
                        tokio::join!(env.run_step(&spec, tx, CancellationToken::new()), collect);
                    (outcome, out, Instant::now())
                }
            };
            let (slow, quick) = tokio::join!(
                run("slow", "sleep 2; echo slow; exit 4"),
                run("quick", "echo quick")
            );
            expect("slow outcome", slow.0, StepOutcome::Exited(4))?;
            expect("slow output", slow.1.as_slice(), b"slow\n".as_slice())?;
            expect("quick outcome", quick.0, StepOutcome::Exited(0))?;
            expect("quick output", quick.1.as_slice(), b"quick\n".as_slice())?;
            if quick.2 >= slow.2 {
                return Err("the quick step waited for the slow one to end".into());
            }
            Ok(())
        }
        .await;
        (env, check)
    })
    .await
}

/// Runs every behaviour against `executor` in fresh workspaces under `root`; returns the
/// failures (empty when the executor conforms).
pub async fn run_all(executor: &dyn Executor, root: &Path) -> Vec<String> {
    let checks: Vec<(&str, Check)> = vec![
        ("echo output", echo_output(executor, root).await),
        (
            "steps side by side",
            steps_side_by_side(executor, root).await,
        ),
        ("exit codes", exit_codes(executor, root).await),
        (
            "environment exactly as given",
            environment_exactly_as_given(executor, root).await,
        ),
        (
            "job environment under the steps",
            job_environment_under_the_steps(executor, root).await,
        ),
        ("working directory", working_directory(executor, root).await),
        ("step timeout", step_timeout(executor, root).await),
        ("job timeout", job_timeout(executor, root).await),
        ("cancel", cancel(executor, root).await),
        ("large output", large_output(executor, root).await),
        (
            "stdout and stderr kept apart",
            stdout_and_stderr_kept_apart(executor, root).await,
        ),
        ("files round trip", files_round_trip(executor, root).await),
        (
            "files stay in the workspace",
            files_stay_in_the_workspace(executor, root).await,
        ),
        (
            "steps and file operations share the workspace",
            steps_and_file_operations_share_the_workspace(executor, root).await,
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(name, result)| {
            result
                .err()
                .map(|e| format!("{}: {name}: {e}", executor.name()))
        })
        .collect()
}
