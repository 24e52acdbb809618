//! Per-run choices.

use indexmap::IndexMap;

/// Per-run choices.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Run only these jobs (by job id, or one instance by its name: `test 1/2`,
    /// `build (linux, 18)`, `test: [aws, app]`) and what they need; empty: every job.
    pub jobs: Vec<String>,
    /// `inputs` (workflow_dispatch / workflow_call).
    pub inputs: IndexMap<String, String>,
    /// Run only matrix combinations with these values (`--matrix os:linux`).
    pub matrix: Vec<(String, String)>,
    /// Most jobs of this run at once (besides the engine's capacity).
    pub max_parallel: Option<usize>,
    /// Extra secrets for this run (added to the engine's).
    pub secrets: IndexMap<String, String>,
    /// Extra variables for this run (added to the engine's).
    pub vars: IndexMap<String, String>,
    /// Send [`RunEvent::Log`] events (on by default through [`RunOptions::new`]).
    pub log_events: bool,
    /// Manual jobs to start (GitLab `when: manual`); others are skipped with a notice.
    pub manual: Vec<String>,
    /// What `jobs` brings along.
    pub needs: NeedsMode,
    /// JUnit reports (globs in the workspace) every job keeps as test results when it ends,
    /// whatever the dialect (GitHub has no report keyword of its own).
    pub junit: Vec<String>,
    /// CircleCI registry orbs' sources: reference (`ns/name@1.2.3` or `ns/name`) → YAML.
    pub orbs: IndexMap<String, String>,
    /// Named sets of secret variables (CircleCI contexts): a job naming one gets its
    /// variables, masked in logs.
    pub contexts: IndexMap<String, IndexMap<String, String>>,
    /// Use this run id instead of a new one. When the run store has a run with this id, the
    /// run **resumes** it: jobs recorded as finished (success, failure, cancelled) keep their
    /// results and outputs and are not run again, unless named in [`RunOptions::rerun`] or
    /// needing a job that runs again. This is how a server picks a run up after a restart.
    pub run_id: Option<String>,
    /// Jobs (ids or instance ids) of a resumed run to run again, with what needs them.
    pub rerun: Vec<String>,
    /// Instances named in `jobs` (`test 1/2`, `build (linux)`), by job: only they run.
    pub(crate) instances: Vec<(String, String)>,
    /// The recorded jobs of the resumed run, by instance id.
    pub(crate) prior: IndexMap<String, ci_store::runs::JobRecord>,
    /// Results of jobs decided elsewhere (see [`RunOptions::job_result`]), by job id.
    pub(crate) given: IndexMap<String, ci_store::runs::JobRecord>,
    /// Artifacts of jobs decided elsewhere (see [`RunOptions::job_artifacts`]): job id →
    /// the directory holding them.
    pub(crate) given_artifacts: IndexMap<String, std::path::PathBuf>,
}

/// Which jobs a `--job` selection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NeedsMode {
    /// The selected jobs and everything they need (GitHub's way; GitLab's `--needs`).
    #[default]
    Include,
    /// Only the selected jobs.
    Exclude,
    /// Only what the selected jobs need, not the jobs themselves (`--only-needs`).
    Only,
}

impl Default for RunOptions {
    /// Every job, log events on.
    fn default() -> Self {
        RunOptions {
            jobs: Vec::new(),
            inputs: IndexMap::new(),
            matrix: Vec::new(),
            max_parallel: None,
            secrets: IndexMap::new(),
            vars: IndexMap::new(),
            log_events: true,
            manual: Vec::new(),
            needs: NeedsMode::default(),
            junit: Vec::new(),
            orbs: IndexMap::new(),
            contexts: IndexMap::new(),
            run_id: None,
            rerun: Vec::new(),
            instances: Vec::new(),
            prior: IndexMap::new(),
            given: IndexMap::new(),
            given_artifacts: IndexMap::new(),
        }
    }
}

impl RunOptions {
    /// The defaults (the same as [`Default`]): every job, log events on.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// The artifacts of a job decided elsewhere (see [`RunOptions::job_result`]): the files
    /// under `dir`, which jobs that download its artifacts (GitLab `dependencies`, `needs`)
    /// get as if it had uploaded them in this run.
    pub fn job_artifacts(&mut self, job: impl Into<String>, dir: impl Into<std::path::PathBuf>) {
        self.given_artifacts.insert(job.into(), dir.into());
    }

    /// The job `job` of the workflow ended elsewhere with `status` and `outputs`: it is not
    /// run, and what needs it sees that result (a forge runner given one job of a workflow
    /// and the results of the jobs it needs).
    pub fn job_result(
        &mut self,
        job: impl Into<String>,
        status: crate::Status,
        outputs: IndexMap<String, String>,
    ) {
        let job = job.into();
        self.given.insert(
            job.clone(),
            ci_store::runs::JobRecord {
                job_id: job.clone(),
                name: job,
                status: status.stored(),
                attempt: 1,
                started_at: None,
                finished_at: None,
                outputs,
            },
        );
    }
}
