//! A job being run: its state (contexts, environment, log, records, the job environment
//! from its executor) and the types steps report with. The step loop lives in `job`, the
//! step kinds in `actions` and `transfer`.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ci_config::expr::{Contexts, Value};
use ci_exec::log::Level;
use ci_exec::{Executor, JobEnvironment, LogEvent, LogPipeline, StepOutcome, Stream};
use ci_store::logs::LogWriter;
use ci_store::runs::StepRecord;
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use crate::env::Table;
use crate::events::{RunEvent, Status};
use crate::state::RunCtx;

/// Work left for the end of the job (GitHub's post steps).
pub(crate) enum Post {
    /// `actions/cache`: save the paths under the key unless it was restored exactly.
    CacheSave {
        key: String,
        paths: Vec<String>,
        step: usize,
    },
    /// A node action's `post:` script.
    Node {
        dir: PathBuf,
        script: String,
        env: IndexMap<String, String>,
        step: usize,
    },
}

/// A storage key for a job id: safe characters plus a hash keeping distinct ids distinct.
pub(crate) fn storage_key(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    format!("{safe}-{:08x}", h.finish() as u32)
}

/// A step scope: the job's own steps, or a composite action's.
#[derive(Default)]
pub(crate) struct Frame {
    /// `steps` context: id → {outputs, outcome, conclusion}.
    pub steps: serde_json::Map<String, serde_json::Value>,
    /// `inputs` inside a composite action.
    pub inputs: Option<Value>,
    /// `github.action_path` inside an action.
    pub action_path: Option<PathBuf>,
    /// Environment added by the action step that opened the frame.
    pub env: IndexMap<String, String>,
    /// A step failed (without continue-on-error).
    pub failed: bool,
    /// Nesting of composite actions.
    pub depth: usize,
}

/// What one executed script produced.
pub(crate) struct Executed {
    pub outcome: StepOutcome,
    pub outputs: IndexMap<String, String>,
    /// What the script saved with `GITHUB_STATE` (for an action's later phases).
    pub state: IndexMap<String, String>,
}

/// A step's result for the `steps` context.
pub(crate) struct StepResult {
    pub outcome: Status,
    pub outputs: IndexMap<String, String>,
}

/// A step running in the background.
pub(crate) struct Background {
    pub id: String,
    pub index: usize,
    pub name: String,
    pub started: Instant,
    pub started_at: i64,
    pub continue_on_error: bool,
    pub cancel: CancellationToken,
    pub spec: ci_exec::StepSpec,
    pub paths: Vec<PathBuf>,
    pub task: tokio::task::JoinHandle<Ran>,
}

/// How a background script ended and what it printed.
pub(crate) struct Ran {
    pub outcome: StepOutcome,
    pub chunks: Vec<ci_exec::Chunk>,
    pub dropped: usize,
}

/// Log handling of a job: masking pipeline, durable writer, events.
pub(crate) struct Logs {
    pub ctx: Arc<RunCtx>,
    pub job: String,
    pub pipeline: LogPipeline,
    pub writer: Option<LogWriter>,
    pub failed: bool,
    /// The (masked) output kept for a coverage regex, bounded by [`CAPTURE_LIMIT`].
    pub capture: Option<String>,
    /// Deprecated commands the step printed (`::set-output::` …), for the step to apply.
    pub legacy: Vec<(String, Option<String>, String)>,
}

/// Most output kept for a GitLab `coverage:` regex (the tail is kept).
const CAPTURE_LIMIT: usize = 4 * 1024 * 1024;

