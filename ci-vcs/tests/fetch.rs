//! The fetch layer against real servers on 127.0.0.1: a `git daemon` hosting repositories and
//! an HTTP server serving files, then the same fetches from the cache with the servers gone.

#![cfg(feature = "fetch")]

use ci_vcs::fetch::loopback::{commit_repository, FileServer, GitDaemon};
use ci_vcs::fetch::{FetchConfig, FetchError, FetchMode, Fetcher};

fn fetcher(cache: &std::path::Path, github: &str, gitlab: &str, mode: FetchMode) -> Fetcher {
    Fetcher::new(FetchConfig {
        cache_dir: cache.to_path_buf(),
        mode,
        github_url: github.to_owned(),
        gitlab_url: gitlab.to_owned(),
        template_url: None,
        circleci_url: "http://127.0.0.1:1".into(),
        github_token: None,
        circleci_token: None,
        gitlab_token: None,
        timeout: std::time::Duration::from_secs(10),
    })
}

#[test]
fn actions_are_cloned_at_a_tag_a_branch_or_a_sha_then_served_from_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repos = tmp.path().join("repos");
    let repo = repos.join("octo/hello");
    let v1 = commit_repository(&repo, &[("action.yml", "name: v1\n")], &["v1"]).expect("repo");
    let v2 = commit_repository(&repo, &[("action.yml", "name: v2\n")], &["v2"]).expect("repo");
    let cache = tmp.path().join("cache");
    let daemon = GitDaemon::start(&repos).expect("git daemon");
    let online = fetcher(
        &cache,
        daemon.url(),
        "http://127.0.0.1:1",
        FetchMode::Online,
    );

    let at_v1 = online.github_repo("octo/hello", "v1").expect("tag");
    assert_eq!(
        std::fs::read_to_string(at_v1.join("action.yml")).unwrap(),
        "name: v1\n"
    );
    assert!(
        at_v1.ends_with(&v1),
        "content-addressed by commit: {}",
        at_v1.display()
    );
    assert!(!at_v1.join(".git").exists());
    let main = online.github_repo("octo/hello", "main").expect("branch");
    assert_eq!(
        std::fs::read_to_string(main.join("action.yml")).unwrap(),
        "name: v2\n"
    );
    let by_sha = online.github_repo("octo/hello", &v1).expect("sha");
    assert_eq!(by_sha, at_v1);
    // A SHA the server does not have is refused, naming it.
    let missing = online
        .github_repo("octo/hello", &"0".repeat(40))
        .expect_err("unknown sha");
    assert!(!missing.is_unavailable(), "{missing}");
    let err = online.github_repo("octo/nope", "v1").expect_err("no repo");
    assert!(err.to_string().contains("octo/nope"), "{err}");

    // The server is gone: online falls back to the cache, offline reads it only.
    let github = daemon.url().to_owned();
    drop(daemon);
    let again = online.github_repo("octo/hello", "v1").expect("cached tag");
    assert_eq!(again, at_v1);
    let offline = fetcher(&cache, &github, "http://127.0.0.1:1", FetchMode::Offline);
    assert_eq!(offline.github_repo("octo/hello", &v2).expect("sha"), main);
    let err = offline
        .github_repo("octo/hello", "v9")
        .expect_err("never fetched");
    assert!(err.is_unavailable());
    assert!(
        err.to_string().contains("run once with the network"),
        "{err}"
    );
}

#[test]
fn a_moved_tag_is_fetched_again_online_and_refresh_ignores_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repos = tmp.path().join("repos");
    let repo = repos.join("octo/moving");
    commit_repository(&repo, &[("action.yml", "name: old\n")], &["v1"]).expect("repo");
    let daemon = GitDaemon::start(&repos).expect("git daemon");
    let cache = tmp.path().join("cache");
    let online = fetcher(
        &cache,
        daemon.url(),
        "http://127.0.0.1:1",
        FetchMode::Online,
    );
    let old = online.github_repo("octo/moving", "v1").expect("first");
    commit_repository(&repo, &[("action.yml", "name: new\n")], &["v1"]).expect("move tag");
    let new = online.github_repo("octo/moving", "v1").expect("moved");
    assert_ne!(old, new);
    assert_eq!(
        std::fs::read_to_string(new.join("action.yml")).unwrap(),
        "name: new\n"
    );
    let refresh = fetcher(
        &cache,
        daemon.url(),
        "http://127.0.0.1:1",
        FetchMode::Refresh,
    );
    assert_eq!(
        refresh.github_repo("octo/moving", "v1").expect("refetched"),
        new
    );
}

