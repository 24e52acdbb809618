//! One job attempt as GitHub runs it: contexts, environment layering, steps with their
//! conditions, file commands (`GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH`,
//! `GITHUB_STEP_SUMMARY`), timeouts, post steps and outputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ci_config::expr::{Contexts, Value};
use ci_config::model::{Env, Job, Parallel, Step, StepAction};
use ci_exec::envfile::{parse_env_file, parse_path_file};
use ci_exec::{
    Chunk, ContainerSpec, JobSpec, LogPipeline, ServiceSpec, Shell, StepOutcome, StepSpec,
};
use ci_graph::Outcome;
use ci_store::logs::LogWriter;
use ci_store::runs::StepRecord;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::{object, strings, Scope, StatusFns};
use crate::dirs::{clear_dir, empty_dir};
use crate::env::{add_vars, Table};
use crate::events::{RunEvent, Status};
use crate::runner::{storage_key, Executed, Frame, JobRunner, Logs, StepResult};
use crate::state::{now_ms, JobResult, JobTask};
use crate::JOB_LOGS;

/// GitHub's default job time limit.
const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(360 * 60);

/// The longest start delay taken literally (ten years).
const MAX_DELAY_SECS: u64 = 10 * 365 * 24 * 3600;

impl JobTask {
    pub async fn run(self) -> JobResult {
        let started = Instant::now();
        let started_at = now_ms();
        let job = Arc::clone(&self.workflow);
        let job = &job.jobs[&self.instance.job];
        self.announce().await;
        let permit = tokio::select! {
            p = Arc::clone(&self.ctx.inner.capacity).acquire_owned() => p.ok(),
            _ = self.cancel.cancelled() => None,
        };
        let _group = match (&self.instance.concurrency, permit.is_some()) {
            (Some(group), true) => {
                self.ctx
                    .inner
                    .groups
                    .acquire(&group.group, group.cancel_in_progress, &self.cancel)
                    .await
            }
            _ => None,
        };
        if let Some(secs) = job.start_in {
            // A delayed job waits, holding its slot as a GitLab runner would not: the delay
            // is short in local runs, and waiting outside the slot would reorder jobs.
            let secs = secs.min(MAX_DELAY_SECS);
            let waited = tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(secs)) => true,
                _ = self.cancel.cancelled() => false,
            };
            if !waited {
                return JobResult {
                    outcome: Outcome::cancelled(),
                    steps: Vec::new(),
                    started_at,
                    duration: started.elapsed(),
                    name: self.instance.name.clone(),
                };
            }
        }
        if permit.is_none() || self.cancel.is_cancelled() {
            return JobResult {
                outcome: Outcome::cancelled(),
                steps: Vec::new(),
                started_at,
                duration: started.elapsed(),
                name: self.instance.name.clone(),
            };
        }
        let (outcome, steps) = match JobRunner::new(&self, job).await {
            Ok(mut runner) => {
                let outcome = runner.run(job).await;
                runner.close().await;
                (outcome, runner.records)
            }
            Err((outcome, message)) => {
                // The job could not be set up: its log and a "Set up job" step say why, so
                // that a stored run shows the reason (not only the live event).
                let key = crate::job_log_key(&self.id(), self.attempt);
                let mut log = LogWriter::new(
                    self.ctx.inner.blobs.clone(),
                    &self.ctx.run_id,
                    JOB_LOGS,
                    &key,
                );
                let masked = ci_exec::LogPipeline::new(&self.scope.secrets)
                    .masker()
                    .mask(format!("##[error]{message}\n").as_bytes());
                let kept = match log.append(&masked).await {
                    Ok(()) => log.finish().await.is_ok(),
                    Err(_) => false,
                };
                let now = now_ms();
                let steps = vec![StepRecord {
                    index: 0,
                    name: "Set up job".into(),
                    status: ci_store::runs::Status::Failure,
                    started_at: Some(now),
                    finished_at: Some(now),
                    log_key: kept.then_some(key),
                }];
                self.ctx
                    .emit(RunEvent::Annotation {
                        job: self.id(),
                        step: 0,
                        level: "error",
                        message,
                    })
                    .await;
                (outcome, steps)
            }
        };
        JobResult {
            outcome,
            steps,
            started_at,
            duration: started.elapsed(),
            name: self.instance.name.clone(),
        }
    }
}

