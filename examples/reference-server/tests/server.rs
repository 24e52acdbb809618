//! The server end to end: a signed push for a real git repository → 202 → a run through the
//! durable queue → jobs on the host → logs and API; refusals for bad deliveries and
//! unauthorised changes; reruns; and the crash promises (kill -9 at several points).

mod common;

use common::*;
use serde_json::Value;

const FORGE: &str = r#"
[secrets]
DEPLOY_TOKEN = "GANTRY_TEST_SECRET"
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
      - run: echo "hello from build, token ${{ secrets.DEPLOY_TOKEN }}"
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
    // The worker completes its lease just after the run's record ends.
    let run = wait_for(&server, &format!("/api/runs/{id}"), 10, |r| {
        r["queue"]["state"] == "done"
    })
    .await;
    assert_eq!(run["queue"]["state"], "done");
    let log = reqwest::get(format!("{}/api/runs/{id}/jobs/build/log", server.url))
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert!(log.contains("hello from build, token ***"), "{log}");
    assert!(
        !log.contains(SECRET),
        "secrets are masked before they are stored: {log}"
    );
    let live = read_events(
        &format!("{}/api/runs/{id}/jobs/build/live", server.url),
        None,
        100,
    )
    .await;
    assert!(
        !format!("{live:?}").contains(SECRET),
        "… and before they are sent"
    );
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

/// A workflow whose middle job takes a while and counts its runs in files outside the job.
fn slow_workflow(counts: &std::path::Path) -> String {
    let c = counts.display();
    format!(
        r#"
on: push
jobs:
  first:
    runs-on: linux
    steps:
      - run: echo first >> {c}/first
  slow:
    needs: first
    runs-on: linux
    steps:
      - run: |
          echo run >> {c}/slow
          for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo "line $i"; sleep 0.2; done
  last:
    needs: slow
    runs-on: linux
    steps:
      - run: echo last >> {c}/last
"#
    )
}

