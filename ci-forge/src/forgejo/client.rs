//! A Connect JSON client of a forge's runner service: `POST
//! {instance}/api/actions/runner.v1.RunnerService/{Method}` with `Connect-Protocol-Version: 1`,
//! and, once registered, the `x-runner-uuid`/`x-runner-token` headers.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::proto::*;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The forge could not be reached, or did not answer in time.
    #[error("{0}")]
    Transport(String),
    /// The forge answered with a Connect error.
    #[error("{method}: {code}: {message} (HTTP {status})")]
    Rpc {
        /// The procedure.
        method: String,
        /// The Connect code (`unauthenticated`, `unimplemented`, `internal`, …).
        code: String,
        /// Its message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not the message expected.
    #[error("{0}")]
    Decode(String),
}

impl RpcError {
    /// The forge does not know this runner (any more): it was deleted.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, RpcError::Rpc { code, .. } if code == "unauthenticated")
    }

    /// The forge does not have the procedure (an older forge without `Declare`).
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, RpcError::Rpc { code, status, .. } if code == "unimplemented" || *status == 404)
    }
}

/// The runner's credentials with the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `x-runner-uuid`.
    pub uuid: String,
    /// `x-runner-token`.
    pub token: String,
}

/// A client of one forge.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Option<Credentials>,
    version: String,
}

const SERVICE: &str = "runner.v1.RunnerService";

impl Client {
    /// A client of the forge at `instance` (`https://forgejo.example.org`), calls timing out
    /// after `timeout`.
    pub fn new(instance: &str, timeout: Duration) -> Result<Client, RpcError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(format!("gantry-runner/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        Ok(Client {
            http,
            base: instance.trim_end_matches('/').to_owned(),
            credentials: None,
            version: format!("gantry-{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// The same client, calling as a registered runner.
    pub fn with_credentials(mut self, credentials: Credentials) -> Client {
        self.credentials = Some(credentials);
        self
    }

    /// The version the runner gives the forge.
    pub fn version(&self) -> &str {
        &self.version
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        service: &str,
        method: &str,
        request: &Q,
    ) -> Result<A, RpcError> {
        let url = format!("{}/api/actions/{service}/{method}", self.base);
        let mut call = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Connect-Protocol-Version", "1")
            .json(request);
        if let Some(c) = &self.credentials {
            call = call
                .header("x-runner-uuid", &c.uuid)
                .header("x-runner-token", &c.token);
        }
        let answer = call
            .send()
            .await
            .map_err(|e| RpcError::Transport(format!("{method}: {e}")))?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| RpcError::Transport(format!("{method}: {e}")))?;
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = |k: &str| error.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            return Err(RpcError::Rpc {
                method: method.to_owned(),
                code: text("code").unwrap_or_else(|| match status.as_u16() {
                    401 => "unauthenticated".into(),
                    404 => "unimplemented".into(),
                    _ => "unknown".into(),
                }),
                message: text("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
                status: status.as_u16(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| RpcError::Decode(format!("{method}: {e}")))
    }

    /// `Register`: a new runner from a registration token.
    pub async fn register(&self, request: &RegisterRequest) -> Result<Runner, RpcError> {
        let answer: RegisterResponse = self.call(SERVICE, "Register", request).await?;
        answer
            .runner
            .ok_or_else(|| RpcError::Decode("Register: the answer has no runner".into()))
    }

    /// `Declare`: the version and labels of the starting runner.
    pub async fn declare(&self, labels: &[String]) -> Result<DeclareResponse, RpcError> {
        let request = DeclareRequest {
            version: self.version.clone(),
            labels: labels.to_vec(),
        };
        self.call(SERVICE, "Declare", &request).await
    }

    /// `FetchTask`.
    pub async fn fetch_task(&self, tasks_version: i64) -> Result<FetchTaskResponse, RpcError> {
        self.call(SERVICE, "FetchTask", &FetchTaskRequest { tasks_version })
            .await
    }

    /// `UpdateTask`.
    pub async fn update_task(
        &self,
        request: &UpdateTaskRequest,
    ) -> Result<UpdateTaskResponse, RpcError> {
        self.call(SERVICE, "UpdateTask", request).await
    }

    /// `UpdateLog`.
    pub async fn update_log(
        &self,
        request: &UpdateLogRequest,
    ) -> Result<UpdateLogResponse, RpcError> {
        self.call(SERVICE, "UpdateLog", request).await
    }
}
