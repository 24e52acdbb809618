//! GitLab CI jobs on the engine: variables with GitLab's precedence and expansion, the
//! implicit checkout, `before_script` + `script` as one shell with `$ command` echo lines,
//! `after_script` after anything (own 5-minute limit), artifacts (paths, exclude, `when`,
//! `expire_in`, dotenv and junit reports) passed to later jobs, caches, coverage.

use std::sync::Arc;
use std::time::Duration;

use ci_config::expr::Value;
use ci_config::gitlab::{self, GitLabJob};
use ci_config::model::{Job, When, Workflow};
use ci_exec::{Shell, StepOutcome, StepSpec};
use ci_graph::Outcome;
use ci_store::artifacts::{self, IfNoFilesFound};
use ci_store::caches::Caches;
use indexmap::IndexMap;

use crate::events::{RunEvent, Status};
use crate::job::{JobRunner, JobTask};

/// The longest `timeout:` taken literally (ten years).
const MAX_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

/// Variables every job of a pipeline starts from.
#[derive(Debug, Clone, Default)]
pub(crate) struct PipelineVars {
    /// Predefined `CI_*` variables, then global `variables:` (expanded), then
    /// `workflow:rules` variables.
    pub base: IndexMap<String, String>,
    /// Pipeline variables (`--var`): the highest precedence.
    pub pipeline: IndexMap<String, String>,
    /// Global variables the job may stop inheriting (`inherit: variables`).
    pub globals: Vec<String>,
}

