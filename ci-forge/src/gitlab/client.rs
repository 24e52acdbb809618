//! HTTP calls of GitLab's runner job API.

use std::time::Duration;

use super::proto::*;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// GitLab could not be reached, or did not answer in time.
    #[error("{0}")]
    Transport(String),
    /// GitLab answered with an unexpected status.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// The call.
        what: String,
        /// The status.
        status: u16,
        /// What it said.
        body: String,
    },
    /// The answer was not what was expected.
    #[error("{0}")]
    Decode(String),
}

impl ApiError {
    /// GitLab refused the runner's token.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// What `PATCH /jobs/:id/trace` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceAnswer {
    /// 202 accepted, 416 range mismatch, …
    pub status: u16,
    /// How much of the trace GitLab has, from its `Range` header (`0-N`, a 416).
    pub have: Option<u64>,
    /// `Job-Status` (`canceled`, `canceling`, `failed` end the job).
    pub job_status: Option<String>,
}

/// What `PUT /jobs/:id` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateAnswer {
    /// 200 done, 202 accepted (not complete: again later), 412 trace mismatch, …
    pub status: u16,
    /// `Job-Status`.
    pub job_status: Option<String>,
}

/// A client of one GitLab instance.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

fn transport(what: &str) -> impl Fn(reqwest::Error) -> ApiError + '_ {
    move |e| ApiError::Transport(format!("{what}: {e}"))
}

async fn refused(what: &str, answer: reqwest::Response) -> ApiError {
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap_or_default();
    ApiError::Status {
        what: what.to_owned(),
        status,
        body: body.chars().take(300).collect(),
    }
}

fn job_status(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("Job-Status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Client {
    /// A client of the GitLab at `url` (`https://gitlab.example.com`).
    pub fn new(url: &str, timeout: Duration) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(format!("gantry-runner/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        Ok(Client {
            http,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v4/{path}", self.base)
    }

    /// `POST /runners/verify`: whether `token` (`glrt-…`) is a runner's.
    pub async fn verify(&self, token: &str, system_id: &str) -> Result<Verified, ApiError> {
        let what = "verifying the runner token";
        let answer = self
            .http
            .post(self.url("runners/verify"))
            .json(&serde_json::json!({"token": token, "system_id": system_id, "info": RunnerInfo::gantry()}))
            .send()
            .await
            .map_err(transport(what))?;
        if !answer.status().is_success() {
            return Err(refused(what, answer).await);
        }
        answer
            .json()
            .await
            .map_err(|e| ApiError::Decode(format!("{what}: {e}")))
    }

    /// `POST /jobs/request`: a job (201) or none (204), and the `X-GitLab-Last-Update` to send
    /// next time.
    pub async fn request_job(
        &self,
        request: &JobRequest,
    ) -> Result<(Option<Job>, Option<String>), ApiError> {
        let what = "requesting a job";
        let answer = self
            .http
            .post(self.url("jobs/request"))
            .json(request)
            .send()
            .await
            .map_err(transport(what))?;
        let last_update = answer
            .headers()
            .get("X-GitLab-Last-Update")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match answer.status().as_u16() {
            201 => {
                let job = answer
                    .json()
                    .await
                    .map_err(|e| ApiError::Decode(format!("{what}: {e}")))?;
                Ok((Some(job), last_update))
            }
            204 => Ok((None, last_update)),
            _ => Err(refused(what, answer).await),
        }
    }

    /// `PATCH /jobs/:id/trace`: `data` from byte `start` of the trace.
    pub async fn patch_trace(
        &self,
        job: &Job,
        start: u64,
        data: &[u8],
    ) -> Result<TraceAnswer, ApiError> {
        let what = "sending the trace";
        let end = start + data.len() as u64;
        let answer = self
            .http
            .patch(self.url(&format!("jobs/{}/trace", job.id)))
            .header("JOB-TOKEN", &job.token)
            .header("Content-Type", "text/plain")
            .header(
                "Content-Range",
                format!("{start}-{}", end.saturating_sub(1)),
            )
            .body(data.to_vec())
            .send()
            .await
            .map_err(transport(what))?;
        let status = answer.status().as_u16();
        let have = answer
            .headers()
            .get("Range")
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit('-').next())
            .and_then(|n| n.trim().parse::<u64>().ok());
        Ok(TraceAnswer {
            status,
            have,
            job_status: job_status(answer.headers()),
        })
    }

    /// `PUT /jobs/:id`: the job's state.
    pub async fn update_job(
        &self,
        job: &Job,
        update: &UpdateJob,
    ) -> Result<UpdateAnswer, ApiError> {
        let what = "updating the job";
        let answer = self
            .http
            .put(self.url(&format!("jobs/{}", job.id)))
            .header("JOB-TOKEN", &job.token)
            .json(update)
            .send()
            .await
            .map_err(transport(what))?;
        Ok(UpdateAnswer {
            status: answer.status().as_u16(),
            job_status: job_status(answer.headers()),
        })
    }

    /// `POST /jobs/:id/artifacts`: an archive (`archive`/`zip`) or a report (`junit`/`gzip`).
    pub async fn upload_artifacts(
        &self,
        job: &Job,
        file_name: &str,
        data: Vec<u8>,
        artifact_type: &str,
        artifact_format: &str,
        expire_in: &str,
    ) -> Result<(), ApiError> {
        let what = "uploading artifacts";
        let part = reqwest::multipart::Part::bytes(data).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut query = vec![
            ("artifact_type", artifact_type),
            ("artifact_format", artifact_format),
        ];
        if !expire_in.is_empty() {
            query.push(("expire_in", expire_in));
        }
        let answer = self
            .http
            .post(self.url(&format!("jobs/{}/artifacts", job.id)))
            .header("JOB-TOKEN", &job.token)
            .query(&query)
            .multipart(form)
            .send()
            .await
            .map_err(transport(what))?;
        match answer.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(refused(what, answer).await),
        }
    }

    /// `GET /jobs/:id/artifacts` of a dependency, with its token: the zip archive.
    pub async fn download_artifacts(&self, dependency: &Dependency) -> Result<Vec<u8>, ApiError> {
        let what = format!("downloading the artifacts of '{}'", dependency.name);
        let answer = self
            .http
            .get(self.url(&format!("jobs/{}/artifacts", dependency.id)))
            .header("JOB-TOKEN", &dependency.token)
            .send()
            .await
            .map_err(|e| ApiError::Transport(format!("{what}: {e}")))?;
        if !answer.status().is_success() {
            return Err(refused(&what, answer).await);
        }
        answer
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ApiError::Transport(format!("{what}: {e}")))
    }
}