fn count(dir: &std::path::Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(name))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn killed_mid_run_the_server_resumes_without_rerunning_finished_jobs() {
    let counts = tempfile::tempdir().expect("temp dir");
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", &slow_workflow(counts.path()))]);
    let mut server = Server::start(FORGE);
    assert_eq!(
        post_push(&server.url, &push_payload(repo.path(), &sha), "crash-1")
            .await
            .status(),
        202
    );
    let id = the_run(&server).await;
    // Mid-log: the slow job has written some lines.
    let path = format!("/api/runs/{id}");
    wait_for(&server, &path, 60, |r| {
        job_status(r, "slow") == Some("running")
    })
    .await;
    let log_url = format!("{}/api/runs/{id}/jobs/slow/log", server.url);
    let mut shown = String::new();
    for _ in 0..100 {
        shown = reqwest::get(&log_url)
            .await
            .expect("log")
            .text()
            .await
            .expect("text");
        if shown.contains("line 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        shown.contains("line 3"),
        "the live log shows lines while the job runs: {shown:?}"
    );
    server.kill();
    assert_eq!(count(counts.path(), "first"), 1);

    server.restart();
    let run = wait_for(&server, &path, 90, finished).await;
    assert_eq!(
        run["run"]["status"],
        "success",
        "{run:#}\n{}",
        server.log_text()
    );
    assert_eq!(
        count(counts.path(), "first"),
        1,
        "a finished job is not run again"
    );
    assert_eq!(
        count(counts.path(), "slow"),
        2,
        "the interrupted job ran again"
    );
    assert_eq!(count(counts.path(), "last"), 1);
    let slow = run["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "slow"))
        .expect("slow")
        .clone();
    assert_eq!(slow["attempt"], 2);
    // What the client was shown of the first attempt is still there.
    let first_attempt = reqwest::get(format!("{log_url}?attempt=1"))
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert!(
        first_attempt.starts_with(&shown[..shown.find("line 3").expect("shown")]),
        "{first_attempt:?} vs {shown:?}"
    );
}

#[tokio::test]
async fn killed_right_after_the_202_the_delivery_is_still_processed() {
    let counts = tempfile::tempdir().expect("temp dir");
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", WORKFLOW)]);
    let mut server = Server::start(FORGE);
    let answer = post_push(&server.url, &push_payload(repo.path(), &sha), "crash-2").await;
    assert_eq!(answer.status(), 202);
    server.kill();
    server.restart();
    let id = the_run(&server).await;
    let run = wait_for(&server, &format!("/api/runs/{id}"), 60, finished).await;
    assert_eq!(run["run"]["status"], "success", "{run:#}");
    let runs = get_json(&format!("{}/api/runs", server.url)).await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "one run, not two: {runs:#}"
    );
    drop(counts);
}

#[tokio::test]
async fn failed_jobs_rerun_with_the_admin_token_and_cancel_stops_a_run() {
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("fixed");
    let workflow = format!(
        "on: push\njobs:\n  ok:\n    runs-on: linux\n    steps:\n      - run: echo ok >> {d}/ok\n  flaky:\n    needs: ok\n    runs-on: linux\n    steps:\n      - run: test -e {m}\n  hang:\n    runs-on: linux\n    steps:\n      - run: if test -e {m}; then sleep 60; fi\n",
        d = marker_dir.path().display(),
        m = marker.display()
    );
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", &workflow)]);
    let server = Server::start(FORGE);
    post_push(&server.url, &push_payload(repo.path(), &sha), "rerun-1").await;
    let id = the_run(&server).await;
    let path = format!("/api/runs/{id}");
    let run = wait_for(&server, &path, 60, finished).await;
    assert_eq!(run["run"]["status"], "failure");
    assert_eq!(job_status(&run, "flaky"), Some("failure"));

    std::fs::write(&marker, "").expect("marker");
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{}{path}/rerun", server.url))
        .json(&serde_json::json!({"failed": true}))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 401);
    let queued = client
        .post(format!("{}{path}/rerun", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"failed": true}))
        .send()
        .await
        .expect("answer");
    assert_eq!(queued.status(), 202);
    let v: Value = queued.json().await.expect("JSON");
    assert_eq!(v["jobs"], serde_json::json!(["flaky"]));
    let run = wait_for(&server, &path, 60, |r| {
        finished(r) && job_status(r, "flaky") == Some("success")
    })
    .await;
    assert_eq!(run["run"]["status"], "success", "{run:#}");
    assert_eq!(
        count(marker_dir.path(), "ok"),
        1,
        "the passed job kept its result"
    );

    // A rerun of `hang` now sleeps: cancel it.
    client
        .post(format!("{}{path}/rerun", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"jobs": ["hang"]}))
        .send()
        .await
        .expect("answer");
    wait_for(&server, &path, 60, |r| {
        job_status(r, "hang") == Some("running")
    })
    .await;
    let cancelled = client
        .post(format!("{}{path}/cancel", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answer");
    assert_eq!(cancelled.status(), 200);
    let run = wait_for(&server, &path, 30, finished).await;
    assert_eq!(run["run"]["status"], "cancelled", "{run:#}");
    assert_eq!(run["queue"]["outcome"], "cancelled");
}

#[tokio::test]
async fn a_manual_run_with_inputs_needs_the_admin_token() {
    let workflow = "on:\n  workflow_dispatch:\n    inputs:\n      who:\n        default: nobody\n  push:\njobs:\n  hello:\n    runs-on: linux\n    steps:\n      - run: echo \"hello ${{ inputs.who }} on ${{ github.ref_name }} by ${{ github.event_name }}\"\n";
    let (repo, _) = repo(&[
        (".github/workflows/ci.yml", workflow),
        (".github/workflows/push-only.yml", OTHER_BRANCH_ONLY),
    ]);
    let server = Server::start(FORGE);
    let body = serde_json::json!({
        "repo": "octo/app",
        "ref": "main",
        "clone_url": format!("file://{}", repo.path().display()),
        "inputs": { "who": "world" },
    });
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{}/api/runs", server.url))
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 401);
    let queued = client
        .post(format!("{}/api/runs", server.url))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(queued.status(), 202);
    let id = the_run(&server).await;
    let run = wait_for(&server, &format!("/api/runs/{id}"), 60, finished).await;
    assert_eq!(run["run"]["status"], "success", "{run:#}");
    assert_eq!(run["run"]["event"], "workflow_dispatch");
    assert_eq!(run["run"]["ref"], "refs/heads/main");
    let log = reqwest::get(format!("{}/api/runs/{id}/jobs/hello/log", server.url))
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert!(
        log.contains("hello world on main by workflow_dispatch"),
        "{log}"
    );
    let runs = get_json(&format!("{}/api/runs", server.url)).await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "only the dispatchable workflow ran"
    );
    let unknown = client
        .post(format!("{}/api/runs", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "repo": "octo/unknown" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(unknown.status(), 400, "no clone URL known");
}

#[test]
fn the_example_configuration_checks_and_a_broken_one_is_refused_with_the_reason() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/gantry-server.example.toml");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_gantry-server"))
        .args(["--config", example, "--check-config"])
        .env("GANTRY_ADMIN_TOKEN", "a")
        .env("GANTRY_READ_TOKEN", "r")
        .env("GITHUB_WEBHOOK_SECRET", "s")
        .env("GITHUB_TOKEN", "t")
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_gantry-server"))
        .args(["--config", example, "--check-config"])
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env("GANTRY_ADMIN_TOKEN", "a")
        .env("GANTRY_READ_TOKEN", "r")
        .env("GITHUB_TOKEN", "t")
        .output()
        .expect("runs");
    assert!(!missing.status.success());
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(said.contains("GITHUB_WEBHOOK_SECRET is not set"), "{said}");
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "state_dir = \"/tmp/x\"\nwokers = 2\n").expect("written");
    let typo = std::process::Command::new(env!("CARGO_BIN_EXE_gantry-server"))
        .args(["--config"])
        .arg(&bad)
        .arg("--check-config")
        .output()
        .expect("runs");
    assert!(!typo.status.success());
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(said.contains("wokers"), "the unknown key is named: {said}");
}

