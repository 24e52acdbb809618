//! Gantry as a GitLab runner against a fake GitLab on 127.0.0.1, written from the runner job
//! API facts: `/runners/verify`, `/jobs/request` (201 with a job, 204 without, the
//! `X-GitLab-Last-Update` header), `PATCH /jobs/:id/trace` with `Content-Range` (416 and a
//! `Range` header on a mismatch, `Job-Status` for a cancelled job), `PUT /jobs/:id` (200, or
//! 202 when not complete yet), artifacts up (multipart) and down (with a dependency's token).
//! The fake records every request and can be told to fail; real jobs run on the host (and in
//! Docker when a daemon is here; skipped loudly without one, failing when CI=true).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Multipart, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ci_engine::exec::{DockerExecutor, Executor};
use ci_engine::Engine;
use ci_forge::gitlab::proto::*;
use ci_forge::gitlab::{register, run_daemon, Registration};
use ci_forge::{DaemonOptions, TaskOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const RUNNER_TOKEN: &str = "glrt-gantry-test";

#[derive(Default)]
struct Lab {
    /// Every call: (method and path, JSON body or a note).
    calls: Vec<(String, Value)>,
    jobs: Vec<Job>,
    traces: HashMap<i64, Vec<u8>>,
    /// Final states: (state, failure_reason, exit_code, output).
    finals: HashMap<i64, Vec<Value>>,
    /// Uploaded artifacts: (job, type, format, expire_in, bytes).
    uploads: Vec<(i64, String, String, String, Vec<u8>)>,
    /// Artifacts served for download, by job id: (token, zip).
    served: HashMap<i64, (String, Vec<u8>)>,
    // Faults.
    refuse_first_patch: bool,
    not_complete_updates: usize,
    cancel_after_bytes: Option<usize>,
}

type Shared = Arc<Mutex<Lab>>;

fn token_of(headers: &HeaderMap) -> String {
    headers
        .get("JOB-TOKEN")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn verify(State(lab): State<Shared>, Json(body): Json<Value>) -> Response {
    lab.lock()
        .expect("lock")
        .calls
        .push(("POST verify".into(), body.clone()));
    if body["token"] == RUNNER_TOKEN {
        Json(json!({"id": 12, "token": RUNNER_TOKEN})).into_response()
    } else {
        (StatusCode::FORBIDDEN, "403 Forbidden").into_response()
    }
}

async fn request(State(lab): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut l = lab.lock().expect("lock");
    l.calls.push(("POST request".into(), body.clone()));
    if body["token"] != RUNNER_TOKEN {
        return (StatusCode::FORBIDDEN, "403 Forbidden").into_response();
    }
    let headers = [("X-GitLab-Last-Update", "update-1")];
    if l.jobs.is_empty() {
        return (StatusCode::NO_CONTENT, headers).into_response();
    }
    let job = l.jobs.remove(0);
    (StatusCode::CREATED, headers, Json(job)).into_response()
}

async fn trace(
    State(lab): State<Shared>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut l = lab.lock().expect("lock");
    let range = headers
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    l.calls.push((
        format!("PATCH trace {id}"),
        json!({"range": range, "bytes": body.len()}),
    ));
    if token_of(&headers) != format!("job-token-{id}") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let have = l.traces.get(&id).map_or(0, Vec::len);
    let start: usize = range
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    if l.refuse_first_patch || start != have {
        l.refuse_first_patch = false;
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [("Range", format!("0-{have}"))],
        )
            .into_response();
    }
    l.traces.entry(id).or_default().extend_from_slice(&body);
    let total = l.traces[&id].len();
    let status = if l.cancel_after_bytes.is_some_and(|n| total >= n) {
        "canceled"
    } else {
        "running"
    };
    (StatusCode::ACCEPTED, [("Job-Status", status)]).into_response()
}

async fn update(
    State(lab): State<Shared>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut l = lab.lock().expect("lock");
    l.calls.push((format!("PUT job {id}"), body.clone()));
    if token_of(&headers) != format!("job-token-{id}") || body["token"] != format!("job-token-{id}")
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    if body["state"] == "running" {
        let status = if l
            .cancel_after_bytes
            .is_some_and(|n| l.traces.get(&id).map_or(0, Vec::len) >= n)
        {
            "canceled"
        } else {
            "running"
        };
        return (StatusCode::OK, [("Job-Status", status)]).into_response();
    }
    let trace = l.traces.get(&id).cloned().unwrap_or_default();
    let want = format!("crc32:{:08x}", crc32(&trace));
    if body["output"]["checksum"] != want.as_str() || body["output"]["bytesize"] != trace.len() {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    if l.not_complete_updates > 0 {
        l.not_complete_updates -= 1;
        return StatusCode::ACCEPTED.into_response();
    }
    l.finals.entry(id).or_default().push(body);
    StatusCode::OK.into_response()
}

async fn upload(
    State(lab): State<Shared>,
    UrlPath(id): UrlPath<i64>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let mut data = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("file") {
            data = field.bytes().await.expect("bytes").to_vec();
        }
    }
    let mut l = lab.lock().expect("lock");
    l.calls.push((format!("POST artifacts {id}"), json!(query)));
    if token_of(&headers) != format!("job-token-{id}") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    l.uploads.push((
        id,
        q("artifact_type"),
        q("artifact_format"),
        q("expire_in"),
        data,
    ));
    StatusCode::CREATED.into_response()
}

async fn download(
    State(lab): State<Shared>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
) -> Response {
    let mut l = lab.lock().expect("lock");
    l.calls.push((format!("GET artifacts {id}"), Value::Null));
    match l.served.get(&id) {
        Some((token, zip)) if *token == token_of(&headers) => zip.clone().into_response(),
        Some(_) => StatusCode::FORBIDDEN.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn crc32(data: &[u8]) -> u32 {
    // The reflected CRC-32 (IEEE), bit by bit: the fake checks the runner's checksum.
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

struct FakeGitLab {
    url: String,
    lab: Shared,
}

impl FakeGitLab {
    async fn start(lab: Lab) -> FakeGitLab {
        use axum::routing::{patch, post, put};
        let lab: Shared = Arc::new(Mutex::new(lab));
        let app = axum::Router::new()
            .route("/api/v4/runners/verify", post(verify))
            .route("/api/v4/jobs/request", post(request))
            .route("/api/v4/jobs/{id}/trace", patch(trace))
            .route("/api/v4/jobs/{id}", put(update))
            .route("/api/v4/jobs/{id}/artifacts", post(upload).get(download))
            .with_state(Arc::clone(&lab));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitLab { url, lab }
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository with `files`, served as a `file://` URL; its commit.
fn repository(dir: &Path, files: &[(&str, &str)]) -> (String, String) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("dir");
    git(&src, &["init", "-q", "-b", "main"]);
    for (name, text) in files {
        std::fs::write(src.join(name), text).expect("file");
    }
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "first"]);
    let sha = git(&src, &["rev-parse", "HEAD"]);
    let bare = dir.join("group/project.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().expect("utf-8"),
            bare.to_str().expect("utf-8"),
        ],
    );
    (format!("file://{}", bare.display()), sha)
}

fn variable(key: &str, value: &str) -> Variable {
    Variable {
        key: key.into(),
        value: value.into(),
        public: true,
        ..Variable::default()
    }
}

fn job(id: i64, url: &str, sha: &str, script: &[&str]) -> Job {
    Job {
        id,
        token: format!("job-token-{id}"),
        job_info: JobInfo {
            name: "test".into(),
            stage: "test".into(),
            project_full_path: "group/project".into(),
            ..JobInfo::default()
        },
        git_info: GitInfo {
            repo_url: url.into(),
            git_ref: "main".into(),
            sha: sha.into(),
            ref_type: "branch".into(),
            ..GitInfo::default()
        },
        runner_info: JobRunnerInfo { timeout: 600 },
        variables: vec![
            variable("CI_JOB_ID", &id.to_string()),
            variable("CI_PROJECT_DIR", "/builds/group/project"),
        ],
        steps: vec![
            JobStep {
                name: "script".into(),
                script: script.iter().map(|s| (*s).to_owned()).collect(),
                timeout: 600,
                when: "on_success".into(),
                ..JobStep::default()
            },
            JobStep {
                name: "after_script".into(),
                script: vec!["echo after-script-ran".into()],
                when: "always".into(),
                ..JobStep::default()
            },
        ],
        features: JobFeatures {
            failure_reasons: vec![
                "script_failure".into(),
                "job_canceled".into(),
                "runner_system_failure".into(),
            ],
        },
        ..Job::default()
    }
}

fn options(dir: &Path) -> DaemonOptions {
    let mut task = TaskOptions::new(dir.join("work"));
    task.report_interval = Duration::from_millis(100);
    task.retry_delay = Duration::from_millis(50);
    let mut o = DaemonOptions::new(task);
    o.fetch_interval = Duration::from_millis(50);
    o.fetch_interval_max = Duration::from_millis(200);
    o.fetch_timeout = Duration::from_secs(10);
    o
}

async fn serve(registration: &Registration, engine: Engine, options: DaemonOptions) {
    tokio::time::timeout(
        Duration::from_secs(120),
        run_daemon(
            registration,
            Arc::new(engine),
            options,
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the runner ends in time")
    .expect("the runner ends well");
}

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("zip");
        zip.write_all(text.as_bytes()).expect("zip");
    }
    zip.finish().expect("zip").into_inner()
}

fn unzip_names(data: &[u8]) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data)).expect("a zip");
    let mut names: Vec<String> = (0..archive.len())
        .map(|i| archive.by_index(i).expect("entry").name().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_job_runs_with_its_variables_dependencies_and_artifacts_and_ends_as_gitlab_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, sha) = repository(dir.path(), &[("app.txt", "the app")]);
    let mut j = job(
        31,
        &url,
        &sha,
        &[
            "echo \"repo: $(cat app.txt)\"",
            "echo \"dependency: $(cat built/version.txt)\"",
            "echo \"job $CI_JOB_ID, secret $DEPLOY_KEY, file $(cat \"$KUBE_CONFIG\")\"",
            "mkdir -p dist && echo bundle > dist/app.js && echo skip > dist/skip.map",
            "printf '<testsuite name=\"s\"><testcase name=\"t\"/></testsuite>' > junit.xml",
        ],
    );
    j.variables.push(Variable {
        masked: true,
        ..variable("DEPLOY_KEY", "hunter2-secret")
    });
    j.variables.push(Variable {
        file: true,
        ..variable("KUBE_CONFIG", "apiVersion: v1")
    });
    j.dependencies.push(Dependency {
        id: 30,
        token: "dependency-token".into(),
        name: "build".into(),
        artifacts_file: Some(ArtifactsFile {
            filename: "artifacts.zip".into(),
            size: 1,
        }),
    });
    j.artifacts = vec![
        Artifact {
            paths: vec!["dist".into()],
            exclude: vec!["dist/*.map".into()],
            when: "on_success".into(),
            artifact_type: "archive".into(),
            artifact_format: "zip".into(),
            expire_in: "1 week".into(),
            ..Artifact::default()
        },
        Artifact {
            paths: vec!["junit.xml".into()],
            when: "always".into(),
            artifact_type: "junit".into(),
            artifact_format: "gzip".into(),
            ..Artifact::default()
        },
    ];
    let mut served = HashMap::new();
    served.insert(
        30,
        (
            "dependency-token".to_owned(),
            zip_of(&[("built/version.txt", "1.4.2")]),
        ),
    );
    let gitlab = FakeGitLab::start(Lab {
        jobs: vec![j],
        served,
        refuse_first_patch: true,
        not_complete_updates: 2,
        ..Lab::default()
    })
    .await;

    assert!(register(&gitlab.url, "glrt-wrong")
        .await
        .expect_err("refused")
        .is_forbidden());
    let registration = register(&gitlab.url, RUNNER_TOKEN).await.expect("verified");
    let file = dir.path().join("gitlab-runner.json");
    registration.save(&file).expect("saved");
    assert_eq!(Registration::load(&file).expect("loads"), registration);

    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    serve(
        &registration,
        Engine::builder().build().await.expect("engine"),
        o,
    )
    .await;

    let l = gitlab.lab.lock().expect("lock");
    let text = String::from_utf8_lossy(&l.traces[&31]).into_owned();
    assert!(text.contains("repo: the app"), "{text}");
    assert!(text.contains("dependency: 1.4.2"), "{text}");
    assert!(
        text.contains("job 31, secret [MASKED], file apiVersion: v1")
            || text.contains("job 31, secret ***, file apiVersion: v1"),
        "{text}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("after-script-ran"), "{text}");
    assert!(text.contains("Job succeeded"), "{text}");
    let finals = &l.finals[&31];
    assert_eq!(finals.len(), 1, "one final state taken");
    assert_eq!(finals[0]["state"], "success");
    // Updates answered 202 were sent again.
    let final_puts = l
        .calls
        .iter()
        .filter(|(c, b)| c == "PUT job 31" && b["state"] == "success")
        .count();
    assert!(final_puts >= 3, "{final_puts}");
    // The refused first patch was sent again from GitLab's length.
    let patches: Vec<&Value> = l
        .calls
        .iter()
        .filter(|(c, _)| c == "PATCH trace 31")
        .map(|(_, b)| b)
        .collect();
    assert!(
        patches.len() >= 2 && patches[0]["range"] == patches[1]["range"],
        "{patches:?}"
    );
    // The dependency was fetched with its own token.
    assert!(l.calls.iter().any(|(c, _)| c == "GET artifacts 30"));
    let archive = l
        .uploads
        .iter()
        .find(|u| u.1 == "archive")
        .expect("an archive");
    assert_eq!((archive.2.as_str(), archive.3.as_str()), ("zip", "1 week"));
    assert_eq!(unzip_names(&archive.4), ["dist/app.js"]);
    let report = l.uploads.iter().find(|u| u.1 == "junit").expect("a report");
    assert_eq!(report.2, "gzip");
    let mut xml = String::new();
    flate2::read::GzDecoder::new(report.4.as_slice())
        .read_to_string(&mut xml)
        .expect("gzip");
    assert!(xml.contains("<testcase name=\"t\"/>"), "{xml}");
}

