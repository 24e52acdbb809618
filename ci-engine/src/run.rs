//! The life of a run: prepare (parse, check, plan, record) → schedule → dispatch jobs under the
//! capacity semaphore → record → report.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ci_config::expr::EvalContext;
use ci_config::expr::{Contexts, Value};
use ci_config::model::{Env, InputType, Workflow, WorkflowCall};
use ci_graph::{
    evaluate_deferred_matrix, Conclusion, ConditionEvaluator, ExprConditions, JobInstance, Outcome,
    Plan, RunFacts, Scheduler, SchedulerOptions, State, StatusSnapshot,
};
use ci_store::logs::LogPack;
use ci_store::runs::{JobRecord, NewRun, StepRecord};
use ci_vcs::{Event, RunInfo};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::{object, strings, Scope};
use crate::error::EngineError;
use crate::events::{JobSummary, RunEvent, RunSummary, Status};
use crate::inner::Inner;
use crate::options::{NeedsMode, RunOptions};
use crate::source::Source;
use crate::state::{
    now_ms, outcome_of, JobResult, JobTask, Record, RunCtx, WorkflowResult, WorkflowScope,
};

/// A run ready to execute.
pub(crate) struct Prepared {
    pub run_id: String,
    ctx_parts: (Arc<Inner>, Event, PathBuf, RunOptions, u64),
    workflow: Arc<Workflow>,
    scope: WorkflowScope,
}

/// Reads and plans the workflow and records the run.
pub(crate) async fn prepare(
    inner: Arc<Inner>,
    source: Source,
    event: Event,
    options: RunOptions,
) -> Result<Prepared, EngineError> {
    // Include paths may name predefined and pipeline variables.
    let dialect = source
        .dialect
        .unwrap_or_else(|| ci_config::detect_dialect(&source.path, &source.text));
    let mut include_vars = crate::env::Table::of(dialect).run_variables(&event, &source.root);
    include_vars.extend(options.vars.clone());
    let mut includes = ci_config::gitlab::LocalIncludes::new(&source.root).variables(include_vars);
    for (project, dir) in &inner.action_dirs {
        includes = includes.project_dir(project.clone(), dir.clone());
    }
    let mut options = options;
    let mut orb_problems = Vec::new();
    if dialect == ci_config::Dialect::CircleCi {
        let (found, problems) =
            crate::fetch::circleci_orbs(&inner, &source.text, &options.orbs).await;
        options.orbs.extend(found);
        orb_problems = problems;
    }
    let pipeline = circleci_pipeline(&event, &options, &source.root);
    // Loading borrows the (not thread-safe) include resolvers: they are gone before the next
    // await, so that a run can start on any thread.
    let parsed = {
        let includes =
            crate::fetch::FetchingIncludes::new(includes, inner.fetcher.clone()).strict();
        let load_options = ci_config::LoadOptions {
            dialect: source.dialect,
            includes: &includes,
            circleci: Some(&pipeline),
            ..ci_config::LoadOptions::default()
        };
        ci_config::load(&source.path, &source.text, &load_options)
    };
    // What a registry orb without a source would define cannot run (lint only warns).
    if let Some(d) = parsed
        .diagnostics
        .iter()
        .find(|d| d.code == "orb-not-fetched")
    {
        let why = if orb_problems.is_empty() {
            String::new()
        } else {
            format!(" ({})", orb_problems.join("; "))
        };
        return Err(EngineError::Unsupported(format!(
            "{}:{}: {}{why}; give the orb's source with --orb-dir NS/NAME@VERSION=PATH \
             (EngineBuilder: RunOptions::orbs)",
            source.path,
            d.line(),
            d.message
        )));
    }
    let loaded = match parsed.value {
        Some(loaded) if !parsed.has_errors() => loaded,
        _ => {
            if let Some(d) = parsed.diagnostics.iter().find(|d| d.code == "unsupported") {
                return Err(EngineError::Unsupported(d.message.clone()));
            }
            return Err(EngineError::Invalid {
                path: source.path.clone(),
                diagnostics: parsed.diagnostics,
            });
        }
    };
    prepare_loaded(inner, loaded, source, event, options).await
}

/// The CircleCI pipeline of an event: its values as `circleci config process` makes them
/// locally, and the run's inputs as pipeline parameters.
fn circleci_pipeline(
    event: &Event,
    options: &RunOptions,
    root: &std::path::Path,
) -> ci_config::circleci::Pipeline {
    let mut pipeline = ci_config::circleci::Pipeline::default();
    let mut set = |k: &str, v: String| {
        pipeline.values.insert(k.to_owned(), v);
    };
    match event.git_ref.strip_prefix("refs/tags/") {
        Some(tag) => {
            set("pipeline.git.tag", tag.to_owned());
            set("pipeline.git.branch", String::new());
        }
        None => set(
            "pipeline.git.branch",
            event
                .git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(&event.git_ref)
                .to_owned(),
        ),
    }
    set("pipeline.git.revision", event.sha.clone());
    set(
        "pipeline.git.base_revision",
        event.before.clone().unwrap_or_default(),
    );
    set(
        "pipeline.project.git_url",
        event
            .repository
            .html_url
            .clone()
            .unwrap_or_else(|| root.display().to_string()),
    );
    if matches!(event.kind, ci_vcs::EventKind::Schedule { .. }) {
        set("pipeline.trigger_source", "scheduled_pipeline".into());
    }
    pipeline.parameters = options.inputs.clone();
    pipeline.orbs = options.orbs.clone();
    pipeline
}

/// `RunOptions::junit`: every job with steps ends with a step that reads these reports,
/// whatever happened before.
fn add_test_reports(workflow: &mut Workflow, globs: &[String]) {
    for job in workflow.jobs.values_mut().filter(|j| !j.steps.is_empty()) {
        let span = job.span;
        job.steps.push(ci_config::Step::generated(
            "__gantry_test_results",
            "Test results",
            "always()",
            ci_config::StepAction::ArtifactUpload(Box::new(ci_config::model::ArtifactUpload {
                name: Some("test-results".into()),
                junit: globs.to_vec(),
                ..ci_config::model::ArtifactUpload::default()
            })),
            span,
        ));
    }
}

