//! HTTP: webhooks (`POST /hooks/{forge}`), the JSON API under `/api`, live logs over
//! Server-Sent Events, the OpenAPI document and the web UI.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ci_engine::store::queue::{NewJob, QueueState};
use ci_engine::store::runs::{RunFilter, Status as Stored};
use ci_engine::vcs::webhook::{self, Delivery, WebhookConfig};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{now_ms, AppState};
use crate::work::{Received, Requested, Trigger, Work, INTAKE};

/// An API error: a status and a message, as JSON.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        tracing::warn!("request failed: {e}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Every route.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body;
    let api = Router::new()
        .route("/runs", get(list_runs).post(manual_run))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/rerun", post(rerun))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/graph.svg", get(graph))
        .route("/runs/{id}/artifacts", get(artifacts))
        .route(
            "/runs/{id}/artifacts/{name}/files/{*path}",
            get(artifact_file),
        )
        .route("/runs/{id}/jobs/{job}/tests", get(test_results))
        .route("/runs/{id}/jobs/{job}/log", get(job_log))
        .route("/runs/{id}/jobs/{job}/live", get(live_log))
        .route("/queue", get(queue_state))
        .route("/openapi.json", get(openapi))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/hooks/{forge}", post(hook))
        .route("/healthz", get(|| async { "ok" }))
        .nest("/api", api)
        .merge(crate::ui::routes())
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

fn same_secret(a: &str, b: &str) -> bool {
    // Length is not secret; the bytes are compared without an early exit.
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Bearer tokens (read or admin scope; changes need admin, reads need either unless
/// anonymous reading is on) and the per-client rate limit.
async fn guard(
    State(state): State<AppState>,
    ConnectInfo(crate::tls::ClientAddr(addr)): ConnectInfo<crate::tls::ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.config.rate_limit_per_minute;
    if limit > 0 {
        let minute = now_ms() / 60_000;
        let mut rate = state.rate.lock().expect("never poisoned");
        if rate.0 != minute {
            *rate = (minute, Default::default());
        }
        let n = rate.1.entry(addr.ip()).or_default();
        *n += 1;
        if *n > limit {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("more than {limit} requests this minute"),
            )
            .into_response();
        }
    }
    // A browser's EventSource cannot send headers: reads also take `?access_token=`.
    let from_query = (request.method() == axum::http::Method::GET)
        .then(|| {
            request.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token="))
                    .map(str::to_owned)
            })
        })
        .flatten();
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned())
        .or(from_query);
    let given = given.as_deref();
    let token = |var: &Option<String>| var.as_ref().and_then(|v| std::env::var(v).ok());
    let admin = token(&state.config.tokens.admin_env);
    let read = token(&state.config.tokens.read_env);
    let is = |t: &Option<String>| matches!((t, given), (Some(t), Some(g)) if same_secret(t, g));
    let mutating = request.method() != axum::http::Method::GET;
    let allowed = if mutating {
        is(&admin)
    } else {
        is(&admin) || is(&read) || state.config.tokens.anonymous_read
    };
    if !allowed {
        let message = if given.is_none() {
            "a bearer token is needed"
        } else if mutating {
            "this needs the admin token"
        } else {
            "the token is not valid"
        };
        return ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    }
    next.run(request).await
}

/// The delivery id header of each forge.
fn delivery_id(forge: &str, headers: &HeaderMap, body: &[u8]) -> String {
    let names: &[&str] = match forge {
        "github" => &["x-github-delivery"],
        "gitlab" => &["x-gitlab-event-uuid", "x-gitlab-webhook-uuid"],
        "gitea" => &["x-gitea-delivery"],
        _ => &["x-forgejo-delivery", "x-gitea-delivery"],
    };
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            // No id: the body's digest, so that a resent body is still a duplicate.
            use sha2::{Digest, Sha256};
            format!("sha256:{}", hex::encode(Sha256::digest(body)))
        })
}