impl Logs {
    async fn write(&mut self, data: &[u8]) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.append(data).await {
                if !self.failed {
                    self.failed = true;
                    self.ctx
                        .error(format!("writing the log of '{}': {e}", self.job));
                }
            }
        }
    }

    /// Text for the stored log only (step headers).
    pub async fn raw(&mut self, text: &str) {
        let masked = self.pipeline.masker().mask(text.as_bytes());
        self.write(&masked).await;
    }

    /// A line the engine itself writes (headers, errors), masked like step output.
    pub async fn line(&mut self, step: usize, text: &str) {
        let masked = self.pipeline.masker().mask(text.as_bytes());
        let mut data = masked.clone();
        data.push(b'\n');
        self.write(&data).await;
        if self.ctx.options.log_events {
            self.ctx
                .emit(RunEvent::Log {
                    job: self.job.clone(),
                    step,
                    stream: "stdout",
                    line: String::from_utf8_lossy(&masked).into_owned(),
                })
                .await;
        }
    }

    /// An annotation (shown, and kept in the log).
    pub async fn annotate(&mut self, step: usize, level: &'static str, message: &str) {
        let masked =
            String::from_utf8_lossy(&self.pipeline.masker().mask(message.as_bytes())).into_owned();
        self.write(format!("##[{level}]{masked}\n").as_bytes())
            .await;
        self.ctx
            .emit(RunEvent::Annotation {
                job: self.job.clone(),
                step,
                level,
                message: masked,
            })
            .await;
    }

    /// The output kept for a coverage regex.
    pub fn captured(&self) -> String {
        self.capture.clone().unwrap_or_default()
    }

    pub async fn events(&mut self, step: usize, events: Vec<LogEvent>) {
        for event in events {
            match event {
                LogEvent::Output { stream, data, .. } => {
                    self.write(&data).await;
                    if let Some(c) = &mut self.capture {
                        c.push_str(&String::from_utf8_lossy(&data));
                        if c.len() > CAPTURE_LIMIT {
                            let cut = c.len() - CAPTURE_LIMIT / 2;
                            let cut = (cut..c.len()).find(|i| c.is_char_boundary(*i)).unwrap_or(0);
                            c.drain(..cut);
                        }
                    }
                    if self.ctx.options.log_events {
                        let text = String::from_utf8_lossy(&data);
                        for line in text.lines() {
                            self.ctx
                                .emit(RunEvent::Log {
                                    job: self.job.clone(),
                                    step,
                                    stream: match stream {
                                        Stream::Stdout => "stdout",
                                        Stream::Stderr => "stderr",
                                    },
                                    line: line.to_owned(),
                                })
                                .await;
                        }
                    }
                }
                LogEvent::Group { title } => {
                    self.write(format!("##[group]{title}\n").as_bytes()).await;
                }
                LogEvent::EndGroup => self.write(b"##[endgroup]\n").await,
                LogEvent::Annotation { level, message, .. } => {
                    let level = match level {
                        Level::Error => "error",
                        Level::Warning => "warning",
                        Level::Notice => "notice",
                        _ => "debug",
                    };
                    if level == "debug" {
                        self.write(format!("##[debug]{message}\n").as_bytes()).await;
                    } else {
                        self.annotate(step, level, &message).await;
                    }
                }
                LogEvent::Legacy {
                    command,
                    name,
                    value,
                } => self.legacy.push((command, name, value)),
                _ => {}
            }
        }
    }
}

/// A job being run.
pub(crate) struct JobRunner {
    pub ctx: Arc<RunCtx>,
    pub id: String,
    pub base: Contexts,
    /// Job environment (workflow → job → `GITHUB_ENV`).
    pub env: IndexMap<String, String>,
    pub path_adds: Vec<String>,
    pub workspace: PathBuf,
    pub temp: PathBuf,
    pub environment: Arc<dyn JobEnvironment>,
    pub in_container: bool,
    pub logs: Logs,
    pub records: Vec<StepRecord>,
    pub post: Vec<Post>,
    pub cancel: CancellationToken,
    pub deadline: Instant,
    pub timed_out: bool,
    pub after_cancel: bool,
    pub step_index: usize,
    pub scripts: usize,
    pub defaults_shell: Option<String>,
    pub defaults_workdir: Option<String>,
    pub summary: String,
    pub secrets: Vec<String>,
    pub github: Value,
    pub log_key: String,
    pub job_status: Status,
    /// The job could not be set up or fed (a runner's failure, not the script's).
    pub system_failure: bool,
    /// The machine running a step was lost (a remote agent).
    pub lost: bool,
    /// The job's id and its instance's (artifact names).
    pub job: String,
    pub instance: String,
    /// The limit of each cleanup step.
    pub cleanup_timeout: Duration,
    /// A cleanup step has started: the job's time limit no longer applies.
    pub past_cleanup: bool,
    /// The step being run is a cleanup step.
    pub in_cleanup: bool,
    /// The exit code of the step that failed the job.
    pub exit_code: Option<i32>,
    /// Outputs the job's steps add (dotenv reports).
    pub step_outputs: IndexMap<String, String>,
    /// The job's container was dropped: nothing here runs containers.
    pub image_ignored: bool,
    /// The run's named secret sets (to tell which a job names and the run lacks).
    pub task_secret_sets: Arc<IndexMap<String, IndexMap<String, String>>>,
    /// The `needs` context: the jobs this one waited for, with their results and outputs.
    pub needs: Value,
    /// The instances this one waited for, as (job, instance id).
    pub needed: Vec<(String, String)>,
    /// Staging directories made so far (their names).
    pub stagings: usize,
    /// The workspace still holds the files of the job that used it before (directories are
    /// reused): the first step clears them, or a checkout turns them into its own files.
    pub leftovers: bool,
    /// The next script's file-command files are made before it starts (JavaScript actions
    /// check that they exist).
    pub make_command_files: bool,
    /// Background steps still running (GitHub `background:`/`parallel:`, CircleCI
    /// `background: true`), in start order.
    pub background: Vec<Background>,
    /// Set by a step that went to the background instead of running to its end.
    pub went_to_background: bool,
    /// The quiet time allowed to the script about to run (CircleCI `no_output_timeout`).
    pub no_output_timeout: Option<Duration>,
    /// The last script was stopped for printing nothing for this long.
    pub went_quiet: Option<Duration>,
    /// A job of a CircleCI setup configuration: what it continues the pipeline with is
    /// among its outputs.
    pub setup: bool,
    /// Executor used for `docker://` steps and docker actions.
    pub containers: Option<Arc<dyn Executor>>,
    /// The runner environment of the job's dialect (its variables and file commands).
    pub table: Table,
}
