//! What a run reports while it goes: typed events, and the summary at the end.

use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

/// The result of a run, a job or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// It succeeded (a tolerated failure included).
    Success,
    /// It failed.
    Failure,
    /// It was cancelled.
    Cancelled,
    /// It did not run (condition false, or not selected).
    Skipped,
}

impl Status {
    /// `success`, `failure`, `cancelled` or `skipped` (GitHub's words).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    /// A stored status as a job's result (queued/running ones count as failures).
    pub(crate) fn from_stored(status: ci_store::runs::Status) -> Status {
        match status {
            ci_store::runs::Status::Success => Status::Success,
            ci_store::runs::Status::Cancelled => Status::Cancelled,
            ci_store::runs::Status::Skipped => Status::Skipped,
            _ => Status::Failure,
        }
    }

    pub(crate) fn stored(self) -> ci_store::runs::Status {
        match self {
            Status::Success => ci_store::runs::Status::Success,
            Status::Failure => ci_store::runs::Status::Failure,
            Status::Cancelled => ci_store::runs::Status::Cancelled,
            Status::Skipped => ci_store::runs::Status::Skipped,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened in a run, in order. Jobs are named by their instance id
/// (`build (ubuntu, 18)`; jobs of a called workflow as `caller / job`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    /// The run was planned and starts.
    RunStarted {
        /// The run id (also the key of `gantry logs`).
        run_id: String,
        /// The workflow's name (or file).
        workflow: String,
        /// Every planned job instance, in definition order.
        jobs: Vec<String>,
    },
    /// A job attempt started.
    JobStarted {
        /// Instance id.
        job: String,
        /// Display name.
        name: String,
        /// 1-based attempt.
        attempt: u32,
    },
    /// A step started.
    StepStarted {
        /// Instance id of its job.
        job: String,
        /// 0-based index in the job.
        step: usize,
        /// Display name.
        name: String,
    },
    /// One line of output (secrets masked).
    Log {
        /// Instance id of its job.
        job: String,
        /// Step index.
        step: usize,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The line, without its newline.
        line: String,
    },
    /// A workflow command annotation (`::error::`, `::warning::`, `::notice::`) or an engine
    /// notice (cache miss, manual job skipped…).
    Annotation {
        /// Instance id of its job.
        job: String,
        /// The step it belongs to (0 for the job as a whole).
        step: usize,
        /// `error`, `warning` or `notice`.
        level: &'static str,
        /// The message (masked).
        message: String,
    },
    /// A step ended.
    StepFinished {
        /// Instance id of its job.
        job: String,
        /// Step index.
        step: usize,
        /// Display name.
        name: String,
        /// Its conclusion (`continue-on-error` makes a failure a success).
        status: Status,
        /// Wall time.
        duration_ms: u64,
    },
    /// A job ended (or was decided without running: skipped, cancelled).
    JobFinished {
        /// Instance id.
        job: String,
        /// Display name.
        name: String,
        /// Its result.
        status: Status,
        /// Wall time (0 when it did not run).
        duration_ms: u64,
        /// Its outputs.
        outputs: IndexMap<String, String>,
    },
    /// The run ended.
    RunFinished {
        /// The run id.
        run_id: String,
        /// Its result.
        status: Status,
        /// Wall time.
        duration_ms: u64,
    },
}

/// One job of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// Instance id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Result.
    pub status: Status,
    /// Wall time (0 when it did not run).
    pub duration: Duration,
    /// Outputs.
    pub outputs: IndexMap<String, String>,
    /// The exit code of the script that ended it, when one did.
    pub exit_code: Option<i32>,
    /// Why it failed (`script_failure`, `stuck_or_timeout_failure`, `runner_system_failure`,
    /// …), when the engine knows.
    pub reason: Option<String>,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// Success, failure or cancelled.
    pub status: Status,
    /// Wall time.
    pub duration: Duration,
    /// Every job instance, in the order they finished.
    pub jobs: Vec<JobSummary>,
    /// Problems that did not belong to a job (recording failed, a matrix could not be
    /// expanded…).
    pub errors: Vec<String>,
}

impl RunSummary {
    /// Whether the run succeeded.
    pub fn success(&self) -> bool {
        self.status == Status::Success
    }

    /// The job with this instance id.
    pub fn job(&self, id: &str) -> Option<&JobSummary> {
        self.jobs.iter().find(|j| j.id == id)
    }
}
