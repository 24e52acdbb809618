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
    let workflow = "on: push\njobs:\n  hello:\n    runs-on: x\n    outputs:\n      greeting: ${{ steps.greet.outputs.greeting }}\n    steps:\n      - id: greet\n        run: echo \"greeting=hi $WHO\" >> \"$GITHUB_OUTPUT\"\n        env: { WHO: there }\n      - run: cat \"$GITHUB_EVENT_PATH\"\n";
    let (summary, lines) = run(dir.path(), "ci.yml", workflow).await;
    assert_eq!(summary.status, Status::Success, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l == "hello: {}"),
        "the event payload: {lines:#?}"
    );
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

/// The IR is the engine's input whatever wrote it: a pipeline loaded, then given workspace
/// steps in code (what the CircleCI frontend will produce), runs on the host and on an
/// executor whose files are elsewhere.
#[tokio::test]
async fn workspace_layers_pass_from_job_to_job() {
    use ci_engine::config::model::StepAction;
    let pipeline = "build:\n  stage: build\n  script:\n    - mkdir -p out/sub\n    - echo layer > out/sub/f.txt\ntest:\n  stage: test\n  needs: [build]\n  script:\n    - cat ws/sub/f.txt\n";
    let dir = common::repo(&[(".gitlab-ci.yml", pipeline)]);
    let executors: [Arc<dyn ci_engine::exec::Executor>; 2] = [
        Arc::new(ci_engine::exec::HostExecutor::default()),
        Arc::new(FakeExecutor::shell()),
    ];
    for executor in executors {
        let parsed = ci_engine::config::load(
            ".gitlab-ci.yml",
            pipeline,
            &ci_engine::config::LoadOptions::default(),
        );
        let mut loaded = parsed.value.expect("loaded");
        let workflow = &mut loaded.workflows[0];
        let build = workflow.jobs.get_mut("build").expect("build");
        let mut persist = build.steps.last().expect("the script step").clone();
        persist.id = "persist".into();
        persist.action = StepAction::WorkspacePersist {
            root: "out".into(),
            paths: vec!["**".into()],
        };
        build.steps.push(persist);
        let test = workflow.jobs.get_mut("test").expect("test");
        let at = test.steps.len() - 1;
        let mut attach = test.steps[at].clone();
        attach.id = "attach".into();
        attach.action = StepAction::WorkspaceAttach { at: "ws".into() };
        test.steps.insert(at, attach);

        let engine = Engine::builder()
            .default_executor(executor)
            .build()
            .await
            .expect("engine");
        let event = Source::new(".gitlab-ci.yml", pipeline, dir.path()).local_event();
        let handle = engine
            .start_loaded(loaded, dir.path(), event, RunOptions::new())
            .await
            .expect("starts");
        let (summary, lines) = common::lines_of(handle).await;
        assert_eq!(summary.status, Status::Success, "{lines:#?}");
        assert!(lines.iter().any(|l| l == "test: layer"), "{lines:#?}");
    }
}
