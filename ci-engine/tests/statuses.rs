//! Commit statuses from a real run: a git repository, the host executor, and a forge on
//! 127.0.0.1 (`ci_vcs::conformance::loopback_forge`) that records what the engine posts.
#![cfg(feature = "reporters")]

use std::sync::Arc;

mod common;

use ci_engine::vcs::conformance::loopback_forge;
use ci_engine::vcs::status::{ForgeApi, HttpStatusReporter};
use ci_engine::{Engine, RunOptions, Source, Status};

#[tokio::test]
async fn a_run_posts_running_then_results_for_itself_and_each_job() {
    let workflow = "name: CI\non: push\njobs:\n  ok:\n    runs-on: x\n    steps:\n      - run: 'true'\n  broken:\n    runs-on: x\n    steps:\n      - run: exit 3\n";
    let dir = common::repo(&[("ci.yml", workflow)]);

    let (url, log) = loopback_forge(vec![]).await;
    let reporter = HttpStatusReporter::new(ForgeApi::Gitea, &url, "octo/app", "token");
    let engine = Engine::builder()
        .reporter(Arc::new(reporter))
        .build()
        .await
        .expect("engine");
    let source = Source::new("ci.yml", workflow, dir.path());
    let event = source.local_event();
    let sha = event.sha.clone();
    let summary = engine
        .start(source, event, RunOptions::new())
        .await
        .expect("starts")
        .wait()
        .await;
    assert_eq!(summary.status, Status::Failure);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);

    let posted: Vec<(String, String, String)> = log
        .lock()
        .expect("never poisoned")
        .iter()
        .map(|r| {
            assert_eq!(r.path, format!("/repos/octo/app/statuses/{sha}"));
            assert_eq!(r.header("authorization"), Some("token token"));
            (
                r.body["context"].as_str().unwrap_or_default().to_owned(),
                r.body["state"].as_str().unwrap_or_default().to_owned(),
                r.body["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let states = |context: &str| -> Vec<&str> {
        posted
            .iter()
            .filter(|(c, _, _)| c == context)
            .map(|(_, s, _)| s.as_str())
            .collect()
    };
    assert_eq!(states("gantry/CI"), ["pending", "failure"], "{posted:#?}");
    assert_eq!(
        states("gantry/CI / ok"),
        ["pending", "success"],
        "{posted:#?}"
    );
    assert_eq!(
        states("gantry/CI / broken"),
        ["pending", "failure"],
        "{posted:#?}"
    );
}