/// Prepares a GitLab pipeline: parse (with local includes), decide rules with the event's
/// facts, select jobs. Returns the workflow and the pipeline's variables.
pub(crate) fn prepare(
    source: &crate::Source,
    event: &ci_vcs::Event,
    options: &crate::RunOptions,
    include_dirs: &IndexMap<String, std::path::PathBuf>,
) -> Result<(Workflow, PipelineVars), crate::EngineError> {
    let mut includes = gitlab::LocalIncludes::new(&source.root);
    for (project, dir) in include_dirs {
        includes = includes.project_dir(project.clone(), dir.clone());
    }
    let parsed = gitlab::parse_pipeline(&source.path, &source.text, &includes);
    if parsed.has_errors() || parsed.value.is_none() {
        return Err(crate::EngineError::Invalid {
            path: source.path.clone(),
            diagnostics: parsed.diagnostics,
        });
    }
    let mut workflow = parsed.value.expect("checked above");
    let info = ci_vcs::RunInfo {
        workspace: source.root.to_string_lossy().into_owned(),
        server_url: "https://gitlab.com".into(),
        api_url: "https://gitlab.com/api/v4".into(),
        ..ci_vcs::RunInfo::default()
    };
    let mut base = event.gitlab_variables(&info);
    let pipeline = workflow.gitlab.clone().unwrap_or_default();
    let mut globals = Vec::new();
    for (k, v) in &pipeline.variables {
        let value = if v.expand {
            expand(&v.value, &base, &options.vars)
        } else {
            v.value.clone()
        };
        base.insert(k.clone(), value);
        globals.push(k.clone());
    }
    let mut facts_vars = base.clone();
    facts_vars.extend(options.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
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
    let facts = gitlab::Facts {
        variables: &facts_vars,
        changed: changed.as_deref(),
        exists: &exists,
    };
    let rule_vars = match gitlab::resolve(&mut workflow, &facts) {
        Ok(v) => v,
        Err(gitlab::ResolveError::Filtered(why)) => {
            return Err(crate::EngineError::NotCreated(format!(
                "the pipeline is not created: workflow:rules {why}"
            )))
        }
        Err(e) => return Err(crate::EngineError::Usage(e.to_string())),
    };
    base.extend(rule_vars);
    select(&mut workflow, options)?;
    if workflow.jobs.is_empty() {
        return Err(crate::EngineError::NotCreated(
            "no job of the pipeline runs for this event (rules, only/except)".into(),
        ));
    }
    Ok((
        workflow,
        PipelineVars {
            base,
            pipeline: options.vars.clone(),
            globals,
        },
    ))
}

/// `--job` selection: the jobs alone, with what they need (`--needs`), or only what they
/// need (`--only-needs`). A job without `needs:` needs every job of the earlier stages.
fn select(workflow: &mut Workflow, options: &crate::RunOptions) -> Result<(), crate::EngineError> {
    if options.jobs.is_empty() {
        return Ok(());
    }
    for j in &options.jobs {
        if !workflow.jobs.contains_key(j) {
            return Err(crate::EngineError::Usage(format!(
                "no job '{j}' runs in {} for this event (jobs: {})",
                workflow.path,
                workflow.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let stage_index = |job: &Job| {
        job.stage
            .as_ref()
            .and_then(|s| workflow.stages.iter().position(|x| x == s))
            .unwrap_or(0)
    };
    let needs_of = |job: &Job| -> Vec<String> {
        if job.needs_declared {
            job.needs.iter().map(|(n, _)| n.clone()).collect()
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
        crate::NeedsMode::Exclude => keep = options.jobs.clone(),
        crate::NeedsMode::Include | crate::NeedsMode::Only => {
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
            if options.needs == crate::NeedsMode::Only {
                keep.retain(|k| !options.jobs.contains(k));
            }
        }
    }
    workflow.jobs.retain(|id, _| keep.contains(id));
    // Needs on jobs left out are dropped (the selection says what runs).
    let present: Vec<String> = workflow.jobs.keys().cloned().collect();
    // Stage order still applies among the selected jobs.
    for job in workflow.jobs.values_mut() {
        job.needs.retain(|(n, _)| present.contains(n));
    }
    Ok(())
}

/// GitLab's expansion with pipeline variables taking precedence over `vars`.
fn expand(
    text: &str,
    vars: &IndexMap<String, String>,
    pipeline: &IndexMap<String, String>,
) -> String {
    gitlab::vars::expand(text, &|name| {
        pipeline
            .get(name)
            .or_else(|| vars.get(name))
            .cloned()
            .or_else(|| {
                std::env::var(name)
                    .ok()
                    .filter(|_| name == "HOME" || name == "PATH")
            })
    })
}

/// The start of the artifact names of a job's instances.
fn artifact_prefix(job: &str) -> String {
    let safe: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}--")
}

/// An artifact name for a job instance.
pub(crate) fn artifact_name(job: &str, instance: &str) -> String {
    format!(
        "{}{}",
        artifact_prefix(job),
        crate::job::storage_key(instance)
    )
}

/// The job's variables: base → global (filtered by `inherit`) → job → parallel matrix →
/// dotenv of the jobs it depends on → pipeline; each expanded against what came before.
fn job_variables(
    runner: &JobRunner,
    task: &JobTask,
    job: &Job,
    gl: &GitLabJob,
    pv: &PipelineVars,
) -> IndexMap<String, String> {
    let mut vars = pv.base.clone();
    if let Some(keep) = &gl.inherit_variables {
        for g in &pv.globals {
            if !keep.contains(g) {
                vars.shift_remove(g);
            }
        }
    }
    let ws = runner.workspace.to_string_lossy().into_owned();
    let id = &task.instance.id;
    // `job 2/3` instances of `parallel: N`.
    let node = id
        .strip_prefix(&format!("{} ", task.instance.job))
        .and_then(|suffix| suffix.split_once('/'))
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    let info = ci_vcs::jobenv::JobInfo {
        job: id.clone(),
        base: task.instance.job.clone(),
        workflow: runner.ctx.workflow_name.clone(),
        workspace: ws.clone(),
        builds_dir: runner
            .workspace
            .parent()
            .map_or(ws.clone(), |p| p.to_string_lossy().into_owned()),
        stage: job.stage.clone().unwrap_or_default(),
        job_number: format!("{}{}", runner.ctx.run_number, task.matrix_pos.0 + 1),
        pipeline_id: runner
            .ctx
            .run_id
            .split('-')
            .next()
            .unwrap_or("1")
            .to_owned(),
        timeout_secs: gl.timeout.unwrap_or(3600),
        image: gl.image.as_ref().map(|i| i.name.clone()),
        environment: gl.environment.clone(),
        node,
        tags: gl.tags.clone(),
        ..ci_vcs::jobenv::JobInfo::default()
    };
    vars.extend(ci_vcs::jobenv::gitlab_job_variables(&info));
    for (k, v) in &gl.variables {
        let value = if v.expand {
            expand(&v.value, &vars, &pv.pipeline)
        } else {
            v.value.clone()
        };
        vars.insert(k.clone(), value);
    }
    if let Some(m) = &task.instance.matrix {
        for (k, v) in m {
            vars.insert(k.clone(), ci_config::expr::render(v));
        }
        vars.insert("CI_NODE_TOTAL".into(), task.matrix_pos.1.to_string());
        vars.insert("CI_NODE_INDEX".into(), (task.matrix_pos.0 + 1).to_string());
    }
    // dotenv reports of the jobs whose artifacts this one takes.
    if let Value::Object(needs) = &task.needs {
        for (name, need) in needs.iter() {
            if !takes_artifacts(gl, name) {
                continue;
            }
            if let Some(Value::Object(outputs)) = need.get("outputs") {
                for (k, v) in outputs.iter() {
                    vars.insert(k.clone(), ci_config::expr::render(v));
                }
            }
        }
    }
    for (k, v) in &pv.pipeline {
        vars.insert(k.clone(), v.clone());
    }
    vars
}

/// Whether this job downloads the artifacts (and dotenv) of `job`.
fn takes_artifacts(gl: &GitLabJob, job: &str) -> bool {
    if let Some(deps) = &gl.dependencies {
        return deps.iter().any(|d| d == job);
    }
    match gl.needs.iter().find(|n| n.job == job) {
        Some(n) => n.artifacts,
        // Stage order (no needs): every earlier job.
        None => gl.needs.is_empty(),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shell script of `before_script` + `script` (or `after_script`): each command echoed
/// as `$ command` before it runs, stopping at the first failure.
fn script(lines: &[String], bash: bool) -> String {
    let mut out = String::new();
    out.push_str(if bash {
        "set -eo pipefail\n"
    } else {
        "set -e\n"
    });
    for line in lines {
        let shown = match line.lines().count() {
            0 | 1 => line.clone(),
            _ => format!(
                "{} # collapsed multi-line command",
                line.lines().next().unwrap_or("")
            ),
        };
        out.push_str(&format!(
            "printf '%s\\n' {}\n",
            quote(&format!("$ {shown}"))
        ));
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Success => "success",
        Status::Cancelled => "canceled",
        _ => "failed",
    }
}

/// Runs a GitLab job in a prepared job environment.
pub(crate) async fn run(
    runner: &mut JobRunner,
    task: &JobTask,
    job: &Job,
    gl: &GitLabJob,
) -> Outcome {
    let pv = task.scope.gitlab.clone().unwrap_or_default();
    let mut vars = job_variables(runner, task, job, gl, &pv);
    let index = 0;
    if gl.image.is_some() && !runner.in_container {
        runner
            .logs
            .annotate(index, "warning", "Docker is not available: the job's image is ignored and the script runs on the host")
            .await;
    }
    if let Some(env) = &gl.environment {
        runner
            .logs
            .line(index, &format!("Environment: {env}"))
            .await;
    }
    // The project's files, as the runner fetches them (GIT_STRATEGY=none skips it).
    if vars.get("GIT_STRATEGY").map(String::as_str) != Some("none") {
        if let Err(e) = checkout(runner).await {
            runner.logs.annotate(index, "error", &e).await;
            let mut o = Outcome::failure(1);
            o.reason = Some("runner_system_failure".into());
            return o;
        }
    }
    restore_caches(runner, gl, &vars, index).await;
    if let Err(e) = download_artifacts(runner, task, gl, index).await {
        runner.logs.annotate(index, "error", &e).await;
        let mut o = Outcome::failure(1);
        o.reason = Some("runner_system_failure".into());
        return o;
    }
    // Variables named like files (`type: file`) are not supported; all are env.
    let bash = !runner.in_container && runner.ctx.inner.bash.is_some();
    let mut lines = gl.before_script.clone();
    lines.extend(gl.script.iter().cloned());
    let shell = if runner.in_container {
        Shell::Custom("sh -c 'if command -v bash >/dev/null 2>&1; then exec bash \"$1\"; else exec sh \"$1\"; fi' gantry {0}".into())
    } else {
        match &runner.ctx.inner.bash {
            // The path resolved once: no PATH search per job.
            Some(path) if !path.to_string_lossy().contains([' ', '\'', '"']) => {
                Shell::Custom(format!("{} {{0}}", path.display()))
            }
            _ => runner.shell(Some(if bash { "bash {0}" } else { "sh {0}" })),
        }
    };
    let bash_in_script = bash || runner.in_container;
    let started = std::time::Instant::now();
    runner
        .ctx
        .emit(RunEvent::StepStarted {
            job: runner.id.clone(),
            step: 0,
            name: "script".into(),
        })
        .await;
    let done = runner
        .exec(
            0,
            StepSpec {
                id: "script".into(),
                script: if bash_in_script && runner.in_container {
                    // `pipefail` only where bash runs it.
                    format!(
                        "[ -n \"$BASH_VERSION\" ] && set -o pipefail\n{}",
                        script(&lines, false)
                    )
                } else {
                    script(&lines, bash_in_script)
                },
                shell: shell.clone(),
                env: vars.clone(),
                workdir: None,
                timeout: Some(Duration::from_secs(
                    gl.timeout.unwrap_or(3600).min(MAX_TIMEOUT_SECS),
                )),
                inherit_env: !runner.in_container,
            },
        )
        .await;
    let exit_code = match done.outcome {
        StepOutcome::Exited(c) => Some(c),
        _ => None,
    };
    let mut status = if done.outcome == StepOutcome::TimedOut {
        runner.timed_out = true;
        runner
            .logs
            .annotate(
                0,
                "error",
                &format!(
                    "The job has exceeded its time limit ({} s).",
                    gl.timeout.unwrap_or(3600)
                ),
            )
            .await;
        Status::Failure
    } else {
        runner.conclude(0, done).await.outcome
    };
    if runner.cancel.is_cancelled() {
        status = Status::Cancelled;
    }
    runner
        .ctx
        .emit(RunEvent::StepFinished {
            job: runner.id.clone(),
            step: 0,
            name: "script".into(),
            status,
            duration_ms: started.elapsed().as_millis() as u64,
        })
        .await;
    runner.records.push(ci_store::runs::StepRecord {
        index: 0,
        name: "script".into(),
        status: status.stored(),
        started_at: None,
        finished_at: Some(crate::run::now_ms()),
        log_key: Some(runner.log_key.clone()),
    });
    // after_script: after success, failure or timeout, in a new shell, with its own limit;
    // its result does not change the job's.
    if !gl.after_script.is_empty() {
        let mut env = vars.clone();
        env.insert("CI_JOB_STATUS".into(), status_name(status).into());
        runner.after_cancel = true;
        let started = std::time::Instant::now();
        runner
            .ctx
            .emit(RunEvent::StepStarted {
                job: runner.id.clone(),
                step: 1,
                name: "after_script".into(),
            })
            .await;
        runner.logs.line(1, "Running after_script").await;
        let done = runner
            .exec(
                1,
                StepSpec {
                    id: "after_script".into(),
                    script: script(&gl.after_script, false),
                    shell,
                    env,
                    workdir: None,
                    timeout: Some(Duration::from_secs(300)),
                    inherit_env: !runner.in_container,
                },
            )
            .await;
        let after = match &done.outcome {
            StepOutcome::Exited(0) => Status::Success,
            StepOutcome::TimedOut => {
                runner
                    .logs
                    .annotate(1, "warning", "after_script timed out (5 minutes)")
                    .await;
                Status::Failure
            }
            other => {
                runner
                    .logs
                    .annotate(1, "warning", &format!("after_script failed: {other:?}"))
                    .await;
                Status::Failure
            }
        };
        runner
            .ctx
            .emit(RunEvent::StepFinished {
                job: runner.id.clone(),
                step: 1,
                name: "after_script".into(),
                status: after,
                duration_ms: started.elapsed().as_millis() as u64,
            })
            .await;
    }
    let succeeded = status == Status::Success;
    let mut outputs = IndexMap::new();
    if let Some(a) = &gl.artifacts {
        let due = match a.when {
            When::Always => true,
            When::OnFailure => !succeeded,
            _ => succeeded,
        };
        if due {
            match upload_artifacts(runner, task, a, &vars).await {
                Ok(dotenv) => outputs = dotenv,
                Err(e) => {
                    runner.logs.annotate(1, "error", &e).await;
                    if succeeded {
                        status = Status::Failure;
                    }
                }
            }
        }
    }
    save_caches(runner, gl, &vars, succeeded).await;
    if let Some(c) = &gl.coverage {
        if let Some(found) = coverage(c, &runner.logs.captured()) {
            runner.logs.line(1, &format!("Coverage: {found}%")).await;
            outputs.insert("coverage".into(), found);
        }
    }
    vars.clear();
    let mut outcome = match status {
        Status::Success => Outcome::success(),
        Status::Cancelled => Outcome::cancelled(),
        _ => {
            let mut o = Outcome::failure(exit_code.unwrap_or(1));
            o.exit_code = exit_code;
            if runner.timed_out {
                o.reason = Some("stuck_or_timeout_failure".into());
            }
            o
        }
    };
    outcome.outputs = outputs;
    outcome
}

/// The repository's committed files at the event's commit (with its `.git`), in the
/// workspace: cloned once per run, then copied into each job's workspace — a job may change
/// its copy freely.
async fn checkout(runner: &mut JobRunner) -> Result<(), String> {
    let ctx = Arc::clone(&runner.ctx);
    let dest = runner.workspace.clone();
    tokio::task::spawn_blocking(move || {
        let snapshot = ctx
            .snapshot
            .get_or_init(|| {
                let Ok(repo) = ci_vcs::Repository::open(&ctx.root) else {
                    // Not a git repository: nothing to fetch; jobs see an empty directory.
                    return Ok(None);
                };
                let dir = ctx.run_dir.join("_source");
                repo.clone_at(&ctx.event.sha, &dir, 0)
                    .map_err(|e| e.to_string())?;
                // What every job would copy for nothing: sample hooks, reflogs, description.
                for extra in ["hooks", "logs", "description"] {
                    let p = dir.join(".git").join(extra);
                    let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
                }
                Ok(Some(dir))
            })
            .clone();
        match snapshot {
            Ok(Some(dir)) => copy_tree(&dir, &dest, false),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| format!("fetching the project: {e}"))?
    .map_err(|e| format!("fetching the project: {e}"))
}

/// Copies a directory tree (files, directories, symbolic links as links). Git's object
/// store is linked instead (`link`): objects and packs are never changed in place, and a
/// project's history is the bulk of its size.
fn copy_tree(from: &std::path::Path, to: &std::path::Path, link: bool) -> Result<(), String> {
    let io = |p: &std::path::Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| io(&src, e))?;
        if kind.is_dir() {
            let objects = entry.file_name() == "objects" && from.ends_with(".git");
            copy_tree(&src, &dst, link || objects)?;
        } else if link && std::fs::hard_link(&src, &dst).is_ok() {
            // Linked.
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| io(&src, e))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| io(&dst, e))?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| io(&src, e))?;
        }
    }
    Ok(())
}

fn cache_key(runner: &JobRunner, c: &gitlab::Cache, vars: &IndexMap<String, String>) -> String {
    if !c.key_files.is_empty() {
        let files: Vec<&str> = c.key_files.iter().map(String::as_str).collect();
        let prefix = c
            .key_prefix
            .as_deref()
            .map(|p| expand(p, vars, &IndexMap::new()));
        return ci_store::caches::files_key(prefix.as_deref(), &runner.workspace, &files);
    }
    expand(&c.key, vars, &IndexMap::new())
}

const CACHE_SCOPE: &str = "gitlab";

async fn restore_caches(
    runner: &mut JobRunner,
    gl: &GitLabJob,
    vars: &IndexMap<String, String>,
    index: usize,
) {
    let caches = Caches::new(runner.ctx.inner.blobs.clone());
    for c in &gl.cache {
        let policy = expand(&c.policy, vars, &IndexMap::new());
        if policy == "push" {
            continue;
        }
        let key = cache_key(runner, c, vars);
        let mut keys = vec![key.clone()];
        keys.extend(
            c.fallback_keys
                .iter()
                .map(|k| expand(k, vars, &IndexMap::new())),
        );
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match caches.lookup_exact(CACHE_SCOPE, CACHE_SCOPE, &refs).await {
            Ok(Some(hit)) => match caches.restore(&hit, &runner.workspace).await {
                Ok(n) => {
                    runner
                        .logs
                        .line(
                            index,
                            &format!("Successfully extracted cache {} ({n} file(s))", hit.key),
                        )
                        .await
                }
                Err(e) => {
                    runner
                        .logs
                        .annotate(index, "warning", &format!("cache {}: {e}", hit.key))
                        .await
                }
            },
            Ok(None) => {
                runner
                    .logs
                    .line(index, &format!("No cache found for key {key}"))
                    .await
            }
            Err(e) => {
                runner
                    .logs
                    .annotate(index, "warning", &format!("cache: {e}"))
                    .await
            }
        }
    }
}

async fn save_caches(
    runner: &mut JobRunner,
    gl: &GitLabJob,
    vars: &IndexMap<String, String>,
    succeeded: bool,
) {
    let caches = Caches::new(runner.ctx.inner.blobs.clone());
    for c in &gl.cache {
        let policy = expand(&c.policy, vars, &IndexMap::new());
        let due = match c.when {
            When::Always => true,
            When::OnFailure => !succeeded,
            _ => succeeded,
        };
        if policy == "pull" || !due || c.paths.is_empty() {
            continue;
        }
        let key = cache_key(runner, c, vars);
        let paths: Vec<String> = c
            .paths
            .iter()
            .map(|p| expand(p, vars, &IndexMap::new()))
            .collect();
        let existing: Vec<&str> = paths
            .iter()
            .map(String::as_str)
            .filter(|p| runner.workspace.join(p.trim_start_matches("./")).exists())
            .collect();
        if existing.is_empty() {
            runner
                .logs
                .annotate(1, "warning", &format!("cache {key}: no matching files"))
                .await;
            continue;
        }
        match caches
            .save(CACHE_SCOPE, &key, &runner.workspace, &existing)
            .await
        {
            Ok(ci_store::caches::Saved::Stored(_)) => {
                runner.logs.line(1, &format!("Created cache {key}")).await
            }
            Ok(_) => {
                runner
                    .logs
                    .line(1, &format!("Cache {key} exists already; not uploaded"))
                    .await
            }
            Err(e) => {
                runner
                    .logs
                    .annotate(1, "warning", &format!("cache {key}: {e}"))
                    .await
            }
        }
    }
}

async fn download_artifacts(
    runner: &mut JobRunner,
    task: &JobTask,
    gl: &GitLabJob,
    index: usize,
) -> Result<(), String> {
    let Value::Object(needs) = &task.needs else {
        return Ok(());
    };
    let wanted: Vec<String> = needs
        .keys()
        .filter(|n| takes_artifacts(gl, n))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let store = runner.ctx.inner.blobs.clone();
    let all = artifacts::list(&store, &runner.ctx.run_id)
        .await
        .map_err(|e| format!("artifacts: {e}"))?;
    for job in wanted {
        let prefix = artifact_prefix(&job);
        for name in all.iter().filter(|n| n.starts_with(&prefix)) {
            let m = artifacts::download(&store, &runner.ctx.run_id, name, &runner.workspace)
                .await
                .map_err(|e| format!("artifacts of '{job}': {e}"))?;
            runner
                .logs
                .line(
                    index,
                    &format!(
                        "Downloaded artifacts of {job} ({} file(s))",
                        m.entries.len()
                    ),
                )
                .await;
        }
    }
    Ok(())
}

async fn upload_artifacts(
    runner: &mut JobRunner,
    task: &JobTask,
    a: &gitlab::Artifacts,
    vars: &IndexMap<String, String>,
) -> Result<IndexMap<String, String>, String> {
    let mut patterns: Vec<String> = a
        .paths
        .iter()
        .map(|p| expand(p, vars, &IndexMap::new()))
        .collect();
    patterns.extend(a.dotenv.iter().cloned());
    patterns.extend(a.junit.iter().cloned());
    if a.untracked {
        // Every file git does not track (and does not ignore), as GitLab adds them.
        let out = std::process::Command::new("git")
            .args(["ls-files", "--others", "--exclude-standard", "-z"])
            .current_dir(&runner.workspace)
            .output();
        match out {
            Ok(o) if o.status.success() => patterns.extend(
                o.stdout
                    .split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            ),
            _ => {
                runner
                    .logs
                    .annotate(
                        1,
                        "warning",
                        "artifacts:untracked: the workspace is not a git checkout",
                    )
                    .await
            }
        }
    }
    let mut dotenv = IndexMap::new();
    for file in &a.dotenv {
        let path = runner.workspace.join(file.trim_start_matches("./"));
        match std::fs::read_to_string(&path) {
            Ok(text) => match ci_exec::envfile::parse_env_file(&text) {
                Ok(v) => dotenv.extend(v),
                Err(e) => return Err(format!("dotenv report {file}: {e}")),
            },
            Err(e) => return Err(format!("dotenv report {file}: {e}")),
        }
    }
    for file in &a.junit {
        if runner
            .workspace
            .join(file.trim_start_matches("./"))
            .exists()
        {
            runner
                .logs
                .line(1, &format!("JUnit report {file} saved"))
                .await;
        }
    }
    if patterns.is_empty() {
        return Ok(dotenv);
    }
    let mut lines = patterns.join("\n");
    for e in &a.exclude {
        lines.push_str(&format!("\n!{e}"));
    }
    let expires = a
        .expire_in
        .as_deref()
        .and_then(gitlab::duration_secs)
        .map(|s| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + s
        });
    let name = artifact_name(&task.instance.job, &task.instance.id);
    let ctx = Arc::clone(&runner.ctx);
    let up = artifacts::upload(
        &ctx.inner.blobs,
        &ctx.run_id,
        &name,
        &runner.workspace,
        &lines,
        IfNoFilesFound::Warn,
        expires,
    )
    .await
    .map_err(|e| format!("artifacts: {e}"))?;
    if let Some(w) = &up.warning {
        runner.logs.annotate(1, "warning", w).await;
    }
    if let Some(m) = &up.manifest {
        runner
            .logs
            .line(
                1,
                &format!("Uploading artifacts: {} file(s)", m.entries.len()),
            )
            .await;
        let _ = ctx
            .inner
            .runs
            .record_artifact(
                &ctx.run_id,
                &name,
                &format!("artifacts/{}/{name}/manifest.json", ctx.run_id),
            )
            .await;
    }
    Ok(dotenv)
}

/// The last match of the coverage regex's first group (or whole match) in the log.
fn coverage(regex: &str, log: &str) -> Option<String> {
    let (pattern, flags) = gitlab::split_regex(regex)?;
    let re = gitlab::regex(&pattern, &flags).ok()?;
    let m = re.captures_iter(log).last()?;
    let text = m.get(1).or_else(|| m.get(0))?.as_str();
    let number: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!number.is_empty()).then_some(number)
}

/// Sleeps out a delayed job's `start_in` (false when cancelled meanwhile).
pub(crate) async fn delay(gl: &GitLabJob, cancel: &tokio_util::sync::CancellationToken) -> bool {
    let Some(secs) = gl.start_in.as_deref().and_then(gitlab::duration_secs) else {
        return true;
    };
    let secs = secs.min(MAX_TIMEOUT_SECS);
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(secs)) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_takes_the_last_match() {
        let log = "Coverage: 10%\nlines......: 85.5% (3 of 4)\n";
        assert_eq!(
            coverage("/lines\\.+: (\\d+\\.\\d+)%/", log).as_deref(),
            Some("85.5")
        );
        assert_eq!(coverage("/Coverage: \\d+%/", log).as_deref(), Some("10"));
        assert_eq!(coverage("/nothing/", log), None);
    }

    #[test]
    fn scripts_echo_each_command() {
        let s = script(&["echo hi".into(), "a && b".into()], true);
        assert!(s.starts_with("set -eo pipefail\n"));
        assert!(s.contains("printf '%s\\n' '$ echo hi'\necho hi\n"));
    }
}