#[tokio::test]
async fn with_a_certificate_the_server_speaks_https_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some((cert, key)) = self_signed(dir.path()) else {
        return;
    };
    let server = Server::start(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let https = server.url.replace("http://", "https://");
    let pem = std::fs::read(&cert).expect("cert");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client");
    let runs = client
        .get(format!("{https}/api/runs"))
        .send()
        .await
        .expect("an https answer");
    assert_eq!(runs.status(), 200);
    assert!(
        reqwest::get(format!("{}/api/runs", server.url))
            .await
            .is_err(),
        "no plain HTTP on the TLS port"
    );
    // A broken identity is refused before the server starts.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!(
            "state_dir = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().join("s").display(),
            key.display(),
            key.display()
        ),
    )
    .expect("written");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry-server"))
        .arg("--config")
        .arg(&broken)
        .arg("--check-config")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no certificate"), "{said}");
}

const GITLAB_CI: &str = r#"
build:
  script:
    - mkdir -p dist && echo "built" > dist/app.txt
    - |
      cat > report.xml <<'XML'
      <testsuite name="unit" tests="2" failures="1"><testcase classname="a" name="passes"/><testcase classname="a" name="fails"><failure message="boom">trace</failure></testcase></testsuite>
      XML
  artifacts:
    paths: [dist/]
    reports:
      junit: report.xml
"#;

