//! Forge events, and what a run sees of them: GitHub's `github` context and GitLab's
//! predefined `CI_*` variables.

use indexmap::IndexMap;
use serde_json::{json, Value};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// Commits or a tag were pushed.
    Push,
    /// A pull/merge request changed (`opened`, `synchronize`, `closed`, …).
    PullRequest {
        /// The activity type.
        action: String,
        /// The pull request number (GitLab: the merge request IID).
        number: u64,
    },
    /// Started by hand with inputs.
    WorkflowDispatch,
    /// A reusable workflow started on its own with inputs (a local run of what another
    /// workflow would call).
    WorkflowCall,
    /// Started by a schedule.
    Schedule {
        /// The cron expression that fired.
        cron: String,
    },
    /// Started locally (`gantry run`) without an event.
    Manual,
    /// A webhook was set up.
    Ping,
}

/// The repository an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepositoryInfo {
    /// `owner/name`.
    pub full_name: String,
    /// The owner (user, organisation or GitLab namespace).
    pub owner: String,
    /// The name.
    pub name: String,
    /// The default branch.
    pub default_branch: String,
    /// Web URL, when known.
    pub html_url: Option<String>,
}

/// One event, with enough facts for contexts and filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The full ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/7/merge`).
    pub git_ref: String,
    /// The commit the run is for.
    pub sha: String,
    /// The commit before a push (`0000…` for a new ref).
    pub before: Option<String>,
    /// Pull requests: the head (source) branch.
    pub head_ref: Option<String>,
    /// Pull requests: the base (target) branch.
    pub base_ref: Option<String>,
    /// Pull requests: the base commit.
    pub base_sha: Option<String>,
    /// Who triggered it.
    pub actor: String,
    /// The repository.
    pub repository: RepositoryInfo,
    /// `workflow_dispatch` inputs.
    pub inputs: IndexMap<String, Value>,
    /// Commit message of `sha`, when known.
    pub message: Option<String>,
    /// The event payload as the forge sent it (`github.event`); synthesised when local.
    pub payload: Value,
}

/// Facts about the run itself, for the contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// Unique run id.
    pub run_id: u64,
    /// Run number of the workflow.
    pub run_number: u64,
    /// Attempt (1 for the first).
    pub run_attempt: u32,
    /// The job workspace.
    pub workspace: String,
    /// The workflow's name.
    pub workflow: String,
    /// Forge web URL (`https://github.com`).
    pub server_url: String,
    /// Forge API URL.
    pub api_url: String,
}

impl Default for RunInfo {
    fn default() -> Self {
        RunInfo {
            run_id: 1,
            run_number: 1,
            run_attempt: 1,
            workspace: String::new(),
            workflow: String::new(),
            server_url: "https://github.com".to_owned(),
            api_url: "https://api.github.com".to_owned(),
        }
    }
}

/// The all-zero sha forges send for a ref that did not exist.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

