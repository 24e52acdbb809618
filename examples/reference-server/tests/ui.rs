//! The web UI in real headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from npm: `tests/ui/ui.mjs`): runs list, DAG colours changing live, a live log growing,
//! rerun and cancel buttons, a phone's width. Screenshots go to
//! `target/tmp/ui-screenshots/`. Without Chromium or the npm package the test skips loudly,
//! and fails when CI=true (`.ci/run` installs both).

mod common;

use std::io::Write as _;
use std::path::Path;

use common::*;

const FORGE: &str = r#"
[[forges]]
kind = "github"
secret_env = "GANTRY_TEST_SECRET"
"#;

const WORKFLOW: &str = r#"
on: push
jobs:
  first:
    runs-on: linux
    steps:
      - run: echo first
  lint:
    runs-on: linux
    steps:
      - run: echo lint
  slow:
    needs: first
    runs-on: linux
    steps:
      - run: |
          echo "::group::Setup"
          echo "preparing"
          echo "::endgroup::"
          printf '\033[32mgreen\033[0m and plain\n'
          for i in $(seq 1 25); do echo "tick $i"; sleep 0.25; done
  last:
    needs: slow
    runs-on: linux
    steps:
      - run: echo last
"#;

fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what}"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED ui test: {what}");
}

#[tokio::test]
async fn the_ui_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return missing("no chromium (apt-get install chromium)");
    }
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !ui.join("node_modules/playwright-core").exists() {
        return missing("no playwright-core (npm ci --prefix examples/reference-server/tests/ui)");
    }
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", WORKFLOW)]);
    let server = Server::start(FORGE);
    post_push(&server.url, &push_payload(repo.path(), &sha), "ui-1").await;
    let id = the_run(&server).await;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&out).expect("screenshot dir");
    let result = tokio::process::Command::new("node")
        .arg(ui.join("ui.mjs"))
        .arg(&server.url)
        .arg(&id)
        .arg(ADMIN)
        .arg(&out)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        result.status.success(),
        "the UI script failed:\n{said}\nserver log:\n{}",
        server.log_text()
    );
    assert!(said.contains("ui: ok"), "{said}");
    for shot in [
        "runs.png",
        "run-running.png",
        "run-finished.png",
        "run-cancelled.png",
        "phone.png",
    ] {
        assert!(out.join(shot).exists(), "{shot} was taken");
    }
}