#[tokio::test]
async fn a_gitlab_push_runs_the_pipeline_and_serves_artifacts_and_test_results() {
    let (repo, sha) = repo(&[(".gitlab-ci.yml", GITLAB_CI)]);
    let server =
        Server::start("[[forges]]\nkind = \"gitlab\"\nsecret_env = \"GANTRY_TEST_SECRET\"\n");
    let body = serde_json::json!({
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "checkout_sha": sha,
        "user_username": "octo",
        "project": {
            "path_with_namespace": "octo/app",
            "name": "app",
            "namespace": "octo",
            "default_branch": "main",
            "git_http_url": format!("file://{}", repo.path().display()),
        },
        "commits": [{ "id": sha, "message": "first" }],
    })
    .to_string();
    let client = reqwest::Client::new();
    let wrong = client
        .post(format!("{}/hooks/gitlab", server.url))
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", "wrong")
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status(), 401);
    let ok = client
        .post(format!("{}/hooks/gitlab", server.url))
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", SECRET)
        .header("X-Gitlab-Event-UUID", "gl-1")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status(), 202);
    let id = the_run(&server).await;
    let run = wait_for(&server, &format!("/api/runs/{id}"), 60, finished).await;
    assert_eq!(run["run"]["workflow"], ".gitlab-ci.yml");
    assert_eq!(job_status(&run, "build"), Some("success"), "{run:#}");

    let listed = get_json(&format!("{}/api/runs/{id}/artifacts", server.url)).await;
    let artifact = &listed["artifacts"][0];
    let name = artifact["name"].as_str().expect("an artifact");
    let file = artifact["files"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find_map(|e| e["path"].as_str().filter(|p| p.ends_with("app.txt")))
        })
        .expect("dist/app.txt is listed")
        .to_owned();
    let got = reqwest::get(format!(
        "{}/api/runs/{id}/artifacts/{name}/files/{file}",
        server.url
    ))
    .await
    .expect("answer");
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.expect("text"), "built\n");
    for evil in [
        "..%2F..%2Fetc%2Fpasswd",
        "dist/..%2F..%2Fsecret",
        "%2Fetc%2Fpasswd",
    ] {
        let refused = reqwest::get(format!(
            "{}/api/runs/{id}/artifacts/{name}/files/{evil}",
            server.url
        ))
        .await
        .expect("answer");
        assert!(
            refused.status() == 400 || refused.status() == 404,
            "{evil}: {}",
            refused.status()
        );
    }
    let tests = get_json(&format!("{}/api/runs/{id}/jobs/build/tests", server.url)).await;
    let text = tests.to_string();
    assert!(text.contains("fails") && text.contains("boom"), "{tests:#}");
}

#[tokio::test]
async fn a_manual_job_is_played_with_approve() {
    let ci = "on: push\njobs:\n  build:\n    runs-on: linux\n    steps:\n      - run: echo build\n";
    let gitlab = "build:\n  script: [echo build]\ndeploy:\n  needs: [build]\n  when: manual\n  script: [echo deployed]\n";
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", ci), (".gitlab-ci.yml", gitlab)]);
    let server = Server::start("[[forges]]\nkind = \"gitlab\"\n");
    let body = serde_json::json!({
        "ref": "refs/heads/main", "after": sha, "checkout_sha": sha, "user_username": "octo",
        "project": { "path_with_namespace": "octo/app", "git_http_url": format!("file://{}", repo.path().display()) },
    })
    .to_string();
    let client = reqwest::Client::new();
    let ok = client
        .post(format!("{}/hooks/gitlab", server.url))
        .header("X-Gitlab-Event", "Push Hook")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status(), 202);
    let id = the_run(&server).await;
    let path = format!("/api/runs/{id}");
    let run = wait_for(&server, &path, 60, finished).await;
    assert_eq!(job_status(&run, "build"), Some("success"), "{run:#}");
    assert_eq!(
        job_status(&run, "deploy"),
        Some("skipped"),
        "a manual job waits: {run:#}"
    );
    let played = client
        .post(format!("{}{path}/approve", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "job": "deploy" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(played.status(), 202);
    let run = wait_for(&server, &path, 60, |r| {
        finished(r) && job_status(r, "deploy") == Some("success")
    })
    .await;
    assert_eq!(run["run"]["status"], "success", "{run:#}");
    let build = run["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "build"))
        .expect("build");
    assert_eq!(build["attempt"], 1, "build kept its result");
}

#[tokio::test]
async fn requests_over_the_rate_or_size_limit_are_refused() {
    let server = Server::start("rate_limit_per_minute = 5\nmax_body = 1024\n[[forges]]\nkind = \"github\"\nsecret_env = \"GANTRY_TEST_SECRET\"\n");
    let mut codes = Vec::new();
    for _ in 0..7 {
        codes.push(
            reqwest::get(format!("{}/api/runs", server.url))
                .await
                .expect("answer")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&codes[..5], &[200; 5]);
    assert_eq!(codes[6], 429, "{codes:?}");
    let big = reqwest::Client::new()
        .post(format!("{}/hooks/github", server.url))
        .header("X-GitHub-Event", "push")
        .body(vec![b' '; 4096])
        .send()
        .await
        .expect("answer");
    assert_eq!(big.status(), 413);
}
