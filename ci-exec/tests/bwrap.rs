//! The bubblewrap executor: the shared conformance suite, then its isolation promises — no
//! network unless asked, the host read-only and mostly invisible, a private /tmp, a cleared
//! environment, and no process left after a timeout or cancel. Without a usable `bwrap` the
//! tests skip loudly, and fail when CI=true (`.ci/run` installs bubblewrap).
#![cfg(feature = "bwrap")]

use std::io::Write as _;
use std::time::Duration;

use ci_exec::{
    conformance, BwrapExecutor, Executor, HostExecutor, JobSpec, Shell, StepOutcome, StepSpec,
};
use tokio_util::sync::CancellationToken;

fn executor() -> BwrapExecutor {
    BwrapExecutor {
        host: HostExecutor {
            grace: Duration::from_millis(300),
            ..HostExecutor::default()
        },
        ..BwrapExecutor::new()
    }
}

async fn usable() -> Option<BwrapExecutor> {
    let e = executor();
    match e.available().await {
        Ok(()) => Some(e),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and {why}"
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED bwrap tests: {why}");
            None
        }
    }
}

/// Runs one step in a fresh job; returns (outcome, stdout+stderr).
async fn run(
    e: &BwrapExecutor,
    network: bool,
    script: &str,
    timeout: Option<Duration>,
    cancel_after: Option<Duration>,
) -> (StepOutcome, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        run_id: "bwrap".into(),
        job_id: "j".into(),
        workspace: dir.path().to_owned(),
        network,
        ..JobSpec::default()
    };
    let env = e.prepare(&job).await.expect("prepares");
    let step = StepSpec {
        id: "s".into(),
        script: script.into(),
        shell: Shell::Bash,
        timeout,
        ..StepSpec::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(64);
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
    env.teardown().await.expect("teardown");
    (outcome, String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn bwrap_executor_passes_the_suite() {
    let Some(e) = usable().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&e, dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn no_network_unless_the_job_asks() {
    let Some(e) = usable().await else { return };
    // Interfaces of the step's network namespace.
    let list = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
    let (outcome, out) = run(&e, false, list, None, None).await;
    assert_eq!(outcome, StepOutcome::Exited(0), "{out}");
    assert_eq!(out.trim(), "lo", "only loopback without a network");
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_owned()))
        .collect();
    let (_, out) = run(&e, true, list, None, None).await;
    assert_eq!(
        out.split_whitespace().count(),
        host.len(),
        "the host's interfaces with a network: {out} vs {host:?}"
    );
}

#[tokio::test]
async fn the_host_is_read_only_and_mostly_invisible() {
    let Some(e) = usable().await else { return };
    let marker = std::env::temp_dir().join(format!("gantry-bwrap-host-{}", std::process::id()));
    std::fs::write(&marker, "host secret").expect("marker");
    let script = format!(
        r#"
touch /usr/gantry-probe 2>/dev/null && echo "usr writable"
touch /etc/gantry-probe 2>/dev/null && echo "etc writable"
test -e {marker} && echo "host /tmp visible"
test -e /root/.bashrc -o -e /home && ls /home 2>/dev/null | head -1 | grep -q . && echo "homes visible"
echo "$HOME $PATH" | grep -q /root && echo "host env"
env | grep -q '^CARGO' && echo "cargo env leaked"
echo private > /tmp/mine && cat /tmp/mine
echo ws > ./in-workspace && cat ./in-workspace
bash -c 'echo shell works'
"#,
        marker = marker.display()
    );
    let (outcome, out) = run(&e, false, &script, None, None).await;
    let _ = std::fs::remove_file(&marker);
    assert_eq!(outcome, StepOutcome::Exited(0), "{out}");
    for leak in [
        "usr writable",
        "etc writable",
        "host /tmp visible",
        "homes visible",
        "host env",
        "cargo env leaked",
    ] {
        assert!(!out.contains(leak), "{leak}: {out}");
    }
    assert!(out.contains("private\nws\nshell works"), "{out}");
    assert!(
        !std::env::temp_dir().join("mine").exists(),
        "the step's /tmp is its own"
    );
}

fn leftover(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && !cmd.contains("cargo") {
                found.push(cmd);
            }
        }
    }
    found
}

#[tokio::test]
async fn nothing_outlives_a_timed_out_or_cancelled_step() {
    let Some(e) = usable().await else { return };
    for (timeout, cancel) in [
        (Some(Duration::from_millis(500)), None),
        (None, Some(Duration::from_millis(500))),
    ] {
        let marker = format!("98{}", std::process::id() % 10_000);
        let script =
            format!("sleep {marker}1 &\n(sleep {marker}2 &)\nsetsid sleep {marker}3 &\nsleep 30\n");
        let (outcome, out) = run(&e, false, &script, timeout, cancel).await;
        let want = if timeout.is_some() {
            StepOutcome::TimedOut
        } else {
            StepOutcome::Cancelled
        };
        assert_eq!(outcome, want, "{out}");
        let mut left = leftover(&marker);
        for _ in 0..40 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = leftover(&marker);
        }
        assert!(left.is_empty(), "left running: {left:?}");
    }
}
