//! The Docker executor against the real daemon `.ci/run` starts (`dockerd --storage-driver=vfs
//! --iptables=false --bridge=none`) with the locally imported busybox image. Without a daemon
//! the tests skip loudly, and fail when CI=true.

use std::io::Write as _;

use std::process::Command;

use ci_exec::{
    conformance, DockerExecutor, Executor, JobSpec, ServiceSpec, Shell, StepOutcome, StepSpec,
};
use tokio_util::sync::CancellationToken;

/// The image `.ci/services` imports from a busybox-static rootfs (no registry is reachable).
const IMAGE: &str = "gantry-busybox:test";

async fn docker() -> Option<DockerExecutor> {
    let ready = match DockerExecutor::connect(IMAGE).await {
        Ok(d) => match d.available().await {
            Ok(()) => Ok(d),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match ready {
        Ok(d) if image_present() => Some(d),
        Ok(_) => skip(&format!(
            "the image {IMAGE} is missing; run `.ci/services start`"
        )),
        Err(e) => skip(&format!("no docker daemon ({e}); run `.ci/services start`")),
    }
}

fn image_present() -> bool {
    Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip(why: &str) -> Option<DockerExecutor> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {why}"
    );
    // Straight to stderr, not through the test harness's capture: a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED docker test: {why}");
    None
}

fn containers_labelled(run: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=gantry.run={run}")])
        .output()
        .expect("the docker CLI is there when the daemon is");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn docker_executor_passes_the_suite() {
    let Some(mut docker) = docker().await else {
        return;
    };
    docker.grace = std::time::Duration::from_millis(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&docker, dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        containers_labelled("conformance").is_empty(),
        "containers left behind"
    );
}

#[tokio::test]
async fn services_answer_by_name_and_everything_is_removed() {
    let Some(docker) = docker().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = format!("svc-{}", std::process::id());
    let job = JobSpec {
        run_id: run.clone(),
        job_id: "integration".into(),
        workspace: dir.path().join("ws"),
        services: vec![ServiceSpec {
            name: "db".into(),
            image: IMAGE.into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "mkdir -p /www && echo pong > /www/index.html && httpd -f -p 8080 -h /www".into(),
            ]),
            health_cmd: Some("wget -q -O- http://127.0.0.1:8080/".into()),
            ..ServiceSpec::default()
        }],
        ..JobSpec::default()
    };
    let env = docker.prepare(&job).await.expect("prepares with a service");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(16);
    let step = StepSpec {
        id: "call".into(),
        script: "wget -q -O- http://db:8080/".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    let outcome = env.run_step(&step, tx, CancellationToken::new()).await;
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        out.extend_from_slice(&c.data);
    }
    assert_eq!(
        outcome,
        StepOutcome::Exited(0),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(out, b"pong\n");
    assert_eq!(
        containers_labelled(&run).len(),
        2,
        "a job and a service container"
    );
    env.teardown().await.expect("tears down");
    env.teardown().await.expect("tears down twice");
    assert!(containers_labelled(&run).is_empty());
}

#[tokio::test]
async fn no_network_unless_asked_and_prune_sweeps_leftovers() {
    let Some(docker) = docker().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = format!("prune-{}", std::process::id());
    let job = JobSpec {
        run_id: run.clone(),
        job_id: "j".into(),
        workspace: dir.path().to_path_buf(),
        ..JobSpec::default()
    };
    let env = docker.prepare(&job).await.expect("prepares");
    let (tx, _rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(16);
    let step = StepSpec {
        id: "net".into(),
        // Only the loopback interface exists with `--network none`.
        script: "ls /sys/class/net | grep -v '^lo$' && exit 1 || exit 0".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    assert_eq!(
        env.run_step(&step, tx, CancellationToken::new()).await,
        StepOutcome::Exited(0)
    );
    // Simulate a crash: the environment is dropped without teardown.
    drop(env);
    assert_eq!(containers_labelled(&run).len(), 1);
    assert_eq!(docker.prune(&run).await.expect("prunes"), 1);
    assert!(containers_labelled(&run).is_empty());
}

#[tokio::test]
async fn shared_namespace_services_answer_on_localhost() {
    let Some(mut docker) = docker().await else {
        return;
    };
    docker.shared_namespace = true;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = format!("shared-{}", std::process::id());
    let job = JobSpec {
        run_id: run.clone(),
        job_id: "j".into(),
        workspace: dir.path().to_path_buf(),
        services: vec![ServiceSpec {
            name: "web".into(),
            image: IMAGE.into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "mkdir -p /w && echo shared > /w/index.html && httpd -f -p 8081 -h /w".into(),
            ]),
            health_cmd: Some("wget -q -O- http://127.0.0.1:8081/".into()),
            ..ServiceSpec::default()
        }],
        ..JobSpec::default()
    };
    let env = docker.prepare(&job).await.expect("prepares");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(16);
    let step = StepSpec {
        id: "c".into(),
        script: "wget -q -O- http://localhost:8081/".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    assert_eq!(
        env.run_step(&step, tx, CancellationToken::new()).await,
        StepOutcome::Exited(0)
    );
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        out.extend_from_slice(&c.data);
    }
    assert_eq!(out, b"shared\n");
    env.teardown().await.expect("tears down");
    assert!(containers_labelled(&run).is_empty());
}