#[tokio::test]
async fn a_failing_script_reports_its_exit_code_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, sha) = repository(dir.path(), &[("a.txt", "a")]);
    let gitlab = FakeGitLab::start(Lab {
        jobs: vec![job(41, &url, &sha, &["echo going to fail", "exit 7"])],
        ..Lab::default()
    })
    .await;
    let registration = register(&gitlab.url, RUNNER_TOKEN).await.expect("verified");
    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    serve(
        &registration,
        Engine::builder().build().await.expect("engine"),
        o,
    )
    .await;
    let l = gitlab.lab.lock().expect("lock");
    let last = l.finals[&41].last().expect("a final state");
    assert_eq!(last["state"], "failed");
    assert_eq!(last["failure_reason"], "script_failure");
    assert_eq!(last["exit_code"], 7);
    let text = String::from_utf8_lossy(&l.traces[&41]).into_owned();
    assert!(
        text.contains("going to fail") && text.contains("after-script-ran"),
        "{text}"
    );
}

#[tokio::test]
async fn a_job_cancelled_in_gitlab_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, sha) = repository(dir.path(), &[("a.txt", "a")]);
    let gitlab = FakeGitLab::start(Lab {
        jobs: vec![job(
            51,
            &url,
            &sha,
            &["echo started-long-job", "sleep 60", "echo never-printed"],
        )],
        cancel_after_bytes: Some(1),
        ..Lab::default()
    })
    .await;
    let registration = register(&gitlab.url, RUNNER_TOKEN).await.expect("verified");
    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    let started = Instant::now();
    serve(
        &registration,
        Engine::builder().build().await.expect("engine"),
        o,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let l = gitlab.lab.lock().expect("lock");
    let text = String::from_utf8_lossy(&l.traces[&51]).into_owned();
    assert!(
        text.contains("Job was canceled in GitLab") && !text.contains("never-printed"),
        "{text}"
    );
    let last = l.finals[&51].last().expect("a final state");
    assert_eq!(
        (last["state"].as_str(), last["failure_reason"].as_str()),
        (Some("failed"), Some("job_canceled"))
    );
}

