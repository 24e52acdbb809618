//! The Kubernetes executor against a fake API server built on `tower-test`'s mock service
//! (`k8s_fake`): the shared conformance suite, the pod it makes (secrets out of the spec's
//! plain text, services as sidecars reached by name, scheduling settings), the failure paths
//! (an unpullable image, a forbidden create, a refused exec), cancellation killing the
//! step's processes, the v4 exec protocol, and prune — each checking the requests the
//! executor made. The fake runs containers in `bwrap` sandboxes; without bubblewrap the
//! tests skip loudly, and fail when CI=true.
//!
//! A live test runs the suite against a real cluster when `KUBECONFIG` is set (image from
//! `GANTRY_K8S_IMAGE`, default `busybox:1.36`; namespace from `GANTRY_K8S_NAMESPACE`, else
//! the kubeconfig's); without one it skips loudly, and fails only when CI=true and
//! `GANTRY_K8S_REQUIRED=1`.
#![cfg(feature = "kubernetes")]

mod k8s_fake;

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use ci_exec::kubernetes::KubeToleration;
use ci_exec::{
    conformance, ContainerSpec, Executor, JobSpec, KubernetesExecutor, KubernetesSettings,
    ServiceSpec, Shell, StepOutcome, StepSpec,
};
use k8s_fake::{FakeCluster, Faults};
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "busybox:fake";

fn fake(faults: Faults) -> Option<(FakeCluster, KubernetesExecutor)> {
    if let Err(why) = k8s_fake::bwrap_works() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the fake cluster cannot run containers: {why}"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED kubernetes tests: the fake cluster needs bubblewrap ({why}); install `bubblewrap`"
        );
        return None;
    }
    let (cluster, client) = FakeCluster::start(faults);
    let executor = KubernetesExecutor::with_client(client, IMAGE, KubernetesSettings::default());
    Some((cluster, executor))
}

fn busybox() -> Option<&'static str> {
    ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

