//! Gantry as a Forgejo/Gitea runner against a fake forge on 127.0.0.1, written from the
//! runner.v1 protocol facts: Connect JSON, the runner headers, log rows kept by index (a
//! batch before the acknowledged index is not stored twice; a gap is refused by the ack),
//! outputs listed as received, a terminal result in `UpdateTask`'s answer for a cancelled
//! task. The fake records every request and can be told to fail: a dropped log batch, a 5xx
//! on `UpdateTask`, outputs acknowledged late, a task cancelled mid-run. Real jobs run on the
//! host (and in Docker when a daemon is here; skipped loudly without one, failing when
//! CI=true).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ci_engine::exec::{DockerExecutor, Executor};
use ci_engine::Engine;
use ci_forge::forgejo::proto::*;
use ci_forge::forgejo::{register, run_daemon, DaemonOptions, Registration, TaskOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const REGISTRATION_TOKEN: &str = "registration-token";
const RUNNER_UUID: &str = "5d4b2c1e-runner";
const RUNNER_TOKEN: &str = "runner-secret";

/// What the fake forge knows and how it misbehaves.
#[derive(Default)]
struct Forge {
    /// Every call: (procedure, body).
    calls: Vec<(String, Value)>,
    /// Tasks to hand out.
    tasks: Vec<Task>,
    /// Log rows received, by task.
    logs: std::collections::HashMap<i64, Vec<String>>,
    /// Whether the log is closed (`no_more`), by task.
    closed: std::collections::HashMap<i64, bool>,
    /// Outputs received, by task.
    outputs: std::collections::HashMap<i64, indexmap::IndexMap<String, String>>,
    /// The last state reported, by task.
    states: std::collections::HashMap<i64, TaskState>,
    // Faults.
    drop_log_batches: usize,
    fail_updates: usize,
    late_output_acks: usize,
    cancel_after_rows: Option<usize>,
}

type Shared = Arc<Mutex<Forge>>;

fn rpc_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

async fn rpc(
    State(forge): State<Shared>,
    UrlPath(method): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(header("connect-protocol-version"), "1", "Connect header");
    let mut f = forge.lock().expect("lock");
    f.calls.push((method.clone(), body.clone()));
    if method != "Register"
        && (header("x-runner-uuid") != RUNNER_UUID || header("x-runner-token") != RUNNER_TOKEN)
    {
        return rpc_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "unregistered runner",
        );
    }
    match method.as_str() {
        "Register" => {
            let request: RegisterRequest = serde_json::from_value(body).expect("RegisterRequest");
            if request.token != REGISTRATION_TOKEN {
                return rpc_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "runner registration token not found",
                );
            }
            Json(
                json!({"runner": {"id": "7", "uuid": RUNNER_UUID, "token": RUNNER_TOKEN,
                "name": request.name, "labels": request.labels}}),
            )
            .into_response()
        }
        "Declare" => Json(json!({"runner": {"id": "7", "uuid": RUNNER_UUID}})).into_response(),
        "FetchTask" => {
            let task = (!f.tasks.is_empty()).then(|| f.tasks.remove(0));
            Json(
                serde_json::to_value(FetchTaskResponse {
                    task,
                    tasks_version: 3,
                })
                .expect("JSON"),
            )
            .into_response()
        }
        "UpdateLog" => {
            let request: UpdateLogRequest = serde_json::from_value(body).expect("UpdateLogRequest");
            let have = f.logs.get(&request.task_id).map_or(0, Vec::len) as i64;
            if !request.rows.is_empty() && request.index == have && f.drop_log_batches > 0 {
                // Lost on the way: not stored, the ack stays where it was.
                f.drop_log_batches -= 1;
                return Json(json!({"ackIndex": have.to_string()})).into_response();
            }
            if f.closed.get(&request.task_id) == Some(&true) {
                return rpc_error(
                    StatusCode::CONFLICT,
                    "already_exists",
                    "log file has been archived",
                );
            }
            let log = f.logs.entry(request.task_id).or_default();
            if request.index <= have {
                let skip = (have - request.index) as usize;
                log.extend(request.rows.iter().skip(skip).map(|r| r.content.clone()));
            }
            let ack = log.len();
            if request.no_more && ack as i64 == request.index + request.rows.len() as i64 {
                f.closed.insert(request.task_id, true);
            }
            Json(json!({"ackIndex": ack.to_string()})).into_response()
        }
        "UpdateTask" => {
            if f.fail_updates > 0 {
                f.fail_updates -= 1;
                return rpc_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again");
            }
            let request: UpdateTaskRequest =
                serde_json::from_value(body).expect("UpdateTaskRequest");
            let mut state = request.state.expect("a state");
            let id = state.id;
            let got = f.outputs.entry(id).or_default();
            got.extend(request.outputs.clone());
            let mut sent: Vec<String> = got.keys().cloned().collect();
            if !request.outputs.is_empty() && f.late_output_acks > 0 {
                f.late_output_acks -= 1;
                sent.clear();
            }
            f.states.insert(id, state.clone());
            let rows = f.logs.get(&id).map_or(0, Vec::len);
            if f.cancel_after_rows.is_some_and(|n| rows >= n) {
                state.result = TaskResult::Cancelled;
            }
            Json(json!({"state": state, "sentOutputs": sent})).into_response()
        }
        other => rpc_error(
            StatusCode::NOT_FOUND,
            "unimplemented",
            &format!("no {other}"),
        ),
    }
}

