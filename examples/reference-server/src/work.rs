//! What the queue carries (deliveries to process, runs to execute) and the loops that take
//! it: intake turns a recorded delivery into runs; workers execute runs through the engine,
//! heartbeating their lease; the reaper gives lost leases back to the queue.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ci_engine::config::Dialect;
use ci_engine::store::queue::{Heartbeat, Lease, NewJob, Outcome, Worker};
use ci_engine::store::runs::{NewRun, Status as Stored};
use ci_engine::vcs::webhook::{self, Delivery, WebhookConfig};
use ci_engine::vcs::Event;
use ci_engine::{Engine, EngineError, RunOptions, Source, Status};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::state::{now_ms, AppState};

/// The label intake work carries (every server takes it).
pub const INTAKE: &str = "gantry:intake";

/// A unit of queued work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// A verified webhook delivery, as received.
    Delivery(Received),
    /// A manual or scheduled request for runs of a project at a ref.
    Request(Requested),
    /// A run to execute (or resume).
    Run(RunWork),
}

/// What started a run (the event is made from it when the run starts, and again when it
/// resumes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// A webhook delivery.
    Delivery(Received),
    /// A manual run (`workflow_dispatch`; GitLab: a pipeline run from the web).
    Manual {
        /// The branch or tag.
        git_ref: String,
        /// Inputs.
        inputs: indexmap::IndexMap<String, String>,
        /// Who asked.
        actor: String,
    },
    /// A schedule fired.
    Schedule {
        /// The branch.
        git_ref: String,
        /// The cron expression.
        cron: String,
    },
}

/// A manual or scheduled request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Requested {
    /// `github`, `gitlab`, `gitea`, `forgejo` (which CI files are read).
    pub forge: String,
    /// `owner/name`.
    pub repo: String,
    /// Where it is fetched from.
    pub clone_url: String,
    /// Only this CI file (else every one that runs for the event).
    pub workflow: Option<String>,
    /// Manual or Schedule.
    pub trigger: Trigger,
}

