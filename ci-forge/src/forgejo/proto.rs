//! The runner.v1 messages in the Connect JSON mapping of protobuf: camelCase names, 64-bit
//! integers as strings, bytes as base64, enums by name, timestamps as RFC 3339, and every
//! field optional (a default value may be left out).

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 64-bit integers: written as strings, read from strings or numbers.
mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Int {
            Text(String),
            Number(i64),
        }
        match Int::deserialize(d)? {
            Int::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Int::Number(n) => Ok(n),
        }
    }
}

/// `bytes` fields: base64 text.
mod base64_bytes {
    use super::*;
    use base64::Engine as _;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let engine = &base64::engine::general_purpose::STANDARD;
        engine
            .decode(text.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.trim()))
            .map_err(serde::de::Error::custom)
    }
}

/// How a task or step ended (`RESULT_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskResult {
    /// Not ended yet.
    #[default]
    Unspecified,
    /// It succeeded.
    Success,
    /// It failed.
    Failure,
    /// It was cancelled.
    Cancelled,
    /// It did not run.
    Skipped,
}

impl TaskResult {
    const NAMES: [&'static str; 5] = [
        "RESULT_UNSPECIFIED",
        "RESULT_SUCCESS",
        "RESULT_FAILURE",
        "RESULT_CANCELLED",
        "RESULT_SKIPPED",
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(i: usize) -> Option<TaskResult> {
        [
            TaskResult::Unspecified,
            TaskResult::Success,
            TaskResult::Failure,
            TaskResult::Cancelled,
            TaskResult::Skipped,
        ]
        .get(i)
        .copied()
    }

    /// Whether the result ends the task.
    pub fn is_terminal(self) -> bool {
        self != TaskResult::Unspecified
    }

    /// `success`, `failure`, `cancelled`, `skipped` (`needs.<job>.result`).
    pub fn as_word(self) -> &'static str {
        match self {
            TaskResult::Unspecified => "",
            TaskResult::Success => "success",
            TaskResult::Failure => "failure",
            TaskResult::Cancelled => "cancelled",
            TaskResult::Skipped => "skipped",
        }
    }
}

impl Serialize for TaskResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Self::NAMES[self.index()])
    }
}

impl<'de> Deserialize<'de> for TaskResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TaskResult, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(usize),
        }
        let found = match Raw::deserialize(d)? {
            Raw::Name(n) => Self::NAMES
                .iter()
                .position(|x| *x == n)
                .and_then(TaskResult::from_index),
            Raw::Number(i) => TaskResult::from_index(i),
        };
        found.ok_or_else(|| serde::de::Error::custom("an unknown result"))
    }
}

/// A runner as the forge knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Runner {
    /// Its number.
    #[serde(with = "int64")]
    pub id: i64,
    /// Its UUID (the `x-runner-uuid` header).
    pub uuid: String,
    /// Its secret (the `x-runner-token` header).
    pub token: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Whether it takes one task, then goes.
    pub ephemeral: bool,
}

/// `Register`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterRequest {
    /// The runner's name.
    pub name: String,
    /// The registration token.
    pub token: String,
    /// The runner's version.
    pub version: String,
    /// Its labels (`name:schema:args`).
    pub labels: Vec<String>,
    /// Whether it takes one task, then goes.
    pub ephemeral: bool,
}

/// `Register`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterResponse {
    /// The runner made.
    pub runner: Option<Runner>,
}

/// `Declare`: the version and labels of a starting runner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeclareRequest {
    /// The runner's version.
    pub version: String,
    /// Its labels.
    pub labels: Vec<String>,
}

/// `Declare`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeclareResponse {
    /// The runner as the forge now knows it.
    pub runner: Option<Runner>,
}

/// `FetchTask`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FetchTaskRequest {
    /// The version of the task list last seen (0: unknown).
    #[serde(with = "int64")]
    pub tasks_version: i64,
}