async fn run(
    env: &dyn ci_exec::JobEnvironment,
    script: &str,
    cancel: CancellationToken,
) -> (StepOutcome, String) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ci_exec::Chunk>(64);
    let step = StepSpec {
        id: "step".into(),
        script: script.into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    let collect = async {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.extend_from_slice(&c.data);
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::join!(env.run_step(&step, tx, cancel), collect)
}

/// A job named `id` (run and job) with its workspace under `dir`.
fn job(dir: &Path, id: &str) -> JobSpec {
    JobSpec {
        run_id: id.into(),
        job_id: id.into(),
        workspace: dir.join("ws"),
        ..JobSpec::default()
    }
}

/// Why `k8s` refuses to prepare `job` (`what` names the job in the failure message).
async fn refused(k8s: &KubernetesExecutor, job: &JobSpec, what: &str) -> String {
    match k8s.prepare(job).await {
        Ok(_) => panic!("{what} prepared"),
        Err(e) => e.to_string(),
    }
}

fn assert_clean(cluster: &FakeCluster) {
    assert!(
        cluster.unexpected().is_empty(),
        "requests no API server answers: {:?}",
        cluster.unexpected()
    );
    assert_eq!(
        cluster.live(),
        (vec![], vec![]),
        "pods and secrets left behind"
    );
}

#[tokio::test]
async fn kubernetes_executor_passes_the_suite() {
    let Some((cluster, k8s)) = fake(Faults::default()) else {
        return;
    };
    k8s.available().await.expect("the API server answers");
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&k8s, dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_clean(&cluster);
    // Every pod's environment came from its secret, never as plain values.
    let pods = cluster.created_pods();
    assert!(pods.len() >= 14, "one pod per prepared job: {}", pods.len());
    for pod in &pods {
        for c in &pod.spec.as_ref().expect("a spec").containers {
            for e in c.env.iter().flatten() {
                assert!(
                    e.value.is_none(),
                    "{} is in the pod spec in plain text",
                    e.name
                );
            }
        }
    }
    // The job's files went through exec, never through the test's workspace.
    assert!(
        !dir.path().join("shared/made.txt").exists(),
        "a step wrote into the caller's directory"
    );
}

#[tokio::test]
async fn the_pod_keeps_secrets_out_of_its_spec_and_runs_services_beside_the_job() {
    let Some((cluster, mut k8s)) = fake(Faults::default()) else {
        return;
    };
    let Some(busybox) = busybox() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no busybox"
        );
        eprintln!("SKIPPED: no busybox for the service (install busybox-static)");
        return;
    };
    k8s.settings = KubernetesSettings::parse_query(
        "cpu=500m&memory=256Mi&memory-limit=1Gi&node-selector=pool=ci&toleration=dedicated=ci:NoSchedule&service-account=runner",
    )
    .expect("settings");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        run_id: "run-1".into(),
        job_id: "build (linux)".into(),
        workspace: dir.path().join("ws"),
        env: [("TOKEN".to_owned(), "s3cr3t-value".to_owned())].into(),
        timeout: Some(Duration::from_secs(600)),
        container: Some(ContainerSpec {
            image: "busybox:1.36".into(),
            user: Some("1000:1000".into()),
            ..ContainerSpec::default()
        }),
        services: vec![ServiceSpec {
            name: "web".into(),
            image: "httpd:fake".into(),
            env: [("PASSWORD".to_owned(), "db-pass-123".to_owned())].into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec {busybox} httpd -f -p {port} -h /tmp/www"),
            ]),
            health_cmd: Some(format!("{busybox} wget -q -O /dev/null http://127.0.0.1:{port}/")),
            health_timeout: Some(Duration::from_secs(30)),
        }],
        network: true,
        ..JobSpec::default()
    };
    let env = k8s.prepare(&job).await.expect("prepares");
    let (outcome, out) = run(
        env.as_ref(),
        &format!("echo \"token=$TOKEN\"; {busybox} wget -q -O - http://web:{port}/"),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, StepOutcome::Exited(0), "{out}");
    assert_eq!(out, "token=s3cr3t-value\nserved\n");

    let pods = cluster.created_pods();
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let text = serde_json::to_string(pod).expect("json");
    assert!(
        !text.contains("s3cr3t-value") && !text.contains("db-pass-123"),
        "{text}"
    );
    let secrets = cluster.created_secrets();
    let values: Vec<String> = secrets[0]
        .data
        .as_ref()
        .expect("data")
        .values()
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .collect();
    assert!(
        values.contains(&"s3cr3t-value".to_owned()) && values.contains(&"db-pass-123".to_owned())
    );
    let labels = pod.metadata.labels.clone().expect("labels");
    assert_eq!(labels["gantry.dev/executor"], "kubernetes");
    assert_eq!(labels["gantry.dev/run"], "run-1");
    assert_eq!(labels["gantry.dev/job"], "build__linux");
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.active_deadline_seconds, Some(720));
    assert_eq!(spec.node_selector.clone().expect("selector")["pool"], "ci");
    assert_eq!(
        spec.tolerations.clone().expect("tolerations")[0]
            .key
            .as_deref(),
        Some("dedicated")
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("runner"));
    assert_eq!(spec.enable_service_links, Some(false));
    let aliases = spec.host_aliases.clone().expect("aliases");
    assert_eq!(aliases[0].ip, "127.0.0.1");
    assert_eq!(aliases[0].hostnames.clone().expect("names"), ["web"]);
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["job", "svc-0-web"]);
    let job_c = &spec.containers[0];
    assert_eq!(job_c.image.as_deref(), Some("busybox:1.36"));
    let resources = job_c.resources.clone().expect("resources");
    assert_eq!(resources.requests.expect("requests")["cpu"].0, "500m");
    assert_eq!(resources.limits.expect("limits")["memory"].0, "1Gi");
    let sc = job_c.security_context.clone().expect("user");
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(1000), Some(1000)));
    let mounts: Vec<String> = job_c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    assert!(mounts.contains(&job.workspace.to_string_lossy().into_owned()));
    for v in spec.volumes.iter().flatten() {
        assert!(v.empty_dir.is_some(), "{} is not an emptyDir", v.name);
    }

    env.teardown().await.expect("teardown");
    env.teardown().await.expect("a second teardown");
    assert_clean(&cluster);
    // The requests, in order: the secret before the pod that refers to it, the pod read
    // until it runs, the health check and the step by exec, and both deleted at the end.
    let lines: Vec<String> = cluster.requests().iter().map(|r| r.line()).collect();
    let name = pod.metadata.name.clone().expect("a name");
    let base = "/api/v1/namespaces/gantry-test";
    let pos = |want: &str| {
        lines
            .iter()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!("no {want} in {lines:#?}"))
    };
    let secret = pos(&format!("POST {base}/secrets"));
    let create = pos(&format!("POST {base}/pods"));
    let owned = pos(&format!("PATCH {base}/secrets/{name}-env"));
    assert!(
        create < owned,
        "the secret is owned by the pod once the pod exists"
    );
    let get = pos(&format!("GET {base}/pods/{name}"));
    let exec = pos(&format!("GET {base}/pods/{name}/exec"));
    let delete = pos(&format!("DELETE {base}/pods/{name}"));
    let delete_secret = pos(&format!("DELETE {base}/secrets/{name}-env"));
    assert!(
        secret < create && create < get && get < exec && exec < delete && delete < delete_secret
    );
    let execs: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec"))
        .collect();
    assert_eq!(
        execs[0].param("container"),
        Some("svc-0-web"),
        "the health check runs in the service"
    );
    assert!(execs
        .iter()
        .skip(1)
        .all(|r| r.param("container") == Some("job")));
    for e in &execs {
        let command = e.params("command").join(" ");
        assert!(
            !command.contains("s3cr3t-value"),
            "a secret in an exec URL: {command}"
        );
    }
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_reported_as_such_and_cleaned_up() {
    let Some((cluster, k8s)) = fake(Faults {
        unpullable_image: Some("nosuch/image:1".into()),
        ..Faults::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        container: Some(ContainerSpec {
            image: "nosuch/image:1".into(),
            ..ContainerSpec::default()
        }),
        ..job(dir.path(), "pull")
    };
    let err = refused(&k8s, &job, "an unpullable image").await;
    assert!(
        err.contains("could not be pulled")
            && err.contains("ErrImagePull")
            && err.contains("nosuch/image:1"),
        "{err}"
    );
    assert_clean(&cluster);
}

#[tokio::test]
async fn a_forbidden_pod_says_what_the_account_needs() {
    let Some((cluster, k8s)) = fake(Faults {
        forbid_pods: true,
        ..Faults::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), "rbac");
    let err = refused(&k8s, &job, "a forbidden pod").await;
    assert!(
        err.contains("forbidden") && err.contains("pods/exec"),
        "{err}"
    );
    // The secret made before the pod was refused is gone.
    assert_clean(&cluster);
}

#[tokio::test]
async fn a_refused_exec_is_a_start_failure() {
    let Some((cluster, k8s)) = fake(Faults::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), "exec");
    let env = k8s.prepare(&job).await.expect("prepares");
    cluster.set_faults(Faults {
        refuse_exec: true,
        ..Faults::default()
    });
    let (outcome, _) = run(env.as_ref(), "echo hi", CancellationToken::new()).await;
    match outcome {
        StepOutcome::StartFailed(why) => assert!(why.contains("kubelet refused"), "{why}"),
        other => panic!("expected a start failure, got {other:?}"),
    }
    let read = env.read_file(Path::new("x")).await;
    assert!(read.is_err(), "a refused exec read a file: {read:?}");
    env.teardown().await.expect("teardown");
    assert_clean(&cluster);
}

