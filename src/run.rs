//! `gantry run`, `gantry runs` and `gantry logs`: a workflow run in the terminal, and the
//! recorded history under `.gantry/`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ci_engine::{Engine, EngineError, RunEvent, RunOptions, RunSummary, Source, Status};
use ci_exec::Executor;
use ci_store::runs::{RunFilter, RunStore, SqliteRunStore};
use ci_store::BlobStore;

/// Options of `gantry run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The workflow file (default: the repository's only workflow).
    pub path: Option<PathBuf>,
    /// Run only this job (and what it needs); repeatable.
    #[arg(long = "job", value_name = "ID")]
    pub jobs: Vec<String>,
    /// The triggering event: push (default), pull_request, workflow_dispatch, schedule.
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    /// A JSON file with the event payload (`github.event`).
    #[arg(long, value_name = "FILE")]
    pub event_path: Option<PathBuf>,
    /// Where jobs with a runs-on label run: LABEL=host, LABEL=bwrap (a bubblewrap sandbox),
    /// LABEL=docker://IMAGE, LABEL=swarm://IMAGE (steps as Docker Swarm services) or
    /// LABEL=k8s://IMAGE[?cpu=2&memory=4Gi&…] (a pod per job on Kubernetes); repeatable.
    #[arg(long = "platform", value_name = "LABEL=EXECUTOR", value_parser = crate::plan::key_value)]
    pub platforms: Vec<(String, String)>,
    /// Serve agents on this address: jobs of labels mapped to `agent:LABEL` run on `gantry
    /// agent` processes that connect here with the token in GANTRY_AGENT_TOKEN (plain HTTP:
    /// for loopback or a trusted network).
    #[arg(long, value_name = "ADDR")]
    pub agent_listen: Option<std::net::SocketAddr>,
    /// A secret, K=V (or K to take the value of the environment variable K); repeatable.
    #[arg(long = "secret", value_name = "K=V")]
    pub secrets: Vec<String>,
    /// A configuration variable (`vars`), K=V; repeatable.
    #[arg(long = "var", value_name = "K=V", value_parser = crate::plan::key_value)]
    pub vars: Vec<(String, String)>,
    /// A workflow input (`inputs`), K=V; repeatable.
    #[arg(long = "input", value_name = "K=V", value_parser = crate::plan::key_value)]
    pub inputs: Vec<(String, String)>,
    /// Run only matrix combinations with this value, K:V; repeatable.
    #[arg(long = "matrix", value_name = "K:V", value_parser = matrix_filter)]
    pub matrix: Vec<(String, String)>,
    /// Most jobs running at once (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<usize>,
    /// Use a local directory for a remote action or reusable workflow: OWNER/REPO[@REF]=PATH.
    #[arg(long = "action-dir", value_name = "ACTION=PATH", value_parser = crate::plan::key_value)]
    pub action_dirs: Vec<(String, String)>,
    /// GitLab: use a local directory for `include: project:`, GROUP/PROJECT=PATH.
    #[arg(long = "include-dir", value_name = "PROJECT=PATH", value_parser = crate::plan::key_value)]
    pub include_dirs: Vec<(String, String)>,
    /// CircleCI: the variables of a context, from a dotenv file (`KEY=value` lines); jobs
    /// that name the context get them, masked in logs; repeatable.
    #[arg(long = "context", value_name = "NAME=FILE", value_parser = crate::plan::key_value)]
    pub contexts: Vec<(String, String)>,
    /// JUnit reports every job keeps as its test results (a glob in the workspace, e.g.
    /// `target/**/junit.xml`; repeatable); see `gantry tests`.
    #[arg(long = "junit", value_name = "GLOB")]
    pub junit: Vec<String>,
    /// Start this manual job (GitLab `when: manual`) or approve this approval job (CircleCI
    /// `type: approval`, also `--approve`); repeatable.
    #[arg(long = "manual", visible_alias = "approve", value_name = "JOB")]
    pub manual: Vec<String>,
    /// GitLab: with --job, also run the jobs it needs.
    #[arg(long, conflicts_with = "only_needs")]
    pub needs: bool,
    /// GitLab: with --job, run only the jobs it needs.
    #[arg(long)]
    pub only_needs: bool,
    /// Where runs, logs, artifacts and caches are kept (default: .gantry in the repository).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output: human (live view on a terminal, plain lines when piped) or json (one event
    /// per line).
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

