//! The dialect-neutral workflow model every frontend produces and `ci-graph` plans.
//!
//! Free-form values whose shape the CI system decides at run time (matrix vectors, action
//! inputs, service options) stay as spanned YAML [`Node`]s; strings that may hold expressions
//! are [`Template`]s.

use indexmap::IndexMap;

use crate::span::Span;
use crate::template::Template;
use crate::yaml::Node;

/// Which CI system a file is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// `.github/workflows/*.yml`
    GitHubActions,
    /// `action.yml` metadata of a GitHub action.
    GitHubAction,
    /// `.gitlab-ci.yml`
    GitLabCi,
    /// `.circleci/config.yml`
    CircleCi,
}

impl Dialect {
    /// A human name.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::GitHubActions => "GitHub Actions workflow",
            Dialect::GitHubAction => "GitHub action metadata",
            Dialect::GitLabCi => "GitLab CI",
            Dialect::CircleCi => "CircleCI",
        }
    }
}

/// A condition (`if:`) as written, plus the effective expression the forge evaluates
/// (GitHub wraps conditions without a status function in `success() && (…)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The expression as written, without `${{ }}`.
    pub source: String,
    /// The expression that is evaluated.
    pub effective: String,
    /// Where it is written.
    pub span: Span,
}

/// A workflow: what one file describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// The dialect it was read as.
    pub dialect: Dialect,
    /// The file.
    pub path: String,
    /// `name:`
    pub name: Option<String>,
    /// `run-name:`
    pub run_name: Option<Template>,
    /// The events that start it.
    pub triggers: Vec<Trigger>,
    /// Workflow-level environment.
    pub env: Env,
    /// `defaults.run`
    pub defaults: RunDefaults,
    /// `permissions:`
    pub permissions: Option<Permissions>,
    /// Workflow-level `concurrency:`
    pub concurrency: Option<Concurrency>,
    /// Jobs in source order, by id.
    pub jobs: IndexMap<String, Job>,
    /// Stage names in order (GitLab); empty for dialects without stages.
    pub stages: Vec<String>,
    /// A CircleCI setup configuration (`setup: true`): its jobs may continue the pipeline
    /// with another configuration.
    pub setup: bool,
}

/// One event a workflow listens to, with its filters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trigger {
    /// Event name (`push`, `pull_request`, `schedule`, …).
    pub event: String,
    /// Where the event is named.
    pub span: Span,
    /// Activity `types:`.
    pub types: Vec<String>,
    /// `branches:` patterns.
    pub branches: Vec<String>,
    /// `branches-ignore:` patterns.
    pub branches_ignore: Vec<String>,
    /// `tags:` patterns.
    pub tags: Vec<String>,
    /// `tags-ignore:` patterns.
    pub tags_ignore: Vec<String>,
    /// `paths:` patterns.
    pub paths: Vec<String>,
    /// `paths-ignore:` patterns.
    pub paths_ignore: Vec<String>,
    /// `schedule` cron expressions.
    pub cron: Vec<String>,
    /// `workflow_run.workflows`.
    pub workflows: Vec<String>,
    /// `workflow_dispatch` / `workflow_call` inputs.
    pub inputs: IndexMap<String, InputDef>,
    /// `workflow_call` outputs: name → value expression.
    pub outputs: IndexMap<String, Template>,
    /// `workflow_call` secrets: name → required.
    pub secrets: IndexMap<String, bool>,
}

/// The type of a workflow or action input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputType {
    /// `string` (also the default for `workflow_dispatch`).
    String,
    /// `boolean`
    Boolean,
    /// `number`
    Number,
    /// `choice` (`workflow_dispatch` only).
    Choice,
    /// `environment` (`workflow_dispatch` only).
    Environment,
}

/// An input definition.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDef {
    /// `description:`
    pub description: Option<String>,
    /// `required:`
    pub required: bool,
    /// `type:`
    pub kind: InputType,
    /// `default:`
    pub default: Option<Node>,
    /// `options:` of a choice.
    pub options: Vec<String>,
}

