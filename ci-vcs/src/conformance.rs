//! The public conformance suite of the commit status reporters, against a real HTTP server
//! on 127.0.0.1 ([`loopback_forge`]) that records each request: one async function per
//! behaviour, panicking with a message when the reporter misbehaves. The forge double is
//! public too, so an engine's tests can check the statuses a real run posts.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! ci_vcs::conformance::run_all().await;
//! # });
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::status::{
    CommitState, CommitStatus, ForgeApi, HttpStatusReporter, ReportError, Retry, StatusReporter,
};

/// Every behaviour, in order.
pub async fn run_all() {
    github_status_request_shape().await;
    gitlab_and_gitea_shapes().await;
    server_errors_are_retried_with_backoff().await;
    client_errors_are_not_retried().await;
    persistent_failures_and_refused_connections_give_up().await;
}

/// One request the forge received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, …
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`null` when it is not JSON).
    pub body: serde_json::Value,
}

impl Recorded {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A forge on 127.0.0.1 that records every request and answers the scripted codes in
/// order, then 201. Serves until the runtime ends. Returns its URL and the record.
pub async fn loopback_forge(codes: Vec<u16>) -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds on loopback");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let codes = Arc::new(Mutex::new(codes.into_iter()));
    let log2 = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, codes) = (Arc::clone(&log2), Arc::clone(&codes));
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let path = parts.next().unwrap_or_default().to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.is_err() {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.push((k.trim().to_owned(), v.trim().to_owned()));
                        }
                    }
                    let length: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    log.lock().expect("never poisoned").push(Recorded {
                        method,
                        path,
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                    });
                    let code = codes.lock().expect("never poisoned").next().unwrap_or(201);
                    let response = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{{}}");
                    if reader
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, log)
}

/// A status to post.
pub fn status(state: CommitState) -> CommitStatus {
    CommitStatus {
        sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
        state,
        context: "gantry/ci".into(),
        description: Some("3 jobs passed".into()),
        target_url: Some("http://127.0.0.1/runs/1".into()),
    }
}

fn fast() -> Retry {
    Retry {
        attempts: 3,
        base_delay: Duration::from_millis(5),
    }
}

/// GitHub: the path, the token and the body.
pub async fn github_status_request_shape() {
    let (url, log) = loopback_forge(vec![]).await;
    let reporter = HttpStatusReporter::new(ForgeApi::GitHub, &url, "octo/app", "ghp_token");
    reporter
        .report(&status(CommitState::Success))
        .await
        .expect("reported");
    let r = log.lock().expect("never poisoned")[0].clone();
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        "/repos/octo/app/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(r.header("authorization"), Some("Bearer ghp_token"));
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.body["state"], "success");
    assert_eq!(r.body["context"], "gantry/ci");
    assert_eq!(r.body["target_url"], "http://127.0.0.1/runs/1");
}

/// GitLab (project path encoded, `name`) and Gitea (`token` authorization).
pub async fn gitlab_and_gitea_shapes() {
    let (url, log) = loopback_forge(vec![]).await;
    HttpStatusReporter::new(ForgeApi::GitLab, &url, "group/sub/app", "glpat")
        .report(&status(CommitState::Running))
        .await
        .expect("reported");
    HttpStatusReporter::new(ForgeApi::Gitea, &url, "octo/app", "tok")
        .report(&status(CommitState::Failure))
        .await
        .expect("reported");
    let log = log.lock().expect("never poisoned").clone();
    assert_eq!(
        log[0].path,
        "/projects/group%2Fsub%2Fapp/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(log[0].header("private-token"), Some("glpat"));
    assert_eq!(log[0].body["state"], "running");
    assert_eq!(log[0].body["name"], "gantry/ci");
    assert_eq!(
        log[1].path,
        "/repos/octo/app/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(log[1].header("authorization"), Some("token tok"));
    assert_eq!(log[1].body["state"], "failure");
}

/// 5xx answers are retried, with backoff, until one succeeds.
pub async fn server_errors_are_retried_with_backoff() {
    let (url, log) = loopback_forge(vec![500, 502]).await;
    let reporter =
        HttpStatusReporter::new(ForgeApi::GitHub, &url, "octo/app", "t").with_retry(fast());
    reporter
        .report(&status(CommitState::Pending))
        .await
        .expect("third attempt succeeds");
    assert_eq!(log.lock().expect("never poisoned").len(), 3);
}

/// 4xx answers are final.
pub async fn client_errors_are_not_retried() {
    let (url, log) = loopback_forge(vec![422]).await;
    let reporter =
        HttpStatusReporter::new(ForgeApi::GitHub, &url, "octo/app", "t").with_retry(fast());
    let err = reporter
        .report(&status(CommitState::Pending))
        .await
        .expect_err("the report fails");
    assert!(
        matches!(err, ReportError::Rejected { status: 422, .. }),
        "{err:?}"
    );
    assert_eq!(log.lock().expect("never poisoned").len(), 1);
}

/// Persistent 5xx and refused connections give up after the attempts.
pub async fn persistent_failures_and_refused_connections_give_up() {
    let (url, log) = loopback_forge(vec![503, 503, 503]).await;
    let reporter = HttpStatusReporter::new(ForgeApi::Gitea, &url, "o/r", "t").with_retry(fast());
    let err = reporter
        .report(&status(CommitState::Cancelled))
        .await
        .expect_err("the report fails");
    assert_eq!(
        err,
        ReportError::Unavailable {
            attempts: 3,
            last: "HTTP 503".into()
        }
    );
    assert_eq!(log.lock().expect("never poisoned").len(), 3);
    // Nothing listens on this port: connection errors are retried, then reported.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds on loopback");
    let dead = format!("http://{}", closed.local_addr().expect("an address"));
    drop(closed);
    let reporter = HttpStatusReporter::new(ForgeApi::GitHub, &dead, "o/r", "t").with_retry(fast());
    assert!(matches!(
        reporter.report(&status(CommitState::Success)).await,
        Err(ReportError::Unavailable { attempts: 3, .. })
    ));
}
