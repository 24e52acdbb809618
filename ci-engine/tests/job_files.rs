//! The engine reaches a job's files only through its job environment: on an executor whose
//! workspace is not on this machine (the fake, with its files in memory), file commands,
//! the checkout, artifacts and dotenv reports still work.

use std::sync::Arc;

mod common;

use ci_engine::exec::FakeExecutor;
use ci_engine::{Engine, RunEvent, RunOptions, Source, Status};

async fn run(
    dir: &std::path::Path,
    path: &str,
    text: &str,
) -> (ci_engine::RunSummary, Vec<String>) {
    let engine = Engine::builder()
        .default_executor(Arc::new(FakeExecutor::shell()))
        .build()
        .await
        .expect("engine");
    let source = Source::new(path, text, dir);
    let event = source.local_event();
    let mut handle = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts");
    let mut lines = Vec::new();
    while let Some(e) = handle.next_event().await {
        match e {
            RunEvent::Log { job, line, .. } => lines.push(format!("{job}: {line}")),
            RunEvent::Annotation { job, message, .. } => lines.push(format!("{job}: ! {message}")),
            _ => {}
        }
    }
    (handle.wait().await, lines)
}

#[tokio::test]
async fn file_commands_are_read_through_the_job_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = "on: push\njobs:\n  hello:\n    runs-on: x\n    outputs:\n      greeting: ${{ steps.greet.outputs.greeting }}\n    steps:\n      - id: greet\n        run: echo \"greeting=hi $WHO\" >> \"$GITHUB_OUTPUT\"\n        env: { WHO: there }\n";
    let (summary, lines) = run(dir.path(), "ci.yml", workflow).await;
    assert_eq!(summary.status, Status::Success, "{lines:#?}");
    assert_eq!(
        summary.job("hello").expect("the job").outputs["greeting"],
        "hi there"
    );
}

#[tokio::test]
async fn checkout_artifacts_and_dotenv_travel_through_the_job_environment() {
    let pipeline = "build:\n  stage: build\n  script:\n    - cat hello.txt\n    - echo built > out.txt\n    - echo V=1 > build.env\n  artifacts:\n    paths: [out.txt]\n    reports:\n      dotenv: build.env\ntest:\n  stage: test\n  script:\n    - cat out.txt\n    - echo \"V is $V\"\n";
    let dir = common::repo(&[
        (".gitlab-ci.yml", pipeline),
        ("hello.txt", "hello from git\n"),
    ]);
    let (summary, lines) = run(dir.path(), ".gitlab-ci.yml", pipeline).await;
    assert_eq!(summary.status, Status::Success, "{lines:#?}");
    for want in ["build: hello from git", "test: built", "test: V is 1"] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
}