/// Environment variables: a map, or one expression producing a map (`${{ fromJSON(…) }}`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Env {
    /// No variables.
    #[default]
    Empty,
    /// Name → value.
    Map(IndexMap<String, Template>),
    /// An expression evaluated at run time.
    Expr(Template),
    /// Name → shell-style variable (GitLab `variables:`), expanded in order.
    Vars(IndexMap<String, Var>),
}

/// `defaults.run`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunDefaults {
    /// Default shell.
    pub shell: Option<Template>,
    /// Default working directory.
    pub working_directory: Option<Template>,
}

/// `permissions:` of the token.
#[derive(Debug, Clone, PartialEq)]
pub enum Permissions {
    /// `read-all` / `write-all`.
    All(Access),
    /// Scope → access; scopes not named get none.
    Scopes(IndexMap<String, Access>),
}

/// Access level of a permission scope (ordered: none < read < write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Access {
    /// `none`
    None,
    /// `read`
    Read,
    /// `write`
    Write,
}

impl Access {
    /// `none`, `read` or `write`.
    pub fn name(self) -> &'static str {
        match self {
            Access::None => "none",
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl Permissions {
    /// Every permission scope GitHub knows.
    pub const SCOPES: &'static [&'static str] = &[
        "actions",
        "attestations",
        "checks",
        "contents",
        "deployments",
        "discussions",
        "id-token",
        "issues",
        "models",
        "packages",
        "pages",
        "pull-requests",
        "repository-projects",
        "security-events",
        "statuses",
    ];

    /// The access this grants (or requests) for one scope; scopes not named get none.
    pub fn access(&self, scope: &str) -> Access {
        match self {
            Permissions::All(a) => *a,
            Permissions::Scopes(map) => map.get(scope).copied().unwrap_or(Access::None),
        }
    }
}

/// `concurrency:`
#[derive(Debug, Clone, PartialEq)]
pub struct Concurrency {
    /// The group key (may be an expression).
    pub group: Template,
    /// `cancel-in-progress:` — a boolean or an expression.
    pub cancel_in_progress: Option<Template>,
}

/// One job of a workflow, before matrix expansion.
///
/// Rarely present parts are boxed: workflows with thousands of jobs stay compact.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The id (the mapping key).
    pub id: String,
    /// Where the id is written.
    pub span: Span,
    /// Display name (`name:`, else the id).
    pub name: Template,
    /// Jobs this one waits for.
    pub needs: Vec<Need>,
    /// Whether `needs:` was written at all: with stages, a job without it waits for every
    /// earlier stage, while `needs: []` starts at once.
    pub needs_declared: bool,
    /// The stage (GitLab); `None` in dialects without stages.
    pub stage: Option<String>,
    /// When the job runs relative to earlier results (GitLab `when:`; GitHub jobs use `if`).
    pub when: When,
    /// Failures that do not fail the pipeline (GitLab `allow_failure`).
    pub allow_failure: AllowFailure,
    /// Automatic retries.
    pub retry: Retry,
    /// `parallel:` instances (GitLab; GitHub uses `strategy.matrix`).
    pub parallel: Option<Parallel>,
    /// `if:`
    pub condition: Condition,
    /// Runner labels (`runs-on`): empty for reusable-workflow jobs.
    pub runs_on: RunsOn,
    /// `environment:`
    pub environment: Option<Box<Environment>>,
    /// Job-level `concurrency:`
    pub concurrency: Option<Box<Concurrency>>,
    /// `outputs:` name → value.
    pub outputs: IndexMap<String, Template>,
    /// Job environment.
    pub env: Env,
    /// `defaults.run`
    pub defaults: RunDefaults,
    /// `timeout-minutes:` (a number or an expression).
    pub timeout_minutes: Option<Node>,
    /// `continue-on-error:` (a boolean or an expression).
    pub continue_on_error: Option<Node>,
    /// `permissions:`
    pub permissions: Option<Permissions>,
    /// `strategy:`
    pub strategy: Option<Box<Strategy>>,
    /// `container:`
    pub container: Option<Box<Container>>,
    /// `services:` by name.
    pub services: IndexMap<String, Container>,
    /// Steps in order (empty for reusable-workflow jobs).
    pub steps: Vec<Step>,
    /// Set when the job calls a reusable workflow.
    pub call: Option<Box<WorkflowCall>>,
    /// Which workflow-level [`Env::Vars`] the job inherits; `None`: all.
    pub inherit_env: Option<Vec<String>>,
    /// Seconds to wait before the job starts (a delayed job).
    pub start_in: Option<u64>,
    /// Outputs found in the job's log.
    pub log_outputs: Vec<LogOutput>,
    /// Time limit of the job's cleanup steps ([`Step::cleanup`]), in seconds.
    pub cleanup_timeout: u64,
    /// Named sets of secret variables the job gets from the run (CircleCI `context`).
    pub contexts: Vec<String>,
}