struct FakeForge {
    url: String,
    state: Shared,
}

impl FakeForge {
    async fn start(forge: Forge) -> FakeForge {
        let state: Shared = Arc::new(Mutex::new(forge));
        let app = axum::Router::new()
            .route(
                "/api/actions/runner.v1.RunnerService/{method}",
                axum::routing::post(rpc),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeForge { url, state }
    }

    fn methods(&self) -> Vec<String> {
        let f = self.state.lock().expect("lock");
        f.calls.iter().map(|(m, _)| m.clone()).collect()
    }
}

fn task(id: i64, workflow: &str, context: Value) -> Task {
    Task {
        id,
        workflow_payload: workflow.as_bytes().to_vec(),
        context: context.as_object().cloned().unwrap_or_default(),
        ..Task::default()
    }
}

fn options(dir: &Path) -> DaemonOptions {
    let mut task = TaskOptions::new(dir);
    task.report_interval = Duration::from_millis(100);
    task.retry_delay = Duration::from_millis(50);
    let mut o = DaemonOptions::new(task);
    o.fetch_interval = Duration::from_millis(50);
    o.fetch_interval_max = Duration::from_millis(200);
    o.fetch_timeout = Duration::from_secs(10);
    o
}

async fn registered(forge: &FakeForge, labels: &[&str]) -> Registration {
    let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    register(&forge.url, REGISTRATION_TOKEN, "gantry-test", &labels)
        .await
        .expect("registered")
}

/// Runs the daemon until it took `tasks` tasks and they ended.
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
    .expect("the daemon ends in time")
    .expect("the daemon ends well");
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

const BUILD: &str = r#"name: ci
on: push
jobs:
  test:
    runs-on: linux
    needs: build
    outputs:
      answer: ${{ steps.compute.outputs.answer }}
    steps:
      - uses: actions/checkout@v4
      - id: compute
        run: |
          echo "from the repository: $(cat hello.txt)"
          echo "version from build: ${{ needs.build.outputs.version }} (${{ needs.build.result }})"
          echo "var: ${{ vars.REGION }}, secret: ${{ secrets.API_KEY }}"
          echo "answer=42" >> "$GITHUB_OUTPUT"
      - run: echo "second step on ${{ github.ref_name }} at ${{ github.sha }}"
      - run: echo "runner env $GITEA_ACTIONS $ACTIONS_RUNTIME_URL token $ACTIONS_RUNTIME_TOKEN"
"#;

#[tokio::test]
async fn a_registered_runner_runs_a_task_and_reports_it_as_the_forge_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The repository the forge serves, as server_url/owner/repo.git.
    let served = dir.path().join("forge");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("dir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("dir");
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("hello.txt"), "hello from git").expect("file");
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "first"]);
    let sha = git(&src, &["rev-parse", "HEAD"]);
    std::fs::create_dir_all(served.join("owner")).expect("dir");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().expect("utf-8"),
            served.join("owner/repo.git").to_str().expect("utf-8"),
        ],
    );

    let mut t = task(
        101,
        BUILD,
        json!({
            "event_name": "push",
            "event": {"ref": "refs/heads/main", "after": sha, "repository": {"full_name": "owner/repo"}},
            "sha": sha, "ref": "refs/heads/main", "repository": "owner/repo",
            "repository_owner": "owner", "actor": "alice", "token": "job-token-123",
            "server_url": format!("file://{}", served.display()),
            "gitea_runtime_token": "runtime-token-456",
        }),
    );
    t.secrets.insert("API_KEY".into(), "s3cr3t-value".into());
    t.vars.insert("REGION".into(), "eu-west".into());
    t.needs.insert(
        "build".into(),
        TaskNeed {
            outputs: [("version".to_owned(), "1.2.3".to_owned())]
                .into_iter()
                .collect(),
            result: TaskResult::Success,
        },
    );
    let forge = FakeForge::start(Forge {
        tasks: vec![t],
        ..Forge::default()
    })
    .await;

    assert!(
        register(&forge.url, "wrong", "x", &[]).await.is_err(),
        "a wrong registration token is refused"
    );
    let registration = registered(&forge, &["linux:host"]).await;
    let file = dir.path().join(".runner");
    registration.save(&file).expect("saved");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the credentials are the owner's only");
    }
    assert_eq!(Registration::load(&file).expect("loads"), registration);

    let engine = Engine::builder().build().await.expect("engine");
    let mut o = options(&work);
    o.max_tasks = Some(1);
    serve(&registration, engine, o).await;

    let f = forge.state.lock().expect("lock");
    let log = &f.logs[&101];
    let text = log.join("\n");
    assert!(
        text.contains("from the repository: hello from git"),
        "{text}"
    );
    assert!(
        text.contains("version from build: 1.2.3 (success)"),
        "{text}"
    );
    assert!(text.contains("var: eu-west, secret: ***"), "{text}");
    assert!(!text.contains("s3cr3t-value"), "secrets are masked: {text}");
    assert!(
        text.contains(&format!("second step on main at {sha}")),
        "{text}"
    );
    assert_eq!(f.closed.get(&101), Some(&true), "the log was closed");
    let state = &f.states[&101];
    assert_eq!(state.result, TaskResult::Success);
    assert!(state.stopped_at.is_some());
    assert_eq!(state.steps.len(), 4);
    for (i, step) in state.steps.iter().enumerate() {
        assert_eq!(step.result, TaskResult::Success, "step {i}");
        assert!(step.log_index as usize + step.log_length as usize <= log.len());
    }
    let compute = &state.steps[1];
    let rows = &log[compute.log_index as usize..(compute.log_index + compute.log_length) as usize];
    assert!(
        rows.iter().any(|r| r.contains("from the repository")),
        "{rows:?}"
    );
    assert!(!rows.iter().any(|r| r.contains("second step")), "{rows:?}");
    assert_eq!(
        f.outputs[&101].get("answer").map(String::as_str),
        Some("42")
    );
    // The sequence: register, declare, fetch, the state at once, … the closed log, then the
    // result.
    let methods: Vec<&str> = f.calls.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        &methods[..4],
        ["Register", "Register", "Declare", "FetchTask"]
    );
    assert_eq!(methods[4], "UpdateTask");
    let last_log = methods
        .iter()
        .rposition(|m| *m == "UpdateLog")
        .expect("logs");
    let (_, closing) = &f.calls[last_log];
    assert_eq!(closing["noMore"], true);
    assert_eq!(methods.last(), Some(&"UpdateTask"));
    assert_eq!(
        f.calls.last().expect("calls").1["state"]["result"],
        "RESULT_SUCCESS"
    );
}