/// A delivery as it arrived (verified before it was recorded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    /// `github`, `gitlab`, `gitea`, `forgejo`.
    pub forge: String,
    /// The forge's delivery id.
    pub delivery: String,
    /// The headers the parser reads.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Received {
    /// The event (parsed again; the signature was checked on receipt).
    pub fn event(&self) -> Result<Option<Event>> {
        let forge = crate::config::forge_kind(&self.forge)?;
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let config = WebhookConfig {
            secret: None,
            max_body: usize::MAX,
        };
        match webhook::parse(forge, &headers, self.body.as_bytes(), &config) {
            Ok(Delivery::Event(e)) => Ok(Some(*e)),
            Ok(_) | Err(webhook::WebhookError::Unsupported(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A run to execute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunWork {
    /// The run's id (its record exists).
    pub run_id: String,
    /// The forge whose CI files and statuses apply.
    pub forge: String,
    /// What started it.
    pub trigger: Trigger,
    /// `owner/name`.
    pub repo: String,
    /// Where the repository is fetched from.
    pub clone_url: String,
    /// The commit.
    pub sha: String,
    /// The CI file, relative to the repository.
    pub workflow: String,
    /// Jobs to run again (a rerun); empty: resume.
    #[serde(default)]
    pub rerun: Vec<String>,
    /// Manual jobs to play.
    #[serde(default)]
    pub manual: Vec<String>,
}

/// The CI files a forge's dialect reads, in the repository at `root`.
pub fn ci_files(forge: &str, root: &Path) -> Vec<String> {
    let dirs: &[&str] = match forge {
        "gitlab" => {
            return if root.join(".gitlab-ci.yml").is_file() {
                vec![".gitlab-ci.yml".into()]
            } else {
                Vec::new()
            }
        }
        "forgejo" => &[
            ".forgejo/workflows",
            ".gitea/workflows",
            ".github/workflows",
        ],
        "gitea" => &[".gitea/workflows", ".github/workflows"],
        _ => &[".github/workflows"],
    };
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut files: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        if !files.is_empty() {
            files.sort();
            return files;
        }
    }
    Vec::new()
}

/// Whether a GitHub-dialect workflow runs for `event` (its `on:` triggers with their type,
/// branch, tag and path filters); other dialects decide with their rules when the run starts.
pub fn triggered(path: &str, text: &str, event: &Event, root: &Path) -> Result<bool, String> {
    use ci_engine::vcs::filter::{EventFilters, GitRef};
    let dialect = ci_engine::config::detect_dialect(path, text);
    if dialect != Dialect::GitHubActions {
        return Ok(true);
    }
    let parsed = ci_engine::config::load(path, text, &ci_engine::config::LoadOptions::default());
    let failed = parsed.has_errors();
    let Some(loaded) = parsed.value.filter(|_| !failed) else {
        let first = parsed
            .diagnostics
            .first()
            .map(|d| format!("{path}:{}: {}", d.line(), d.message))
            .unwrap_or_else(|| format!("{path}: not a workflow"));
        return Err(first);
    };
    let name = event.name();
    let action = event.payload["action"].as_str();
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    for workflow in &loaded.workflows {
        for t in workflow.triggers.iter().filter(|t| t.event == name) {
            if let ci_engine::vcs::EventKind::Schedule { cron } = &event.kind {
                if !t.cron.iter().any(|c| c == cron) {
                    continue;
                }
            }
            if let Some(action) = action {
                let defaults: &[&str] = if name == "pull_request" || name == "pull_request_target" {
                    &["opened", "synchronize", "reopened"]
                } else {
                    &[]
                };
                let types_ok = if t.types.is_empty() {
                    defaults.is_empty() || defaults.contains(&action)
                } else {
                    t.types.iter().any(|x| x == action)
                };
                if !types_ok {
                    continue;
                }
            }
            let filters = EventFilters {
                branches: some(&t.branches),
                branches_ignore: some(&t.branches_ignore),
                tags: some(&t.tags),
                tags_ignore: some(&t.tags_ignore),
                paths: some(&t.paths),
                paths_ignore: some(&t.paths_ignore),
            };
            let git_ref = match (&event.base_ref, name) {
                (Some(base), "pull_request" | "pull_request_target") => GitRef::Branch(base),
                _ => GitRef::from_full(&event.git_ref),
            };
            let base = event
                .base_sha
                .clone()
                .or_else(|| event.before.clone())
                .filter(|b| b != ci_engine::vcs::event::ZERO_SHA);
            let changed = base.and_then(|b| {
                ci_engine::vcs::git::Repository::open(root)
                    .and_then(|r| r.changed_paths(&b, &event.sha))
                    .ok()
            });
            match filters.allows(git_ref, changed.as_deref()) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                // Path filters without the changed files (a new branch): run, as GitHub does.
                Err(ci_engine::vcs::filter::FilterError::NeedsChangedPaths) => return Ok(true),
                Err(e) => return Err(format!("{path}: {e}")),
            }
        }
    }
    Ok(false)
}

/// The id of the run a delivery makes for one CI file: the same on every retry of the
/// delivery, so that a crash between creating runs and finishing the delivery creates none
/// twice.
pub fn run_id_for(delivery_key: &str, workflow: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{delivery_key}\n{workflow}").as_bytes());
    format!("r{}", &hex::encode(digest)[..15])
}

/// The clone URL in a delivery's payload.
fn clone_url(received: &Received) -> Option<String> {
    let payload: serde_json::Value = serde_json::from_str(&received.body).ok()?;
    let url = match received.forge.as_str() {
        "gitlab" => payload["project"]["git_http_url"]
            .as_str()
            .or(payload["repository"]["git_http_url"].as_str()),
        _ => payload["repository"]["clone_url"].as_str(),
    };
    url.map(str::to_owned)
}

/// A ref as the full name git and the contexts use.
fn full_ref(r: &str) -> String {
    if r.starts_with("refs/") {
        r.to_owned()
    } else {
        format!("refs/heads/{r}")
    }
}

/// The event of a manual or scheduled run of `sha` in the checkout at `root`.
fn requested_event(trigger: &Trigger, repo: &str, root: &Path) -> Result<Option<Event>> {
    let local = ci_engine::vcs::git::Repository::open(root)?;
    let (mut event, git_ref) = match trigger {
        Trigger::Delivery(received) => return received.event(),
        Trigger::Manual {
            git_ref,
            inputs,
            actor,
        } => {
            let inputs = inputs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect();
            let mut e = local.local_dispatch(inputs)?;
            e.actor = actor.clone();
            e.payload["sender"] = serde_json::json!({ "login": actor });
            (e, full_ref(git_ref))
        }
        Trigger::Schedule { git_ref, cron } => (local.local_schedule(cron)?, full_ref(git_ref)),
    };
    // The checkout is detached at the commit: the event names the ref that was asked for,
    // and the project as the server knows it.
    event.git_ref = git_ref.clone();
    event.payload["ref"] = serde_json::Value::from(git_ref.as_str());
    let (owner, name) = repo.rsplit_once('/').unwrap_or(("", repo));
    event.repository.full_name = repo.to_owned();
    event.repository.owner = owner.to_owned();
    event.repository.name = name.to_owned();
    event.payload["repository"]["full_name"] = serde_json::Value::from(repo);
    event.payload["repository"]["name"] = serde_json::Value::from(name);
    event.payload["repository"]["owner"] = serde_json::json!({ "login": owner, "name": owner });
    Ok(Some(event))
}

impl AppState {
    /// Processes a recorded delivery: fetches the commit, finds the CI files that run for the
    /// event and queues a run for each.
    pub async fn intake(&self, queue_id: &str, received: &Received) -> Result<Vec<String>> {
        let Some(event) = received.event()? else {
            return Ok(Vec::new());
        };
        let repo = event.repository.full_name.clone();
        let project = self.config.project(&repo);
        let url = project
            .clone_url
            .clone()
            .or_else(|| clone_url(received))
            .with_context(|| {
                format!("no clone URL for {repo} (set projects.\"{repo}\".clone_url)")
            })?;
        let request = Requested {
            forge: received.forge.clone(),
            repo,
            clone_url: url,
            workflow: None,
            trigger: Trigger::Delivery(received.clone()),
        };
        let sha = event.sha.clone();
        self.make_runs(queue_id, &request, &sha).await
    }

    /// Processes a manual or scheduled request: resolves the ref, then as a delivery.
    pub async fn request(&self, queue_id: &str, request: &Requested) -> Result<Vec<String>> {
        let git_ref = match &request.trigger {
            Trigger::Manual { git_ref, .. } | Trigger::Schedule { git_ref, .. } => git_ref.clone(),
            Trigger::Delivery(received) => {
                return self.intake(queue_id, received).await;
            }
        };
        let sha = self
            .mirrors
            .resolve(&request.clone_url, &full_ref(&git_ref))
            .await?;
        self.make_runs(queue_id, request, &sha).await
    }

    /// Creates and queues a run for each CI file of `request` that runs for its event at `sha`.
    async fn make_runs(
        &self,
        queue_id: &str,
        request: &Requested,
        sha: &str,
    ) -> Result<Vec<String>> {
        let checkout = self.checkout_dir(queue_id);
        self.mirrors
            .checkout(&request.clone_url, sha, &checkout)
            .await?;
        let Some(event) = requested_event(&request.trigger, &request.repo, &checkout)? else {
            return Ok(Vec::new());
        };
        let mut files = ci_files(&request.forge, &checkout);
        if let Some(only) = &request.workflow {
            files.retain(|f| f == only);
            if files.is_empty() {
                anyhow::bail!("no CI file {only} in {} at {sha}", request.repo);
            }
        }
        let mut created = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(checkout.join(&path))
                .with_context(|| format!("reading {path}"))?;
            let run_id = run_id_for(queue_id, &path);
            let problem = match triggered(&path, &text, &event, &checkout) {
                Ok(false) => continue,
                Ok(true) => None,
                Err(e) => Some(e),
            };
            if self.runs.get_run(&run_id).await?.is_none() {
                self.runs
                    .create_run(&NewRun {
                        id: run_id.clone(),
                        repo: request.repo.clone(),
                        git_ref: event.git_ref.clone(),
                        sha: event.sha.clone(),
                        event: event.name().to_owned(),
                        workflow: path.clone(),
                        created_at: now_ms(),
                    })
                    .await?;
            }
            self.keep_source(&run_id, &path, &text).await;
            if let Some(problem) = problem {
                // A broken file still shows as a run, failed with the reason.
                self.record_errors(&run_id, &[problem]).await;
                self.runs
                    .set_run_status(&run_id, Stored::Failure, None, Some(now_ms()))
                    .await?;
                continue;
            }
            let work = RunWork {
                run_id: run_id.clone(),
                forge: request.forge.clone(),
                trigger: request.trigger.clone(),
                repo: request.repo.clone(),
                clone_url: request.clone_url.clone(),
                sha: event.sha.clone(),
                workflow: path,
                rerun: Vec::new(),
                manual: Vec::new(),
            };
            self.enqueue_run(&run_id, &work).await?;
            created.push(run_id);
        }
        let _ = tokio::fs::remove_dir_all(&checkout).await;
        Ok(created)
    }

    /// Queues `work` under the queue id `queue_id` with its project's labels and priority.
    pub async fn enqueue_run(&self, queue_id: &str, work: &RunWork) -> Result<()> {
        let project = self.config.project(&work.repo);
        let mut job = NewJob::new(
            queue_id,
            &work.repo,
            serde_json::to_string(&Work::Run(work.clone()))?,
        )
        .priority(project.priority)
        .retries(self.config.retries);
        for l in &project.labels {
            job = job.label(l);
        }
        self.queue.enqueue(&job, now_ms()).await?;
        Ok(())
    }

    fn checkout_dir(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.state_dir.join("checkouts").join(safe)
    }

    /// Executes (or resumes) a run; returns how it ended.
    pub async fn execute(
        &self,
        queue_id: &str,
        work: &RunWork,
        cancel: CancellationToken,
    ) -> Outcome {
        match self.execute_inner(queue_id, work, cancel).await {
            Ok(status) => match status {
                Status::Success | Status::Skipped => Outcome::Success,
                Status::Cancelled => Outcome::Cancelled,
                _ => Outcome::Failure,
            },
            Err(e) => {
                let skipped = matches!(
                    e.downcast_ref::<EngineError>(),
                    Some(EngineError::NotCreated(_))
                );
                self.record_errors(&work.run_id, &[format!("{e:#}")]).await;
                let status = if skipped {
                    Stored::Skipped
                } else {
                    Stored::Failure
                };
                let _ = self
                    .runs
                    .set_run_status(&work.run_id, status, None, Some(now_ms()))
                    .await;
                if skipped {
                    Outcome::Success
                } else {
                    Outcome::Failure
                }
            }
        }
    }

    async fn execute_inner(
        &self,
        queue_id: &str,
        work: &RunWork,
        cancel: CancellationToken,
    ) -> Result<Status> {
        let checkout = self.checkout_dir(queue_id);
        self.mirrors
            .checkout(&work.clone_url, &work.sha, &checkout)
            .await?;
        let event = requested_event(&work.trigger, &work.repo, &checkout)?
            .context("the delivery has no event")?;
        let text = std::fs::read_to_string(checkout.join(&work.workflow))
            .with_context(|| format!("reading {}", work.workflow))?;
        let engine = self.engine(&work.forge, &work.repo, &work.run_id).await?;
        let source = Source::new(&work.workflow, text, &checkout);
        let mut options = RunOptions::new();
        options.run_id = Some(work.run_id.clone());
        options.rerun = work.rerun.clone();
        options.manual = work.manual.clone();
        options.log_events = false;
        let handle = engine.start(source, event, options).await;
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&checkout).await;
                return Err(e.into());
            }
        };
        let stop = handle.canceller();
        let watcher = tokio::spawn(async move {
            cancel.cancelled().await;
            stop.cancel();
        });
        let summary = handle.wait().await;
        watcher.abort();
        if !summary.errors.is_empty() {
            self.record_errors(&work.run_id, &summary.errors).await;
        }
        let _ = tokio::fs::remove_dir_all(&checkout).await;
        Ok(summary.status)
    }

    /// An engine for one run: the server's stores and executors, and a reporter posting the
    /// forge's commit statuses with a link to the run.
    async fn engine(&self, forge: &str, repo: &str, run_id: &str) -> Result<Engine> {
        let mut builder = Engine::builder()
            .run_store(Arc::clone(&self.runs))
            .blobs(self.blobs.clone())
            .work_dir(self.state_dir.join("work"))
            .live_logs(Duration::from_millis(200))
            .retry_lost_jobs(self.config.retries);
        for (label, executor) in &self.executors {
            builder = if label == "default" {
                builder.default_executor(Arc::clone(executor))
            } else {
                builder.executor(label.clone(), Arc::clone(executor))
            };
        }
        for (name, var) in &self.config.secrets {
            builder = builder.secret(name.clone(), crate::config::env_value(var)?);
        }
        if let Some(f) = self.config.forge(forge) {
            if let (Some(api), Some(token)) = (&f.status_api, &f.token_env) {
                let kind = match forge {
                    "github" => ci_engine::vcs::status::ForgeApi::GitHub,
                    "gitlab" => ci_engine::vcs::status::ForgeApi::GitLab,
                    _ => ci_engine::vcs::status::ForgeApi::Gitea,
                };
                let reporter = ci_engine::vcs::status::HttpStatusReporter::new(
                    kind,
                    api,
                    repo,
                    &crate::config::env_value(token)?,
                );
                builder = builder.reporter(Arc::new(Linking {
                    inner: reporter,
                    url: format!("{}/runs/{run_id}", self.config.public_url()),
                }));
            }
        }
        Ok(builder.build().await?)
    }

    /// Keeps the CI file a run was made from (its picture is drawn from it).
    async fn keep_source(&self, run_id: &str, path: &str, text: &str) {
        let data = serde_json::json!({ "path": path, "text": text }).to_string();
        if let Err(e) = self
            .blobs
            .put(
                &format!("server/runs/{run_id}/source.json"),
                data.into_bytes().into(),
            )
            .await
        {
            tracing::warn!(run_id, "keeping the run's CI file: {e}");
        }
    }

    /// The CI file a run was made from: (path, text).
    pub async fn source(&self, run_id: &str) -> Option<(String, String)> {
        let data = self
            .blobs
            .get(&format!("server/runs/{run_id}/source.json"))
            .await
            .ok()??;
        let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
        Some((
            v["path"].as_str()?.to_owned(),
            v["text"].as_str()?.to_owned(),
        ))
    }

    /// Keeps problems of a run that belong to no job (shown on its page).
    pub async fn record_errors(&self, run_id: &str, errors: &[String]) {
        let key = format!("server/runs/{run_id}/errors.json");
        let mut all: Vec<String> = match self.blobs.get(&key).await {
            Ok(Some(data)) => serde_json::from_slice(&data).unwrap_or_default(),
            _ => Vec::new(),
        };
        all.extend(errors.iter().cloned());
        if let Ok(data) = serde_json::to_vec(&all) {
            if let Err(e) = self.blobs.put(&key, data.into()).await {
                tracing::warn!(run_id, "keeping the run's errors: {e}");
            }
        }
    }

    /// The problems recorded for a run.
    pub async fn errors(&self, run_id: &str) -> Vec<String> {
        match self
            .blobs
            .get(&format!("server/runs/{run_id}/errors.json"))
            .await
        {
            Ok(Some(data)) => serde_json::from_slice(&data).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Adds the run page's address to every status.
struct Linking {
    inner: ci_engine::vcs::status::HttpStatusReporter,
    url: String,
}

#[async_trait::async_trait]
impl ci_engine::vcs::status::StatusReporter for Linking {
    async fn report(
        &self,
        status: &ci_engine::vcs::status::CommitStatus,
    ) -> Result<(), ci_engine::vcs::status::ReportError> {
        let mut status = status.clone();
        status.target_url = Some(self.url.clone());
        self.inner.report(&status).await
    }
}

/// One worker: leases work with `labels` and does it, heartbeating the lease, until `stop`.
pub async fn worker(state: AppState, id: String, labels: Vec<String>, stop: CancellationToken) {
    let me = Worker::new(id.clone(), labels);
    let lease_ms = state.config.lease_seconds as i64 * 1000;
    while !stop.is_cancelled() {
        let lease = match state.queue.lease(&me, now_ms(), lease_ms).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                tokio::select! {
                    _ = state.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(worker = %id, "leasing: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(worker = %id, job = %lease.job_id, attempt = lease.attempt, "leased");
        let outcome = do_work(&state, &lease, lease_ms).await;
        match state
            .queue
            .complete(&lease.job_id, &lease.token, outcome, now_ms())
            .await
        {
            Ok(c) => tracing::info!(job = %lease.job_id, ?outcome, ?c, "completed"),
            Err(e) => tracing::warn!(job = %lease.job_id, "completing: {e}"),
        }
        state.wake.notify_waiters();
    }
}

async fn do_work(state: &AppState, lease: &Lease, lease_ms: i64) -> Outcome {
    let work: Work = match serde_json::from_str(&lease.payload) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(job = %lease.job_id, "unreadable queued work: {e}");
            return Outcome::Failure;
        }
    };
    let cancel = CancellationToken::new();
    let beat = {
        let (state, lease, cancel) = (state.clone(), lease.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((lease_ms / 3).max(500) as u64)).await;
                match state
                    .queue
                    .heartbeat(&lease.job_id, &lease.token, now_ms(), lease_ms)
                    .await
                {
                    Ok(Heartbeat::Extended { cancel: false }) => {}
                    Ok(Heartbeat::Extended { cancel: true }) | Ok(Heartbeat::Gone) => {
                        cancel.cancel();
                    }
                    Err(e) => tracing::warn!(job = %lease.job_id, "heartbeat: {e}"),
                }
            }
        })
    };
    let outcome = match &work {
        Work::Delivery(received) => match state.intake(&lease.job_id, received).await {
            Ok(runs) => {
                tracing::info!(delivery = %received.delivery, runs = runs.len(), "delivery processed");
                Outcome::Success
            }
            Err(e) => {
                tracing::warn!(delivery = %received.delivery, "processing the delivery: {e:#}");
                state
                    .record_delivery_error(&lease.job_id, &format!("{e:#}"))
                    .await;
                Outcome::Failure
            }
        },
        Work::Request(request) => match state.request(&lease.job_id, request).await {
            Ok(runs) => {
                tracing::info!(repo = %request.repo, runs = runs.len(), "request processed");
                Outcome::Success
            }
            Err(e) => {
                tracing::warn!(repo = %request.repo, "processing the request: {e:#}");
                state
                    .record_delivery_error(&lease.job_id, &format!("{e:#}"))
                    .await;
                Outcome::Failure
            }
        },
        Work::Run(run) => state.execute(&lease.job_id, run, cancel.clone()).await,
    };
    beat.abort();
    if cancel.is_cancelled() && outcome != Outcome::Success {
        return Outcome::Cancelled;
    }
    outcome
}

