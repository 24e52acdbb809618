//! Remote actions and GitLab includes fetched from real servers on 127.0.0.1 (a `git daemon`
//! and an HTTP server), run end to end, then run again from the cache with the servers gone.

use std::path::Path;
use std::process::Command as Process;

use ci_vcs::fetch::loopback::{commit_repository, FileServer, GitDaemon};

mod common;
use common::docker_ready;

/// `gantry ARGS` in `dir` with the network allowed (loopback servers only) and `cache`.
fn gantry(dir: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = common::gantry();
    cmd.current_dir(dir)
        .env("GANTRY_OFFLINE", "0")
        .env("GANTRY_CACHE_DIR", cache)
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITLAB_TOKEN")
        .args(args)
        .timeout(std::time::Duration::from_secs(120));
    cmd.output().expect("gantry runs")
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The run succeeded and its output holds every line of `wants`.
fn assert_ran(out: &std::process::Output, wants: &[&str]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for want in wants {
        assert!(t.contains(want), "missing '{want}':\n{t}");
    }
}

fn repository(dir: &Path, files: &[(&str, &str)]) {
    commit_repository(dir, files, &[]).expect("a git repository");
}

const WORKFLOW: &str = r#"on: push
jobs:
  remote:
    runs-on: ubuntu-latest
    steps:
      - id: composite
        uses: octo/composite@v1
        with:
          who: composite-input
      - id: node
        uses: octo/tools/node-action@main
        with:
          who: node-input
      - run: echo "node said ${{ steps.node.outputs.greeting }}"
"#;

const DOCKER_STEP: &str = r#"      - uses: octo/docker@v1
        with:
          who: docker-input
"#;

#[test]
fn remote_actions_are_fetched_then_run_from_the_cache_with_the_server_gone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repos = tmp.path().join("repos");
    commit_repository(
        &repos.join("octo/inner"),
        &[(
            "action.yml",
            "name: inner\nruns:\n  using: composite\n  steps:\n    - run: echo inner-ran\n      shell: sh\n",
        )],
        &["v1"],
    )
    .expect("inner");
    commit_repository(
        &repos.join("octo/composite"),
        &[(
            "action.yml",
            "name: composite\ninputs:\n  who: {required: true}\nruns:\n  using: composite\n  steps:\n    - run: echo \"composite-ran ${{ inputs.who }}\"\n      shell: sh\n    - uses: octo/inner@v1\n",
        )],
        &["v1"],
    )
    .expect("composite");
    commit_repository(
        &repos.join("octo/tools"),
        &[
            (
                "node-action/action.yml",
                "name: node\ninputs:\n  who: {required: true}\noutputs:\n  greeting: {description: g}\nruns:\n  using: node20\n  main: index.js\n",
            ),
            (
                "node-action/index.js",
                "const fs = require('fs');\nconst who = process.env['INPUT_WHO'];\nconsole.log(`node-ran ${who}`);\nfs.appendFileSync(process.env.GITHUB_OUTPUT, `greeting=hello-${who}\\n`);\n",
            ),
        ],
        &[],
    )
    .expect("node");
    let docker = docker_ready();
    if docker {
        commit_repository(
            &repos.join("octo/docker"),
            &[
                (
                    "action.yml",
                    "name: docker\ninputs:\n  who: {required: true}\nruns:\n  using: docker\n  image: Dockerfile\n",
                ),
                (
                    "Dockerfile",
                    "FROM gantry-busybox:test\nENTRYPOINT [\"sh\", \"-c\", \"echo docker-action-ran $INPUT_WHO\"]\n",
                ),
            ],
            &["v1"],
        )
        .expect("docker");
    }
    let workflow = if docker {
        format!("{WORKFLOW}{DOCKER_STEP}")
    } else {
        WORKFLOW.to_owned()
    };
    let work = tmp.path().join("work");
    repository(&work, &[(".github/workflows/ci.yml", &workflow)]);
    let cache = tmp.path().join("cache");
    let daemon = GitDaemon::start(&repos).expect("git daemon");
    let url = daemon.url().to_owned();
    let args = [
        "run",
        ".github/workflows/ci.yml",
        "--github-url",
        url.as_str(),
        "--state-dir",
        ".state",
    ];
    let mut wants = vec![
        "composite-ran composite-input",
        "inner-ran",
        "node-ran node-input",
        "node said hello-node-input",
    ];
    if docker {
        wants.push("docker-action-ran docker-input");
    }
    let check = |out: &std::process::Output| assert_ran(out, &wants);
    check(&gantry(&work, &cache, &args));
    drop(daemon);
    // The server is gone: offline, everything comes from the cache.
    let mut offline = args.to_vec();
    offline.push("--offline");
    check(&gantry(&work, &cache, &offline));
    // A cache that never saw them: the run stops, naming the action and the fix.
    let empty = tmp.path().join("empty-cache");
    let out = gantry(&work, &empty, &offline);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("is not in the cache (offline)")
            && t.contains("--action-dir octo/composite=PATH"),
        "{t}"
    );
}