impl JobRunner {
    /// Prepares the job: contexts, environment, workspace, executor environment.
    async fn new(task: &JobTask, job: &Job) -> Result<JobRunner, (Outcome, String)> {
        let ctx = Arc::clone(&task.ctx);
        let id = task.id();
        let key = storage_key(&id);
        let fail = |m: String| {
            let mut o = Outcome::failure(1);
            o.reason = Some("runner_system_failure".into());
            (o, m)
        };
        // The workspace and RUNNER_TEMP (which also holds the step scripts) side by side in
        // the run directory (canonical already); emptied directories of finished jobs are
        // reused, as a runner reuses its work directory.
        // A reused workspace keeps the last job's files until this job's first step: a
        // checkout then rewrites them in place (no file made or removed for what is the
        // same), anything else clears them first.
        let checkout_first = job
            .steps
            .first()
            .is_some_and(|s| matches!(s.action, StepAction::Checkout));
        let reused = match ctx.reuse_dirs() {
            // The temp directory holds a few small files (the last job's scripts and
            // file-command files): emptied here, without a hop to the blocking pool.
            Some((workspace, temp)) if empty_dir(&temp) => {
                if checkout_first || clear_dir(&workspace).await {
                    Some((workspace, temp))
                } else {
                    // What the last job left cannot be removed: this job starts afresh.
                    None
                }
            }
            _ => None,
        };
        let leftovers = reused.is_some() && checkout_first;
        let (workspace, temp) = match reused {
            Some(dirs) => dirs,
            None => {
                let workspace = ctx.run_dir.join(format!("{key}-{}", task.attempt));
                let temp = ctx.run_dir.join(format!("{key}-{}.tmp", task.attempt));
                for d in [&workspace, &temp] {
                    std::fs::create_dir_all(d)
                        .map_err(|e| fail(format!("{}: {e}", d.display())))?;
                }
                (workspace, temp)
            }
        };
        let ws = workspace.to_string_lossy().into_owned();
        let github_json = ctx.github_json(&ws, &task.instance.job);
        let github = Value::from_json(&github_json);

        let mut base = task.scope.contexts.clone();
        let matrix = task
            .instance
            .matrix
            .as_ref()
            .map_or(Value::Null, |m| object(m.clone()));
        let siblings = task.matrix_pos;
        let mut strategy = IndexMap::new();
        strategy.insert("fail-fast".into(), Value::Bool(task.instance.fail_fast));
        strategy.insert("job-index".into(), Value::Number(siblings.0 as f64));
        strategy.insert("job-total".into(), Value::Number(siblings.1 as f64));
        strategy.insert(
            "max-parallel".into(),
            Value::Number(task.instance.max_parallel.unwrap_or(siblings.1) as f64),
        );
        let mut runner_ctx = IndexMap::new();
        for (k, v) in [
            ("name", "gantry"),
            ("os", "Linux"),
            ("arch", std::env::consts::ARCH),
            ("environment", "self-hosted"),
        ] {
            runner_ctx.insert(k.to_owned(), Value::string(v));
        }
        runner_ctx.insert(
            "temp".into(),
            Value::string(temp.to_string_lossy().as_ref()),
        );
        runner_ctx.insert(
            "tool_cache".into(),
            Value::string(temp.join("tool_cache").to_string_lossy().as_ref()),
        );
        base.insert("github", github.clone())
            .insert("matrix", matrix)
            .insert("strategy", object(strategy))
            .insert("needs", task.needs.clone())
            .insert("runner", object(runner_ctx))
            .insert("env", Value::Null)
            .insert("steps", object(IndexMap::new()))
            .insert("job", object(IndexMap::new()));

        let plain = Scope::new(&base);
        let table = Table::of(task.workflow.dialect);
        let timeout = match &job.timeout_minutes {
            Some(n) => minutes(&plain, n).map_err(|e| fail(format!("timeout-minutes: {e}")))?,
            None => DEFAULT_JOB_TIMEOUT,
        };
        let mut env = job_env(task, job, table, &base, &workspace, timeout).map_err(fail)?;
        let labels: Vec<String> = job
            .runs_on
            .labels
            .iter()
            .map(|l| plain.render(l))
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("runs-on: {e}")))?;
        if table == Table::CircleCi
            && labels.iter().any(|l| l == "macos")
            && !labels.iter().any(|l| ctx.inner.executors.contains_key(l))
            && std::env::consts::OS != "macos"
        {
            return Err(fail(format!(
                "job '{id}' uses a macos executor and this machine runs {}: map it with \
                 --platform macos=host (or another executor) to run it here anyway",
                std::env::consts::OS
            )));
        }
        let mut executor = crate::inner::executor_for(&ctx.inner, &labels);
        let wants_containers = job.container.is_some()
            || !job.services.is_empty()
            || job.steps.iter().any(|s| {
                matches!(&s.action, StepAction::Uses { uses, .. } if !uses.starts_with("actions/"))
            });
        let containers = if executor.capabilities().containers {
            Some(Arc::clone(&executor))
        } else if wants_containers {
            ctx.inner.container_executor().await
        } else {
            None
        };
        // A container the job may do without (GitLab's `image:` on a shell runner) is
        // dropped, with a warning, when nothing here runs containers.
        let optional = job.container.as_ref().is_none_or(|c| c.optional)
            && job.services.values().all(|s| s.optional);
        let mut image_ignored = containers.is_none()
            && optional
            && (job.container.is_some() || !job.services.is_empty());
        // CircleCI: a job image that is not here (nothing is pulled) runs on the host.
        if let (Table::CircleCi, Some(c), Some(docker), true) =
            (table, &job.container, &containers, optional)
        {
            let image = plain.render(&c.image).map_err(fail)?;
            if !docker.has_image(&image).await {
                image_ignored = true;
            }
        }
        let mut container = None;
        let mut services = Vec::new();
        if !image_ignored {
            if let Some(c) = &job.container {
                container = Some(container_spec(&plain, c).map_err(fail)?);
            }
            for (name, s) in &job.services {
                let spec = container_spec(&plain, s).map_err(fail)?;
                let command = match &s.command {
                    Some(t) => Some(crate::actions::split_words(&plain.render(t).map_err(fail)?)),
                    None => None,
                };
                services.push(ServiceSpec {
                    name: name.clone(),
                    image: spec.image,
                    env: spec.env,
                    command,
                    health_cmd: None,
                    health_timeout: None,
                });
            }
        }
        if (container.is_some() || !services.is_empty()) && !executor.capabilities().containers {
            match &containers {
                Some(c) => executor = Arc::clone(c),
                None => {
                    return Err(fail(format!(
                        "job '{id}' has a container or services, which need the docker executor: \
                         start dockerd, or map its runs-on label with --platform {}=docker://IMAGE",
                        labels.first().map_or("LABEL", String::as_str)
                    )))
                }
            }
        }
        let in_container = executor.capabilities().runs_in_image;
        if table == Table::CircleCi && task.workflow.setup {
            // Meaningful to CircleCI's API only: here `circleci continue` needs no key.
            env.insert(
                "CIRCLE_CONTINUATION_KEY".into(),
                format!("gantry-local-{}", ctx.run_id),
            );
        }
        if table == Table::CircleCi {
            // The `circleci` command jobs call (`circleci tests split`), first on PATH.
            let bin = temp.join("bin");
            let system = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
            let path = match (in_container, std::env::var("PATH")) {
                (false, Ok(host)) => host,
                _ => system.to_owned(),
            };
            env.insert("PATH".into(), format!("{}:{path}", bin.display()));
        }
        let has_cleanup = job.steps.iter().any(|s| s.cleanup);
        // The runner's variables of the job's own dialect (GitLab jobs get theirs per
        // script, with GitLab's precedence).
        let job_env = match table {
            Table::GitLab | Table::CircleCi => IndexMap::new(),
            Table::GitHub => {
                let info = ci_vcs::jobenv::JobInfo {
                    job: task.instance.job.clone(),
                    workflow: ctx.workflow_name.clone(),
                    workspace: ws.clone(),
                    temp: temp.to_string_lossy().into_owned(),
                    ..ci_vcs::jobenv::JobInfo::default()
                };
                let mut env = ci_vcs::jobenv::github_job_env(&github_json, &info);
                // A job that does not see this machine's files gets its own copy of the
                // payload in its temp directory (jobs of a run may share a machine).
                let event_path = if executor.capabilities().shares_host_filesystem {
                    ctx.event_path()
                } else {
                    temp.join("event.json")
                };
                env.insert(
                    "GITHUB_EVENT_PATH".into(),
                    event_path.to_string_lossy().into_owned(),
                );
                env
            }
        };
        let network = !services.is_empty();
        let spec = JobSpec {
            run_id: ctx.run_id.clone(),
            job_id: key.clone(),
            workspace: workspace.clone(),
            env: job_env,
            // Cleanup steps have a limit of their own: the job's then applies step by step.
            timeout: (!has_cleanup).then_some(timeout),
            container,
            services,
            network,
            mounts: vec![temp.clone()],
            scratch: Some(temp.clone()),
        };
        let environment = executor.prepare(&spec).await.map_err(|e| {
            let mut o = Outcome::failure(1);
            o.reason = Some("runner_system_failure".into());
            (
                o,
                format!("preparing the job on '{}': {e}", executor.name()),
            )
        })?;
        if table == Table::GitHub && !executor.capabilities().shares_host_filesystem {
            // The event payload is a file of this machine: a job that does not see its files
            // gets a copy at the path `GITHUB_EVENT_PATH` names.
            let path = ctx.event_path();
            let dir = path.parent().unwrap_or(&path).to_path_buf();
            let copied = match ci_exec::files::pack(&dir, &[PathBuf::from("event.json")]) {
                Ok(archive) => environment.write_tar(&temp, archive).await,
                Err(e) => Err(e),
            };
            if let Err(e) = copied {
                let _ = environment.teardown().await;
                return Err(fail(format!("GITHUB_EVENT_PATH: {e}")));
            }
        }
        if table == Table::CircleCi {
            if let Err(e) = install_circleci_cli(environment.as_ref(), &temp).await {
                let _ = environment.teardown().await;
                return Err(fail(format!("installing the circleci command: {e}")));
            }
            // What `circleci tests split --split-by=timings` weighs names by.
            let timings = crate::timings::load(&ctx, &task.instance.job).await;
            if !timings.is_empty() {
                let archive =
                    ci_exec::files::archive(&[("timings.tsv", timings.as_bytes(), 0o644)]);
                if let Err(e) = environment.write_tar(&temp, archive).await {
                    let _ = environment.teardown().await;
                    return Err(fail(format!("test timings: {e}")));
                }
            }
        }
        let mut secrets = task.scope.secrets.clone();
        secrets.retain(|s| !s.is_empty());
        // Each attempt keeps its own log.
        let log_key = crate::job_log_key(&id, task.attempt);
        let mut writer = LogWriter::new(ctx.inner.blobs.clone(), &ctx.run_id, JOB_LOGS, &log_key);
        if let Some(interval) = ctx.inner.live_logs {
            writer = writer.live(interval);
        }
        let pipeline = LogPipeline::new(&secrets);
        // `defaults.run` sees the job's `env` (GitHub allows the context there).
        let mut with_env = base.clone();
        with_env.insert("env", strings(&env));
        let defaults = Scope::new(&with_env);
        let defaults_shell = [&job.defaults.shell, &task.workflow.defaults.shell]
            .into_iter()
            .flatten()
            .next()
            .map(|t| defaults.render(t))
            .transpose()
            .map_err(|e| fail(format!("defaults.run.shell: {e}")))?;
        let defaults_workdir = [
            &job.defaults.working_directory,
            &task.workflow.defaults.working_directory,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|t| defaults.render(t))
        .transpose()
        .map_err(|e| fail(format!("defaults.run.working-directory: {e}")))?;
        Ok(JobRunner {
            logs: Logs {
                ctx: Arc::clone(&ctx),
                job: id.clone(),
                pipeline,
                writer: Some(writer),
                failed: false,
                capture: (!job.log_outputs.is_empty()).then(String::new),
                legacy: Vec::new(),
            },
            ctx,
            id,
            base,
            env,
            path_adds: Vec::new(),
            workspace,
            temp,
            environment: Arc::from(environment),
            in_container,
            records: Vec::new(),
            post: Vec::new(),
            cancel: task.cancel.clone(),
            deadline: Instant::now() + timeout,
            timed_out: false,
            after_cancel: false,
            step_index: 0,
            scripts: 0,
            defaults_shell,
            defaults_workdir,
            summary: String::new(),
            secrets,
            github,
            log_key,
            job_status: Status::Success,
            system_failure: false,
            lost: false,
            containers,
            table,
            job: task.instance.job.clone(),
            instance: task.instance.id.clone(),
            cleanup_timeout: Duration::from_secs(job.cleanup_timeout.min(MAX_DELAY_SECS)),
            past_cleanup: false,
            in_cleanup: false,
            exit_code: None,
            step_outputs: IndexMap::new(),
            image_ignored,
            task_secret_sets: Arc::clone(&task.scope.secret_sets),
            needs: task.needs.clone(),
            needed: task.needed.clone(),
            stagings: 0,
            leftovers,
            make_command_files: false,
            background: Vec::new(),
            went_to_background: false,
            no_output_timeout: None,
            went_quiet: None,
            setup: table == Table::CircleCi && task.workflow.setup,
        })
    }

    /// The contexts a step of `frame` sees.
    pub fn contexts(&self, frame: &Frame, env: &IndexMap<String, String>) -> Contexts {
        let mut c = self.base.clone();
        let status = if self.cancel.is_cancelled() {
            Status::Cancelled
        } else if frame.failed {
            Status::Failure
        } else {
            self.job_status
        };
        let mut job_ctx = IndexMap::new();
        job_ctx.insert("status".into(), Value::string(status.as_str()));
        c.insert("env", strings(env))
            .insert(
                "steps",
                Value::from_json(&serde_json::Value::Object(frame.steps.clone())),
            )
            .insert("job", object(job_ctx));
        if let Some(inputs) = &frame.inputs {
            c.insert("inputs", inputs.clone());
        }
        if let Some(path) = &frame.action_path {
            let mut github = match &self.github {
                Value::Object(m) => (**m).clone(),
                _ => IndexMap::new(),
            };
            github.insert(
                "action_path".into(),
                Value::string(path.to_string_lossy().as_ref()),
            );
            c.insert("github", object(github));
        }
        c
    }

    /// The status functions for a step of `frame`.
    pub fn status(&self, frame: &Frame) -> StatusFns {
        let cancelled = self.cancel.is_cancelled();
        StatusFns {
            success: !frame.failed && !cancelled,
            failure: frame.failed,
            cancelled,
        }
    }

    /// The environment a step of `frame` starts from.
    pub fn frame_env(&self, frame: &Frame) -> IndexMap<String, String> {
        let mut env = self.env.clone();
        env.extend(frame.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    async fn run(&mut self, job: &Job) -> Outcome {
        let mut frame = Frame::default();
        for name in &job.contexts {
            if !self.task_secret_sets.contains_key(name) {
                self.logs
                    .annotate(
                        0,
                        "warning",
                        &format!("context '{name}' is not given here: its variables are unset (--context {name}=FILE)"),
                    )
                    .await;
            }
        }
        if self.image_ignored {
            self.logs
                .annotate(
                    0,
                    "warning",
                    "Docker or the job's image is not available here: the image is ignored and the script runs on the host",
                )
                .await;
        }
        if let Some(env) = &job.environment {
            let vars = self.env.clone();
            let name = match self.table {
                Table::GitLab | Table::CircleCi => {
                    crate::env::expand(&env.name.raw, &vars, &IndexMap::new())
                }
                Table::GitHub => {
                    let contexts = self.contexts(&frame, &vars);
                    Scope::new(&contexts)
                        .render(&env.name)
                        .unwrap_or_else(|_| env.name.raw.clone())
                }
            };
            self.logs.line(0, &format!("Environment: {name}")).await;
        }
        for step in &job.steps {
            if self.leftovers && !matches!(step.action, StepAction::Checkout) {
                self.clear_leftovers().await;
            }
            self.step(step, &mut frame).await;
            if self.table == Table::CircleCi && self.halted(step).await {
                break;
            }
        }
        if !self.background.is_empty() {
            // What still runs in the background when the steps are done is stopped.
            let _ = self.finish_background(None, true, true, &mut frame).await;
        }
        self.run_posts(&mut frame).await;
        self.records.sort_by_key(|r| r.index);
        let status = if self.cancel.is_cancelled() {
            Status::Cancelled
        } else if frame.failed {
            Status::Failure
        } else {
            Status::Success
        };
        self.job_status = status;
        let mut outputs = self.outputs(job, &frame).await;
        outputs.extend(std::mem::take(&mut self.step_outputs));
        if !job.log_outputs.is_empty() {
            let log = self.logs.captured();
            for (name, line, value) in crate::transfer::log_outputs(&job.log_outputs, &log) {
                self.logs.line(self.step_index, &line).await;
                outputs.insert(name, value);
            }
        }
        let mut outcome = match status {
            Status::Success => Outcome::success(),
            Status::Cancelled => Outcome::cancelled(),
            _ => {
                let mut o = Outcome::failure(self.exit_code.unwrap_or(1));
                o.exit_code = self.exit_code;
                if self.timed_out {
                    o.reason = Some("stuck_or_timeout_failure".into());
                } else if self.lost {
                    o.reason = Some(ci_graph::RUNNER_LOST.into());
                } else if self.system_failure {
                    o.reason = Some("runner_system_failure".into());
                }
                o
            }
        };
        outcome.outputs = outputs;
        if self.setup {
            outcome.outputs.extend(self.continuation().await);
        }
        outcome
    }

    /// What a job of a setup configuration continues the pipeline with (`circleci
    /// continue`/`finish`), as outputs: `gantry.continuation.path`, `.config` and
    /// `.parameters` (JSON text), or `gantry.continuation.finished`.
    async fn continuation(&mut self) -> IndexMap<String, String> {
        let dir = self.temp.join("continuation");
        let mut out = IndexMap::new();
        for (file, key) in [
            ("path", "gantry.continuation.path"),
            ("config.yml", "gantry.continuation.config"),
            ("parameters.json", "gantry.continuation.parameters"),
            ("finished", "gantry.continuation.finished"),
        ] {
            match self.environment.read_file(&dir.join(file)).await {
                Ok(Some(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let text = if file == "finished" {
                        "true".into()
                    } else {
                        text
                    };
                    out.insert(key.to_owned(), text);
                }
                Ok(None) => {}
                Err(e) => {
                    self.logs
                        .annotate(self.step_index, "error", &format!("continuation: {e}"))
                        .await;
                }
            }
        }
        out
    }

    /// Whether a CircleCI step ran `circleci-agent step halt`: the job then ends, successful
    /// unless a step already failed, and the steps after it are not run.
    async fn halted(&mut self, step: &Step) -> bool {
        if !matches!(
            step.action,
            StepAction::Run { .. } | StepAction::Commands { .. }
        ) {
            return false;
        }
        let marker = self.temp.join("halt");
        match self.environment.read_file(&marker).await {
            Ok(Some(_)) => {
                self.logs
                    .line(
                        self.step_index,
                        "The job was halted (circleci-agent step halt): the remaining steps are not run.",
                    )
                    .await;
                true
            }
            _ => false,
        }
    }

    async fn outputs(&mut self, job: &Job, frame: &Frame) -> IndexMap<String, String> {
        let env = self.frame_env(frame);
        let contexts = self.contexts(frame, &env);
        let scope = Scope::new(&contexts);
        let mut out = IndexMap::new();
        let mut problems = Vec::new();
        for (name, template) in &job.outputs {
            match scope.render(template) {
                Ok(v) if self.secrets.iter().any(|s| v.contains(s.as_str())) => {
                    problems.push(format!("Skip output '{name}' since it may contain secret."))
                }
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) => problems.push(format!("output '{name}': {e}")),
            }
        }
        for p in problems {
            self.logs.annotate(self.step_index, "warning", &p).await;
        }
        out
    }

    /// Runs one step of `frame` (a job step or a composite action's step).
    pub fn step<'a>(
        &'a mut self,
        step: &'a Step,
        frame: &'a mut Frame,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        let span = tracing::info_span!("step", index = self.step_index, id = %step.id);
        Box::pin(tracing::Instrument::instrument(
            async move {
                let index = self.step_index;
                self.step_index += 1;
                // Decided with the condition: a step that starts after cancellation (`always()`)
                // gets its own chance; one that started before is stopped by it.
                self.after_cancel = self.cancel.is_cancelled();
                let env0 = self.frame_env(frame);
                let contexts = self.contexts(frame, &env0);
                let workspace = self.workspace.clone();
                let mut scope = Scope::new(&contexts);
                scope.status = Some(self.status(frame));
                scope.workspace = Some(&workspace);
                let name = String::from_utf8_lossy(
                    &self
                        .logs
                        .pipeline
                        .masker()
                        .mask(step_name(&scope, step).as_bytes()),
                )
                .into_owned();
                let started = Instant::now();
                let started_at = now_ms();
                if step.cleanup {
                    self.past_cleanup = true;
                }
                self.in_cleanup = step.cleanup;
                let run = if !self.past_cleanup && Instant::now() >= self.deadline {
                    self.timed_out = true;
                    Ok(false)
                } else {
                    scope.condition(&step.condition.effective)
                };
                let continue_on_error = match &step.continue_on_error {
                    Some(n) => scope.node(n).map(|v| v.is_truthy()).unwrap_or(false),
                    None => false,
                };
                if !matches!(run, Ok(false)) {
                    self.ctx
                        .emit(RunEvent::StepStarted {
                            job: self.id.clone(),
                            step: index,
                            name: name.clone(),
                        })
                        .await;
                }
                let result = match run {
                    Ok(false) => StepResult {
                        outcome: Status::Skipped,
                        outputs: IndexMap::new(),
                    },
                    Err(e) => {
                        self.logs
                            .annotate(index, "error", &format!("step '{name}': if: {e}"))
                            .await;
                        StepResult {
                            outcome: Status::Failure,
                            outputs: IndexMap::new(),
                        }
                    }
                    Ok(true) => {
                        self.logs.raw(&format!("##[group]{name}\n")).await;
                        let r = self.execute(step, frame, &scope, index, &env0).await;
                        self.logs.raw("##[endgroup]\n").await;
                        match r {
                            Ok(r) => r,
                            Err(message) => {
                                self.logs.annotate(index, "error", &message).await;
                                StepResult {
                                    outcome: Status::Failure,
                                    outputs: IndexMap::new(),
                                }
                            }
                        }
                    }
                };
                if std::mem::take(&mut self.went_to_background) {
                    // Concluded (recorded, reported) when it ends.
                    if let Some(b) = self.background.last_mut() {
                        b.name = name;
                        b.started = started;
                        b.started_at = started_at;
                        b.continue_on_error = continue_on_error;
                    }
                    return;
                }
                let conclusion = if result.outcome == Status::Failure && continue_on_error {
                    Status::Success
                } else {
                    result.outcome
                };
                // A cleanup step's result does not change the job's.
                if conclusion == Status::Failure && !step.cleanup {
                    frame.failed = true;
                }
                self.step_outputs.extend(match &step.action {
                    StepAction::ArtifactUpload(_) => result.outputs.clone(),
                    _ => IndexMap::new(),
                });
                frame.steps.insert(
                    step.id.clone(),
                    serde_json::json!({
                        "outputs": result.outputs,
                        "outcome": result.outcome.as_str(),
                        "conclusion": conclusion.as_str(),
                    }),
                );
                tracing::debug!(status = %conclusion, "step finished");
                if let Some(w) = self.logs.writer.as_mut().filter(|w| w.is_live()) {
                    if let Err(e) = w.flush().await {
                        self.ctx
                            .error(format!("writing the log of '{}': {e}", self.id));
                    }
                }
                if result.outcome != Status::Skipped {
                    self.ctx
                        .emit(RunEvent::StepFinished {
                            job: self.id.clone(),
                            step: index,
                            name: name.clone(),
                            status: conclusion,
                            duration_ms: started.elapsed().as_millis() as u64,
                        })
                        .await;
                }
                if frame.action_path.is_none() {
                    self.records.push(StepRecord {
                        index: index as i64,
                        name,
                        status: conclusion.stored(),
                        started_at: (result.outcome != Status::Skipped).then_some(started_at),
                        finished_at: Some(now_ms()),
                        log_key: Some(self.log_key.clone()),
                    });
                }
            },
            span,
        ))
    }

    /// Does a step's work.
    async fn execute(
        &mut self,
        step: &Step,
        frame: &mut Frame,
        scope: &Scope<'_>,
        index: usize,
        env0: &IndexMap<String, String>,
    ) -> Result<StepResult, String> {
        let mut env = env0.clone();
        scope.env(&step.env, &mut env)?;
        // The step's own `env` is in the `env` context of the rest of the step (`run`,
        // `with`, …), as GitHub documents.
        let step_contexts;
        let step_scope;
        let scope = if matches!(step.env, Env::Empty) {
            scope
        } else {
            let mut c = scope.contexts.clone();
            c.insert("env", strings(&env));
            step_contexts = c;
            step_scope = Scope {
                contexts: &step_contexts,
                status: scope.status,
                workspace: scope.workspace,
            };
            &step_scope
        };
        let own = match &step.timeout_minutes {
            Some(n) => Some(minutes(scope, n)?),
            None => None,
        };
        let timeout = if step.cleanup {
            Some(self.cleanup_timeout)
        } else if self.past_cleanup {
            own
        } else {
            // What is left of the job's time limit bounds every step before the cleanup.
            let left = self.deadline.saturating_duration_since(Instant::now());
            Some(own.map_or(left, |o| o.min(left)))
        };
        self.no_output_timeout = step.no_output_timeout.map(Duration::from_secs);
        match &step.action {
            StepAction::Commands { commands, echo } => {
                let (script, shell) = self.commands_script(commands, *echo);
                let spec = StepSpec {
                    id: step.id.clone(),
                    script,
                    shell,
                    env,
                    workdir: None,
                    timeout,
                    inherit_env: !self.in_container,
                };
                self.script(step, index, spec).await
            }
            StepAction::Checkout => crate::transfer::checkout(self).await,
            StepAction::CacheRestore { caches } => {
                Ok(crate::transfer::restore_caches(self, caches, &env, index).await)
            }
            StepAction::CacheSave { caches } => {
                let succeeded = !frame.failed && !self.cancel.is_cancelled();
                Ok(crate::transfer::save_caches(self, caches, &env, succeeded, index).await)
            }
            StepAction::ArtifactDownload { from } => {
                crate::transfer::download_artifacts(self, from.as_deref(), index).await
            }
            StepAction::ArtifactUpload(upload) => {
                crate::transfer::upload_artifacts(self, upload, &env, index).await
            }
            StepAction::WorkspacePersist { root, paths } => {
                crate::transfer::persist_workspace(self, root, paths, index).await
            }
            StepAction::WorkspaceAttach { at } => {
                crate::transfer::attach_workspace(self, at, index).await
            }
            StepAction::Run {
                script,
                shell,
                working_directory,
            } => {
                let script = scope.render(script)?;
                let shell = match shell {
                    Some(s) => Some(scope.render(s)?),
                    None => self.defaults_shell.clone(),
                };
                let workdir = match working_directory {
                    Some(w) => Some(scope.render(w)?),
                    None => self.defaults_workdir.clone(),
                };
                let spec = StepSpec {
                    id: step.id.clone(),
                    script,
                    shell: self.shell(shell.as_deref()),
                    env,
                    workdir: workdir.map(PathBuf::from),
                    timeout,
                    inherit_env: !self.in_container,
                };
                self.script(step, index, spec).await
            }
            StepAction::Uses { uses, with } => {
                if step.background {
                    self.logs
                        .annotate(
                            index,
                            "warning",
                            "a background `uses:` step runs in the foreground here: Gantry runs `run:` steps in the background",
                        )
                        .await;
                }
                let mut inputs = IndexMap::new();
                for (k, v) in with {
                    inputs.insert(k.clone(), scope.node_text(v)?);
                }
                crate::actions::uses(self, frame, step, index, uses, inputs, env, timeout).await
            }
            StepAction::Wait { steps } => {
                self.finish_background(Some(steps), false, false, frame)
                    .await?;
                Ok(JobRunner::success())
            }
            StepAction::WaitAll => {
                self.finish_background(None, false, false, frame).await?;
                Ok(JobRunner::success())
            }
            StepAction::Cancel { step: id } => {
                self.finish_background(Some(std::slice::from_ref(id)), true, false, frame)
                    .await?;
                Ok(JobRunner::success())
            }
            StepAction::Parallel { steps } => {
                // The scripts go to the background, the others run meanwhile, one after
                // another; then the group waits for its scripts.
                let mut started = Vec::new();
                for inner in steps.iter().filter(|s| is_script(s)) {
                    let mut inner = inner.clone();
                    inner.background = true;
                    let before = self.background.len();
                    self.step(&inner, frame).await;
                    if self.background.len() > before {
                        started.push(inner.id.clone());
                    }
                }
                for inner in steps.iter().filter(|s| !is_script(s)) {
                    self.step(inner, frame).await;
                }
                self.finish_background(Some(&started), false, false, frame)
                    .await?;
                Ok(JobRunner::success())
            }
        }
    }

    /// Runs a script step to its end, or starts it in the background.
    async fn script(
        &mut self,
        step: &Step,
        index: usize,
        spec: StepSpec,
    ) -> Result<StepResult, String> {
        if step.background {
            self.start_background(index, spec).await?;
            return Ok(JobRunner::success());
        }
        let done = self.exec(index, spec).await;
        Ok(self.conclude(index, done).await)
    }

    /// The script of a [`StepAction::Commands`] step and its shell: bash when there is one
    /// (with `pipefail`), else sh; each command echoed as `$ command` when asked, and the
    /// script stops at the first failing command.
    fn commands_script(&self, commands: &[String], echo: bool) -> (String, Shell) {
        let mut script = String::from("set -e\n");
        if self.in_container {
            // The image decides: `pipefail` only where bash runs it.
            script.push_str("[ -n \"$BASH_VERSION\" ] && set -o pipefail\n");
        } else if self.ctx.inner.bash.is_some() {
            script.push_str("set -o pipefail\n");
        }
        for command in commands {
            if echo {
                let shown = match command.lines().count() {
                    0 | 1 => command.clone(),
                    _ => format!(
                        "{} # collapsed multi-line command",
                        command.lines().next().unwrap_or("")
                    ),
                };
                script.push_str(&format!(
                    "printf '%s\\n' {}\n",
                    crate::actions::shell_quote(&format!("$ {shown}"))
                ));
            }
            script.push_str(command);
            script.push('\n');
        }
        let shell = if self.in_container {
            Shell::Custom("sh -c 'if command -v bash >/dev/null 2>&1; then exec bash \"$1\"; else exec sh \"$1\"; fi' gantry {0}".into())
        } else {
            match &self.ctx.inner.bash {
                // The path resolved once: no PATH search per job.
                Some(path) if !path.to_string_lossy().contains([' ', '\'', '"']) => {
                    Shell::Custom(format!("{} {{0}}", path.display()))
                }
                Some(_) => Shell::Custom("bash {0}".into()),
                None => Shell::Custom("sh {0}".into()),
            }
        };
        (script, shell)
    }

    /// The shell for a `run` step.
    pub fn shell(&self, shell: Option<&str>) -> Shell {
        match shell {
            Some(s) => Shell::parse(s),
            // GitHub: `bash -e {0}`, or `sh -e {0}` where bash is missing.
            None if self.in_container => Shell::Custom(
                "sh -c 'if command -v bash >/dev/null 2>&1; then exec bash -e \"$1\"; else exec sh -e \"$1\"; fi' gantry {0}"
                    .into(),
            ),
            None => match &self.ctx.inner.bash {
                Some(bash) if !bash.to_string_lossy().contains([' ', '\'', '"']) => {
                    Shell::Custom(format!("{} -e {{0}}", bash.display()))
                }
                Some(_) => Shell::Custom("bash -e {0}".into()),
                None => Shell::Custom("sh -e {0}".into()),
            },
        }
    }

    /// Maps an executed script to a step result, logging why it failed.
    pub async fn conclude(&mut self, index: usize, done: Executed) -> StepResult {
        if self.in_cleanup {
            // Cleanup: its own limit, and its result does not change the job's.
            let message = match &done.outcome {
                StepOutcome::Exited(0) => None,
                StepOutcome::TimedOut => Some(format!(
                    "The cleanup step timed out ({} s).",
                    self.cleanup_timeout.as_secs()
                )),
                other => Some(format!("The cleanup step failed: {other:?}")),
            };
            let outcome = match message {
                Some(m) => {
                    self.logs.annotate(index, "warning", &m).await;
                    Status::Failure
                }
                None => Status::Success,
            };
            return StepResult {
                outcome,
                outputs: done.outputs,
            };
        }
        if let Some(limit) = self.went_quiet.take() {
            let message = format!(
                "Too long with no output (exceeded {}): the step was stopped.",
                crate::job::human_duration(limit)
            );
            self.logs.annotate(index, "error", &message).await;
            return StepResult {
                outcome: Status::Failure,
                outputs: done.outputs,
            };
        }
        if let StepOutcome::Exited(code) = &done.outcome {
            if *code != 0 {
                self.exit_code = Some(*code);
            }
        }
        let (outcome, message) = match &done.outcome {
            StepOutcome::Exited(0) => (Status::Success, None),
            StepOutcome::Exited(code) => (
                Status::Failure,
                Some(format!("Process completed with exit code {code}.")),
            ),
            StepOutcome::Signaled(sig) => (
                Status::Failure,
                Some(format!("Process was killed by signal {sig}.")),
            ),
            StepOutcome::TimedOut if Instant::now() >= self.deadline => {
                self.timed_out = true;
                (
                    Status::Failure,
                    Some("The job has exceeded its time limit (timeout-minutes).".into()),
                )
            }
            StepOutcome::TimedOut => (
                Status::Failure,
                Some("The step has timed out (timeout-minutes).".into()),
            ),
            StepOutcome::Cancelled => (
                Status::Cancelled,
                Some("The operation was canceled.".into()),
            ),
            StepOutcome::StartFailed(why) => {
                self.system_failure = true;
                (
                    Status::Failure,
                    Some(format!("The step could not start: {why}")),
                )
            }
            StepOutcome::OomKilled => (
                Status::Failure,
                Some("The step ran out of memory and was killed.".into()),
            ),
            StepOutcome::Lost(why) => {
                self.lost = true;
                (
                    Status::Failure,
                    Some(format!("The machine running the step was lost: {why}")),
                )
            }
            other => (Status::Failure, Some(format!("The step ended: {other:?}"))),
        };
        if let Some(message) = message {
            self.logs.annotate(index, "error", &message).await;
        }
        StepResult {
            outcome,
            outputs: done.outputs,
        }
    }

    /// Runs a script in the job environment with fresh file-command files, streaming its
    /// log, then applies what it wrote to `GITHUB_ENV`, `GITHUB_PATH` and
    /// `GITHUB_STEP_SUMMARY` and returns its `GITHUB_OUTPUT`.
    pub async fn exec(&mut self, index: usize, spec: StepSpec) -> Executed {
        let (spec, paths) = self.exec_begin(index, spec).await;
        let outcome = self.stream(index, &spec).await;
        self.exec_end(index, &spec, &paths, outcome).await
    }

    /// Gives a script its fresh file-command files (GitHub): the spec to run and the files
    /// to read after it.
    pub async fn exec_begin(
        &mut self,
        index: usize,
        mut spec: StepSpec,
    ) -> (StepSpec, Vec<PathBuf>) {
        self.scripts += 1;
        let n = self.scripts;
        if self.table.shell_style() {
            // GitLab and CircleCI have no file or workflow commands: the output is the log.
            return (spec, Vec::new());
        }
        let files = [
            ("GITHUB_OUTPUT", format!("set_output_{n}")),
            ("GITHUB_ENV", format!("set_env_{n}")),
            ("GITHUB_PATH", format!("add_path_{n}")),
            ("GITHUB_STEP_SUMMARY", format!("step_summary_{n}")),
            ("GITHUB_STATE", format!("save_state_{n}")),
        ];
        // The files are made by the first write (`>>`); names are unique per script, so a
        // missing file is an empty one.
        let mut paths = Vec::new();
        for (var, file) in &files {
            let p = self.temp.join(file);
            spec.env
                .insert((*var).to_owned(), p.to_string_lossy().into_owned());
            paths.push(p);
        }
        if std::mem::take(&mut self.make_command_files) {
            let names: Vec<PathBuf> = files.iter().map(|(_, f)| PathBuf::from(f)).collect();
            let empty = empty_files(&names);
            if let Err(e) = self.environment.write_tar(&self.temp, empty).await {
                self.logs
                    .annotate(index, "warning", &format!("file commands: {e}"))
                    .await;
            }
        }
        spec.env.insert("GITHUB_ACTION".into(), spec.id.clone());
        if !self.path_adds.is_empty() {
            let base = if self.in_container {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
            } else {
                spec.env
                    .get("PATH")
                    .cloned()
                    .or_else(|| std::env::var("PATH").ok())
                    .unwrap_or_default()
            };
            let mut all: Vec<String> = self.path_adds.iter().rev().cloned().collect();
            all.push(base);
            spec.env.insert("PATH".into(), all.join(":"));
        }
        (spec, paths)
    }

    /// Applies what a script wrote to its file-command files (see [`Self::exec_begin`]) and
    /// the workflow commands it printed.
    pub async fn exec_end(
        &mut self,
        index: usize,
        spec: &StepSpec,
        paths: &[PathBuf],
        outcome: StepOutcome,
    ) -> Executed {
        if self.table.shell_style() {
            self.logs.legacy.clear();
            return Executed {
                outcome,
                outputs: IndexMap::new(),
                state: IndexMap::new(),
            };
        }
        let texts = self.file_commands(paths).await;
        let read = |i: usize| texts[i].as_str();
        let mut outputs = IndexMap::new();
        match parse_env_file(read(0)) {
            Ok(o) => outputs = o,
            Err(e) => {
                self.logs
                    .annotate(index, "error", &format!("GITHUB_OUTPUT: {e}"))
                    .await
            }
        }
        match parse_env_file(read(1)) {
            Ok(vars) => {
                for (k, v) in vars {
                    self.env.insert(k, v);
                }
            }
            Err(e) => {
                self.logs
                    .annotate(index, "error", &format!("GITHUB_ENV: {e}"))
                    .await
            }
        }
        self.path_adds.extend(parse_path_file(read(2)));
        let unsecure = spec
            .env
            .get("ACTIONS_ALLOW_UNSECURE_COMMANDS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut outcome = outcome;
        if self.legacy_commands(index, unsecure, &mut outputs).await
            && outcome == StepOutcome::Exited(0)
        {
            // A refused command fails the step, as on GitHub.
            outcome = StepOutcome::Exited(1);
        }
        let summary = read(3).to_owned();
        if !summary.is_empty() {
            self.summary.push_str(&summary);
            if !summary.ends_with('\n') {
                self.summary.push('\n');
            }
        }
        let state = match parse_env_file(read(4)) {
            Ok(state) => state,
            Err(e) => {
                self.logs
                    .annotate(index, "error", &format!("GITHUB_STATE: {e}"))
                    .await;
                IndexMap::new()
            }
        };
        Executed {
            outcome,
            outputs,
            state,
        }
    }

    /// Applies the deprecated commands a step printed, as GitHub still does: `set-output`
    /// (and `save-state`) with a deprecation warning; `set-env` and `add-path` only when the
    /// step's environment sets `ACTIONS_ALLOW_UNSECURE_COMMANDS=true`, else refused with
    /// GitHub's messages; whether one was refused.
    async fn legacy_commands(
        &mut self,
        index: usize,
        unsecure: bool,
        outputs: &mut IndexMap<String, String>,
    ) -> bool {
        let mut refused = false;
        const ENV_FILES: &str = "Please upgrade to using Environment Files";
        for (command, name, value) in std::mem::take(&mut self.logs.legacy) {
            match (command.as_str(), name) {
                ("set-output", Some(name)) => {
                    self.logs
                        .annotate(
                            index,
                            "warning",
                            &format!("The `set-output` command is deprecated and will be disabled soon. {ENV_FILES}. For more information see: https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/"),
                        )
                        .await;
                    outputs.entry(name).or_insert(value);
                }
                ("save-state", Some(_)) => {
                    self.logs
                        .annotate(
                            index,
                            "warning",
                            &format!("The `save-state` command is deprecated and will be disabled soon. {ENV_FILES}. For more information see: https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/"),
                        )
                        .await;
                }
                ("set-env", Some(name)) if unsecure => {
                    self.env.insert(name, value);
                }
                ("add-path", _) if unsecure => self.path_adds.push(value),
                ("set-env" | "add-path", name) => {
                    refused = true;
                    let shown = match name {
                        Some(name) => format!("::{command} name={name}::{value}"),
                        None => format!("::{command}::{value}"),
                    };
                    self.logs
                        .annotate(
                            index,
                            "error",
                            &format!("Unable to process command '{shown}' successfully."),
                        )
                        .await;
                    self.logs
                        .annotate(
                            index,
                            "error",
                            &format!("The `{command}` command is disabled. {ENV_FILES} or opt into unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`. For more information see: https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/"),
                        )
                        .await;
                }
                (other, _) => {
                    self.logs
                        .annotate(
                            index,
                            "warning",
                            &format!("Unable to process command '::{other}': the `name` property is missing"),
                        )
                        .await;
                }
            }
        }
        refused
    }

    /// The texts of a step's file-command files (empty for those it did not write), read
    /// through the job environment. On the local fast path one directory listing says which
    /// files the step wrote (most steps write none).
    async fn file_commands(&self, paths: &[PathBuf]) -> Vec<String> {
        if self.environment.local_workspace().is_some() {
            let written: Vec<std::ffi::OsString> = std::fs::read_dir(&self.temp)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            return paths
                .iter()
                .map(|p| {
                    if p.file_name()
                        .is_some_and(|n| written.iter().any(|w| w == n))
                    {
                        std::fs::read_to_string(p).unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .collect();
        }
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let text = match self.environment.read_file(p).await {
                Ok(Some(data)) => String::from_utf8_lossy(&data).into_owned(),
                _ => String::new(),
            };
            out.push(text);
        }
        out
    }

    /// Runs a script in the job environment, streaming its output through the log pipeline.
    async fn stream(&mut self, index: usize, spec: &StepSpec) -> StepOutcome {
        let step_cancel = if self.after_cancel {
            // A step that runs after cancellation (`always()`) gets its own chance.
            CancellationToken::new()
        } else {
            self.cancel.child_token()
        };
        let (tx, mut rx) = mpsc::channel::<Chunk>(64);
        let environment = &self.environment;
        let logs = &mut self.logs;
        let quiet_limit = self.no_output_timeout.take();
        let stopper = step_cancel.clone();
        let run = environment.run_step(spec, tx, step_cancel);
        // Live logs: what arrived is written out at least this often, even when a step then
        // stays quiet for a while.
        let live = self.ctx.inner.live_logs;
        let mut went_quiet = false;
        let pump = async {
            let mut tick = tokio::time::interval(live.unwrap_or(Duration::from_secs(3600)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let far = Duration::from_secs(100 * 365 * 24 * 3600);
            let quiet = tokio::time::sleep(quiet_limit.unwrap_or(far));
            tokio::pin!(quiet);
            loop {
                tokio::select! {
                    chunk = rx.recv() => {
                        let Some(chunk) = chunk else { break };
                        if let Some(limit) = quiet_limit {
                            quiet.as_mut().reset(tokio::time::Instant::now() + limit);
                        }
                        let events = logs.pipeline.push(&chunk);
                        logs.events(index, events).await;
                    }
                    _ = tick.tick(), if live.is_some() => {
                        if let Some(w) = logs.writer.as_mut() {
                            let _ = w.flush().await;
                        }
                    }
                    _ = &mut quiet, if quiet_limit.is_some() && !went_quiet => {
                        went_quiet = true;
                        stopper.cancel();
                    }
                }
            }
            let events = logs.pipeline.finish();
            logs.events(index, events).await;
        };
        let (outcome, ()) = tokio::join!(run, pump);
        if went_quiet {
            self.went_quiet = quiet_limit;
        }
        outcome
    }

    async fn run_posts(&mut self, frame: &mut Frame) {
        let posts = std::mem::take(&mut self.post);
        for post in posts.into_iter().rev() {
            crate::actions::run_post(self, frame, post).await;
        }
    }

    /// Ends the job: step summary kept, environment torn down, log finished.
    async fn close(&mut self) {
        if !self.summary.is_empty() {
            let key = format!("summaries/{}/{}.md", self.ctx.run_id, self.log_key);
            let _ = self
                .ctx
                .inner
                .blobs
                .put(&key, self.summary.clone().into_bytes().into())
                .await;
        }
        if let Err(e) = self.environment.teardown().await {
            self.logs
                .annotate(self.step_index, "warning", &format!("teardown: {e}"))
                .await;
        }
        if let Some(w) = self.logs.writer.take() {
            self.ctx
                .record(crate::state::Record::Log(self.id.clone(), w))
                .await;
        }
        // Offered to later jobs as they are: the next one clears or rewrites them (the run
        // directory goes at the end of the run in any case). A container may have left files
        // this process cannot remove: those directories are emptied first, in the
        // background, and offered only when that worked.
        let dirs = (self.workspace.clone(), self.temp.clone());
        if self.in_container {
            let ctx = Arc::clone(&self.ctx);
            tokio::task::spawn_blocking(move || {
                if empty_dir(&dirs.0) && empty_dir(&dirs.1) {
                    ctx.offer_dirs(dirs);
                }
            });
        } else {
            self.ctx.offer_dirs(dirs);
        }
    }

    /// Removes what the job that used the workspace before left in it.
    pub(crate) async fn clear_leftovers(&mut self) {
        self.leftovers = false;
        if !clear_dir(&self.workspace).await {
            let message = format!(
                "could not remove every file of the job that used {} before",
                self.workspace.display()
            );
            self.logs
                .annotate(self.step_index, "warning", &message)
                .await;
        }
    }
}

/// Puts the `circleci` stand-in at `temp/bin/circleci`, executable, where the job sees it.
async fn install_circleci_cli(
    environment: &dyn ci_exec::JobEnvironment,
    temp: &Path,
) -> Result<(), String> {
    // `circleci-agent step halt` is the same program under the agent's name.
    let cli = ci_vcs::jobenv::CIRCLECI_CLI.as_bytes();
    let archive = ci_exec::files::archive(&[
        ("bin/circleci", cli, 0o755),
        ("bin/circleci-agent", cli, 0o755),
    ]);
    environment
        .write_tar(temp, archive)
        .await
        .map_err(|e| e.to_string())
}

/// `1h2m3s`, `10m0s`, `45s`: a duration as CircleCI prints it.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// Whether a step is a script (it can run in the background).
fn is_script(step: &Step) -> bool {
    matches!(
        step.action,
        StepAction::Run { .. } | StepAction::Commands { .. }
    )
}

/// The job's environment, layered: the run's predefined variables and the runner table's job
/// variables, the workflow's, the run's rule variables, the job's, matrix values of
/// `parallel: matrix` instances, dotenv variables of the jobs whose artifacts it downloads,
/// and the run's overriding variables. [`Env::Map`] blocks are evaluated as GitHub
/// expressions against what came before; [`Env::Vars`] blocks expanded shell-style.
fn job_env(
    task: &JobTask,
    job: &Job,
    table: Table,
    base: &Contexts,
    workspace: &Path,
    timeout: Duration,
) -> Result<IndexMap<String, String>, String> {
    let run = &task.scope.vars;
    // Predefined variables first: every definition in the file overrides them.
    let mut env = run.predefined.clone();
    match table {
        Table::GitLab => env.extend(ci_vcs::jobenv::gitlab_job_variables(&gitlab_job_info(
            task, job, workspace, timeout,
        ))),
        Table::CircleCi => {
            let mut info = gitlab_job_info(task, job, workspace, timeout);
            // The job's name in its workflow (`build-linux`), not the run's `workflow/` id.
            info.base = job.name.raw.clone();
            env.extend(ci_vcs::jobenv::circleci_job_variables(&info));
        }
        Table::GitHub => {}
    }
    for (i, block) in [&task.workflow.env, &job.env].into_iter().enumerate() {
        if i == 1 {
            env.extend(run.from_rules.clone());
        }
        match block {
            Env::Vars(vars) => {
                let keep = if i == 0 {
                    job.inherit_env.as_deref()
                } else {
                    None
                };
                add_vars(vars, keep, &mut env, &run.overrides);
            }
            other => {
                let mut scope_ctx = base.clone();
                scope_ctx.insert("env", strings(&env));
                let mut next = env.clone();
                Scope::new(&scope_ctx)
                    .env(other, &mut next)
                    .map_err(|e| format!("env: {e}"))?;
                env = next;
            }
        }
    }
    if let (Some(Parallel::Matrix(_)), Some(m)) = (&job.parallel, &task.instance.matrix) {
        for (k, v) in m {
            env.insert(k.clone(), ci_config::expr::render(v));
        }
    }
    // Dotenv reports travel with artifacts: the jobs whose artifacts this one downloads.
    let downloads = job.steps.iter().find_map(|s| match &s.action {
        StepAction::ArtifactDownload { from } => Some(from),
        _ => None,
    });
    if let (Some(from), Value::Object(needs)) = (downloads, &task.needs) {
        for (name, need) in needs.iter() {
            if from.as_ref().is_some_and(|f| !f.contains(name)) {
                continue;
            }
            if let Some(Value::Object(outputs)) = need.get("outputs") {
                for (k, v) in outputs.iter() {
                    env.insert(k.clone(), ci_config::expr::render(v));
                }
            }
        }
    }
    for name in &job.contexts {
        if let Some(set) = task.scope.secret_sets.get(name) {
            env.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    env.extend(run.overrides.clone());
    if let (Table::GitLab, Some(e)) = (table, &job.environment) {
        // The environment's name and URL are expanded with the job's variables.
        let expand = |t: &ci_config::Template| crate::env::expand(&t.raw, &env, &run.overrides);
        let (name, url) = (expand(&e.name), e.url.as_ref().map(expand));
        env.extend(ci_vcs::jobenv::gitlab_environment_variables(
            &name,
            url.as_deref(),
            e.action.as_deref(),
            e.tier.as_deref(),
        ));
    }
    Ok(env)
}

/// What GitLab's job-level variables are made of.
fn gitlab_job_info(
    task: &JobTask,
    job: &Job,
    workspace: &Path,
    timeout: Duration,
) -> ci_vcs::jobenv::JobInfo {
    let ws = workspace.to_string_lossy().into_owned();
    let id = &task.instance.id;
    // `job 2/3` instances of `parallel: N`, and the instances of `parallel: matrix`.
    let node = match &job.parallel {
        Some(Parallel::Matrix(_)) => Some((task.matrix_pos.0 + 1, task.matrix_pos.1)),
        _ => id
            .strip_prefix(&format!("{} ", task.instance.job))
            .and_then(|suffix| suffix.split_once('/'))
            .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?))),
    };
    ci_vcs::jobenv::JobInfo {
        job: id.clone(),
        base: task.instance.job.clone(),
        workflow: task.ctx.workflow_name.clone(),
        workspace: ws.clone(),
        builds_dir: workspace
            .parent()
            .map_or(ws, |p| p.to_string_lossy().into_owned()),
        stage: job.stage.clone().unwrap_or_default(),
        job_number: format!("{}{}", task.ctx.run_number, task.matrix_pos.0 + 1),
        pipeline_id: task.ctx.run_id.split('-').next().unwrap_or("1").to_owned(),
        timeout_secs: timeout.as_secs(),
        image: job.container.as_ref().map(|c| c.image.raw.clone()),
        node,
        tags: job.runs_on.labels.iter().map(|l| l.raw.clone()).collect(),
        ..ci_vcs::jobenv::JobInfo::default()
    }
}

/// A tar archive of empty files with these names.
fn empty_files(names: &[PathBuf]) -> tokio_util::bytes::Bytes {
    let names: Vec<String> = names
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let files: Vec<(&str, &[u8], u32)> = names
        .iter()
        .map(|n| (n.as_str(), &b""[..], 0o644))
        .collect();
    ci_exec::files::archive(&files)
}

fn step_name(scope: &Scope<'_>, step: &Step) -> String {
    if let Some(t) = &step.name {
        if let Ok(n) = scope.render(t) {
            return n;
        }
    }
    match &step.action {
        StepAction::Run { script, .. } => {
            let text = scope.render(script).unwrap_or_else(|_| script.raw.clone());
            format!("Run {}", text.lines().next().unwrap_or("").trim())
        }
        StepAction::Uses { uses, .. } => format!("Run {uses}"),
        _ => step.id.clone(),
    }
}

/// `timeout-minutes` (a number or an expression) as a duration.
fn minutes(scope: &Scope<'_>, node: &ci_config::yaml::Node) -> Result<Duration, String> {
    let v = scope.node(node)?;
    let m = match v {
        Value::Number(n) => n,
        Value::String(s) => ci_config::expr::parse_number_string(&s),
        other => return Err(format!("expected a number, got {}", other.kind().name())),
    };
    if !(m.is_finite() && m > 0.0) {
        return Err(format!("expected a positive number of minutes, got {m}"));
    }
    // Beyond ten years a limit means "none"; clamped so that deadlines stay representable.
    Ok(Duration::from_secs_f64(m.min(MAX_MINUTES) * 60.0))
}

/// The longest time limit taken literally (ten years, in minutes).
const MAX_MINUTES: f64 = 10.0 * 365.0 * 24.0 * 60.0;

fn container_spec(
    scope: &Scope<'_>,
    c: &ci_config::model::Container,
) -> Result<ContainerSpec, String> {
    let mut env = IndexMap::new();
    scope.env(&c.env, &mut env)?;
    let image = scope.render(&c.image)?;
    let image = image.strip_prefix("docker://").unwrap_or(&image).to_owned();
    if c.credentials.is_some() || !c.ports.is_empty() || !c.volumes.is_empty() {
        // Registries cannot be reached and ports/volumes are not mapped yet: say so.
        let mut what = Vec::new();
        if c.credentials.is_some() {
            what.push("credentials");
        }
        if !c.ports.is_empty() {
            what.push("ports");
        }
        if !c.volumes.is_empty() {
            what.push("volumes");
        }
        return Err(format!(
            "container '{image}': {} not supported yet",
            what.join(", ")
        ));
    }
    let user = match &c.options {
        Some(o) => {
            let o = scope.render(o)?;
            let words = crate::actions::split_words(&o);
            let mut user = None;
            let mut it = words.iter();
            while let Some(w) = it.next() {
                if w == "--user" || w == "-u" {
                    user = it.next().cloned();
                } else if let Some(u) = w.strip_prefix("--user=") {
                    user = Some(u.to_owned());
                }
            }
            user
        }
        None => None,
    };
    Ok(ContainerSpec { image, env, user })
}
