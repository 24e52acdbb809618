//! Each job gets its own checkout of the event's commit, as GitLab and `actions/checkout` give
//! it: git works in it, and what a job changes stays in its copy — never in another job's copy
//! or in the repository.

mod common;

use ci_engine::{Engine, RunOptions, Source, Status};

#[tokio::test]
async fn every_job_gets_its_own_working_git_checkout() {
    // The jobs run one after the other: each reuses the directories of the one before.
    let pipeline = "change:\n  stage: build\n  script:\n    - echo changed >> hello.txt\n    - rm other.txt\n    - git status --porcelain\n    - git rev-parse HEAD\n    - git log -1 --format=subject:%s\n    - git add -A && git -c user.name=a -c user.email=a@b commit -qm second\n    - git log -2 --format=log:%s\n    - mkdir -p build && echo x > build/out && chmod 0444 .gitlab-ci.yml\ncheck:\n  stage: test\n  script:\n    - cat hello.txt other.txt\n    - echo \"dirty:$(git status --porcelain | wc -l)\"\n    - git log -1 --format=subject:%s\n    - git cat-file -t HEAD\n    - test ! -e build && echo no-build\n    - stat -c mode:%a .gitlab-ci.yml\n    - echo leftover > mine.txt\nempty:\n  stage: deploy\n  variables:\n    GIT_STRATEGY: none\n  script:\n    - echo \"files:$(ls -A | wc -l)\"\n";
    let dir = common::repo(&[
        (".gitlab-ci.yml", pipeline),
        ("hello.txt", "hello from git\n"),
        ("other.txt", "other\n"),
    ]);
    let head = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir.path())
            .output()
            .expect("git runs")
            .stdout,
    )
    .expect("utf-8");
    let state = tempfile::tempdir().expect("temp dir");
    let engine = Engine::builder()
        .work_dir(state.path())
        .build()
        .await
        .expect("engine");
    let source = Source::new(".gitlab-ci.yml", pipeline, dir.path());
    let event = source.local_event();
    let handle = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts");
    let (summary, lines) = common::lines_of(handle).await;
    assert_eq!(summary.status, Status::Success, "{lines:#?}");
    for want in [
        "change:  M hello.txt".to_owned(),
        "change:  D other.txt".to_owned(),
        format!("change: {}", head.trim()),
        "change: subject:first".to_owned(),
        "change: log:second".to_owned(),
        "change: log:first".to_owned(),
        "check: hello from git".to_owned(),
        "check: other".to_owned(),
        "check: dirty:0".to_owned(),
        "check: subject:first".to_owned(),
        "check: commit".to_owned(),
        "check: no-build".to_owned(),
        "check: mode:644".to_owned(),
        // A job without a checkout starts in an empty workspace, whoever used it before.
        "empty: files:0".to_owned(),
    ] {
        assert!(lines.contains(&want), "no {want:?} in {lines:#?}");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("check: changed")),
        "{lines:#?}"
    );
    // The repository itself is untouched.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hello.txt")).expect("still there"),
        "hello from git\n"
    );
    assert!(dir.path().join("other.txt").exists());
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(dir.path())
        .output()
        .expect("git runs");
    assert!(status.stdout.is_empty(), "{status:?}");
}