#[test]
fn gitlab_includes_are_fetched_then_read_from_the_cache_and_lint_warns_offline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    let server = FileServer::start(&www).expect("http server");
    let host = server.url().trim_start_matches("http://").to_owned();
    let served = [
        (
            "remote/ci.yml".to_owned(),
            ".remote-base:\n  script:\n    - echo \"from-remote $GREETING\"\n".to_owned(),
        ),
        (
            "gitlab-org/gitlab/-/raw/master/lib/gitlab/ci/templates/Shared.gitlab-ci.yml"
                .to_owned(),
            "template-job:\n  stage: test\n  script: [echo from-template]\n".to_owned(),
        ),
        (
            "api/v4/projects/group/shared/repository/files/ci/jobs.yml/raw".to_owned(),
            "project-job:\n  stage: test\n  script: [echo from-project]\n".to_owned(),
        ),
        (
            "api/v4/projects/group/components/repository/files/templates/greet/template.yml/raw"
                .to_owned(),
            "spec:\n  inputs:\n    name:\n    stage:\n      default: test\n    count:\n      type: number\n      default: 2\n---\n\"greet-$[[ inputs.name ]]\":\n  stage: $[[ inputs.stage ]]\n  script:\n    - echo \"component says $[[ inputs.name ]] x$[[ inputs.count ]]\"\n".to_owned(),
        ),
    ];
    for (path, text) in &served {
        let p = www.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let pipeline = format!(
        "include:\n  - remote: {url}/remote/ci.yml\n  - template: Shared.gitlab-ci.yml\n  - project: group/shared\n    ref: main\n    file: ci/jobs.yml\n  - component: {host}/group/components/greet@1.0\n    inputs:\n      name: world\n\nvariables:\n  GREETING: hi\n\nremote-job:\n  stage: test\n  extends: .remote-base\n",
        url = server.url()
    );
    let work = tmp.path().join("work");
    repository(&work, &[(".gitlab-ci.yml", &pipeline)]);
    let cache = tmp.path().join("cache");
    let url = server.url().to_owned();

    let lint = gantry(
        &work,
        &cache,
        &["lint", "--gitlab-url", &url, ".gitlab-ci.yml"],
    );
    let t = text(&lint);
    assert_eq!(lint.status.code(), Some(0), "{t}");
    assert!(t.contains("0 errors, 0 warnings"), "{t}");

    let run_args = [
        "run",
        ".gitlab-ci.yml",
        "--gitlab-url",
        url.as_str(),
        "--state-dir",
        ".state",
    ];
    let check = |out: &std::process::Output| {
        assert_ran(
            out,
            &[
                "from-remote hi",
                "from-template",
                "from-project",
                "component says world x2",
            ],
        )
    };
    check(&gantry(&work, &cache, &run_args));
    drop(server);
    let mut offline = run_args.to_vec();
    offline.push("--offline");
    check(&gantry(&work, &cache, &offline));

    // Nothing cached and offline: lint still checks the file, and what depends on the
    // includes is a warning; a run stops with the error.
    let empty = tmp.path().join("empty-cache");
    let lint = gantry(
        &work,
        &empty,
        &["lint", "--offline", "--gitlab-url", &url, ".gitlab-ci.yml"],
    );
    let t = text(&lint);
    assert_eq!(lint.status.code(), Some(0), "{t}");
    assert!(t.contains("warning[include-unavailable]"), "{t}");
    assert!(
        t.contains("`extends` names unknown job '.remote-base'"),
        "{t}"
    );
    let run = gantry(&work, &empty, &offline);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("is not in the cache"), "{}", text(&run));
    // The test's own repository is untouched by all this.
    let status = Process::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(&work)
        .output()
        .expect("git status");
    assert!(status.stdout.is_empty());
}

#[test]
fn circleci_registry_orbs_are_fetched_then_read_from_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    let orb = "version: 2.1\nexecutors:\n  default:\n    machine: true\njobs:\n  greet:\n    executor: default\n    parameters:\n      to: {type: string}\n    steps:\n      - run: echo \"fetched orb greets << parameters.to >>\"\n";
    std::fs::write(
        www.join("graphql-unstable"),
        serde_json::json!({"data": {"orbVersion": {"source": orb}}}).to_string(),
    )
    .expect("write");
    let server = FileServer::start(&www).expect("http server");
    let url = server.url().to_owned();
    let work = tmp.path().join("work");
    repository(
        &work,
        &[(
            ".circleci/config.yml",
            "version: 2.1\norbs:\n  greeter: acme/greeter@1.0.0\nworkflows:\n  main:\n    jobs:\n      - greeter/greet: {to: you}\n",
        )],
    );
    let cache = tmp.path().join("cache");
    let args = [
        "run",
        ".circleci/config.yml",
        "--circleci-url",
        url.as_str(),
        "--state-dir",
        ".state",
    ];
    assert_ran(&gantry(&work, &cache, &args), &["fetched orb greets you"]);
    let lint = gantry(
        &work,
        &cache,
        &["lint", "--circleci-url", &url, ".circleci/config.yml"],
    );
    assert!(
        text(&lint).contains("0 errors, 0 warnings"),
        "{}",
        text(&lint)
    );
    drop(server);
    let mut offline = args.to_vec();
    offline.push("--offline");
    assert_ran(
        &gantry(&work, &cache, &offline),
        &["fetched orb greets you"],
    );
}