/// `POST /hooks/{forge}`: verified, durably recorded, answered 202; processed by a worker.
async fn hook(
    State(state): State<AppState>,
    Path(forge): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(config) = state.config.forge(&forge) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no forge '{forge}' is configured"),
        ));
    };
    let kind = crate::config::forge_kind(&forge)?;
    let secret = match &config.secret_env {
        Some(var) => Some(crate::config::env_value(var)?.into_bytes()),
        None => None,
    };
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let checked = webhook::parse(
        kind,
        &borrowed,
        &body,
        &WebhookConfig {
            secret,
            max_body: state.config.max_body,
        },
    );
    match checked {
        Ok(Delivery::Ping) => return Ok((StatusCode::OK, Json(json!({ "ping": "pong" })))),
        Ok(_) => {}
        Err(webhook::WebhookError::Unsupported(event)) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "ignored": format!("event '{event}' starts no run") })),
            ))
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return Err(ApiError::new(status, e.to_string()));
        }
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    let delivery = delivery_id(&forge, &headers, &body);
    // The headers the parser reads again later (signatures are not kept).
    let keep: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.ends_with("-event") || k.ends_with("-delivery") || k == "content-type"
        })
        .collect();
    let received = Received {
        forge: forge.clone(),
        delivery: delivery.clone(),
        headers: keep,
        body: text,
    };
    let queue_id = format!("delivery:{forge}:{delivery}");
    let job = NewJob::new(
        &queue_id,
        format!("{forge}:deliveries"),
        serde_json::to_string(&Work::Delivery(received))?,
    )
    .label(INTAKE)
    .priority(100)
    .retries(state.config.retries);
    let fresh = state.queue.enqueue(&job, now_ms()).await?;
    state.wake.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "delivery": delivery, "duplicate": !fresh })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualBody {
    repo: String,
    #[serde(rename = "ref", default = "main_branch")]
    git_ref: String,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    inputs: indexmap::IndexMap<String, String>,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    forge: Option<String>,
}

fn main_branch() -> String {
    "main".into()
}

/// `POST /api/runs`: a manual run of a project at a ref (GitHub: the workflows with
/// `workflow_dispatch`, with `inputs`), queued like a delivery.
async fn manual_run(
    State(state): State<AppState>,
    Json(body): Json<ManualBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = state.config.project(&body.repo);
    let clone_url = body.clone_url.or(project.clone_url).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "no clone_url for {} (give one, or configure the project)",
                body.repo
            ),
        )
    })?;
    let forge = body
        .forge
        .or(project.forge)
        .unwrap_or_else(|| "github".into());
    crate::config::forge_kind(&forge)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let request = Requested {
        forge,
        repo: body.repo.clone(),
        clone_url,
        workflow: body.workflow,
        trigger: Trigger::Manual {
            git_ref: body.git_ref,
            inputs: body.inputs,
            actor: "api".into(),
        },
    };
    let id = format!(
        "manual:{}:{}",
        now_ms(),
        crate::work::run_id_for(&body.repo, &format!("{:?}", std::time::Instant::now()))
    );
    let job = NewJob::new(
        &id,
        format!("{}:manual", body.repo),
        serde_json::to_string(&Work::Request(request))?,
    )
    .label(INTAKE)
    .priority(100)
    .retries(state.config.retries);
    state.queue.enqueue(&job, now_ms()).await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(json!({ "request": id }))))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    repo: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<i64>,
}

fn parse_status(s: &str) -> Option<Stored> {
    Some(match s {
        "queued" => Stored::Queued,
        "running" => Stored::Running,
        "success" => Stored::Success,
        "failure" => Stored::Failure,
        "cancelled" => Stored::Cancelled,
        "skipped" => Stored::Skipped,
        _ => return None,
    })
}

fn run_json(r: &ci_engine::store::runs::RunRecord) -> Value {
    json!({
        "id": r.run.id,
        "number": r.seq,
        "repo": r.run.repo,
        "ref": r.run.git_ref,
        "sha": r.run.sha,
        "event": r.run.event,
        "workflow": r.run.workflow,
        "status": r.status.as_str(),
        "created_at": r.run.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    })
}

/// `GET /api/runs`: newest first, filtered, with a cursor.
async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let status = match q.status.as_deref() {
        Some(s) => Some(parse_status(s).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("unknown status '{s}'"))
        })?),
        None => None,
    };
    let filter = RunFilter {
        repo: q.repo,
        git_ref: q.git_ref,
        status,
    };
    let page = state
        .runs
        .list_runs(&filter, q.limit.unwrap_or(50).clamp(1, 200), q.cursor)
        .await?;
    Ok(Json(json!({
        "runs": page.runs.iter().map(run_json).collect::<Vec<_>>(),
        "next": page.next,
    })))
}

/// The queue ids of a run: the first, then one per rerun (`{run}.2`, `{run}.3`…).
async fn queue_ids(
    state: &AppState,
    run_id: &str,
) -> ApiResult<Vec<ci_engine::store::queue::QueuedJob>> {
    let mut out = Vec::new();
    let mut n = 1;
    loop {
        let id = if n == 1 {
            run_id.to_owned()
        } else {
            format!("{run_id}.{n}")
        };
        match state.queue.get(&id).await? {
            Some(job) => out.push(job),
            None => break,
        }
        n += 1;
    }
    Ok(out)
}

