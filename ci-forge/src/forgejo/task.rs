//! One task of a forge, run through the Gantry engine and reported as the reference runners
//! do: the state at once and then every report interval (a heartbeat), log rows by index
//! advanced by what the forge acknowledges (a lost batch is sent again), outputs until the
//! forge lists them as received, a terminal result in the forge's answer taken as
//! cancellation; at the end the final log (`no_more`), then the result, each retried.

use std::collections::HashSet;
use std::path::PathBuf;

use ci_engine::vcs::mirror::Mirrors;
use ci_engine::vcs::{EventKind, RepositoryInfo};
use ci_engine::{Engine, EngineError, RunEvent, RunOptions, Source, Status};
use indexmap::IndexMap;
use serde_json::{json, Value};

use super::client::Client;
use super::proto::*;
use crate::TaskOptions;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn result_of(status: Status) -> TaskResult {
    match status {
        Status::Success => TaskResult::Success,
        Status::Failure => TaskResult::Failure,
        Status::Cancelled => TaskResult::Cancelled,
        Status::Skipped => TaskResult::Skipped,
        _ => TaskResult::Failure,
    }
}

fn status_of(result: TaskResult) -> Status {
    match result {
        TaskResult::Success => Status::Success,
        TaskResult::Cancelled => Status::Cancelled,
        TaskResult::Skipped => Status::Skipped,
        TaskResult::Failure | TaskResult::Unspecified => Status::Failure,
    }
}

/// What the forge has been told, and what it still needs to be told.
struct Report {
    state: TaskState,
    rows: Vec<LogRow>,
    /// Rows before this index are acknowledged.
    acked: usize,
    outputs: IndexMap<String, String>,
    sent_outputs: HashSet<String>,
    /// The forge ended the task (a terminal result in its answer).
    ended_by_forge: bool,
}

impl Report {
    fn new(id: i64, steps: usize) -> Report {
        Report {
            state: TaskState {
                id,
                started_at: Some(now()),
                steps: (0..steps)
                    .map(|i| StepState {
                        id: i as i64,
                        ..StepState::default()
                    })
                    .collect(),
                ..TaskState::default()
            },
            rows: Vec::new(),
            acked: 0,
            outputs: IndexMap::new(),
            sent_outputs: HashSet::new(),
            ended_by_forge: false,
        }
    }

    fn line(&mut self, step: Option<usize>, content: String) {
        self.rows.push(LogRow {
            time: now(),
            content,
        });
        if let Some(s) = step.and_then(|i| self.state.steps.get_mut(i)) {
            s.log_length = self.rows.len() as i64 - s.log_index;
        }
    }

    /// Sends the rows not acknowledged yet; advances by the forge's acknowledgement.
    async fn send_log(&mut self, client: &Client, no_more: bool) -> Result<(), String> {
        let request = UpdateLogRequest {
            task_id: self.state.id,
            index: self.acked as i64,
            rows: self.rows[self.acked..].to_vec(),
            no_more,
        };
        let answer = client
            .update_log(&request)
            .await
            .map_err(|e| e.to_string())?;
        let ack = usize::try_from(answer.ack_index.max(0)).unwrap_or(0);
        if ack < self.acked {
            tracing::warn!(
                task = self.state.id,
                ack,
                had = self.acked,
                "the forge lost log rows: sending them again"
            );
        }
        self.acked = ack.min(self.rows.len());
        if no_more && self.acked < self.rows.len() {
            return Err(format!(
                "the forge acknowledged {} of {} log rows",
                self.acked,
                self.rows.len()
            ));
        }
        Ok(())
    }