/// Gives expired leases back to the queue, every second, until `stop`.
pub async fn reaper(state: AppState, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match state.queue.expire(now_ms()).await {
            Ok(expired) => {
                for e in &expired {
                    tracing::warn!(job = %e.job_id, worker = %e.worker, retried = e.retried, "lease lost");
                    if !e.retried {
                        state.mark_lost(&e.job_id).await;
                    }
                }
                if !expired.is_empty() {
                    state.wake.notify_waiters();
                }
            }
            Err(e) => tracing::warn!("expiring leases: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {}
        }
    }
}

impl AppState {
    /// A run whose worker was lost past its retry budget ends as a failure, saying so.
    pub async fn mark_lost(&self, queue_id: &str) {
        let Ok(Some(job)) = self.queue.get(queue_id).await else {
            return;
        };
        if let Ok(Work::Run(run)) = serde_json::from_str::<Work>(&job.payload) {
            self.record_errors(
                &run.run_id,
                &[format!(
                    "the run's worker was lost {} times ({}); not retried",
                    job.lost,
                    job.note.unwrap_or_default()
                )],
            )
            .await;
            let _ = self
                .runs
                .set_run_status(&run.run_id, Stored::Failure, None, Some(now_ms()))
                .await;
        }
    }

    /// Keeps why a delivery could not be processed.
    pub async fn record_delivery_error(&self, queue_id: &str, error: &str) {
        let key = format!("server/deliveries/{}.error", run_id_for(queue_id, ""));
        let _ = self.blobs.put(&key, error.as_bytes().to_vec().into()).await;
    }
}