#[tokio::test]
async fn a_refused_token_stops_asking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gitlab = FakeGitLab::start(Lab::default()).await;
    let registration = Registration {
        url: gitlab.url.clone(),
        token: "glrt-revoked".into(),
        id: 1,
        system_id: "s_000000000000".into(),
    };
    let result = run_daemon(
        &registration,
        Arc::new(Engine::builder().build().await.expect("engine")),
        options(dir.path()),
        CancellationToken::new(),
    )
    .await;
    assert!(result.expect_err("refused").is_forbidden());
}

#[tokio::test]
async fn a_job_with_an_image_runs_in_docker() {
    const IMAGE: &str = "gantry-busybox:test";
    let here = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    let ready = match DockerExecutor::connect(IMAGE).await {
        Ok(d) => d.available().await.is_ok(),
        Err(_) => false,
    };
    if !(here && ready) {
        let why = format!("no docker daemon with {IMAGE}; run `.ci/services start`");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {why}"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, sha) = repository(dir.path(), &[("a.txt", "from the repository")]);
    let mut j = job(
        61,
        &url,
        &sha,
        &["echo \"in the image: $(busybox | head -1 | cut -c1-7), $(cat a.txt)\""],
    );
    j.image = Image {
        name: IMAGE.into(),
        ..Image::default()
    };
    let gitlab = FakeGitLab::start(Lab {
        jobs: vec![j],
        ..Lab::default()
    })
    .await;
    let registration = register(&gitlab.url, RUNNER_TOKEN).await.expect("verified");
    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    serve(
        &registration,
        Engine::builder().build().await.expect("engine"),
        o,
    )
    .await;
    let l = gitlab.lab.lock().expect("lock");
    let text = String::from_utf8_lossy(&l.traces[&61]).into_owned();
    assert_eq!(
        l.finals[&61].last().expect("final")["state"],
        "success",
        "{text}"
    );
    assert!(
        text.contains("in the image: BusyBox, from the repository"),
        "{text}"
    );
}
