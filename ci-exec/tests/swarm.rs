//! The Docker Swarm executor against the real daemon's one-node swarm (`.ci/services start`
//! runs `docker swarm init --advertise-addr 127.0.0.1`): the shared conformance suite, a
//! service reached by its name from a step, files through the job's file operations, and
//! prune. Without a swarm the tests skip loudly, and fail when CI=true.
#![cfg(feature = "swarm")]

use std::io::Write as _;
use std::path::Path;

use ci_exec::{
    conformance, Executor, JobSpec, ServiceSpec, Shell, StepOutcome, StepSpec, SwarmExecutor,
};
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "gantry-busybox:test";

async fn swarm() -> Option<SwarmExecutor> {
    let found = match SwarmExecutor::connect(IMAGE).await {
        Ok(s) if s.has_image(IMAGE).await => Ok(s),
        Ok(_) => Err(format!("the image {IMAGE} is not here")),
        Err(e) => Err(e.to_string()),
    };
    match found {
        Ok(s) => Some(s),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and {why}"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED swarm tests: {why}; run `.ci/services start`"
            );
            None
        }
    }
}

#[tokio::test]
async fn swarm_executor_passes_the_suite() {
    let Some(s) = swarm().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&s, dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_service_answers_by_its_name_and_files_move_through_the_job() {
    let Some(s) = swarm().await else { return };
    // What an earlier, interrupted run of this test may have left.
    s.prune(Some("swarm-services")).await.expect("prune");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        run_id: "swarm-services".into(),
        job_id: "svc".into(),
        workspace: dir.path().join("ws"),
        services: vec![ServiceSpec {
            name: "web".into(),
            image: IMAGE.into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "mkdir -p /www && echo served > /www/index.html && httpd -f -p 8080 -h /www".into(),
            ]),
            ..ServiceSpec::default()
        }],
        network: true,
        ..JobSpec::default()
    };
    let env = s.prepare(&job).await.expect("prepares");
    // Files in through the file operations, read by a step, written back and read out.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "input.txt", &b"hello\n"[..])
        .expect("tar");
    env.write_tar(Path::new("."), tar.into_inner().expect("tar").into())
        .await
        .expect("write_tar");
    let step = StepSpec {
        id: "fetch".into(),
        script: "cat input.txt; for i in $(seq 1 50); do wget -q -O - http://web:8080/ && break; sleep 0.2; done; echo out > result.txt".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(64);
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.extend_from_slice(&c.data);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let outcome = env.run_step(&step, tx, CancellationToken::new()).await;
    let out = reader.await.expect("reader");
    assert_eq!(outcome, StepOutcome::Exited(0), "{out}");
    assert!(out.contains("hello\n") && out.contains("served"), "{out}");
    let result = env
        .read_file(Path::new("result.txt"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(&result[..], b"out\n");
    assert!(
        env.read_file(Path::new("../escape")).await.is_err(),
        "paths outside the workspace are refused"
    );
    env.teardown().await.expect("teardown");
    // Nothing of the job is left.
    assert_eq!(s.prune(Some("swarm-services")).await.expect("prune"), 0);
}

#[tokio::test]
async fn prune_sweeps_what_a_crash_left() {
    let Some(s) = swarm().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        run_id: "swarm-crash".into(),
        job_id: "left".into(),
        workspace: dir.path().join("ws"),
        ..JobSpec::default()
    };
    let env = s.prepare(&job).await.expect("prepares");
    std::mem::forget(env); // a crash: no teardown
    let removed = s.prune(Some("swarm-crash")).await.expect("prune");
    assert!(removed >= 2, "the network and volumes: {removed}");
    assert_eq!(s.prune(Some("swarm-crash")).await.expect("prune"), 0);
}
