//! The server end to end: a signed push for a real git repository → 202 → a run through the
//! durable queue → jobs on the host → logs and API; refusals for bad deliveries and
//! unauthorised changes; reruns; and the crash promises (kill -9 at several points).

mod common;

use common::*;
use serde_json::Value;

const FORGE: &str = r#"
[[forges]]
kind = "github"
secret_env = "GANTRY_TEST_SECRET"
"#;

const WORKFLOW: &str = r#"
on:
  push:
    branches: [main]
jobs:
  build:
    runs-on: linux
    steps:
      - run: echo "hello from build"
  test:
    needs: build
    runs-on: linux
    steps:
      - run: echo "testing"; exit 0
"#;

const OTHER_BRANCH_ONLY: &str = "on:\n  push:\n    branches: [release]\njobs:\n  never:\n    runs-on: linux\n    steps:\n      - run: echo never\n";

#[tokio::test]
async fn a_signed_push_becomes_a_run_that_finishes_with_logs() {
    let (repo, sha) = repo(&[
        (".github/workflows/ci.yml", WORKFLOW),
        (".github/workflows/release.yml", OTHER_BRANCH_ONLY),
    ]);
    let server = Server::start(FORGE);
    let body = push_payload(repo.path(), &sha);

    let started = std::time::Instant::now();
    let answer = post_push(&server.url, &body, "delivery-1").await;
    assert_eq!(answer.status(), 202);
    let took = started.elapsed();
    let v: Value = answer.json().await.expect("JSON");
    assert_eq!(v["duplicate"], false);
    assert!(
        took < std::time::Duration::from_secs(2),
        "answered in {took:?}"
    );
    // The same delivery again is recognised.
    let again: Value = post_push(&server.url, &body, "delivery-1")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(again["duplicate"], true);

    let id = the_run(&server).await;
    let run = wait_for(&server, &format!("/api/runs/{id}"), 60, finished).await;
    assert_eq!(run["run"]["status"], "success", "{run:#}");
    assert_eq!(run["run"]["sha"], sha.as_str());
    assert_eq!(run["run"]["workflow"], ".github/workflows/ci.yml");
    assert_eq!(job_status(&run, "build"), Some("success"));
    assert_eq!(job_status(&run, "test"), Some("success"));
    assert_eq!(run["queue"]["state"], "done");
    let log = reqwest::get(format!("{}/api/runs/{id}/jobs/build/log", server.url))
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert!(log.contains("hello from build"), "{log}");
    // Only the workflow whose branch filter matches made a run; the duplicate made none.
    let runs = get_json(&format!("{}/api/runs", server.url)).await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs:#}");
}

#[tokio::test]
async fn bad_deliveries_and_unauthorised_changes_are_refused() {
    let server = Server::start(FORGE);
    let client = reqwest::Client::new();
    let forged = client
        .post(format!("{}/hooks/github", server.url))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", "sha256=00")
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), 401);
    let unsigned = client
        .post(format!("{}/hooks/github", server.url))
        .header("X-GitHub-Event", "push")
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(unsigned.status(), 401);
    let body = "{not json";
    let malformed = client
        .post(format!("{}/hooks/github", server.url))
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            ci_engine::vcs::webhook::sign_github(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(malformed.status(), 400);
    let unknown = client
        .post(format!("{}/hooks/gitlab", server.url))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(unknown.status(), 404, "no gitlab forge is configured");
    // Changes need the admin token.
    let anonymous = client
        .post(format!("{}/api/runs/x/cancel", server.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 401);
    let admin = client
        .post(format!("{}/api/runs/x/cancel", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answer");
    assert_eq!(admin.status(), 404, "authorised, and there is no such run");
    let missing = client
        .get(format!("{}/api/runs/nope", server.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status(), 404);
    let bad_filter = client
        .get(format!("{}/api/runs?status=weird", server.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad_filter.status(), 400);
    let openapi = get_json(&format!("{}/api/openapi.json", server.url)).await;
    assert!(openapi["paths"]["/api/runs"].is_object(), "{openapi:#}");
}
