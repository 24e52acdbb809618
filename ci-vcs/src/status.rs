//! Commit status reporters for GitHub, GitLab and Gitea/Forgejo, with retries and backoff on
//! server errors and connection failures (never on 4xx).

use std::time::Duration;

use serde_json::json;

/// The state of a pipeline on a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitState {
    /// Queued.
    Pending,
    /// In progress.
    Running,
    /// Succeeded.
    Success,
    /// Failed.
    Failure,
    /// Cancelled.
    Cancelled,
}

/// One status to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The commit.
    pub sha: String,
    /// The state.
    pub state: CommitState,
    /// The check's name (`gantry/ci`).
    pub context: String,
    /// A short description.
    pub description: Option<String>,
    /// Where to see the run.
    pub target_url: Option<String>,
}

/// Why a status could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The forge refused it (4xx): not retried.
    #[error("the forge refused the status: HTTP {status}: {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Still failing after every retry (5xx or connection errors).
    #[error("the forge did not accept the status after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
}

/// Publishes commit statuses.
#[async_trait::async_trait]
pub trait StatusReporter: Send + Sync {
    /// Publishes one status.
    async fn report(&self, status: &CommitStatus) -> Result<(), ReportError>;
}

/// Retry settings: `attempts` in all, waiting `base_delay`, then twice as long each time.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt.
    pub base_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base_delay: Duration::from_millis(500),
        }
    }
}

/// Which forge API to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForgeApi {
    /// `POST /repos/{owner}/{repo}/statuses/{sha}` (api.github.com or GHES `/api/v3`).
    GitHub,
    /// `POST /projects/{id}/statuses/{sha}` (`/api/v4`).
    GitLab,
    /// `POST /repos/{owner}/{repo}/statuses/{sha}` (`/api/v1`); Forgejo too.
    Gitea,
}

/// A reporter for one repository on one forge.
#[derive(Debug, Clone)]
pub struct HttpStatusReporter {
    api: ForgeApi,
    base_url: String,
    repository: String,
    token: String,
    retry: Retry,
    client: reqwest::Client,
}

impl HttpStatusReporter {
    /// A reporter. `base_url` is the API root (`https://api.github.com`,
    /// `https://gitlab.com/api/v4`, `https://gitea.example/api/v1`); `repository` is
    /// `owner/name` (GitLab: the project path or numeric id).
    pub fn new(api: ForgeApi, base_url: &str, repository: &str, token: &str) -> Self {
        HttpStatusReporter {
            api,
            base_url: base_url.trim_end_matches('/').to_owned(),
            repository: repository.to_owned(),
            token: token.to_owned(),
            retry: Retry::default(),
            client: reqwest::Client::builder()
                .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Changes the retry settings.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    fn request(&self, status: &CommitStatus) -> reqwest::RequestBuilder {
        match self.api {
            ForgeApi::GitHub | ForgeApi::Gitea => {
                let state = match (self.api, status.state) {
                    (_, CommitState::Pending | CommitState::Running) => "pending",
                    (_, CommitState::Success) => "success",
                    (_, CommitState::Failure) => "failure",
                    (_, CommitState::Cancelled) => "error",
                };
                let url = format!(
                    "{}/repos/{}/statuses/{}",
                    self.base_url, self.repository, status.sha
                );
                let auth = if self.api == ForgeApi::GitHub {
                    format!("Bearer {}", self.token)
                } else {
                    format!("token {}", self.token)
                };
                let mut req = self
                    .client
                    .post(url)
                    .header("Authorization", auth)
                    .json(&json!({
                        "state": state,
                        "context": status.context,
                        "description": status.description,
                        "target_url": status.target_url,
                    }));
                if self.api == ForgeApi::GitHub {
                    req = req
                        .header("Accept", "application/vnd.github+json")
                        .header("X-GitHub-Api-Version", "2022-11-28");
                }
                req
            }
            ForgeApi::GitLab => {
                let state = match status.state {
                    CommitState::Pending => "pending",
                    CommitState::Running => "running",
                    CommitState::Success => "success",
                    CommitState::Failure => "failed",
                    CommitState::Cancelled => "canceled",
                };
                let project = self.repository.replace('/', "%2F");
                let url = format!(
                    "{}/projects/{project}/statuses/{}",
                    self.base_url, status.sha
                );
                self.client
                    .post(url)
                    .header("PRIVATE-TOKEN", &self.token)
                    .json(&json!({
                        "state": state,
                        "name": status.context,
                        "description": status.description,
                        "target_url": status.target_url,
                    }))
            }
        }
    }
}

#[async_trait::async_trait]
impl StatusReporter for HttpStatusReporter {
    async fn report(&self, status: &CommitStatus) -> Result<(), ReportError> {
        let attempts = self.retry.attempts.max(1);
        let mut delay = self.retry.base_delay;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.request(status).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if response.status().is_client_error() => {
                    let code = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    return Err(ReportError::Rejected { status: code, body });
                }
                Ok(response) => last = format!("HTTP {}", response.status().as_u16()),
                Err(e) => last = e.to_string(),
            }
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(ReportError::Unavailable { attempts, last })
    }
}