/// A job this one waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    /// The job's id.
    pub job: String,
    /// Where it is named.
    pub span: Span,
    /// Whether this job takes its artifacts (and their dotenv variables).
    pub artifacts: bool,
    /// A job missing from the run is no error.
    pub optional: bool,
    /// Only the instances with these matrix values (empty: all).
    pub matrix: Vec<IndexMap<String, String>>,
}

impl Need {
    /// A plain need of `job` (artifacts taken, not optional, every instance).
    pub fn new(job: impl Into<String>, span: Span) -> Need {
        Need {
            job: job.into(),
            span,
            artifacts: true,
            optional: false,
            matrix: Vec::new(),
        }
    }
}

/// A value found in a job's (masked) log by a regular expression (GitLab `coverage:`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogOutput {
    /// The output's name.
    pub name: String,
    /// `/pattern/flags`; the last match's first group (or whole match) is the value.
    pub pattern: String,
    /// The log line that shows what was found, `{}` standing for the value.
    pub shown: String,
}

/// A variable whose value is expanded shell-style (`$NAME`, `${NAME}`, `$$`) against the
/// variables defined before it, or taken literally.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Var {
    /// The value as written.
    pub value: String,
    /// Whether `$` references are expanded.
    pub expand: bool,
}

/// GitLab's `when:` (GitHub jobs keep the default and use their `if`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum When {
    /// Run when everything before succeeded (the default).
    #[default]
    OnSuccess,
    /// Run only when something before failed.
    OnFailure,
    /// Run whatever happened before.
    Always,
    /// Wait for someone to start it.
    Manual,
    /// Never run.
    Never,
}

/// Which failures are tolerated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowFailure {
    /// Any failure is tolerated.
    pub any: bool,
    /// Failures with these exit codes are tolerated.
    pub exit_codes: Vec<i32>,
}

/// Automatic retries of a failed job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retry {
    /// Retries after the first attempt (0: none).
    pub max: u32,
    /// Only for failures with these reasons (`script_failure`, `runner_system_failure`, …);
    /// empty: any reason.
    pub when: Vec<String>,
    /// Only for these exit codes; empty: any.
    pub exit_codes: Vec<i32>,
}

/// `parallel:` of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Parallel {
    /// `parallel: N` — instances `job 1/N` … `job N/N`.
    Count(u32),
    /// `parallel: matrix:` — a list of variable → values maps, each expanded as a product.
    Matrix(Vec<IndexMap<String, Vec<String>>>),
}

/// Where a job runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunsOn {
    /// Labels all of which a runner must have.
    pub labels: Vec<Template>,
    /// Runner group, if any.
    pub group: Option<Template>,
}

/// `environment:` of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// Environment name.
    pub name: Template,
    /// Its URL.
    pub url: Option<Template>,
    /// What the job does to it (GitLab `action:`: start, prepare, stop, verify, access).
    pub action: Option<String>,
    /// Its tier (GitLab `deployment_tier:`); `None`: derived from the name.
    pub tier: Option<String>,
}