impl Event {
    /// GitHub's event name (`push`, `pull_request`, `workflow_dispatch`, `schedule`, …).
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::Push => "push",
            EventKind::PullRequest { .. } => "pull_request",
            EventKind::WorkflowDispatch | EventKind::Manual => "workflow_dispatch",
            EventKind::WorkflowCall => "workflow_call",
            EventKind::Schedule { .. } => "schedule",
            EventKind::Ping => "ping",
        }
    }

    /// `branch`, `tag`, or empty.
    pub fn ref_type(&self) -> &'static str {
        if self.git_ref.starts_with("refs/tags/") {
            "tag"
        } else if self.git_ref.starts_with("refs/heads/") {
            "branch"
        } else {
            ""
        }
    }

    /// The short ref name (`main`, `v1`, `7/merge`).
    pub fn ref_name(&self) -> &str {
        ["refs/heads/", "refs/tags/", "refs/pull/"]
            .iter()
            .find_map(|p| self.git_ref.strip_prefix(p))
            .unwrap_or(&self.git_ref)
    }

    /// The GitHub `github` context, as GitHub documents it.
    pub fn github_context(&self, run: &RunInfo) -> Value {
        let is_pr = matches!(self.kind, EventKind::PullRequest { .. });
        json!({
            "action": "",
            "actor": self.actor,
            "triggering_actor": self.actor,
            "api_url": run.api_url,
            "base_ref": if is_pr { self.base_ref.clone().unwrap_or_default() } else { String::new() },
            "event": self.payload,
            "event_name": self.name(),
            "graphql_url": format!("{}/graphql", run.api_url),
            "head_ref": if is_pr { self.head_ref.clone().unwrap_or_default() } else { String::new() },
            "job": "",
            "ref": self.git_ref,
            "ref_name": self.ref_name(),
            "ref_protected": false,
            "ref_type": self.ref_type(),
            "repository": self.repository.full_name,
            "repository_owner": self.repository.owner,
            "repositoryUrl": format!("git://{}/{}.git", host(&run.server_url), self.repository.full_name),
            "retention_days": "90",
            "run_id": run.run_id.to_string(),
            "run_number": run.run_number.to_string(),
            "run_attempt": run.run_attempt.to_string(),
            "server_url": run.server_url,
            "sha": self.sha,
            "workflow": run.workflow,
            "workspace": run.workspace,
        })
    }

    /// This event with a GitHub-style `payload` (an `--event-path` file): what the payload
    /// says wins — `sender.login` as the actor, `ref`, `after`/`before` (or the pull request's
    /// `head.sha`), a pull request's number, `head.ref`/`base.ref`/`base.sha`,
    /// `workflow_dispatch` `inputs`, the repository — and the rest stays as it was.
    pub fn with_payload(mut self, payload: Value) -> Event {
        let text = |path: &[&str]| -> Option<String> {
            let mut cur = &payload;
            for p in path {
                cur = cur.get(p)?;
            }
            match cur {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        if let Some(actor) = text(&["sender", "login"]) {
            self.actor = actor;
        }
        if let Some(r) = text(&["ref"]) {
            self.git_ref = if r.starts_with("refs/") {
                r
            } else {
                format!("refs/heads/{r}")
            };
        }
        if let Some(sha) = text(&["after"]).or_else(|| text(&["pull_request", "head", "sha"])) {
            self.sha = sha;
        }
        if let Some(before) = text(&["before"]) {
            self.before = Some(before);
        }
        if let EventKind::PullRequest { number, action } = &mut self.kind {
            if let Some(n) = payload.get("number").and_then(Value::as_u64) {
                *number = n;
                self.git_ref = format!("refs/pull/{n}/merge");
            }
            if let Some(a) = text(&["action"]) {
                *action = a;
            }
            if let Some(h) = text(&["pull_request", "head", "ref"]) {
                self.head_ref = Some(h);
            }
            if let Some(b) = text(&["pull_request", "base", "ref"]) {
                self.base_ref = Some(b);
            }
            if let Some(b) = text(&["pull_request", "base", "sha"]) {
                self.base_sha = Some(b);
            }
        }
        if let Some(Value::Object(inputs)) = payload.get("inputs") {
            self.inputs = inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        if let Some(full) = text(&["repository", "full_name"]) {
            if let Some((owner, name)) = full.split_once('/') {
                self.repository.owner = owner.to_owned();
                self.repository.name = name.to_owned();
            }
            self.repository.full_name = full;
        }
        if let Some(b) = text(&["repository", "default_branch"]) {
            self.repository.default_branch = b;
        }
        self.payload = payload;
        self
    }

    /// GitLab's predefined variables for a pipeline of this event.
    pub fn gitlab_variables(&self, run: &RunInfo) -> IndexMap<String, String> {
        let mut v = IndexMap::new();
        let mut set = |k: &str, val: String| {
            v.insert(k.to_owned(), val);
        };
        set("CI", "true".into());
        set("GITLAB_CI", "true".into());
        set("CI_SERVER_URL", run.server_url.clone());
        set("CI_PROJECT_PATH", self.repository.full_name.clone());
        set("CI_PROJECT_NAME", self.repository.name.clone());
        set("CI_PROJECT_NAMESPACE", self.repository.owner.clone());
        set("CI_PROJECT_DIR", run.workspace.clone());
        set("CI_DEFAULT_BRANCH", self.repository.default_branch.clone());
        set("CI_PIPELINE_ID", run.run_id.to_string());
        set("CI_PIPELINE_IID", run.run_number.to_string());
        set("CI_COMMIT_SHA", self.sha.clone());
        set("CI_COMMIT_SHORT_SHA", self.sha.chars().take(8).collect());
        set(
            "CI_COMMIT_BEFORE_SHA",
            self.before.clone().unwrap_or_else(|| ZERO_SHA.to_owned()),
        );
        if let Some(message) = &self.message {
            set("CI_COMMIT_MESSAGE", message.clone());
            set(
                "CI_COMMIT_TITLE",
                message.lines().next().unwrap_or_default().to_owned(),
            );
        }
        set("GITLAB_USER_LOGIN", self.actor.clone());
        let source = match &self.kind {
            EventKind::Push | EventKind::Ping => "push",
            EventKind::PullRequest { .. } => "merge_request_event",
            EventKind::Schedule { .. } => "schedule",
            EventKind::WorkflowDispatch => "web",
            EventKind::WorkflowCall => "pipeline",
            EventKind::Manual => "api",
        };
        set("CI_PIPELINE_SOURCE", source.into());
        match &self.kind {
            EventKind::PullRequest { number, .. } => {
                let source_branch = self.head_ref.clone().unwrap_or_default();
                set("CI_COMMIT_REF_NAME", source_branch.clone());
                set("CI_COMMIT_REF_SLUG", ref_slug(&source_branch));
                set("CI_MERGE_REQUEST_IID", number.to_string());
                set("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", source_branch);
                set(
                    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
                    self.base_ref.clone().unwrap_or_default(),
                );
                set("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", self.sha.clone());
                set(
                    "CI_MERGE_REQUEST_TARGET_BRANCH_SHA",
                    self.base_sha.clone().unwrap_or_default(),
                );
                set(
                    "CI_MERGE_REQUEST_PROJECT_PATH",
                    self.repository.full_name.clone(),
                );
                set("CI_MERGE_REQUEST_EVENT_TYPE", "detached".into());
            }
            _ => {
                let name = self.ref_name().to_owned();
                set("CI_COMMIT_REF_NAME", name.clone());
                set("CI_COMMIT_REF_SLUG", ref_slug(&name));
                match self.ref_type() {
                    "tag" => set("CI_COMMIT_TAG", name),
                    "branch" => set("CI_COMMIT_BRANCH", name),
                    _ => {}
                }
            }
        }
        v
    }
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lower-cased, every character but `0-9a-z` replaced by `-`,
/// at most 63 bytes, no leading or trailing `-`.
pub fn ref_slug(name: &str) -> String {
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    slug.trim_matches('-').to_owned()
}

fn host(url: &str) -> &str {
    url.split("://").nth(1).unwrap_or(url).trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Event {
        Event {
            kind: EventKind::Push,
            git_ref: "refs/heads/feature/Login_Page".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            before: Some(ZERO_SHA.into()),
            head_ref: None,
            base_ref: None,
            base_sha: None,
            actor: "octocat".into(),
            repository: RepositoryInfo {
                full_name: "octo/app".into(),
                owner: "octo".into(),
                name: "app".into(),
                default_branch: "main".into(),
                html_url: None,
            },
            inputs: IndexMap::new(),
            message: Some("Add login\n\nbody".into()),
            payload: json!({}),
        }
    }

    #[test]
    fn github_context_for_a_push() {
        let ctx = push().github_context(&RunInfo::default());
        assert_eq!(ctx["event_name"], "push");
        assert_eq!(ctx["ref_name"], "feature/Login_Page");
        assert_eq!(ctx["ref_type"], "branch");
        assert_eq!(ctx["repository_owner"], "octo");
        assert_eq!(ctx["head_ref"], "");
    }

    #[test]
    fn gitlab_variables_for_a_push_and_a_merge_request() {
        let vars = push().gitlab_variables(&RunInfo::default());
        assert_eq!(vars["CI_COMMIT_BRANCH"], "feature/Login_Page");
        assert_eq!(vars["CI_COMMIT_REF_SLUG"], "feature-login-page");
        assert_eq!(vars["CI_COMMIT_SHORT_SHA"], "01234567");
        assert_eq!(vars["CI_COMMIT_TITLE"], "Add login");
        assert!(!vars.contains_key("CI_COMMIT_TAG"));
        let mut mr = push();
        mr.kind = EventKind::PullRequest {
            action: "opened".into(),
            number: 7,
        };
        mr.head_ref = Some("fix".into());
        mr.base_ref = Some("main".into());
        let vars = mr.gitlab_variables(&RunInfo::default());
        assert_eq!(vars["CI_PIPELINE_SOURCE"], "merge_request_event");
        assert_eq!(vars["CI_MERGE_REQUEST_IID"], "7");
        assert_eq!(vars["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"], "main");
        assert!(!vars.contains_key("CI_COMMIT_BRANCH"));
    }
}