#[tokio::test]
async fn cancelling_kills_the_steps_processes_in_the_pod() {
    let Some((cluster, k8s)) = fake(Faults::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), "cancel");
    let env = k8s.prepare(&job).await.expect("prepares");
    let pod = cluster.created_pods()[0]
        .metadata
        .name
        .clone()
        .expect("a name");
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        c.cancel();
    });
    let (outcome, _) = run(
        env.as_ref(),
        "(sleep 2; echo late > late.txt) & sleep 30",
        cancel,
    )
    .await;
    assert_eq!(outcome, StepOutcome::Cancelled);
    let kills = cluster
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.ends_with("/exec") && r.params("command").join(" ").contains("kill -KILL")
        })
        .count();
    assert_eq!(kills, 1, "one exec kills the step's process tree");
    // Nothing of the step runs on: its background child never writes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ws = cluster
        .volume_dir(&pod, &job.workspace.to_string_lossy())
        .expect("the workspace volume");
    assert!(
        !ws.join("late.txt").exists(),
        "a cancelled step's child ran on"
    );
    // The pod is still there (the kill worked), and later steps run in it.
    let (outcome, out) = run(env.as_ref(), "echo after", CancellationToken::new()).await;
    assert_eq!((outcome, out.as_str()), (StepOutcome::Exited(0), "after\n"));
    env.teardown().await.expect("teardown");
    assert_clean(&cluster);
}