/// `GET /api/runs/{id}`: the run, its jobs and steps, where it is in the queue (and why it
/// waits), and problems that belong to no job.
async fn get_run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let details = state
        .runs
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run '{id}'")))?;
    let attempts = queue_ids(&state, &id).await?;
    let queue = match attempts.last() {
        Some(job) => {
            let reason = if job.state == QueueState::Queued {
                state
                    .queue
                    .waiting(now_ms())
                    .await?
                    .into_iter()
                    .find(|w| w.job.id == job.id)
                    .map(|w| w.reason)
            } else {
                None
            };
            json!({
                "id": job.id,
                "state": job.state.as_str(),
                "outcome": job.outcome.map(|o| o.as_str()),
                "attempt": job.attempt,
                "lost": job.lost,
                "worker": job.worker,
                "note": job.note,
                "waiting_because": reason,
            })
        }
        None => Value::Null,
    };
    let jobs: Vec<Value> = details
        .jobs
        .iter()
        .map(|(j, steps)| {
            json!({
                "id": j.job_id,
                "name": j.name,
                "status": j.status.as_str(),
                "attempt": j.attempt,
                "started_at": j.started_at,
                "finished_at": j.finished_at,
                "outputs": j.outputs,
                "log_key": ci_engine::job_log_key(&j.job_id, j.attempt.max(1) as u32),
                "steps": steps.iter().map(|s| json!({
                    "index": s.index,
                    "name": s.name,
                    "status": s.status.as_str(),
                    "started_at": s.started_at,
                    "finished_at": s.finished_at,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "run": run_json(&details.run),
        "jobs": jobs,
        "artifacts": details.artifacts.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "queue": queue,
        "errors": state.errors(&id).await,
    })))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    attempt: Option<u32>,
    offset: Option<u64>,
}

async fn current_attempt(state: &AppState, run: &str, job: &str) -> ApiResult<(u32, Stored)> {
    let details = state
        .runs
        .get_run(run)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run '{run}'")))?;
    let (record, _) = details
        .jobs
        .iter()
        .find(|(j, _)| j.job_id == job)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no job '{job}' in run '{run}'"),
            )
        })?;
    Ok((record.attempt.max(1) as u32, record.status))
}

/// `GET /api/runs/{id}/jobs/{job}/log`: the log so far (from `offset`), as text.
async fn job_log(
    State(state): State<AppState>,
    Path((run, job)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let attempt = match q.attempt {
        Some(a) => a,
        None => current_attempt(&state, &run, &job).await?.0,
    };
    let reader = ci_engine::job_log(&state.blobs, &run, &ci_engine::job_log_key(&job, attempt));
    let data = reader.read_bytes(q.offset.unwrap_or(0)..u64::MAX).await?;
    Ok(([("content-type", "text/plain; charset=utf-8")], data).into_response())
}

/// `GET /api/runs/{id}/jobs/{job}/live`: the log as Server-Sent Events. Each `log` event
/// carries whole lines and has the byte offset after them as its id, so a reconnecting
/// client (`Last-Event-ID`) continues where it stopped; `end` closes the stream when the
/// job has ended; a comment keeps idle connections open.
async fn live_log(
    State(state): State<AppState>,
    Path((run, job)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>> {
    let (attempt, _) = current_attempt(&state, &run, &job).await?;
    let attempt = q.attempt.unwrap_or(attempt);
    let offset = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(q.offset)
        .unwrap_or(0);
    let reader = ci_engine::job_log(&state.blobs, &run, &ci_engine::job_log_key(&job, attempt));
    struct Follow {
        state: AppState,
        reader: ci_engine::store::logs::LogReader,
        run: String,
        job: String,
        attempt: u32,
        offset: u64,
        done: bool,
        first: bool,
    }
    let start = Follow {
        state,
        reader,
        run,
        job,
        attempt,
        offset,
        done: false,
        first: true,
    };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            if !f.first {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            f.first = false;
            // Whether the job has ended is read before the log, so nothing written before
            // the end is missed.
            // An attempt ended when the job did, or when a later attempt started (its
            // worker was lost, or the job was run again).
            let ended = match current_attempt(&f.state, &f.run, &f.job).await {
                Ok((current, status)) => {
                    current > f.attempt || !matches!(status, Stored::Queued | Stored::Running)
                }
                Err(_) => true,
            };
            let (data, finished) = match f.reader.poll(f.offset).await {
                Ok(x) => x,
                Err(e) => {
                    f.done = true;
                    let event = SseEvent::default().event("error").data(e.to_string());
                    return Some((Ok(event), f));
                }
            };
            let complete = finished || ended;
            // Whole lines only, unless the log is complete.
            let upto = if complete {
                data.len()
            } else {
                data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
            };
            if upto > 0 {
                f.offset += upto as u64;
                let text = String::from_utf8_lossy(&data[..upto]);
                let event = SseEvent::default()
                    .event("log")
                    .id(f.offset.to_string())
                    .data(text.strip_suffix('\n').unwrap_or(&text));
                return Some((Ok(event), f));
            }
            if complete {
                f.done = true;
                let event = SseEvent::default()
                    .event("end")
                    .id(f.offset.to_string())
                    .data("end");
                return Some((Ok(event), f));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(10))
            .text("keep-alive"),
    ))
}

/// `POST /api/runs/{id}/cancel`: the run's queued or running attempt is cancelled.
async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let attempts = queue_ids(&state, &id).await?;
    let Some(job) = attempts.last() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run '{id}'"),
        ));
    };
    let cancelled = state.queue.cancel(&job.id, now_ms()).await?;
    if cancelled && job.state == QueueState::Queued {
        state
            .runs
            .set_run_status(&id, Stored::Cancelled, None, Some(now_ms()))
            .await?;
    }
    Ok(Json(json!({ "cancelled": cancelled })))
}