#[tokio::test]
async fn lost_log_batches_failed_updates_and_late_output_acks_are_recovered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = r#"on: push
jobs:
  chatty:
    runs-on: linux
    outputs:
      a: ${{ steps.s.outputs.a }}
      b: ${{ steps.s.outputs.b }}
    steps:
      - id: s
        run: |
          for i in $(seq 1 30); do echo "line $i"; sleep 0.02; done
          echo "a=1" >> "$GITHUB_OUTPUT"
          echo "b=2" >> "$GITHUB_OUTPUT"
"#;
    let forge = FakeForge::start(Forge {
        tasks: vec![task(202, workflow, json!({"event_name": "push"}))],
        drop_log_batches: 2,
        fail_updates: 2,
        late_output_acks: 2,
        ..Forge::default()
    })
    .await;
    let registration = registered(&forge, &["linux"]).await;
    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    serve(
        &registration,
        Engine::builder().build().await.expect("engine"),
        o,
    )
    .await;
    let f = forge.state.lock().expect("lock");
    let lines: Vec<&String> = f.logs[&202]
        .iter()
        .filter(|l| l.starts_with("line "))
        .collect();
    let want: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(
        lines,
        want.iter().collect::<Vec<_>>(),
        "every row once, in order"
    );
    assert_eq!(f.closed.get(&202), Some(&true));
    assert_eq!(f.states[&202].result, TaskResult::Success);
    let outputs = &f.outputs[&202];
    assert_eq!((outputs["a"].as_str(), outputs["b"].as_str()), ("1", "2"));
    // Outputs were sent again until the forge listed them.
    let with_outputs = f
        .calls
        .iter()
        .filter(|(m, b)| {
            m == "UpdateTask" && b["outputs"].as_object().is_some_and(|o| !o.is_empty())
        })
        .count();
    assert!(with_outputs >= 3, "outputs sent {with_outputs} times");
}