/// `strategy:`
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// `matrix:` (a mapping, or one expression).
    pub matrix: Option<Matrix>,
    /// `fail-fast:` (default true; a boolean or an expression).
    pub fail_fast: Option<Node>,
    /// `max-parallel:` (a number or an expression).
    pub max_parallel: Option<Node>,
}

/// A matrix before expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Vectors by key plus `include`/`exclude` lists (nodes, because values are free-form).
    Static {
        /// Key → values (each value may itself be a mapping or an expression), or an expression.
        vectors: IndexMap<String, Node>,
        /// `include:` entries.
        include: Option<Node>,
        /// `exclude:` entries.
        exclude: Option<Node>,
    },
    /// `matrix: ${{ fromJSON(…) }}`
    Expr(Template),
}

/// A job or service container.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Image reference.
    pub image: Template,
    /// Registry credentials (`username`, `password`).
    pub credentials: Option<(Template, Template)>,
    /// Container environment.
    pub env: Env,
    /// `ports:`
    pub ports: Vec<Template>,
    /// `volumes:`
    pub volumes: Vec<Template>,
    /// Extra `docker create` options.
    pub options: Option<Template>,
    /// Command override (service containers only).
    pub command: Option<Template>,
    /// Entrypoint override (service containers only).
    pub entrypoint: Option<Template>,
    /// Without a container executor, the job runs on the host instead (with a warning), as
    /// GitLab's shell runners do; `false`: the job cannot run there.
    pub optional: bool,
    /// Where it is defined.
    pub span: Span,
}

/// A call of a reusable workflow (`jobs.<id>.uses`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowCall {
    /// `./.github/workflows/x.yml` or `owner/repo/.github/workflows/x.yml@ref`.
    pub uses: String,
    /// Where `uses` is written.
    pub span: Span,
    /// `with:` inputs.
    pub with: IndexMap<String, Node>,
    /// `secrets:` passed explicitly.
    pub secrets: IndexMap<String, Template>,
    /// `secrets: inherit`
    pub inherit_secrets: bool,
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `id:`, or generated as the forge does (`__run`, `__actions_checkout`, `__run_2`).
    pub id: String,
    /// Whether `id` was generated.
    pub generated_id: bool,
    /// `name:`
    pub name: Option<Template>,
    /// `if:`
    pub condition: Condition,
    /// What the step does.
    pub action: StepAction,
    /// Step environment.
    pub env: Env,
    /// `continue-on-error:` (a boolean or an expression).
    pub continue_on_error: Option<Node>,
    /// `timeout-minutes:` (a number or an expression).
    pub timeout_minutes: Option<Node>,
    /// `background: true` — the job goes on while this step runs (parallel steps).
    pub background: bool,
    /// Seconds the step may run without printing anything before it is stopped and fails
    /// (CircleCI `no_output_timeout`, 10 minutes by default there).
    pub no_output_timeout: Option<u64>,
    /// A cleanup step (GitLab `after_script`): runs whatever happened before, even after a
    /// timeout or cancellation, under the job's cleanup time limit instead of its own, and
    /// its result does not change the job's status. Steps after it are not bound by the
    /// job's time limit either.
    pub cleanup: bool,
    /// Where the step is written.
    pub span: Span,
}

impl Step {
    /// A step a frontend or the engine makes (not written as a step in the file): `id`
    /// generated, shown as `name`, run when `condition` (an effective expression such as
    /// `success()` or `always()`) holds.
    pub fn generated(
        id: impl Into<String>,
        name: &str,
        condition: &str,
        action: StepAction,
        span: Span,
    ) -> Step {
        Step {
            id: id.into(),
            generated_id: true,
            name: Some(Template::literal(name, span)),
            condition: Condition {
                source: String::new(),
                effective: condition.to_owned(),
                span,
            },
            action,
            env: Env::Empty,
            continue_on_error: None,
            timeout_minutes: None,
            background: false,
            no_output_timeout: None,
            cleanup: false,
            span,
        }
    }
}