#[derive(Debug, Default, Deserialize)]
struct RerunBody {
    /// Jobs to run again (with what needs them).
    #[serde(default)]
    jobs: Vec<String>,
    /// Run the failed and cancelled jobs again.
    #[serde(default)]
    failed: bool,
}

/// Queues another attempt of a run: all of it, its failed jobs, or named jobs.
async fn again(
    state: &AppState,
    id: &str,
    rerun: Vec<String>,
    manual: Vec<String>,
) -> ApiResult<String> {
    let mut attempts = queue_ids(state, id).await?;
    // A worker records the run's end, then completes its lease: a run that has just ended
    // may still be leased for a moment.
    let ended = state.runs.get_run(id).await?.is_some_and(|d| {
        matches!(
            d.run.status,
            Stored::Success | Stored::Failure | Stored::Cancelled | Stored::Skipped
        )
    });
    for _ in 0..50 {
        match attempts.last() {
            Some(last) if ended && last.state == QueueState::Leased => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                attempts = queue_ids(state, id).await?;
            }
            _ => break,
        }
    }
    let Some(first) = attempts.first() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run '{id}'"),
        ));
    };
    if let Some(last) = attempts.last() {
        if last.state != QueueState::Done {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("run '{id}' is still {}", last.state.as_str()),
            ));
        }
    }
    let Work::Run(mut work) = serde_json::from_str::<Work>(&first.payload)? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("'{id}' is not a run"),
        ));
    };
    work.rerun = rerun;
    work.manual = manual;
    let queue_id = format!("{id}.{}", attempts.len() + 1);
    state
        .runs
        .set_run_status(id, Stored::Queued, None, None)
        .await?;
    state.enqueue_run(&queue_id, &work).await?;
    state.wake.notify_waiters();
    Ok(queue_id)
}

/// `POST /api/runs/{id}/rerun` (`{"failed": true}`, `{"jobs": ["build"]}`, or `{}` for all).
async fn rerun(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<RerunBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let details = state
        .runs
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run '{id}'")))?;
    let jobs: Vec<String> = if body.failed {
        details
            .jobs
            .iter()
            .filter(|(j, _)| matches!(j.status, Stored::Failure | Stored::Cancelled))
            .map(|(j, _)| j.job_id.clone())
            .collect()
    } else if body.jobs.is_empty() {
        details.jobs.iter().map(|(j, _)| j.job_id.clone()).collect()
    } else {
        for j in &body.jobs {
            if !details.jobs.iter().any(|(r, _)| r.job_id == *j) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("no job '{j}' in run '{id}'"),
                ));
            }
        }
        body.jobs
    };
    if jobs.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no job to run again",
        ));
    }
    let queued = again(&state, &id, jobs.clone(), Vec::new()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": queued, "jobs": jobs })),
    ))
}

#[derive(Debug, Deserialize)]
struct ApproveBody {
    job: String,
}

/// `POST /api/runs/{id}/approve` (`{"job": "deploy"}`): plays a manual job (GitLab
/// `when: manual`, a CircleCI approval) in another attempt of the run.
async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ApproveBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let queued = again(&state, &id, vec![body.job.clone()], vec![body.job]).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": queued }))))
}