#[tokio::test]
async fn a_task_the_forge_cancels_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = "on: push\njobs:\n  long:\n    runs-on: linux\n    steps:\n      - run: echo started; sleep 60; echo never-printed\n";
    let forge = FakeForge::start(Forge {
        tasks: vec![task(303, workflow, json!({"event_name": "push"}))],
        cancel_after_rows: Some(1),
        ..Forge::default()
    })
    .await;
    let registration = registered(&forge, &["linux"]).await;
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
    let f = forge.state.lock().expect("lock");
    assert_eq!(f.states[&303].result, TaskResult::Cancelled);
    let text = f.logs[&303].join("\n");
    assert!(
        text.contains("started") && !text.contains("never-printed"),
        "{text}"
    );
    assert!(text.contains("The forge ended the task"), "{text}");
}

#[tokio::test]
async fn a_deleted_runner_stops_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let forge = FakeForge::start(Forge::default()).await;
    let mut registration = registered(&forge, &["linux"]).await;
    registration.token = "revoked".into();
    let result = run_daemon(
        &registration,
        Arc::new(Engine::builder().build().await.expect("engine")),
        options(dir.path()),
        CancellationToken::new(),
    )
    .await;
    assert!(result.expect_err("refused").is_unauthenticated());
    assert_eq!(forge.methods(), ["Register", "Declare"]);
}

#[tokio::test]
async fn a_broken_payload_fails_the_task_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let forge = FakeForge::start(Forge {
        tasks: vec![task(404, "jobs: [not, a, map", json!({}))],
        ..Forge::default()
    })
    .await;
    let registration = registered(&forge, &["linux"]).await;
    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    serve(
        &registration,
        Engine::builder().build().await.expect("engine"),
        o,
    )
    .await;
    let f = forge.state.lock().expect("lock");
    assert_eq!(f.states[&404].result, TaskResult::Failure);
    assert!(
        f.logs[&404].iter().any(|l| l.contains("workflow payload")),
        "{:?}",
        f.logs[&404]
    );
}

/// A label mapped to Docker: the job's steps run in the image.
#[tokio::test]
async fn a_docker_label_runs_the_task_in_its_image() {
    const IMAGE: &str = "gantry-busybox:test";
    let docker = match DockerExecutor::connect(IMAGE).await {
        Ok(d) if d.available().await.is_ok() && image_here(IMAGE) => d,
        _ => {
            let why = format!("no docker daemon with {IMAGE}; run `.ci/services start`");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and {why}"
            );
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = "on: push\njobs:\n  boxed:\n    runs-on: box\n    steps:\n      - run: |\n          echo \"busybox: $(busybox | head -1 | cut -c1-7)\"\n";
    let forge = FakeForge::start(Forge {
        tasks: vec![task(505, workflow, json!({"event_name": "push"}))],
        ..Forge::default()
    })
    .await;
    let registration = registered(&forge, &["box:docker://gantry-busybox:test"]).await;
    let engine = Engine::builder()
        .executor("box", Arc::new(docker))
        .build()
        .await
        .expect("engine");
    let mut o = options(dir.path());
    o.max_tasks = Some(1);
    serve(&registration, engine, o).await;
    let f = forge.state.lock().expect("lock");
    assert_eq!(
        f.states[&505].result,
        TaskResult::Success,
        "{:?}",
        f.logs.get(&505)
    );
    let text = f.logs[&505].join("\n");
    assert!(text.contains("busybox: BusyBox"), "{text}");
}

fn image_here(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success())
}
