//! The GitLab runner job API's JSON (gitlab-runner's `common/network.go` and
//! `common/spec/spec.go` are its specification): every field optional when reading.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// What the runner says about itself (`info`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunnerInfo {
    /// `gantry`.
    pub name: String,
    /// The version.
    pub version: String,
    /// `linux`.
    pub platform: String,
    /// `amd64`, `arm64`.
    pub architecture: String,
    /// `shell` or `docker`.
    pub executor: String,
    /// `bash`.
    pub shell: String,
    /// What it can do.
    pub features: IndexMap<String, bool>,
}

impl RunnerInfo {
    /// Gantry's: the features it implements.
    pub fn gantry() -> RunnerInfo {
        let features = [
            "variables",
            "image",
            "services",
            "artifacts",
            "cache",
            "upload_multiple_artifacts",
            "masking",
            "raw_variables",
            "artifacts_exclude",
            "multi_build_steps",
            "trace_checksum",
            "trace_size",
            "cancelable",
            "return_exit_code",
        ]
        .into_iter()
        .map(|f| (f.to_owned(), true))
        .collect();
        RunnerInfo {
            name: "gantry".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            platform: std::env::consts::OS.into(),
            architecture: match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            }
            .into(),
            executor: "docker".into(),
            shell: "bash".into(),
            features,
        }
    }
}

/// `POST /api/v4/runners/verify`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verified {
    /// The runner's number.
    pub id: i64,
    /// The token (the same `glrt-…`).
    pub token: String,
    /// When it expires.
    pub token_expires_at: Option<String>,
}

/// `POST /api/v4/jobs/request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobRequest {
    /// The runner.
    pub info: RunnerInfo,
    /// The runner's authentication token.
    pub token: String,
    /// This machine's id.
    pub system_id: String,
    /// The `X-GitLab-Last-Update` last seen (long polling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
}

/// A job: what GitLab sends the runner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    /// Its number.
    pub id: i64,
    /// Its token (`JOB-TOKEN`, git, the dependency downloads of later jobs).
    pub token: String,
    /// About the job.
    pub job_info: JobInfo,
    /// The commit.
    pub git_info: GitInfo,
    /// The runner's limits for it.
    pub runner_info: JobRunnerInfo,
    /// Its variables, predefined ones included.
    pub variables: Vec<Variable>,
    /// `script` (with `before_script`), `after_script`.
    pub steps: Vec<JobStep>,
    /// The image.
    pub image: Image,
    /// Services.
    pub services: Vec<Image>,
    /// Artifacts to upload.
    pub artifacts: Vec<Artifact>,
    /// Caches.
    pub cache: Vec<Cache>,
    /// Jobs whose artifacts it downloads.
    pub dependencies: Vec<Dependency>,
    /// What GitLab accepts back.
    pub features: JobFeatures,
}

/// `job_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobInfo {
    /// The job's name.
    pub name: String,
    /// Its stage.
    pub stage: String,
    /// The project's number.
    pub project_id: i64,
    /// The project's name.
    pub project_name: String,
    /// `group/project`.
    pub project_full_path: String,
    /// The pipeline's number.
    pub pipeline_id: i64,
}

/// `git_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GitInfo {
    /// The clone URL (with the job token as credentials).
    pub repo_url: String,
    /// The branch or tag.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit.
    pub sha: String,
    /// The commit before (a push).
    pub before_sha: String,
    /// `branch` or `tag`.
    pub ref_type: String,
    /// Clone depth (0: all).
    pub depth: i64,
}

/// `runner_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobRunnerInfo {
    /// The job's time limit, seconds.
    pub timeout: i64,
}

/// A variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Variable {
    /// Its name.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Whether it may be shown.
    pub public: bool,
    /// A file variable: the value goes to a file, the variable names the file.
    pub file: bool,
    /// Masked in the log.
    pub masked: bool,
    /// Not expanded.
    pub raw: bool,
}

/// A step of the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobStep {
    /// `script`, `after_script`, `release`.
    pub name: String,
    /// Its commands.
    pub script: Vec<String>,
    /// Its time limit, seconds.
    pub timeout: i64,
    /// `on_success`, `on_failure`, `always`.
    pub when: String,
    /// A failure does not fail the job.
    pub allow_failure: bool,
}

/// An image or a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Image {
    /// The image.
    pub name: String,
    /// A service's other name.
    pub alias: String,
    /// Its entrypoint.
    pub entrypoint: Vec<String>,
    /// Its command.
    pub command: Vec<String>,
}

/// An artifact to upload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Artifact {
    /// Its name.
    pub name: String,
    /// Untracked files too.
    pub untracked: bool,
    /// Paths (globs).
    pub paths: Vec<String>,
    /// Paths left out.
    pub exclude: Vec<String>,
    /// `on_success`, `on_failure`, `always`.
    pub when: String,
    /// `archive`, `junit`, …
    pub artifact_type: String,
    /// `zip`, `gzip`, `raw`.
    pub artifact_format: String,
    /// `30 days`.
    pub expire_in: String,
}

/// A cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cache {
    /// Its key.
    pub key: String,
    /// Untracked files too.
    pub untracked: bool,
    /// `pull-push`, `pull`, `push`.
    pub policy: String,
    /// Paths.
    pub paths: Vec<String>,
    /// `on_success`, `on_failure`, `always`.
    pub when: String,
    /// Keys tried when `key` has no cache.
    pub fallback_keys: Vec<String>,
}

/// A job whose artifacts this one downloads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dependency {
    /// Its number.
    pub id: i64,
    /// Its token (for the download).
    pub token: String,
    /// Its name.
    pub name: String,
    /// Its artifacts archive, when it has one.
    pub artifacts_file: Option<ArtifactsFile>,
}

/// An artifacts archive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArtifactsFile {
    /// Its file name.
    pub filename: String,
    /// Its size.
    pub size: i64,
}

/// `features` of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobFeatures {
    /// The failure reasons GitLab accepts.
    pub failure_reasons: Vec<String>,
}

/// The trace's size and checksum (`output`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// `crc32:%08x` of the whole trace.
    pub checksum: String,
    /// Its size.
    pub bytesize: u64,
}

/// `PUT /api/v4/jobs/:id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateJob {
    /// The runner.
    pub info: RunnerInfo,
    /// The job token.
    pub token: String,
    /// `running`, `success`, `failed`.
    pub state: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The script's exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The trace sent.
    pub output: Output,
}