    /// Sends the state and the outputs the forge has not listed as received.
    async fn send_state(&mut self, client: &Client) -> Result<(), String> {
        let outputs = self
            .outputs
            .iter()
            .filter(|(k, _)| !self.sent_outputs.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let answer = client
            .update_task(&UpdateTaskRequest {
                state: Some(self.state.clone()),
                outputs,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.sent_outputs.extend(answer.sent_outputs);
        if answer.state.is_some_and(|s| s.result.is_terminal()) && !self.state.result.is_terminal()
        {
            self.ended_by_forge = true;
        }
        Ok(())
    }

    fn outputs_pending(&self) -> bool {
        self.outputs.keys().any(|k| !self.sent_outputs.contains(k))
    }
}

/// What a task's payload and context make: the workflow to run, its job, its step count,
/// the event.
struct Prepared {
    text: String,
    job: String,
    steps: usize,
}

/// The task's workflow as JSON text (YAML's subset): its one job, and a stand-in for each job
/// it needs (their results come with the task).
fn prepare(task: &Task) -> Result<Prepared, String> {
    let text = String::from_utf8(task.workflow_payload.clone())
        .map_err(|_| "the workflow payload is not UTF-8".to_owned())?;
    let (docs, diagnostics) = ci_engine::config::yaml::load(
        "workflow.yml",
        &text,
        &ci_engine::config::yaml::LoadOptions::default(),
    );
    if let Some(d) = diagnostics.iter().find(|d| d.is_error()) {
        return Err(format!("the workflow payload: {}", d.message));
    }
    let mut workflow = docs
        .first()
        .map(|d| d.to_json())
        .ok_or("the workflow payload is empty")?;
    let jobs = workflow
        .get_mut("jobs")
        .and_then(Value::as_object_mut)
        .ok_or("the workflow payload has no jobs")?;
    let (job, body) = jobs
        .iter()
        .next()
        .ok_or("the workflow payload has no job")?;
    let job = job.clone();
    let steps = body
        .get("steps")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let runner_env = runner_env(task);
    for need in task.needs.keys() {
        if !jobs.contains_key(need) {
            jobs.insert(
                need.clone(),
                json!({"runs-on": "gantry-given-result", "steps": [{"run": "true"}]}),
            );
        }
    }
    // What the reference runners give every job: the forge's artifact service and tokens
    // (the workflow's own `env` wins).
    if let Some(root) = workflow.as_object_mut() {
        let env = root.entry("env").or_insert_with(|| json!({}));
        if let Some(env) = env.as_object_mut() {
            for (k, v) in runner_env {
                env.entry(k).or_insert(Value::String(v));
            }
        }
    }
    Ok(Prepared {
        text: serde_json::to_string_pretty(&workflow).map_err(|e| e.to_string())?,
        job,
        steps,
    })
}

/// The environment act_runner gives a task's job: `GITEA_ACTIONS`, the forge's artifact
/// service (`ACTIONS_RUNTIME_URL`, `ACTIONS_RESULTS_URL`) with the runtime token, and the
/// OIDC token request when the forge offers one.
fn runner_env(task: &Task) -> Vec<(String, String)> {
    let mut env = vec![
        ("GITEA_ACTIONS".to_owned(), "true".to_owned()),
        ("FORGEJO_ACTIONS".to_owned(), "true".to_owned()),
        (
            "GITEA_ACTIONS_RUNNER_VERSION".to_owned(),
            format!("gantry-{}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    if let Some(server) = context_text(task, "server_url") {
        let server = server.trim_end_matches('/');
        env.push((
            "ACTIONS_RUNTIME_URL".into(),
            format!("{server}/api/actions_pipeline/"),
        ));
        env.push(("ACTIONS_RESULTS_URL".into(), server.to_owned()));
    }
    for (var, key) in [
        ("ACTIONS_RUNTIME_TOKEN", "gitea_runtime_token"),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "actions_id_token_request_url",
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "actions_id_token_request_token",
        ),
    ] {
        let forgejo = key.replace("gitea_", "forgejo_");
        if let Some(v) = context_text(task, &forgejo).or_else(|| context_text(task, key)) {
            env.push((var.to_owned(), v));
        }
    }
    if let Some(run) = context_text(task, "run_id") {
        env.push(("GITEA_RUN_ID".into(), run));
    }
    env
}

fn context_text(task: &Task, key: &str) -> Option<String> {
    let value = task
        .context
        .get(key)
        .or_else(|| task.context.get(&format!("forgejo_{key}")))?;
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The event of the task, from its `github` context.
fn event(task: &Task, source: &Source) -> ci_engine::vcs::Event {
    let mut event = source.local_event();
    let name = context_text(task, "event_name").unwrap_or_else(|| "push".into());
    let payload = task.context.get("event").cloned().unwrap_or(json!({}));
    let headers = [("X-Gitea-Event", name.as_str())];
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let config = ci_engine::vcs::webhook::WebhookConfig::default();
    if let Ok(ci_engine::vcs::webhook::Delivery::Event(parsed)) = ci_engine::vcs::webhook::parse(
        ci_engine::vcs::webhook::Forge::Gitea,
        &headers,
        &body,
        &config,
    ) {
        event = *parsed;
    } else {
        event.kind = match name.as_str() {
            "workflow_dispatch" => EventKind::WorkflowDispatch,
            "schedule" => EventKind::Schedule {
                cron: payload
                    .get("schedule")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            },
            _ => EventKind::Manual,
        };
        event.payload = payload;
    }
    if let Some(sha) = context_text(task, "sha") {
        event.sha = sha;
    }
    if let Some(r) = context_text(task, "ref") {
        event.git_ref = r;
    }
    if let Some(actor) = context_text(task, "actor") {
        event.actor = actor;
    }
    if let Some(full) = context_text(task, "repository") {
        let (owner, name) = full.split_once('/').unwrap_or(("", &full));
        event.repository = RepositoryInfo {
            full_name: full.clone(),
            owner: context_text(task, "repository_owner").unwrap_or_else(|| owner.to_owned()),
            name: name.to_owned(),
            default_branch: event.repository.default_branch.clone(),
            html_url: context_text(task, "server_url").map(|s| format!("{s}/{full}")),
        };
    }
    event
}

/// Fetches the task's repository at its commit when the job checks it out; the directory the
/// run is rooted in.
async fn checkout(
    task: &Task,
    prepared: &Prepared,
    mirrors: &Mirrors,
    dir: &std::path::Path,
) -> Result<PathBuf, String> {
    let repo = dir.join("repo");
    if !prepared.text.contains("actions/checkout") {
        std::fs::create_dir_all(&repo).map_err(|e| format!("{}: {e}", repo.display()))?;
        return Ok(repo);
    }
    let (Some(server), Some(full), Some(sha)) = (
        context_text(task, "server_url"),
        context_text(task, "repository"),
        context_text(task, "sha"),
    ) else {
        return Err("the task's context has no server_url, repository or sha to check out".into());
    };
    let url = format!("{}/{full}.git", server.trim_end_matches('/'));
    let header = context_text(task, "token").map(|token| {
        use base64::Engine as _;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("gantry-runner:{token}"));
        format!("Authorization: Basic {basic}")
    });
    mirrors
        .checkout_with(&url, &sha, &repo, header.as_deref())
        .await
        .map_err(|e| format!("fetching {url} at {sha}: {e}"))?;
    Ok(repo)
}

/// Runs `task` through `engine` and reports it to the forge; the result it ended with.
pub async fn run_task(
    client: &Client,
    engine: &Engine,
    mirrors: &Mirrors,
    task: Task,
    options: &TaskOptions,
) -> TaskResult {
    let id = task.id;
    let prepared = prepare(&task);
    let steps = prepared.as_ref().map_or(0, |p| p.steps);
    let mut report = Report::new(id, steps);
    // The state at once: the forge shows the task running.
    if let Err(e) = report.send_state(client).await {
        tracing::warn!(task = id, "reporting the start: {e}");
    }
    let dir = options.work_dir.join("tasks").join(id.to_string());
    let result = match prepared {
        Ok(prepared) => {
            execute(
                client,
                engine,
                mirrors,
                &task,
                &prepared,
                &dir,
                &mut report,
                options,
            )
            .await
        }
        Err(message) => {
            report.line(None, format!("##[error]{message}"));
            TaskResult::Failure
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    close(client, &mut report, result, options).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    client: &Client,
    engine: &Engine,
    mirrors: &Mirrors,
    task: &Task,
    prepared: &Prepared,
    dir: &std::path::Path,
    report: &mut Report,
    options: &TaskOptions,
) -> TaskResult {
    let root = match checkout(task, prepared, mirrors, dir).await {
        Ok(root) => root,
        Err(message) => {
            report.line(None, format!("##[error]{message}"));
            return TaskResult::Failure;
        }
    };
    let source = Source::new(".gitea/workflows/task.yml", prepared.text.clone(), &root)
        .with_dialect(ci_engine::config::Dialect::GitHubActions);
    let event = event(task, &source);
    let mut run = RunOptions::new();
    run.secrets = task.secrets.clone();
    if let Some(token) = context_text(task, "token") {
        for name in ["GITHUB_TOKEN", "GITEA_TOKEN", "FORGEJO_TOKEN"] {
            run.secrets
                .entry(name.into())
                .or_insert_with(|| token.clone());
        }
    }
    for key in [
        "gitea_runtime_token",
        "forgejo_runtime_token",
        "actions_id_token_request_token",
    ] {
        if let Some(token) = context_text(task, key) {
            run.secrets.insert(format!("__gantry_{key}"), token);
        }
    }
    run.vars = task.vars.clone();
    for (name, need) in &task.needs {
        run.job_result(name.clone(), status_of(need.result), need.outputs.clone());
    }
    let mut handle = match engine.start(source, event, run).await {
        Ok(h) => h,
        Err(EngineError::Invalid { diagnostics, .. }) => {
            for d in diagnostics.iter().filter(|d| d.is_error()) {
                report.line(None, format!("##[error]{}", d.message));
            }
            return TaskResult::Failure;
        }
        Err(e) => {
            report.line(None, format!("##[error]{e}"));
            return TaskResult::Failure;
        }
    };
    let job = prepared.job.clone();
    let mut outcome = None;
    let mut tick = tokio::time::interval(options.report_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut cancelled = false;
    loop {
        tokio::select! {
            event = handle.next_event() => {
                let Some(event) = event else { break };
                match event {
                    RunEvent::StepStarted { job: j, step, .. } if j == job => {
                        let index = report.rows.len() as i64;
                        if let Some(s) = report.state.steps.get_mut(step) {
                            s.started_at = Some(now());
                            s.log_index = index;
                            s.log_length = 0;
                        }
                    }
                    RunEvent::Log { job: j, step, line, .. } if j == job => {
                        report.line(Some(step), line);
                    }
                    RunEvent::Annotation { job: j, step, level, message } if j == job => {
                        report.line(Some(step), format!("##[{level}]{message}"));
                    }
                    RunEvent::StepFinished { job: j, step, status, .. } if j == job => {
                        if let Some(s) = report.state.steps.get_mut(step) {
                            s.result = result_of(status);
                            s.stopped_at = Some(now());
                        }
                    }
                    RunEvent::JobFinished { job: j, status, outputs, .. } if j == job => {
                        report.outputs = outputs;
                        outcome = Some(result_of(status));
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                if let Err(e) = report.send_log(client, false).await {
                    tracing::warn!(task = task.id, "sending the log: {e}");
                }
                if let Err(e) = report.send_state(client).await {
                    tracing::warn!(task = task.id, "sending the state: {e}");
                }
                if report.ended_by_forge && !cancelled {
                    cancelled = true;
                    report.line(None, "##[error]The forge ended the task: cancelling it.".into());
                    handle.cancel();
                }
            }
        }
    }
    let summary = handle.wait().await;
    if cancelled {
        return TaskResult::Cancelled;
    }
    outcome.unwrap_or_else(|| result_of(summary.status))
}

/// The end: the whole log with `no_more`, then the result with the outputs, each until the
/// forge has it (or the attempts run out).
async fn close(client: &Client, report: &mut Report, result: TaskResult, options: &TaskOptions) {
    let stopped = now();
    for s in &mut report.state.steps {
        if s.started_at.is_some() && !s.result.is_terminal() {
            s.result = result;
            s.stopped_at = Some(stopped.clone());
        }
    }
    for attempt in 1..=options.close_attempts {
        match report.send_log(client, true).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(
                    task = report.state.id,
                    attempt,
                    "sending the end of the log: {e}"
                );
                tokio::time::sleep(options.retry_delay).await;
            }
        }
    }
    report.state.result = result;
    report.state.stopped_at = Some(stopped);
    for attempt in 1..=options.close_attempts {
        match report.send_state(client).await {
            Ok(()) if !report.outputs_pending() => return,
            Ok(()) => tracing::info!(
                task = report.state.id,
                attempt,
                "outputs not acknowledged yet"
            ),
            Err(e) => tracing::warn!(task = report.state.id, attempt, "sending the result: {e}"),
        }
        tokio::time::sleep(options.retry_delay).await;
    }
}
