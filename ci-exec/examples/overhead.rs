//! Measures executor overhead against the bare baselines in one run (used by
//! `bench/exec-overhead.sh`): a host job running `true` vs spawning `sh -c true`, and a
//! docker job running `true` vs `docker run --rm IMAGE true`.

use std::process::Command;
use std::time::{Duration, Instant};

use ci_exec::{DockerExecutor, Executor, HostExecutor, JobSpec, Shell, StepSpec};
use tokio_util::sync::CancellationToken;

async fn job_once(executor: &dyn Executor, workspace: &std::path::Path, i: usize) -> Duration {
    let start = Instant::now();
    let job = JobSpec {
        run_id: "overhead".into(),
        job_id: format!("j{i}"),
        workspace: workspace.to_path_buf(),
        ..JobSpec::default()
    };
    let env = executor.prepare(&job).await.expect("prepares");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(16);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let step = StepSpec {
        id: "t".into(),
        script: "true".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    let outcome = env.run_step(&step, tx, CancellationToken::new()).await;
    assert!(outcome.success(), "{outcome:?}");
    drain.await.expect("drained");
    env.teardown().await.expect("tears down");
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let host = HostExecutor::default();
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for i in 0..n {
        ours.push(job_once(&host, dir.path(), i).await);
        let t = Instant::now();
        let status = Command::new("sh")
            .args(["-c", "true"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        bare.push(t.elapsed());
    }
    let (o, b) = (median(ours), median(bare));
    println!(
        "host:   job {o:?} vs sh -c true {b:?} → {:.2}×",
        o.as_secs_f64() / b.as_secs_f64()
    );

    let image = "gantry-busybox:test";
    let Ok(docker) = DockerExecutor::connect(image).await else {
        println!("docker: skipped (no daemon)");
        return;
    };
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for i in 0..n.min(15) {
        ours.push(job_once(&docker, dir.path(), i).await);
        let t = Instant::now();
        let status = Command::new("docker")
            .args(["run", "--rm", "--network", "none", image, "true"])
            .status()
            .expect("docker runs");
        assert!(status.success());
        bare.push(t.elapsed());
    }
    let (o, b) = (median(ours), median(bare));
    println!(
        "docker: job {o:?} vs docker run --rm {b:?} → {:.2}× (target ≤ 1.2×)",
        o.as_secs_f64() / b.as_secs_f64()
    );
}