/// Several workflows of one file (CircleCI runs every workflow that applies, side by side)
/// as one run: jobs named `workflow/job`.
fn merge_workflows(mut workflows: Vec<Workflow>) -> Option<Workflow> {
    if workflows.len() <= 1 {
        return workflows.pop();
    }
    let mut merged = workflows[0].clone();
    merged.jobs.clear();
    merged.name = Some(
        workflows
            .iter()
            .filter_map(|w| w.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
    );
    for w in workflows {
        let prefix = w.name.clone().unwrap_or_default();
        for (id, mut job) in w.jobs {
            let id = format!("{prefix}/{id}");
            // The id is unique in the run; the name stays the workflow's (`CIRCLE_JOB`).
            job.id = id.clone();
            for need in &mut job.needs {
                need.job = format!("{prefix}/{}", need.job);
            }
            merged.jobs.insert(id, job);
        }
    }
    Some(merged)
}

/// Plans and records a loaded file (its rules decided with the event's facts).
pub(crate) async fn prepare_loaded(
    inner: Arc<Inner>,
    mut loaded: ci_config::Loaded,
    source: Source,
    event: Event,
    options: RunOptions,
) -> Result<Prepared, EngineError> {
    let mut secrets = inner.secrets.clone();
    secrets.extend(options.secrets.clone());
    if loaded.workflows.is_empty() {
        return Err(EngineError::NotCreated(format!(
            "no workflow of {} runs for this pipeline (their when/unless and filters leave none)",
            source.path
        )));
    }
    if loaded.workflows.len() > 1 {
        let all = std::mem::take(&mut loaded.workflows);
        loaded.workflows.extend(merge_workflows(all));
    }
    let table = crate::env::Table::of(loaded.dialect);
    let mut run_vars = crate::env::RunVars {
        predefined: table.run_variables(&event, &source.root),
        ..crate::env::RunVars::default()
    };
    if table.shell_style() {
        // The run's variables are pipeline variables there, and secrets masked CI/CD
        // variables (CircleCI: project variables and contexts): both are environment
        // variables that win over definitions.
        run_vars.overrides = options.vars.clone();
        for (k, v) in secrets.iter().chain(&inner.vars) {
            run_vars
                .overrides
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    if loaded.has_rules() {
        let rule_vars = select_by_rules(&mut loaded, &source, &event, &run_vars)?;
        run_vars.from_rules = rule_vars;
    }
    let mut workflow = loaded
        .workflows
        .pop()
        .expect("exactly one workflow, checked above");
    let mut options = options;
    if !options.junit.is_empty() {
        add_test_reports(&mut workflow, &options.junit);
    }
    instance_selection(&workflow, &mut options);
    select_jobs(&mut workflow, &options)?;
    if workflow.jobs.is_empty() && loaded.has_rules() {
        return Err(EngineError::NotCreated(
            "no job of the pipeline runs for this event (rules, only/except)".into(),
        ));
    }
    let mut vars = inner.vars.clone();
    vars.extend(options.vars.clone());
    let inputs = typed_inputs(&workflow, &event, &options.inputs);
    let created = now_ms();
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", unique_ms(created), std::process::id() % 10_000));
    let existing = match &options.run_id {
        Some(id) => inner.runs.get_run(id).await?,
        None => None,
    };
    let mut contexts = Contexts::new();
    contexts
        .insert(
            "github",
            Value::from_json(&event.github_context(&RunInfo::default())),
        )
        .insert("vars", strings(&vars))
        .insert("inputs", inputs)
        .insert("secrets", strings(&secrets));
    // The plan is checked here so that a bad matrix is a configuration error.
    let plan = Plan::new(
        &workflow,
        &RunFacts {
            contexts: contexts.clone(),
        },
    )
    .map_err(|diagnostics| EngineError::Invalid {
        path: source.path.clone(),
        diagnostics,
    })?;
    check_matrix_filter(&plan, &options.matrix)?;
    for (job, instance) in &options.instances {
        if !plan.instances.iter().any(|i| i.id == *instance) {
            let have: Vec<&str> = plan
                .instances
                .iter()
                .filter(|i| i.job == *job)
                .map(|i| i.id.as_str())
                .collect();
            return Err(EngineError::Usage(format!(
                "--job '{instance}': no such instance of '{job}' (there are: {})",
                have.join(", ")
            )));
        }
    }
    for (job, dir) in &options.given_artifacts {
        let name = crate::transfer::artifact_name(job, job);
        ci_store::artifacts::upload(
            &inner.blobs,
            &run_id,
            &name,
            dir,
            "**",
            ci_store::artifacts::IfNoFilesFound::Ignore,
            None,
        )
        .await
        .map_err(|e| EngineError::Usage(format!("the artifacts given for '{job}': {e}")))?;
    }
    if let Some(existing) = &existing {
        // Resuming: what ended keeps its result.
        options.prior = existing
            .jobs
            .iter()
            .map(|(j, _)| (j.job_id.clone(), j.clone()))
            .collect();
    } else {
        inner
            .runs
            .create_run(&NewRun {
                id: run_id.clone(),
                repo: event.repository.full_name.clone(),
                git_ref: event.git_ref.clone(),
                sha: event.sha.clone(),
                event: event.name().to_owned(),
                workflow: source.path.clone(),
                created_at: created,
            })
            .await?;
    }
    let run_number = inner
        .runs
        .get_run(&run_id)
        .await?
        .map_or(1, |d| d.run.seq.max(1) as u64);
    let scope = WorkflowScope {
        prefix: String::new(),
        contexts,
        secrets: secrets
            .values()
            .chain(options.contexts.values().flat_map(IndexMap::values))
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        depth: 0,
        vars: run_vars,
        secret_sets: Arc::new(options.contexts.clone()),
    };
    Ok(Prepared {
        run_id,
        ctx_parts: (inner, event, source.root, options, run_number),
        workflow: Arc::new(workflow),
        scope,
    })
}

/// Parses a GitHub workflow, refusing one with errors.
pub(crate) fn load_workflow(path: &str, text: &str) -> Result<Workflow, EngineError> {
    let parsed = ci_config::github::parse_workflow(path, text);
    if parsed.has_errors() {
        return Err(EngineError::Invalid {
            path: path.to_owned(),
            diagnostics: parsed.diagnostics,
        });
    }
    parsed.value.ok_or_else(|| EngineError::Invalid {
        path: path.to_owned(),
        diagnostics: parsed.diagnostics,
    })
}

/// Decides a file's rules with the event's facts: the variables (predefined, the workflow's
/// own, the run's), the paths the push changed and the files of the commit.
fn select_by_rules(
    loaded: &mut ci_config::Loaded,
    source: &Source,
    event: &Event,
    run_vars: &crate::env::RunVars,
) -> Result<IndexMap<String, String>, EngineError> {
    let mut variables = run_vars.predefined.clone();
    if let Some(Env::Vars(vars)) = loaded.workflows.first().map(|w| &w.env) {
        crate::env::add_vars(vars, None, &mut variables, &run_vars.overrides);
    }
    variables.extend(run_vars.overrides.clone());
    let repo = ci_vcs::Repository::open(&source.root).ok();
    let changed = repo.as_ref().and_then(|r| {
        let before = event.before.as_deref()?;
        if before == ci_vcs::event::ZERO_SHA {
            return None;
        }
        r.changed_paths(before, &event.sha).ok()
    });
    let files: Vec<String> = repo
        .as_ref()
        .and_then(|r| r.files(&event.sha).ok())
        .unwrap_or_default();
    let exists = |pattern: &str| -> bool {
        globset::Glob::new(pattern.trim_start_matches("./"))
            .map(|g| g.compile_matcher())
            .is_ok_and(|m| {
                files.iter().any(|f| m.is_match(f))
                    || (files.is_empty() && source.root.join(pattern).exists())
            })
    };
    let facts = ci_config::Facts {
        variables: &variables,
        changed: changed.as_deref(),
        exists: &exists,
    };
    loaded.select(&facts).map_err(|e| match e {
        ci_config::gitlab::ResolveError::Filtered(why) => {
            EngineError::NotCreated(format!("the pipeline is not created: workflow:rules {why}"))
        }
        e => EngineError::Usage(e.to_string()),
    })
}

/// `--job` values that name one instance (`test 1/2`, `build (linux)`, `test: [a, b]`) rather
/// than a job: the job is selected, and only the named instances of it run.
fn instance_selection(workflow: &Workflow, options: &mut RunOptions) {
    let mut jobs = Vec::new();
    for j in std::mem::take(&mut options.jobs) {
        if workflow.jobs.contains_key(&j) {
            jobs.push(j);
            continue;
        }
        let owner = workflow.jobs.keys().find(|id| {
            j.strip_prefix(id.as_str())
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with(':'))
        });
        match owner {
            Some(id) => {
                options.instances.push((id.clone(), j.clone()));
                if !jobs.contains(id) {
                    jobs.push(id.clone());
                }
            }
            // Reported as an unknown job by the selection.
            None => jobs.push(j),
        }
    }
    options.jobs = jobs;
}

/// `--job` selection: the jobs alone ([`NeedsMode::Exclude`]), with what they need
/// (`Include`), or only what they need (`Only`). Without declared `needs`, a job of a
/// workflow with stages needs every job of the earlier stages. Needs of jobs left out are
/// dropped: the selection says what runs.
fn select_jobs(workflow: &mut Workflow, options: &RunOptions) -> Result<(), EngineError> {
    if options.jobs.is_empty() {
        return Ok(());
    }
    for j in &options.jobs {
        if !workflow.jobs.contains_key(j) {
            return Err(EngineError::Usage(format!(
                "no job '{j}' in {} (jobs: {})",
                workflow.path,
                workflow.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let stage_index = |job: &ci_config::Job| {
        job.stage
            .as_ref()
            .and_then(|s| workflow.stages.iter().position(|x| x == s))
            .unwrap_or(0)
    };
    let needs_of = |job: &ci_config::Job| -> Vec<String> {
        if job.needs_declared || workflow.stages.is_empty() {
            job.needs.iter().map(|n| n.job.clone()).collect()
        } else {
            let mine = stage_index(job);
            workflow
                .jobs
                .values()
                .filter(|o| stage_index(o) < mine)
                .map(|o| o.id.clone())
                .collect()
        }
    };
    let mut keep: Vec<String> = Vec::new();
    match options.needs {
        NeedsMode::Exclude => keep = options.jobs.clone(),
        NeedsMode::Include | NeedsMode::Only => {
            let mut todo = options.jobs.clone();
            while let Some(id) = todo.pop() {
                if keep.contains(&id) {
                    continue;
                }
                if let Some(job) = workflow.jobs.get(&id) {
                    todo.extend(needs_of(job));
                }
                keep.push(id);
            }
            if options.needs == NeedsMode::Only {
                keep.retain(|k| !options.jobs.contains(k));
            }
        }
    }
    workflow.jobs.retain(|id, _| keep.contains(id));
    let present: Vec<String> = workflow.jobs.keys().cloned().collect();
    for job in workflow.jobs.values_mut() {
        job.needs.retain(|n| present.contains(&n.job));
    }
    Ok(())
}

/// `inputs`: given values typed by the workflow's definitions, then defaults.
fn typed_inputs(workflow: &Workflow, event: &Event, given: &IndexMap<String, String>) -> Value {
    let mut out: IndexMap<String, Value> = IndexMap::new();
    let kind_of = |name: &str| {
        workflow
            .triggers
            .iter()
            .find_map(|t| t.inputs.get(name))
            .map_or(InputType::String, |d| d.kind)
    };
    // The event's inputs (a payload's strings) typed as the workflow declares them.
    for (k, v) in &event.inputs {
        let value = match v {
            serde_json::Value::String(s) => typed(kind_of(k), s),
            other => Value::from_json(other),
        };
        out.insert(k.clone(), value);
    }
    let defs = workflow
        .triggers
        .iter()
        .filter(|t| t.event == "workflow_dispatch" || t.event == "workflow_call")
        .flat_map(|t| t.inputs.iter());
    for (name, def) in defs {
        if out.contains_key(name) || given.contains_key(name) {
            continue;
        }
        if let Some(default) = &def.default {
            let v = default.scalar_text().unwrap_or_default();
            out.insert(name.clone(), typed(def.kind, &v));
        }
    }
    for (k, v) in given {
        let kind = workflow
            .triggers
            .iter()
            .find_map(|t| t.inputs.get(k))
            .map_or(InputType::String, |d| d.kind);
        out.insert(k.clone(), typed(kind, v));
    }
    object(out)
}

pub(crate) fn typed(kind: InputType, v: &str) -> Value {
    match kind {
        InputType::Boolean => Value::Bool(v == "true"),
        InputType::Number => Value::Number(ci_config::expr::parse_number_string(v)),
        _ => Value::string(v),
    }
}

/// Runs a prepared run to its end.
pub(crate) async fn execute(
    prepared: Prepared,
    tx: mpsc::Sender<RunEvent>,
    cancel: CancellationToken,
) -> RunSummary {
    let started = Instant::now();
    let (inner, event, root, options, run_number) = prepared.ctx_parts;
    let run_dir = inner.work_dir.join(&prepared.run_id);
    // Canonical once, so job directories need no lookups (containers mount them as is).
    let run_dir = std::fs::create_dir_all(&run_dir)
        .and_then(|()| std::fs::canonicalize(&run_dir))
        .unwrap_or(run_dir);
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (record_tx, record_rx) = mpsc::channel(RECORD_BUFFER);
    let recording = tokio::spawn(recorder(
        Arc::clone(&inner),
        prepared.run_id.clone(),
        record_rx,
        Arc::clone(&errors),
    ));
    let workflow_name = prepared
        .workflow
        .name
        .clone()
        .unwrap_or_else(|| prepared.workflow.path.clone());
    #[cfg(feature = "reporters")]
    let reporting = inner.reporter.clone().and_then(|r| {
        crate::report::Reporting::start(r, &event.sha, format!("gantry/{workflow_name}"))
    });
    let ctx = Arc::new(RunCtx {
        workflow_name,
        inner,
        run_id: prepared.run_id.clone(),
        run_number,
        event,
        root,
        run_dir,
        options,
        tx,
        summaries: Mutex::new(Vec::new()),
        errors: Arc::clone(&errors),
        recorder: record_tx,
        event_file: std::sync::OnceLock::new(),
        free_dirs: Mutex::new(Vec::new()),
        snapshot: std::sync::OnceLock::new(),
        #[cfg(feature = "reporters")]
        reporting,
    });
    if let Err(e) = ctx
        .inner
        .runs
        .set_run_status(
            &ctx.run_id,
            ci_store::runs::Status::Running,
            Some(now_ms()),
            None,
        )
        .await
    {
        ctx.error(format!("recording the run: {e}"));
    }
    // A workflow-level concurrency group holds for the whole run, across runs of the engine.
    let _group = match &prepared.workflow.concurrency {
        Some(c) => {
            let scope = crate::context::Scope::new(&prepared.scope.contexts);
            match (scope.render(&c.group), c.cancel_in_progress.as_ref()) {
                (Ok(group), cip) => {
                    let cip =
                        cip.is_some_and(|t| scope.value(t).map(|v| v.is_truthy()).unwrap_or(false));
                    ctx.inner.groups.acquire(&group, cip, &cancel).await
                }
                (Err(e), _) => {
                    ctx.error(format!("concurrency group: {e}"));
                    None
                }
            }
        }
        None => None,
    };
    let result = run_workflow(
        Arc::clone(&ctx),
        Arc::clone(&prepared.workflow),
        prepared.scope,
        cancel.clone(),
    )
    .await;
    // Everything queued for the stores is written before the run is marked finished.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    ctx.record(Record::Flush(done_tx)).await;
    if done_rx.await.is_err() {
        ctx.error("the recorder stopped before the run ended".into());
    }
    let errors = std::mem::take(&mut *ctx.errors.lock().expect("never poisoned"));
    let status = if !errors.is_empty() && result.status == Status::Success {
        Status::Failure
    } else {
        result.status
    };
    if let Err(e) = ctx
        .inner
        .runs
        .set_run_status(&ctx.run_id, status.stored(), None, Some(now_ms()))
        .await
    {
        ctx.error(format!("recording the run: {e}"));
    }
    let _ = tokio::fs::remove_dir_all(&ctx.run_dir).await;
    recording.abort();
    let duration = started.elapsed();
    tracing::info!(%status, ms = duration.as_millis() as u64, "run finished");
    ctx.emit(RunEvent::RunFinished {
        run_id: ctx.run_id.clone(),
        status,
        duration_ms: duration.as_millis() as u64,
    })
    .await;
    let mut errors = errors;
    #[cfg(feature = "reporters")]
    if let Some(r) = &ctx.reporting {
        errors.extend(r.finish().await);
    }
    errors.extend(std::mem::take(
        &mut *ctx.errors.lock().expect("never poisoned"),
    ));
    let jobs = std::mem::take(&mut *ctx.summaries.lock().expect("never poisoned"));
    RunSummary {
        run_id: ctx.run_id.clone(),
        status,
        duration,
        jobs,
        errors,
    }
}

/// Conditions with the `--matrix` filter applied.
struct Conditions {
    inner: ExprConditions,
    matrix: Vec<(String, String)>,
    /// Instances named by `--job`, by job.
    instances: Vec<(String, String)>,
}

impl ConditionEvaluator for Conditions {
    fn evaluate(
        &mut self,
        instance: &JobInstance,
        status: &StatusSnapshot,
    ) -> Result<bool, String> {
        if !matrix_selected(instance, &self.matrix) {
            return Ok(false);
        }
        let named: Vec<&str> = self
            .instances
            .iter()
            .filter(|(job, _)| *job == instance.job)
            .map(|(_, id)| id.as_str())
            .collect();
        if !named.is_empty() && !named.contains(&instance.id.as_str()) {
            return Ok(false);
        }
        self.inner.evaluate(instance, status)
    }
}

/// Whether an instance passes the `--matrix` filter: values given for one key unite, keys
/// intersect (`-m os:a -m os:b -m v:1` is `os` in {a, b} and `v` = 1); instances without a
/// matrix, or without the key, pass.
fn matrix_selected(instance: &JobInstance, filter: &[(String, String)]) -> bool {
    let Some(combo) = &instance.matrix else {
        return true;
    };
    let mut keys: Vec<&str> = filter.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    keys.iter().all(|key| match combo.get(*key) {
        None => true,
        Some(have) => {
            let have = ci_config::expr::render(have);
            filter.iter().any(|(k, v)| k == key && *v == have)
        }
    })
}

/// A `--matrix` filter that selects no combination is a usage error (unless a matrix is only
/// known at run time): a run where nothing runs must not look like a success.
fn check_matrix_filter(plan: &Plan, filter: &[(String, String)]) -> Result<(), EngineError> {
    if filter.is_empty() || plan.instances.iter().any(|i| i.deferred_matrix.is_some()) {
        return Ok(());
    }
    let with_matrix: Vec<&JobInstance> = plan
        .instances
        .iter()
        .filter(|i| i.matrix.is_some())
        .collect();
    if with_matrix.iter().any(|i| matrix_selected(i, filter)) {
        return Ok(());
    }
    let wanted: Vec<String> = filter.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let have: Vec<&str> = with_matrix.iter().map(|i| i.id.as_str()).collect();
    Err(EngineError::Usage(format!(
        "--matrix {} selects no matrix combination (there are: {})",
        wanted.join(" --matrix "),
        if have.is_empty() {
            "none".to_owned()
        } else {
            have.join(", ")
        }
    )))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs one workflow's jobs to the end (boxed: called workflows recurse).
pub(crate) fn run_workflow(
    ctx: Arc<RunCtx>,
    workflow: Arc<Workflow>,
    scope: WorkflowScope,
    cancel: CancellationToken,
) -> BoxFuture<WorkflowResult> {
    Box::pin(async move {
        let plan = match Plan::new(
            &workflow,
            &RunFacts {
                contexts: scope.contexts.clone(),
            },
        ) {
            Ok(p) => p,
            Err(diagnostics) => {
                for d in diagnostics {
                    ctx.error(format!("{}: {}", workflow.path, d.message));
                }
                return WorkflowResult {
                    status: Status::Failure,
                    jobs: IndexMap::new(),
                };
            }
        };
        if scope.depth == 0 {
            ctx.emit(RunEvent::RunStarted {
                run_id: ctx.run_id.clone(),
                workflow: ctx.workflow_name.clone(),
                jobs: plan.instances.iter().map(|i| i.id.clone()).collect(),
            })
            .await;
        }
        let mut plan = plan;
        if ctx.inner.lost_retries > 0 {
            for instance in &mut plan.instances {
                if instance.retry.max == 0 {
                    instance.retry = ci_config::model::Retry {
                        max: ctx.inner.lost_retries,
                        when: vec![ci_graph::RUNNER_LOST.to_owned()],
                        exit_codes: Vec::new(),
                    };
                }
            }
        }
        let mut scheduler = Scheduler::new(
            plan,
            SchedulerOptions {
                capacity: ctx.options.max_parallel,
            },
        );
        let mut conditions = Conditions {
            inner: ExprConditions::new(scope.contexts.clone()),
            matrix: ctx.options.matrix.clone(),
            instances: ctx.options.instances.clone(),
        };
        let mut running: JoinSet<(usize, JobResult)> = JoinSet::new();
        let mut tokens: HashMap<usize, CancellationToken> = HashMap::new();
        let mut reported: Vec<bool> = Vec::new();
        let mut jobs: IndexMap<String, (Status, IndexMap<String, String>)> = IndexMap::new();
        let mut run_cancelled = false;
        // Instances started in this run (not kept from before a resume).
        let mut ran: std::collections::HashSet<usize> = std::collections::HashSet::new();
        loop {
            if cancel.is_cancelled() && !run_cancelled {
                run_cancelled = true;
                scheduler.cancel();
            }
            for i in scheduler.take_cancellations() {
                if let Some(t) = tokens.get(&i) {
                    t.cancel();
                }
            }
            let mut expanded = false;
            for i in scheduler.ready(&mut conditions) {
                let instance = scheduler.plan().instances[i].clone();
                if instance.deferred_matrix.is_none() {
                    let id = format!("{}{}", scope.prefix, instance.id);
                    if let Some(prior) = kept(&ctx, &id, &instance, &ran) {
                        // Finished before the run was resumed: its result stands.
                        let status = Status::from_stored(prior.status);
                        let mut outcome = outcome_of(status);
                        outcome.outputs = prior.outputs.clone();
                        if scheduler.start(i).is_ok() {
                            let _ = scheduler.finish(i, outcome);
                        }
                        reported.resize(reported.len().max(i + 1), false);
                        reported[i] = true;
                        merge_job(&mut jobs, &instance.job, status, &prior.outputs);
                        ctx.emit(RunEvent::JobFinished {
                            job: id.clone(),
                            name: prior.name.clone(),
                            status,
                            duration_ms: 0,
                            outputs: prior.outputs.clone(),
                        })
                        .await;
                        ctx.summaries
                            .lock()
                            .expect("never poisoned")
                            .push(JobSummary {
                                id,
                                name: prior.name.clone(),
                                status,
                                duration: Duration::ZERO,
                                outputs: prior.outputs.clone(),
                                exit_code: None,
                                reason: None,
                            });
                        expanded = true;
                        continue;
                    }
                }
                ran.insert(i);
                if instance.deferred_matrix.is_some() {
                    let job = &workflow.jobs[&instance.job];
                    let combos = evaluate_deferred_matrix(&scheduler, i, &scope.contexts)
                        .unwrap_or_else(|e| {
                            ctx.error(format!("job '{}': matrix: {e}", instance.id));
                            Vec::new()
                        });
                    if let Err(e) = scheduler.expand(i, job, combos) {
                        ctx.error(e.to_string());
                    }
                    expanded = true;
                    continue;
                }
                let earlier = ctx
                    .options
                    .prior
                    .get(&format!("{}{}", scope.prefix, instance.id))
                    .map_or(0, |p| p.attempt.max(0) as u32);
                let attempt = match scheduler.start(i) {
                    Ok(a) => earlier + a,
                    Err(e) => {
                        ctx.error(e.to_string());
                        continue;
                    }
                };
                let siblings = &scheduler.plan().jobs[&instance.job];
                let matrix_pos = (
                    siblings.iter().position(|&s| s == i).unwrap_or(0),
                    siblings.len(),
                );
                let token = cancel.child_token();
                tokens.insert(i, token.clone());
                let needed = instance
                    .needs
                    .iter()
                    .map(|&n| {
                        let other = &scheduler.plan().instances[n];
                        (other.job.clone(), other.id.clone())
                    })
                    .collect();
                let job = JobTask {
                    ctx: Arc::clone(&ctx),
                    workflow: Arc::clone(&workflow),
                    scope: scope.clone(),
                    needs: scheduler.needs_context(i),
                    instance,
                    attempt,
                    cancel: token,
                    matrix_pos,
                    needed,
                };
                if ctx.inner.live_logs.is_some() {
                    // A live view lists the job (and finds its log) while it runs.
                    let running = JobRecord {
                        job_id: job.id(),
                        name: job.instance.name.clone(),
                        status: ci_store::runs::Status::Running,
                        attempt: i64::from(attempt),
                        started_at: Some(now_ms()),
                        finished_at: None,
                        outputs: IndexMap::new(),
                    };
                    ctx.record(Record::Job(running, Vec::new())).await;
                }
                let call = workflow.jobs[&job.instance.job].call.clone();
                let span = tracing::info_span!("job", id = %job.id(), attempt);
                running.spawn(tracing::Instrument::instrument(
                    async move {
                        let result = match call {
                            // The run loop owns the recursion into called workflows.
                            Some(call) => run_call(job, &call).await,
                            None => job.run().await,
                        };
                        tracing::debug!(status = ?result.outcome.status, "job finished");
                        (i, result)
                    },
                    span,
                ));
            }
            if expanded {
                // The new instances are decided on the next pass.
                continue;
            }
            // Manual jobs asked for (`--manual`) are started; the others stay blocked.
            let mut played = false;
            for i in 0..scheduler.plan().instances.len() {
                if scheduler.state(i) == State::Blocked
                    && ctx
                        .options
                        .manual
                        .contains(&scheduler.plan().instances[i].job)
                    && scheduler.play(i).is_ok()
                {
                    played = true;
                }
            }
            if played {
                continue;
            }
            report_undecided(&ctx, &scheduler, &scope, &mut reported, &mut jobs).await;
            if running.is_empty() && scheduler.is_finished() {
                break;
            }
            if running.is_empty() {
                // Nothing runs and nothing can start (manual jobs, or a scheduler refusal).
                break;
            }
            tokio::select! {
                done = running.join_next() => {
                    let Some(done) = done else { continue };
                    let (i, result) = match done {
                        Ok(r) => r,
                        Err(e) => {
                            ctx.error(format!("a job task failed: {e}"));
                            continue;
                        }
                    };
                    tokens.remove(&i);
                    let outputs = result.outcome.outputs.clone();
                    let conclusion = scheduler
                        .finish(i, result.outcome.clone())
                        .unwrap_or(Conclusion::Failure);
                    let retrying = scheduler.state(i) == State::Queued;
                    let status = match conclusion {
                        Conclusion::Success => Status::Success,
                        Conclusion::Cancelled => Status::Cancelled,
                        Conclusion::Skipped | Conclusion::Manual => Status::Skipped,
                        // A tolerated failure shows as a failure of the job; the run goes on.
                        _ => Status::Failure,
                    };
                    let instance = &scheduler.plan().instances[i];
                    let id = format!("{}{}", scope.prefix, instance.id);
                    let earlier = ctx.options.prior.get(&id).map_or(0, |p| p.attempt.max(0) as u32);
                    record_job(&ctx, &id, &result, status, earlier + scheduler.attempts(i), &outputs).await;
                    ctx.emit(RunEvent::JobFinished {
                        job: id.clone(),
                        name: result.name.clone(),
                        status,
                        duration_ms: result.duration.as_millis() as u64,
                        outputs: outputs.clone(),
                    }).await;
                    if !retrying {
                        reported.resize(reported.len().max(i + 1), false);
                        reported[i] = true;
                        let status_for_caller = if conclusion == Conclusion::AllowedFailure {
                            Status::Success
                        } else {
                            status
                        };
                        merge_job(&mut jobs, &instance.job, status_for_caller, &outputs);
                        ctx.summaries.lock().expect("never poisoned").push(JobSummary {
                            id,
                            name: result.name,
                            status,
                            duration: result.duration,
                            outputs,
                            exit_code: result.outcome.exit_code,
                            reason: result.outcome.reason.clone(),
                        });
                    }
                }
                _ = cancel.cancelled(), if !run_cancelled => {}
            }
        }
        // Manual jobs nobody started, and what waited on them.
        for i in 0..scheduler.plan().instances.len() {
            if reported.get(i).copied().unwrap_or(false)
                || matches!(scheduler.state(i), State::Done(_))
            {
                continue;
            }
            let instance = &scheduler.plan().instances[i];
            let id = format!("{}{}", scope.prefix, instance.id);
            if scheduler.state(i) == State::Blocked {
                ctx.emit(RunEvent::Annotation {
                    job: id.clone(),
                    step: 0,
                    level: "notice",
                    message: format!(
                        "manual job '{}' was not started (run it with --manual {})",
                        instance.job, instance.job
                    ),
                })
                .await;
            }
            report_not_run(&ctx, id, &instance.name, Status::Skipped).await;
        }
        let conclusions = scheduler.conclusions();
        let status = if scheduler.succeeded() {
            Status::Success
        } else if run_cancelled
            || (conclusions.contains(&Conclusion::Cancelled)
                && !conclusions.contains(&Conclusion::Failure))
        {
            Status::Cancelled
        } else {
            Status::Failure
        };
        WorkflowResult { status, jobs }
    })
}

/// `now` in milliseconds, or one more than the last answer when that is later: no two runs
/// started by this process (an embedder may start several at once) share an id.
fn unique_ms(now: i64) -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let mut last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(
            last,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The earlier result of a resumed run's job that stands: it ended, is not to be run again,
/// and nothing it needs ran again.
fn kept<'a>(
    ctx: &'a RunCtx,
    id: &str,
    instance: &JobInstance,
    ran: &std::collections::HashSet<usize>,
) -> Option<&'a ci_store::runs::JobRecord> {
    if let Some(given) = ctx
        .options
        .given
        .get(id)
        .or_else(|| ctx.options.given.get(&instance.job))
    {
        return Some(given);
    }
    let prior = ctx.options.prior.get(id)?;
    if !matches!(
        prior.status,
        ci_store::runs::Status::Success
            | ci_store::runs::Status::Failure
            | ci_store::runs::Status::Cancelled
    ) {
        // It was running (or waiting) when the run stopped: it runs again.
        return None;
    }
    let rerun = &ctx.options.rerun;
    if rerun.iter().any(|r| r == id || *r == instance.job) {
        return None;
    }
    if instance.needs.iter().any(|n| ran.contains(n)) {
        return None;
    }
    Some(prior)
}

/// A matrix job's result is its worst instance's; outputs merge.
fn merge_job(
    jobs: &mut IndexMap<String, (Status, IndexMap<String, String>)>,
    job: &str,
    status: Status,
    outputs: &IndexMap<String, String>,
) {
    let rank = |s: Status| match s {
        Status::Failure => 3,
        Status::Cancelled => 2,
        Status::Skipped => 1,
        Status::Success => 0,
    };
    let entry = jobs
        .entry(job.to_owned())
        .or_insert((status, IndexMap::new()));
    if rank(status) > rank(entry.0) {
        entry.0 = status;
    }
    entry
        .1
        .extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// Reports instances decided without running (skipped, cancelled before start).
async fn report_undecided(
    ctx: &RunCtx,
    scheduler: &Scheduler,
    scope: &WorkflowScope,
    reported: &mut Vec<bool>,
    jobs: &mut IndexMap<String, (Status, IndexMap<String, String>)>,
) {
    let n = scheduler.plan().instances.len();
    reported.resize(n, false);
    for (i, done) in reported.iter_mut().enumerate() {
        if *done {
            continue;
        }
        let status = match scheduler.state(i) {
            State::Done(Conclusion::Skipped | Conclusion::Manual) => Status::Skipped,
            State::Done(Conclusion::Cancelled) => Status::Cancelled,
            State::Done(Conclusion::Failure) if scheduler.attempts(i) == 0 => Status::Failure,
            State::Done(Conclusion::Expanded) => {
                *done = true;
                continue;
            }
            _ => continue,
        };
        *done = true;
        let instance = &scheduler.plan().instances[i];
        let id = format!("{}{}", scope.prefix, instance.id);
        if status == Status::Failure {
            ctx.error(format!(
                "job '{id}': its condition could not be evaluated: {}",
                instance.condition
            ));
        }
        merge_job(jobs, &instance.job, status, &IndexMap::new());
        report_not_run(ctx, id, &instance.name, status).await;
    }
}

/// Records and reports a job decided without running (skipped, cancelled, manual).
async fn report_not_run(ctx: &RunCtx, id: String, name: &str, status: Status) {
    let result = JobResult {
        outcome: ci_graph::Outcome::success(),
        steps: Vec::new(),
        started_at: now_ms(),
        duration: Duration::ZERO,
        name: name.to_owned(),
    };
    record_job(ctx, &id, &result, status, 0, &IndexMap::new()).await;
    ctx.emit(RunEvent::JobFinished {
        job: id.clone(),
        name: name.to_owned(),
        status,
        duration_ms: 0,
        outputs: IndexMap::new(),
    })
    .await;
    ctx.summaries
        .lock()
        .expect("never poisoned")
        .push(JobSummary {
            id,
            name: name.to_owned(),
            status,
            duration: Duration::ZERO,
            outputs: IndexMap::new(),
            exit_code: None,
            reason: None,
        });
}

async fn record_job(
    ctx: &RunCtx,
    id: &str,
    result: &JobResult,
    status: Status,
    attempt: u32,
    outputs: &IndexMap<String, String>,
) {
    let record = JobRecord {
        job_id: id.to_owned(),
        name: result.name.clone(),
        status: status.stored(),
        attempt: i64::from(attempt),
        started_at: (attempt > 0).then_some(result.started_at),
        finished_at: Some(now_ms()),
        outputs: outputs.clone(),
    };
    ctx.record(Record::Job(record, result.steps.clone())).await;
}

/// Records queued for the recorder before the run waits for it (the queue is bounded: a slow
/// store slows the run instead of growing memory).
const RECORD_BUFFER: usize = 4096;

/// How long the recorder gathers records before writing them.
const RECORD_WINDOW: Duration = Duration::from_millis(20);

/// Writes records in order until the channel closes.
async fn recorder(
    inner: Arc<Inner>,
    run_id: String,
    mut rx: mpsc::Receiver<Record>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let mut pending: Vec<Record> = Vec::new();
    // Short logs nobody follows live go out several to an object (one file system object per
    // job was the largest cost of a run of small jobs); the pack is written before the job
    // records that arrived with it, so a finished job always has its log.
    let mut pack = LogPack::new(inner.blobs.clone(), &run_id);
    while rx.recv_many(&mut pending, 256).await > 0 {
        // A short window gathers what finishes together into one transaction (a busy run
        // writes tens of transactions a second instead of one per job); a flush ends it.
        let window = tokio::time::sleep(RECORD_WINDOW);
        tokio::pin!(window);
        while pending.len() < 256 && !pending.iter().any(|r| matches!(r, Record::Flush(_))) {
            tokio::select! {
                n = rx.recv_many(&mut pending, 256) => if n == 0 { break },
                _ = &mut window => break,
            }
        }
        // Consecutive job records go in one transaction.
        let mut jobs: Vec<(JobRecord, Vec<StepRecord>)> = Vec::new();
        for record in pending.drain(..) {
            match record {
                Record::Job(job, steps) => {
                    // Written with the others, after the pack that holds their logs.
                    jobs.push((job, steps));
                    continue;
                }
                Record::Log(job, writer) if !writer.is_live() => match pack.add(writer) {
                    Ok(()) => {
                        if pack.is_full() {
                            write_pack(&mut pack, &errors).await;
                        }
                    }
                    Err(writer) => {
                        if let Err(e) = writer.finish().await {
                            errors
                                .lock()
                                .expect("never poisoned")
                                .push(format!("finishing the log of '{job}': {e}"));
                        }
                    }
                },
                other => {
                    write_pack(&mut pack, &errors).await;
                    write_jobs(&inner, &run_id, &mut jobs, &errors).await;
                    let failed = match other {
                        Record::Log(job, writer) => writer
                            .finish()
                            .await
                            .err()
                            .map(|e| format!("finishing the log of '{job}': {e}")),
                        Record::Flush(done) => {
                            let _ = done.send(());
                            None
                        }
                        Record::Job(..) => None,
                    };
                    if let Some(e) = failed {
                        errors.lock().expect("never poisoned").push(e);
                    }
                }
            }
        }
        write_pack(&mut pack, &errors).await;
        write_jobs(&inner, &run_id, &mut jobs, &errors).await;
    }
}

async fn write_pack(pack: &mut LogPack, errors: &Mutex<Vec<String>>) {
    if let Err(e) = pack.write().await {
        errors
            .lock()
            .expect("never poisoned")
            .push(format!("writing job logs: {e}"));
    }
}

async fn write_jobs(
    inner: &Inner,
    run_id: &str,
    jobs: &mut Vec<(JobRecord, Vec<StepRecord>)>,
    errors: &Mutex<Vec<String>>,
) {
    if jobs.is_empty() {
        return;
    }
    if let Err(e) = inner.runs.record_jobs(run_id, jobs).await {
        errors
            .lock()
            .expect("never poisoned")
            .push(format!("recording {} job(s): {e}", jobs.len()));
    }
    jobs.clear();
}

/// A job that calls a reusable workflow: its jobs run as part of this run, named
/// `caller / job`.
/// A job that calls a reusable workflow, from its start.
async fn run_call(task: JobTask, call: &WorkflowCall) -> JobResult {
    let started = Instant::now();
    let started_at = now_ms();
    task.announce().await;
    call_workflow(&task, call, started, started_at).await
}

async fn call_workflow(
    task: &JobTask,
    call: &WorkflowCall,
    started: Instant,
    started_at: i64,
) -> JobResult {
    let id = task.id();
    let fail = |message: String| {
        let job = id.clone();
        async move {
            task.ctx
                .emit(crate::RunEvent::Annotation {
                    job,
                    step: 0,
                    level: "error",
                    message,
                })
                .await;
            JobResult {
                outcome: Outcome::failure(1),
                steps: Vec::new(),
                started_at,
                duration: started.elapsed(),
                name: task.instance.name.clone(),
            }
        }
    };
    if task.scope.depth >= 4 {
        return fail(format!(
            "'{}': reusable workflows nest at most 4 levels deep",
            call.uses
        ))
        .await;
    }
    let file = if let Some(rel) = call.uses.strip_prefix("./") {
        task.ctx.root.join(rel)
    } else {
        match crate::fetch::remote_dir(&task.ctx.inner, &call.uses).await {
            Ok(file) => file,
            Err(e) => return fail(format!("reusable workflow {e}")).await,
        }
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => return fail(format!("reusable workflow '{}': {e}", call.uses)).await,
    };
    let called = match crate::run::load_workflow(&call.uses, &text) {
        Ok(w) => w,
        Err(e) => {
            let detail = match &e {
                crate::EngineError::Invalid { diagnostics, .. } => diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.render(&text, false))
                    .collect::<Vec<_>>()
                    .join("\n"),
                other => other.to_string(),
            };
            return fail(format!("reusable workflow '{}': {detail}", call.uses)).await;
        }
    };
    let Some(trigger) = called.triggers.iter().find(|t| t.event == "workflow_call") else {
        return fail(format!(
            "'{}' cannot be called: it has no `on: workflow_call`",
            call.uses
        ))
        .await;
    };
    // Inputs and secrets, evaluated in the caller's contexts.
    let mut caller = task.scope.contexts.clone();
    caller
        .insert("needs", task.needs.clone())
        .insert(
            "matrix",
            task.instance
                .matrix
                .as_ref()
                .map_or(Value::Null, |m| object(m.clone())),
        )
        .insert("strategy", object(IndexMap::new()));
    let scope = Scope::new(&caller);
    let mut inputs: IndexMap<String, Value> = IndexMap::new();
    for (name, def) in &trigger.inputs {
        let value = match call.with.get(name) {
            Some(node) => match scope.node(node) {
                Ok(v) => v,
                Err(e) => return fail(format!("with.{name}: {e}")).await,
            },
            None => match &def.default {
                Some(d) => match scope.node(d) {
                    Ok(v) => v,
                    Err(e) => return fail(format!("default of input '{name}': {e}")).await,
                },
                None if def.required => {
                    return fail(format!("'{}' requires input '{name}'", call.uses)).await
                }
                None => Value::Null,
            },
        };
        let value = match (def.kind, &value) {
            (InputType::Boolean | InputType::Number, Value::String(s)) => typed(def.kind, s),
            _ => value,
        };
        inputs.insert(name.clone(), value);
    }
    let caller_secrets = task.scope.contexts.context("secrets");
    let mut secrets: IndexMap<String, String> = IndexMap::new();
    if call.inherit_secrets {
        if let Some(Value::Object(map)) = &caller_secrets {
            for (k, v) in map.iter() {
                secrets.insert(k.clone(), ci_config::expr::render(v));
            }
        }
    } else {
        for (k, t) in &call.secrets {
            match scope.render(t) {
                Ok(v) => {
                    secrets.insert(k.clone(), v);
                }
                Err(e) => return fail(format!("secrets.{k}: {e}")).await,
            }
        }
    }
    for (name, required) in &trigger.secrets {
        if *required && !secrets.contains_key(name) {
            return fail(format!("'{}' requires secret '{name}'", call.uses)).await;
        }
    }
    let mut contexts = task.scope.contexts.clone();
    contexts
        .insert("inputs", object(inputs))
        .insert("secrets", strings(&secrets));
    let mut masked = task.scope.secrets.clone();
    masked.extend(secrets.values().filter(|s| !s.is_empty()).cloned());
    let nested = WorkflowScope {
        prefix: format!("{id} / "),
        contexts: contexts.clone(),
        secrets: masked,
        depth: task.scope.depth + 1,
        vars: crate::env::RunVars::default(),
        secret_sets: Arc::clone(&task.scope.secret_sets),
    };
    let result = run_workflow(
        Arc::clone(&task.ctx),
        Arc::new(called.clone()),
        nested,
        task.cancel.clone(),
    )
    .await;
    // Outputs: `on.workflow_call.outputs`, which read `jobs.<id>.outputs`.
    let jobs_ctx: IndexMap<String, Value> = result
        .jobs
        .iter()
        .map(|(k, (status, outputs))| {
            let mut m = IndexMap::new();
            m.insert("result".to_owned(), Value::string(status.as_str()));
            m.insert("outputs".to_owned(), strings(outputs));
            (k.clone(), object(m))
        })
        .collect();
    contexts.insert("jobs", object(jobs_ctx));
    let scope = Scope::new(&contexts);
    let mut outputs = IndexMap::new();
    for (name, t) in &trigger.outputs {
        match scope.render(t) {
            Ok(v) => {
                outputs.insert(name.clone(), v);
            }
            Err(e) => return fail(format!("output '{name}': {e}")).await,
        }
    }
    let mut outcome = outcome_of(result.status);
    outcome.outputs = outputs;
    JobResult {
        outcome,
        steps: Vec::new(),
        started_at,
        duration: started.elapsed(),
        name: task.instance.name.clone(),
    }
}