/// How a run is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    /// Live view on a terminal, plain lines when piped; a summary table at the end.
    Human,
    /// One JSON object per event.
    Json,
}

fn matrix_filter(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY:VALUE, got '{s}'"))
}

/// The workflow to run when none is named: the repository's only one.
fn default_workflow() -> Result<PathBuf> {
    let files = crate::lint::files(&[])?;
    match files.as_slice() {
        [one] => Ok(one.clone()),
        many => bail!(
            "several workflows; name one: {}",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The state directory: given, or `.gantry` in the repository (or the current directory).
fn state_dir(given: Option<&Path>, root: &Path) -> PathBuf {
    given.map_or_else(|| root.join(".gantry"), Path::to_path_buf)
}

async fn open_state(dir: &Path) -> Result<(Arc<dyn RunStore>, BlobStore)> {
    std::fs::create_dir_all(dir.join("blobs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    let db = dir.join("runs.db");
    let runs = SqliteRunStore::open(&db.to_string_lossy())
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    let blobs = BlobStore::open(&format!("file://{}", dir.join("blobs").display()))?;
    Ok((Arc::new(runs), blobs))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `gantry run`.
pub fn run(args: RunArgs, quiet: bool, dialect: Option<ci_config::Dialect>) -> Result<ExitCode> {
    let path = match &args.path {
        Some(p) => p.clone(),
        None => default_workflow()?,
    };
    let mut source = Source::read(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(d) = dialect {
        source = source.with_dialect(d);
    }
    runtime()?.block_on(run_async(args, source, quiet))
}

async fn run_async(args: RunArgs, source: Source, quiet: bool) -> Result<ExitCode> {
    let (runs, blobs) = open_state(&state_dir(args.state_dir.as_deref(), &source.root)).await?;
    let mut builder = Engine::builder()
        .run_store(runs)
        .blobs(blobs)
        .work_dir(std::env::temp_dir().join("gantry"))
        .fetcher(Some(crate::fetch::fetcher()));
    if let Some(n) = args.max_parallel {
        builder = builder.capacity(n);
    }
    let mut docker: HashMap<String, Arc<dyn Executor>> = HashMap::new();
    let agents = match args.agent_listen {
        Some(addr) => {
            // A job an agent lost runs again on another one.
            builder = builder.retry_lost_jobs(2);
            Some(crate::agent::Agents::serve(addr).await?)
        }
        None => None,
    };
    for (label, target) in &args.platforms {
        let executor = match (target.strip_prefix("agent:"), &agents) {
            (Some(agent_label), Some(agents)) => agents.executor(agent_label),
            (Some(_), None) => {
                bail!("--platform {label}={target}: agents need --agent-listen ADDR")
            }
            (None, _) => executor_for(target, &mut docker)
                .await
                .with_context(|| format!("--platform {label}={target}"))?,
        };
        builder = builder.executor(label.clone(), executor);
    }
    // Job containers, images, services and docker steps find the local Docker daemon through
    // the engine, when a job first needs it.
    for (action, dir) in args.action_dirs.iter().chain(&args.include_dirs) {
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("--action-dir {action}={dir}"))?;
        builder = builder.action_dir(action.clone(), dir);
    }
    let mut options = RunOptions::new();
    options.jobs = args.jobs.clone();
    options.manual = args.manual.clone();
    options.junit = args.junit.clone();
    options.orbs = crate::fetch::orbs()?;
    for (name, file) in &args.contexts {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("--context {name}={file}"))?;
        let vars = ci_exec::envfile::parse_env_file(&text)
            .map_err(|e| anyhow::anyhow!("--context {name}={file}: {e}"))?;
        options
            .contexts
            .entry(name.clone())
            .or_default()
            .extend(vars);
    }
    let gitlab = source
        .dialect
        .unwrap_or_else(|| ci_config::detect_dialect(&source.path, &source.text))
        == ci_config::Dialect::GitLabCi;
    options.needs = if args.only_needs {
        ci_engine::NeedsMode::Only
    } else if args.needs || !gitlab {
        ci_engine::NeedsMode::Include
    } else {
        ci_engine::NeedsMode::Exclude
    };
    options.inputs = args.inputs.iter().cloned().collect();
    options.matrix = args.matrix.clone();
    options.max_parallel = args.max_parallel;
    options.vars = args.vars.iter().cloned().collect();
    for s in &args.secrets {
        let (k, v) = match s.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (
                s.clone(),
                std::env::var(s)
                    .with_context(|| format!("--secret {s}: no environment variable {s}"))?,
            ),
        };
        options.secrets.insert(k, v);
    }
    options.log_events = !quiet || args.format == RunFormat::Json;
    let engine = builder.build().await?;
    let event = event(&args, &source)?;
    let root = source.root.clone();
    let Some(summary) = execute(
        &engine,
        source,
        event.clone(),
        options.clone(),
        &args,
        quiet,
    )
    .await?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    if !summary.success() {
        return Ok(ExitCode::from(1));
    }
    // CircleCI dynamic configuration: the setup workflow named what runs next.
    let Some((path, text, parameters)) = continuation(&summary)? else {
        return Ok(ExitCode::SUCCESS);
    };
    anstream::println!("continuing the pipeline with {path}");
    let mut next = options;
    next.inputs = parameters;
    let source = Source::new(path, text, root).with_dialect(ci_config::Dialect::CircleCi);
    let summary = execute(&engine, source, event, next, &args, quiet).await?;
    Ok(if summary.is_none_or(|s| s.success()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What a CircleCI pipeline continues with: the configuration's path, its text, and the
/// pipeline parameters.
type Continuation = (String, String, indexmap::IndexMap<String, String>);

/// The configuration a CircleCI setup workflow continues the pipeline with (`circleci
/// continue`); `None` when it did not continue.
fn continuation(summary: &ci_engine::RunSummary) -> Result<Option<Continuation>> {
    let asked: Vec<_> = summary
        .jobs
        .iter()
        .filter(|j| j.outputs.contains_key("gantry.continuation.config"))
        .collect();
    let job = match asked.as_slice() {
        [] => return Ok(None),
        [one] => one,
        many => bail!(
            "the pipeline was continued by {} jobs ({}): a pipeline continues once",
            many.len(),
            many.iter()
                .map(|j| j.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let path = job.outputs["gantry.continuation.path"].clone();
    let text = job.outputs["gantry.continuation.config"].clone();
    let raw = job
        .outputs
        .get("gantry.continuation.parameters")
        .map(String::as_str)
        .unwrap_or("{}");
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    let value: serde_json::Value = serde_json::from_str(raw).with_context(|| {
        format!("the parameters '{path}' is continued with are not JSON: {raw}")
    })?;
    let serde_json::Value::Object(map) = value else {
        bail!("the parameters '{path}' is continued with are not a JSON object: {raw}");
    };
    let parameters = map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    Ok(Some((path, text, parameters)))
}

/// Starts a run and shows it to its end; `None` when there was nothing to run.
async fn execute(
    engine: &Engine,
    source: Source,
    event: ci_vcs::Event,
    options: RunOptions,
    args: &RunArgs,
    quiet: bool,
) -> Result<Option<ci_engine::RunSummary>> {
    let text = source.text.clone();
    let handle = match engine.start(source, event, options).await {
        Ok(h) => h,
        Err(EngineError::Invalid { path, diagnostics }) => {
            for d in &diagnostics {
                anstream::eprintln!("{}", d.render(&text, std::io::stderr().is_terminal()));
            }
            bail!("{path} cannot run; see `gantry lint {path}`");
        }
        Err(EngineError::NotCreated(why)) => {
            anstream::println!("nothing to run: {why}");
            return Ok(None);
        }
        Err(e) => bail!("{e}"),
    };
    let canceller = handle.canceller();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ncancelling the run (Ctrl-C again to stop at once)…");
            canceller.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    Ok(Some(match args.format {
        RunFormat::Json => json_view(handle).await,
        RunFormat::Human => human_view(handle, quiet).await,
    }))
}

/// The executor a platform target names (see [`ci_exec::TARGETS`]); Docker executors are
/// made once per image and kept in `docker`.
pub(crate) async fn executor_for(
    target: &str,
    docker: &mut HashMap<String, Arc<dyn Executor>>,
) -> Result<Arc<dyn Executor>> {
    if target.starts_with("docker://") {
        if let Some(e) = docker.get(target) {
            return Ok(Arc::clone(e));
        }
    }
    let e = ci_exec::executor_for_target(target).await?;
    if target.starts_with("docker://") {
        docker.insert(target.to_owned(), Arc::clone(&e));
    }
    Ok(e)
}

/// The event of a local run.
fn event(args: &RunArgs, source: &Source) -> Result<ci_vcs::Event> {
    let mut event = source.local_event();
    let repo = ci_vcs::Repository::open(&source.root).ok();
    match args.event.as_deref().unwrap_or("push") {
        "push" => {}
        name @ ("workflow_dispatch" | "workflow_call") => {
            if let Some(repo) = &repo {
                let inputs = args
                    .inputs
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                    .collect();
                event = repo.local_dispatch(inputs)?;
            }
            // A reusable workflow run on its own: its inputs as `--input`s, typed by its
            // `on.workflow_call.inputs`.
            event.kind = if name == "workflow_call" {
                ci_vcs::EventKind::WorkflowCall
            } else {
                ci_vcs::EventKind::WorkflowDispatch
            };
        }
        "schedule" => {
            let cron = "0 0 * * *";
            event = match &repo {
                Some(r) => r.local_schedule(cron)?,
                None => event,
            };
        }
        "pull_request" => {
            let head = event.ref_name().to_owned();
            event.kind = ci_vcs::EventKind::PullRequest {
                action: "opened".into(),
                number: 1,
            };
            event.base_ref = Some(event.repository.default_branch.clone());
            event.head_ref = Some(head);
            event.git_ref = "refs/pull/1/merge".into();
        }
        other => bail!(
            "--event {other}: local runs support push, pull_request, workflow_dispatch, \
             workflow_call and schedule"
        ),
    }
    if let Some(path) = &args.event_path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let payload = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        event = event.with_payload(payload);
    }
    Ok(event)
}

async fn json_view(mut handle: ci_engine::RunHandle) -> RunSummary {
    let stdout = std::io::stdout();
    while let Some(event) = handle.next_event().await {
        let mut out = stdout.lock();
        let _ = serde_json::to_writer(&mut out, &event);
        let _ = writeln!(out);
    }
    handle.wait().await
}

/// A duration as people read it: `240ms`, `3.4s`, `2m05s`.
fn duration(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else if ms < 1000 {
        // Fast jobs are the point: "0.0s" would hide them.
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Success => "✓",
        Status::Failure => "✗",
        Status::Cancelled => "⊘",
        _ => "-",
    }
}

fn styled(status: Status, text: &str) -> String {
    let style = match status {
        Status::Success => anstyle::AnsiColor::Green.on_default(),
        Status::Failure => anstyle::AnsiColor::Red.on_default(),
        Status::Cancelled => anstyle::AnsiColor::Yellow.on_default(),
        _ => anstyle::Style::new().dimmed(),
    };
    format!("{style}{text}{style:#}")
}

/// Human output: a live view with spinners on a terminal, plain prefixed lines otherwise,
/// and a summary table at the end.
async fn human_view(mut handle: ci_engine::RunHandle, quiet: bool) -> RunSummary {
    let tty = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let multi = indicatif::MultiProgress::new();
    if !tty {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style =
        indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    let mut bars: HashMap<String, indicatif::ProgressBar> = HashMap::new();
    let mut widths = 0usize;
    // The header of the live view: how many jobs wait, run and are done.
    let header = multi.add(indicatif::ProgressBar::new_spinner());
    header.set_style(
        indicatif::ProgressStyle::with_template("{msg} {elapsed:.dim}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut total = 0usize;
    let mut running: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut done = 0usize;
    let counts = |total: usize, running: usize, done: usize| {
        format!(
            "queued {} · running {running} · done {done}/{total}",
            total.saturating_sub(running + done)
        )
    };
    let started = Instant::now();
    let print = |line: String| {
        if tty {
            let _ = multi.println(line);
        } else {
            anstream::println!("{line}");
        }
    };
    while let Some(event) = handle.next_event().await {
        match event {
            RunEvent::RunStarted {
                run_id,
                workflow,
                jobs,
            } => {
                widths = jobs
                    .iter()
                    .map(|j| j.chars().count())
                    .max()
                    .unwrap_or(0)
                    .min(40);
                if !quiet {
                    print(format!("run {run_id}: {workflow} ({} job(s))", jobs.len()));
                }
                total = jobs.len();
                header.set_message(counts(total, running.len(), done));
            }
            RunEvent::JobStarted { job, attempt, .. } => {
                running.insert(job.clone());
                total = total.max(running.len() + done);
                header.set_message(counts(total, running.len(), done));
                if tty {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(job.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(job.clone(), bar);
                } else if !quiet {
                    let again = if attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    print(format!("[{job:<widths$}] started{again}"));
                }
            }
            RunEvent::StepStarted { job, name, .. } => {
                if let Some(bar) = bars.get(&job) {
                    bar.set_message(name);
                } else if !quiet {
                    print(format!("[{job:<widths$}] ▸ {name}"));
                }
            }
            RunEvent::Log { job, line, .. } if !quiet => {
                print(format!("[{job:<widths$}] {line}"));
            }
            RunEvent::Annotation {
                job,
                level,
                message,
                ..
            } => {
                let style = if level == "error" {
                    anstyle::AnsiColor::Red.on_default()
                } else {
                    anstyle::AnsiColor::Yellow.on_default()
                };
                print(format!(
                    "[{job:<widths$}] {style}{level}{style:#}: {message}"
                ));
            }
            RunEvent::JobFinished {
                job,
                status,
                duration_ms,
                ..
            } => {
                if let Some(bar) = bars.remove(&job) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                running.remove(&job);
                done += 1;
                total = total.max(running.len() + done);
                header.set_message(counts(total, running.len(), done));
                if !quiet || status == Status::Failure {
                    print(format!(
                        "[{job:<widths$}] {} {} ({})",
                        styled(status, mark(status)),
                        styled(status, status.as_str()),
                        duration(duration_ms)
                    ));
                }
            }
            _ => {}
        }
    }
    let summary = handle.wait().await;
    header.finish_and_clear();
    let _ = multi.clear();
    let width = summary
        .jobs
        .iter()
        .map(|j| j.id.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    anstream::println!();
    anstream::println!("{:<width$}  {:<9}  {:>8}", "JOB", "RESULT", "TIME");
    for job in &summary.jobs {
        anstream::println!(
            "{:<width$}  {}  {:>8}",
            job.id,
            styled(job.status, &format!("{:<9}", job.status.as_str())),
            duration(job.duration.as_millis() as u64)
        );
    }
    for e in &summary.errors {
        anstream::eprintln!("error: {e}");
    }
    anstream::println!(
        "run {} {} in {} (logs: gantry logs {})",
        summary.run_id,
        styled(summary.status, summary.status.as_str()),
        duration(started.elapsed().as_millis() as u64),
        summary.run_id
    );
    summary
}

/// The repository root of the current directory (else the directory itself).
fn here() -> PathBuf {
    ci_vcs::Repository::open(".")
        .map(|r| r.root().to_path_buf())
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// `gantry runs`.
pub fn runs(state: Option<&Path>, limit: u32, json: bool) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let (runs, _) = open_state(&state_dir(state, &here())).await?;
        let page = runs.list_runs(&RunFilter::default(), limit, None).await?;
        if json {
            for r in &page.runs {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": r.run.id, "status": r.status.as_str(), "workflow": r.run.workflow,
                        "event": r.run.event, "ref": r.run.git_ref, "sha": r.run.sha,
                        "created_at": r.run.created_at, "started_at": r.started_at,
                        "finished_at": r.finished_at,
                    })
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if page.runs.is_empty() {
            println!("no runs recorded yet");
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<20}  {:<9}  {:>8}  {:<8}  WORKFLOW",
            "RUN", "STATUS", "TIME", "SHA"
        );
        for r in &page.runs {
            let time = match (r.started_at, r.finished_at) {
                (Some(a), Some(b)) => duration((b - a).max(0) as u64),
                _ => "-".into(),
            };
            println!(
                "{:<20}  {:<9}  {:>8}  {:<8}  {}",
                r.run.id,
                r.status.as_str(),
                time,
                r.run.sha.get(..7).unwrap_or(&r.run.sha),
                r.run.workflow
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `gantry logs RUN [JOB]`.
/// The id `run` names (`last`: the newest run).
async fn run_id(runs: &Arc<dyn RunStore>, run: &str) -> Result<String> {
    if run == "last" {
        runs.list_runs(&RunFilter::default(), 1, None)
            .await?
            .runs
            .first()
            .map(|r| r.run.id.clone())
            .context("no runs recorded yet")
    } else {
        Ok(run.to_owned())
    }
}

/// `gantry tests`.
pub fn tests(state: Option<&Path>, run: &str, job: Option<&str>) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let (runs, blobs) = open_state(&state_dir(state, &here())).await?;
        let id = run_id(&runs, run).await?;
        let details = runs
            .get_run(&id)
            .await?
            .with_context(|| format!("no run '{id}' (see `gantry runs`)"))?;
        let mut any = false;
        let mut failed = false;
        let mut all = ci_engine::store::junit::TestResults::default();
        for (record, _) in &details.jobs {
            if job.is_some_and(|want| record.job_id != want && record.name != want) {
                continue;
            }
            let Some(results) = ci_engine::job_test_results(&blobs, &id, &record.job_id).await?
            else {
                continue;
            };
            any = true;
            failed |= results.failed() > 0;
            anstream::println!("{}: {}", record.job_id, results.summary());
            for case in results.cases.iter().filter(|c| {
                matches!(
                    c.outcome,
                    ci_engine::store::junit::Outcome::Failed
                        | ci_engine::store::junit::Outcome::Error
                )
            }) {
                anstream::println!(
                    "  {} {} {}: {}",
                    styled(Status::Failure, "✗"),
                    case.class,
                    case.name,
                    case.message.as_deref().unwrap_or("")
                );
            }
            all.extend(results);
        }
        if !any {
            bail!("run {id} kept no test results (JUnit reports)");
        }
        anstream::println!("slowest:");
        for case in all.slowest(5) {
            anstream::println!("  {:>8.3}s  {} {}", case.time, case.class, case.name);
        }
        Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

pub fn logs(state: Option<&Path>, run: &str, job: Option<&str>) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let (runs, blobs) = open_state(&state_dir(state, &here())).await?;
        let id = run_id(&runs, run).await?;
        let details = runs
            .get_run(&id)
            .await?
            .with_context(|| format!("no run '{id}' (see `gantry runs`)"))?;
        let jobs: Vec<_> = details
            .jobs
            .iter()
            .filter(|(j, _)| job.is_none_or(|want| j.job_id == want || j.name == want))
            .collect();
        if jobs.is_empty() {
            let names: Vec<&str> = details
                .jobs
                .iter()
                .map(|(j, _)| j.job_id.as_str())
                .collect();
            bail!(
                "run {id} has no job '{}' (jobs: {})",
                job.unwrap_or_default(),
                names.join(", ")
            );
        }
        let stdout = std::io::stdout();
        for (record, steps) in jobs {
            if job.is_none() {
                anstream::println!("=== {} ({})", record.job_id, record.status.as_str());
            }
            let Some(key) = steps.iter().find_map(|s| s.log_key.clone()) else {
                anstream::println!("(no log: the job did not run)");
                continue;
            };
            let data = ci_engine::job_log(&blobs, &id, &key).read_all().await?;
            let mut out = stdout.lock();
            out.write_all(&data)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_show_milliseconds_below_a_second() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(240), "240ms");
        assert_eq!(duration(3_400), "3.4s");
        assert_eq!(duration(125_000), "2m05s");
    }
}