/// `GET /api/runs/{id}/graph.svg`: the run's jobs as a picture, coloured by status, the
/// critical path (by the jobs' durations) drawn thicker.
async fn graph(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    use ci_engine::graph::export::{to_svg, SvgStyle};
    let details = state
        .runs
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run '{id}'")))?;
    let (path, text) = state.source(&id).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run '{id}' has no CI file kept"),
        )
    })?;
    let parsed = ci_engine::config::load(&path, &text, &ci_engine::config::LoadOptions::default());
    let failed = parsed.has_errors();
    let workflow = parsed
        .value
        .filter(|_| !failed)
        .and_then(|l| l.workflows.into_iter().next())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("{path} cannot be drawn")))?;
    let plan = ci_engine::graph::Plan::new(&workflow, &ci_engine::graph::RunFacts::default())
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("{path} cannot be planned")))?;
    let mut style = SvgStyle::default();
    for (job, _) in &details.jobs {
        style
            .statuses
            .insert(job.job_id.clone(), job.status.as_str().to_owned());
        if let Some(a) = job.started_at {
            let b = job.finished_at.unwrap_or_else(now_ms);
            style
                .durations
                .insert(job.job_id.clone(), (b - a).max(1) as f64);
        }
    }
    Ok((
        [
            ("content-type", "image/svg+xml"),
            ("cache-control", "no-store"),
        ],
        to_svg(&plan, &style),
    )
        .into_response())
}

/// `GET /api/runs/{id}/artifacts`: each artifact with its files and sizes.
async fn artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    use ci_engine::store::artifacts;
    if state.runs.get_run(&id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run '{id}'"),
        ));
    }
    let mut out = Vec::new();
    for name in artifacts::list(&state.blobs, &id).await? {
        let m = artifacts::manifest(&state.blobs, &id, &name).await?;
        out.push(json!({
            "name": m.name,
            "expires_at": m.expires_at,
            "files": m.entries.iter().map(|e| json!({ "path": e.path, "size": e.size, "sha256": e.sha256 })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({ "artifacts": out })))
}

/// `GET /api/runs/{id}/artifacts/{name}/files/{path}`: one file, as stored (paths outside
/// the artifact are refused; only the manifest's paths exist).
async fn artifact_file(
    State(state): State<AppState>,
    Path((id, name, path)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    use ci_engine::store::StoreError;
    match ci_engine::store::artifacts::read_file(&state.blobs, &id, &name, &path).await {
        Ok(data) => {
            let file = path.rsplit('/').next().unwrap_or("file").replace('"', "");
            Ok((
                [
                    ("content-type", "application/octet-stream".to_owned()),
                    (
                        "content-disposition",
                        format!("attachment; filename=\"{file}\""),
                    ),
                ],
                data,
            )
                .into_response())
        }
        Err(StoreError::UnsafePath(p)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("refused path {p}"),
        )),
        Err(StoreError::NotFound(what)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no {what}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/runs/{id}/jobs/{job}/tests`: the job's test results (JUnit reports).
async fn test_results(
    State(state): State<AppState>,
    Path((id, job)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    match ci_engine::job_test_results(&state.blobs, &id, &job).await? {
        Some(results) => Ok(Json(serde_json::to_value(results)?)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("job '{job}' of run '{id}' kept no test results"),
        )),
    }
}

/// `GET /api/queue`: what waits (and why) and what runs where.
async fn queue_state(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let waiting = state.queue.waiting(now_ms()).await?;
    let leased = state.queue.leased().await?;
    let capacity = state.queue.capacities().await?;
    Ok(Json(json!({
        "waiting": waiting.iter().map(|w| json!({
            "id": w.job.id, "project": w.job.project, "labels": w.job.labels, "reason": w.reason,
            "enqueued_at": w.job.enqueued_at,
        })).collect::<Vec<_>>(),
        "running": leased.iter().map(|j| json!({
            "id": j.id, "project": j.project, "labels": j.labels, "worker": j.worker, "attempt": j.attempt,
        })).collect::<Vec<_>>(),
        "agents": state.hub.agents(),
        "capacity": capacity.iter().map(|(scope, n)| match scope {
            ci_engine::store::queue::Scope::Label(l) => json!({ "label": l, "slots": n }),
            ci_engine::store::queue::Scope::Project(p) => json!({ "project": p, "slots": n }),
        }).collect::<Vec<_>>(),
    })))
}

/// `GET /api/openapi.json`.
async fn openapi() -> impl IntoResponse {
    (
        [("content-type", "application/json")],
        include_str!("../assets/openapi.json"),
    )
}
