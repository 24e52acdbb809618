//! Whole runs on the Kubernetes executor, against the fake API server of ci-exec's tests:
//! the checkout, artifacts and dotenv reports of a GitLab pipeline and the outputs and file
//! commands of a GitHub workflow travel through the pod's exec-and-tar file operations, and
//! nothing is left in the cluster. Without bubblewrap (which the fake's containers need)
//! the tests skip loudly, and fail when CI=true.

#[path = "../../ci-exec/tests/k8s_fake/mod.rs"]
mod k8s_fake;

mod common;

use std::sync::Arc;

use ci_engine::exec::{KubernetesExecutor, KubernetesSettings};
use ci_engine::{Engine, RunOptions, Source, Status};
use k8s_fake::{FakeCluster, Faults};

fn cluster() -> Option<(FakeCluster, Arc<KubernetesExecutor>)> {
    if let Err(why) = k8s_fake::bwrap_works() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the fake cluster cannot run containers: {why}"
        );
        eprintln!("SKIPPED engine-on-Kubernetes tests: {why}; install `bubblewrap`");
        return None;
    }
    let (cluster, client) = FakeCluster::start(Faults::default());
    let k8s =
        KubernetesExecutor::with_client(client, "busybox:fake", KubernetesSettings::default());
    Some((cluster, Arc::new(k8s)))
}

async fn run_on(
    k8s: Arc<KubernetesExecutor>,
    dir: &std::path::Path,
    path: &str,
    text: &str,
) -> (ci_engine::RunSummary, Vec<String>) {
    let engine = Engine::builder()
        .default_executor(k8s)
        .build()
        .await
        .expect("engine");
    let source = Source::new(path, text, dir);
    let event = source.local_event();
    let handle = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts");
    common::lines_of(handle).await
}

fn assert_clean(cluster: &FakeCluster) {
    assert!(
        cluster.unexpected().is_empty(),
        "{:?}",
        cluster.unexpected()
    );
    assert_eq!(cluster.live(), (vec![], vec![]), "pods or secrets left");
}

#[tokio::test]
async fn a_gitlab_pipeline_runs_in_pods() {
    let Some((cluster, k8s)) = cluster() else {
        return;
    };
    let pipeline = "build:\n  stage: build\n  script:\n    - cat hello.txt\n    - echo built > out.txt\n    - echo V=1 > build.env\n  artifacts:\n    paths: [out.txt]\n    reports:\n      dotenv: build.env\ntest:\n  stage: test\n  script:\n    - cat out.txt\n    - echo \"V is $V\"\n    - test -d .git && echo checked-out\n";
    let dir = common::repo(&[
        (".gitlab-ci.yml", pipeline),
        ("hello.txt", "hello from git\n"),
    ]);
    let (summary, lines) = run_on(k8s, dir.path(), ".gitlab-ci.yml", pipeline).await;
    assert_eq!(summary.status, Status::Success, "{lines:#?}");
    for want in [
        "build: hello from git",
        "test: built",
        "test: V is 1",
        "test: checked-out",
    ] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
    assert_eq!(cluster.created_pods().len(), 2, "one pod per job");
    assert_clean(&cluster);
}

#[tokio::test]
async fn a_github_workflow_passes_outputs_between_jobs_in_pods() {
    let Some((cluster, k8s)) = cluster() else {
        return;
    };
    let workflow = "on: push\njobs:\n  a:\n    runs-on: x\n    outputs:\n      greeting: ${{ steps.greet.outputs.greeting }}\n    steps:\n      - id: greet\n        run: echo \"greeting=hi $WHO\" >> \"$GITHUB_OUTPUT\"\n        env: { WHO: there }\n      - run: echo \"LATER=set\" >> \"$GITHUB_ENV\"\n      - run: echo \"later is $LATER\"\n  b:\n    runs-on: x\n    needs: a\n    steps:\n      - run: echo \"a said ${{ needs.a.outputs.greeting }}\"\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, lines) = run_on(k8s, dir.path(), "ci.yml", workflow).await;
    assert_eq!(summary.status, Status::Success, "{lines:#?}");
    for want in ["a: later is set", "b: a said hi there"] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
    assert_clean(&cluster);
}