#[tokio::test]
async fn files_and_steps_work_on_the_v4_protocol() {
    let Some((cluster, k8s)) = fake(Faults {
        protocol_v4: true,
        ..Faults::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for check in [
        conformance::files_round_trip(&k8s, dir.path()).await,
        conformance::steps_and_file_operations_share_the_workspace(&k8s, dir.path()).await,
        conformance::exit_codes(&k8s, dir.path()).await,
    ] {
        check.expect("conforms on v4");
    }
    assert_clean(&cluster);
}

#[tokio::test]
async fn prune_sweeps_what_a_crashed_engine_left() {
    let Some((cluster, k8s)) = fake(Faults::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = |run: &str, id: &str| JobSpec {
        run_id: run.into(),
        job_id: id.into(),
        workspace: dir.path().join(id),
        ..JobSpec::default()
    };
    // Prepared and forgotten, as by an engine killed mid-run.
    for id in ["a", "b"] {
        std::mem::forget(k8s.prepare(&job("crashed", id)).await.expect("prepares"));
    }
    let other = k8s.prepare(&job("other", "c")).await.expect("prepares");
    // Two pods; their secrets go with them (owner references), or are deleted by prune when
    // the garbage collector is slower.
    assert!(k8s.prune(Some("crashed")).await.expect("prune") >= 2);
    let (pods, secrets) = cluster.live();
    assert_eq!((pods.len(), secrets.len()), (1, 1));
    let lists: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "GET" && (r.path.ends_with("/pods") || r.path.ends_with("/secrets"))
        })
        .collect();
    assert!(lists.iter().all(|r| r.param("labelSelector")
        == Some("gantry.dev/executor=kubernetes,gantry.dev/run=crashed")));
    assert!(k8s.prune(None).await.expect("prune") >= 1);
    other.teardown().await.expect("teardown of a pruned job");
    assert_clean(&cluster);
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_takes_its_secret_and_fails_later_steps() {
    let Some((cluster, k8s)) = fake(Faults::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        env: [("TOKEN".to_owned(), "x".to_owned())].into(),
        ..job(dir.path(), "gone")
    };
    let env = k8s.prepare(&job).await.expect("prepares");
    let pod = cluster.created_pods()[0]
        .metadata
        .name
        .clone()
        .expect("a name");
    cluster.delete_pod_out_of_band(&pod);
    assert_eq!(
        cluster.live(),
        (vec![], vec![]),
        "the secret went with its pod"
    );
    let (outcome, _) = run(env.as_ref(), "echo hi", CancellationToken::new()).await;
    assert!(
        matches!(outcome, StepOutcome::StartFailed(_)),
        "a step in a deleted pod: {outcome:?}"
    );
    env.teardown().await.expect("teardown of a deleted pod");
    assert_clean(&cluster);
}

#[test]
fn tolerations_parse() {
    assert_eq!(
        KubeToleration::parse("gpu:NoExecute").expect("parses"),
        KubeToleration {
            key: "gpu".into(),
            value: None,
            effect: Some("NoExecute".into())
        }
    );
}

/// The live test: a real cluster from `KUBECONFIG`.
#[tokio::test]
async fn a_live_cluster_passes_the_suite() {
    if std::env::var_os("KUBECONFIG").is_none() {
        let required = std::env::var("CI").as_deref() == Ok("true")
            && std::env::var("GANTRY_K8S_REQUIRED").as_deref() == Ok("1");
        assert!(!required, "GANTRY_K8S_REQUIRED=1 and no KUBECONFIG");
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED live Kubernetes test: set KUBECONFIG (and GANTRY_K8S_IMAGE, GANTRY_K8S_NAMESPACE) to run it"
        );
        return;
    }
    let image = std::env::var("GANTRY_K8S_IMAGE").unwrap_or_else(|_| "busybox:1.36".into());
    let mut settings = KubernetesSettings::default();
    settings.namespace = std::env::var("GANTRY_K8S_NAMESPACE").ok();
    let k8s = KubernetesExecutor::connect(&image, settings)
        .await
        .expect("connects with KUBECONFIG");
    k8s.available().await.expect("the cluster answers");
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&k8s, dir.path()).await;
    let _ = k8s.prune(Some("conformance")).await;
    assert!(failures.is_empty(), "{failures:#?}");
}