/// `FetchTask`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FetchTaskResponse {
    /// A task for this runner, if there is one.
    pub task: Option<Task>,
    /// The version of the task list now.
    #[serde(with = "int64")]
    pub tasks_version: i64,
}

/// One job of a workflow run, for this runner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    /// Its number (never reused).
    #[serde(with = "int64")]
    pub id: i64,
    /// The workflow, expanded, with this one job.
    #[serde(with = "base64_bytes")]
    pub workflow_payload: Vec<u8>,
    /// The `github` context (with `event`, `token`, `server_url`, …).
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Secrets.
    pub secrets: IndexMap<String, String>,
    /// The jobs it needs: their outputs and results.
    pub needs: IndexMap<String, TaskNeed>,
    /// Configuration variables (`vars`).
    pub vars: IndexMap<String, String>,
}

/// A job the task's job needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskNeed {
    /// Its outputs.
    pub outputs: IndexMap<String, String>,
    /// How it ended.
    pub result: TaskResult,
}

/// A task's state as the runner reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskState {
    /// The task.
    #[serde(with = "int64")]
    pub id: i64,
    /// How it ended (unspecified while it runs).
    pub result: TaskResult,
    /// When it started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it stopped (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Its steps.
    pub steps: Vec<StepState>,
}

/// A step's state: its result, times and its lines of the task's log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StepState {
    /// The step's index in the job.
    #[serde(with = "int64")]
    pub id: i64,
    /// How it ended.
    pub result: TaskResult,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Its first line in the task's log.
    #[serde(with = "int64")]
    pub log_index: i64,
    /// How many lines it has.
    #[serde(with = "int64")]
    pub log_length: i64,
}

/// `UpdateTask`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateTaskRequest {
    /// The task's state.
    pub state: Option<TaskState>,
    /// Job outputs the forge has not acknowledged yet.
    pub outputs: IndexMap<String, String>,
}

/// `UpdateTask`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateTaskResponse {
    /// The task as the forge sees it: a terminal result means it was ended there (cancelled).
    pub state: Option<TaskState>,
    /// Every output key the forge has received.
    pub sent_outputs: Vec<String>,
}

/// One line of a task's log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogRow {
    /// When it was written (RFC 3339).
    pub time: String,
    /// The line.
    pub content: String,
}

/// `UpdateLog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateLogRequest {
    /// The task.
    #[serde(with = "int64")]
    pub task_id: i64,
    /// The index of the first row.
    #[serde(with = "int64")]
    pub index: i64,
    /// The rows.
    pub rows: Vec<LogRow>,
    /// The log is complete.
    pub no_more: bool,
}

/// `UpdateLog`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateLogResponse {
    /// How many rows the forge has (the next index it wants).
    #[serde(with = "int64")]
    pub ack_index: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_json_mapping_reads_what_forges_write() {
        let json = serde_json::json!({
            "task": {
                "id": "42",
                "workflowPayload": "b246IHB1c2g=",
                "context": {"sha": "abc"},
                "needs": {"build": {"outputs": {"v": "1"}, "result": "RESULT_SUCCESS"}},
            },
            "tasksVersion": 7
        });
        let r: FetchTaskResponse = serde_json::from_value(json).expect("reads");
        let task = r.task.expect("a task");
        assert_eq!((task.id, r.tasks_version), (42, 7));
        assert_eq!(task.workflow_payload, b"on: push");
        assert_eq!(task.needs["build"].result, TaskResult::Success);
        let written = serde_json::to_value(UpdateLogRequest {
            task_id: 42,
            index: 3,
            ..Default::default()
        })
        .expect("writes");
        assert_eq!(written["taskId"], "42");
        assert_eq!(written["noMore"], false);
        assert!(serde_json::from_value::<TaskNeed>(serde_json::json!({"result": "NOPE"})).is_err());
        let r: TaskNeed =
            serde_json::from_value(serde_json::json!({"result": 3})).expect("a number");
        assert_eq!(r.result, TaskResult::Cancelled);
    }
}