/// The work of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    /// A script.
    Run {
        /// The script text.
        script: Template,
        /// `shell:`
        shell: Option<Template>,
        /// `working-directory:`
        working_directory: Option<Template>,
    },
    /// An action.
    Uses {
        /// `owner/repo[/path]@ref`, `./path` or `docker://image`.
        uses: String,
        /// `with:` inputs.
        with: IndexMap<String, Node>,
    },
    /// `wait:` — block until these background steps finish.
    Wait {
        /// Ids of background steps.
        steps: Vec<String>,
    },
    /// `wait-all:` — block until every background step finishes.
    WaitAll,
    /// `parallel:` — run these steps side by side, then go on when all finished.
    Parallel {
        /// The steps of the group.
        steps: Vec<Step>,
    },
    /// `cancel:` — cancel a background step.
    Cancel {
        /// Id of the background step.
        step: String,
    },
    /// Commands run in order in one shell (bash when there is one, else sh), stopping at the
    /// first that fails (GitLab `script:`).
    Commands {
        /// The commands.
        commands: Vec<String>,
        /// Each command is shown as `$ command` before it runs.
        echo: bool,
    },
    /// The repository at the run's commit, into the workspace.
    Checkout,
    /// Caches restored into the workspace.
    CacheRestore {
        /// The caches.
        caches: Vec<Cache>,
    },
    /// Caches saved from the workspace.
    CacheSave {
        /// The caches.
        caches: Vec<Cache>,
    },
    /// The artifacts of finished jobs, into the workspace.
    ArtifactDownload {
        /// Only the artifacts of these jobs; `None`: of every job this one needs (directly or
        /// through stage order).
        from: Option<Vec<String>>,
    },
    /// Files of the workspace kept as the job's artifacts, with reports.
    ArtifactUpload(Box<ArtifactUpload>),
    /// Files kept for the later jobs of the run (CircleCI `persist_to_workspace`): `paths`
    /// (globs) under `root`, a directory of the workspace.
    WorkspacePersist {
        /// The directory the paths are relative to (`.`: the workspace).
        root: String,
        /// What to keep.
        paths: Vec<String>,
    },
    /// What the jobs this one needs kept with [`StepAction::WorkspacePersist`], layered in
    /// their order into the directory `at` of the workspace (CircleCI `attach_workspace`).
    WorkspaceAttach {
        /// Where the files go.
        at: String,
    },
}

/// A cache: paths of the workspace kept between runs under a key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cache {
    /// The key (variables expanded at run time; default `default`).
    pub key: String,
    /// Files whose contents make the key.
    pub key_files: Vec<String>,
    /// Prefix of a key made from files.
    pub key_prefix: Option<String>,
    /// Paths to keep.
    pub paths: Vec<String>,
    /// `pull-push` (default), `pull` or `push`.
    pub policy: String,
    /// When to save it, relative to the job's result.
    pub when: When,
    /// Keys tried when the key has no cache.
    pub fallback_keys: Vec<String>,
    /// Also keep the files git does not track.
    pub untracked: bool,
    /// The key and fallback keys match saved keys as prefixes, newest first (CircleCI's
    /// `restore_cache`); otherwise exactly.
    pub prefix_match: bool,
}

/// Files kept as a job's artifacts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArtifactUpload {
    /// The name shown.
    pub name: Option<String>,
    /// Globs of paths to keep (variables expanded at run time).
    pub paths: Vec<String>,
    /// Globs left out.
    pub exclude: Vec<String>,
    /// Also keep the files git does not track.
    pub untracked: bool,
    /// How long they are kept (`1 week`).
    pub expire_in: Option<String>,
    /// Dotenv files: their variables become the job's outputs, and variables of the jobs
    /// that download these artifacts.
    pub dotenv: Vec<String>,
    /// JUnit XML test reports.
    pub junit: Vec<String>,
}