#[test]
fn gitlab_files_come_over_http_and_stay_in_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("www");
    let files = [
        ("remote/ci.yml", "remote: {script: [echo remote]}\n"),
        (
            "gitlab-org/gitlab/-/raw/master/lib/gitlab/ci/templates/Jobs/Build.gitlab-ci.yml",
            "build: {script: [echo template]}\n",
        ),
        (
            "api/v4/projects/group%2Fshared/repository/files/ci%2Fjobs.yml/raw",
            "shared: {script: [echo project]}\n",
        ),
        (
            "api/v4/projects/group%2Fcomponents/repository/files/templates%2Flint%2Ftemplate.yml/raw",
            "spec: {inputs: {stage: {default: test}}}\n---\nlint: {script: [echo component]}\n",
        ),
    ];
    for (path, text) in files {
        // The server decodes %2F; files live at the decoded path.
        let path = root.join(path.replace("%2F", "/"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let server = FileServer::start(&root).expect("http server");
    let cache = tmp.path().join("cache");
    let mut config = FetchConfig {
        cache_dir: cache.clone(),
        mode: FetchMode::Online,
        github_url: "git://127.0.0.1:1".into(),
        gitlab_url: server.url().to_owned(),
        template_url: None,
        circleci_url: "http://127.0.0.1:1".into(),
        github_token: None,
        circleci_token: None,
        gitlab_token: Some(("PRIVATE-TOKEN", "glpat-test-token".into())),
        timeout: std::time::Duration::from_secs(10),
    };
    let online = Fetcher::new(config.clone());
    let url = format!("{}/remote/ci.yml", server.url());
    assert!(online.remote_file(&url).unwrap().contains("echo remote"));
    assert!(online
        .gitlab_template("Jobs/Build.gitlab-ci.yml")
        .unwrap()
        .contains("echo template"));
    assert!(online
        .gitlab_project_file("group/shared", Some("main"), "ci/jobs.yml")
        .unwrap()
        .contains("echo project"));
    let host = server.url().trim_start_matches("http://");
    assert!(online
        .gitlab_component(&format!("{host}/group/components/lint@1.0"))
        .unwrap()
        .contains("echo component"));
    // The token went to the GitLab server as a header (and only there).
    let requests = server.requests();
    assert!(requests.iter().all(|r| r
        .headers
        .contains(&("private-token".into(), "glpat-test-token".into()))));
    assert!(requests.iter().any(|r| r.target.ends_with("/raw?ref=main")));
    let missing = online
        .remote_file(&format!("{}/nothing.yml", server.url()))
        .expect_err("404");
    assert!(matches!(missing, FetchError::Refused { .. }), "{missing}");
    assert!(missing.to_string().contains("HTTP 404"), "{missing}");
    assert!(!missing.to_string().contains("glpat"), "{missing}");

    // Offline, from the cache.
    let served = server.requests().len();
    drop(server);
    config.mode = FetchMode::Offline;
    let offline = Fetcher::new(config);
    assert!(offline.remote_file(&url).unwrap().contains("echo remote"));
    let err = offline
        .remote_file("http://127.0.0.1:1/never.yml")
        .expect_err("not cached");
    assert!(err.is_unavailable());
    // Online with the server down falls back to the cache too.
    assert!(online.remote_file(&url).unwrap().contains("echo remote"));
    assert!(served >= 4);
}

#[test]
fn circleci_orbs_come_from_the_registry_api_and_stay_in_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    let source = "version: 2.1\ncommands:\n  hi:\n    steps: [{run: echo hi}]\n";
    std::fs::write(
        root.join("graphql-unstable"),
        serde_json::json!({"data": {"orbVersion": {"source": source}}}).to_string(),
    )
    .unwrap();
    let server = FileServer::start(&root).expect("http server");
    let mut config = FetchConfig::from_env();
    config.cache_dir = tmp.path().join("cache");
    config.mode = FetchMode::Online;
    config.circleci_url = server.url().to_owned();
    config.circleci_token = Some("circle-secret".into());
    let fetcher = Fetcher::new(config.clone());
    assert_eq!(fetcher.circleci_orb("acme/tools@1.2.3").unwrap(), source);
    let requests = server.requests();
    assert_eq!(requests[0].method, "POST");
    assert!(
        requests[0].body.contains("acme/tools@1.2.3"),
        "{:?}",
        requests[0]
    );
    assert!(requests[0]
        .headers
        .contains(&("circle-token".into(), "circle-secret".into())));
    drop(server);
    config.mode = FetchMode::Offline;
    let offline = Fetcher::new(config);
    assert_eq!(offline.circleci_orb("acme/tools@1.2.3").unwrap(), source);
    assert!(offline
        .circleci_orb("acme/other@1.0.0")
        .unwrap_err()
        .is_unavailable());
}
