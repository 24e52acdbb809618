//! Webhook deliveries from GitHub, GitLab, Gitea and Forgejo → [`Event`]s, with signature
//! checks in constant time. Every failure is a typed [`WebhookError`] a server maps to an
//! HTTP status ([`WebhookError::status`]); nothing here panics on any input.

use hmac::{KeyInit, Mac};
use indexmap::IndexMap;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::event::{Event, EventKind, RepositoryInfo, ZERO_SHA};

/// The largest body accepted by default (GitHub caps deliveries at 25 MB).
pub const DEFAULT_MAX_BODY: usize = 25 * 1024 * 1024;

/// Which forge sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forge {
    /// GitHub (`X-GitHub-Event`, `X-Hub-Signature-256`).
    GitHub,
    /// GitLab (`X-Gitlab-Event`, `X-Gitlab-Token`).
    GitLab,
    /// Gitea (`X-Gitea-Event`, `X-Gitea-Signature`).
    Gitea,
    /// Forgejo (`X-Forgejo-Event`, `X-Forgejo-Signature`).
    Forgejo,
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A secret is configured but the delivery carries no signature or token.
    #[error("the delivery has no signature (header {0})")]
    MissingSignature(&'static str),
    /// The signature or token does not match.
    #[error("the delivery's signature does not match")]
    BadSignature,
    /// The body is larger than allowed.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The event header is missing.
    #[error("the delivery has no event header ({0})")]
    MissingEvent(&'static str),
    /// The body is not the JSON the event needs.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// An event Gantry does not act on (the server answers 202 and ignores it).
    #[error("unsupported event '{0}'")]
    Unsupported(String),
}

impl WebhookError {
    /// The HTTP status a server answers with: 401, 413, 400 or 202 (ignored).
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::MissingSignature(_) | WebhookError::BadSignature => 401,
            WebhookError::TooLarge { .. } => 413,
            WebhookError::MissingEvent(_) | WebhookError::Malformed(_) => 400,
            WebhookError::Unsupported(_) => 202,
        }
    }
}

/// A verified delivery.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Delivery {
    /// The forge checks the hook works.
    Ping,
    /// An event to run pipelines for.
    Event(Box<Event>),
}

/// How deliveries are checked.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The shared secret (GitHub/Gitea/Forgejo HMAC key, GitLab token); `None` skips
    /// verification, for trusted networks only.
    pub secret: Option<Vec<u8>>,
    /// Largest accepted body.
    pub max_body: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Checks and parses one delivery. `headers` are (name, value) pairs, names in any case.
pub fn parse(
    forge: Forge,
    headers: &[(&str, &str)],
    body: &[u8],
    config: &WebhookConfig,
) -> Result<Delivery, WebhookError> {
    if body.len() > config.max_body {
        return Err(WebhookError::TooLarge {
            limit: config.max_body,
        });
    }
    if let Some(secret) = &config.secret {
        verify(forge, headers, body, secret)?;
    }
    let event_header = match forge {
        Forge::GitHub => "X-GitHub-Event",
        Forge::GitLab => "X-Gitlab-Event",
        Forge::Gitea => "X-Gitea-Event",
        Forge::Forgejo => "X-Forgejo-Event",
    };
    let event_name = header(headers, event_header)
        .or_else(|| {
            (forge == Forge::Forgejo)
                .then(|| header(headers, "X-Gitea-Event"))
                .flatten()
        })
        .ok_or(WebhookError::MissingEvent(event_header))?;
    let json: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if !json.is_object() {
        return Err(WebhookError::Malformed(
            "the body is not a JSON object".into(),
        ));
    }
    match forge {
        Forge::GitLab => gitlab(event_name, json),
        _ => github_like(event_name, json),
    }
}

fn verify(
    forge: Forge,
    headers: &[(&str, &str)],
    body: &[u8],
    secret: &[u8],
) -> Result<(), WebhookError> {
    match forge {
        Forge::GitLab => {
            let token = header(headers, "X-Gitlab-Token")
                .ok_or(WebhookError::MissingSignature("X-Gitlab-Token"))?;
            // ConstantTimeEq on slices of different lengths is false without leaking where.
            if bool::from(token.as_bytes().ct_eq(secret)) {
                Ok(())
            } else {
                Err(WebhookError::BadSignature)
            }
        }
        _ => {
            let (name, value) = match forge {
                Forge::GitHub => (
                    "X-Hub-Signature-256",
                    header(headers, "X-Hub-Signature-256"),
                ),
                Forge::Forgejo => (
                    "X-Forgejo-Signature",
                    header(headers, "X-Forgejo-Signature")
                        .or_else(|| header(headers, "X-Gitea-Signature")),
                ),
                _ => ("X-Gitea-Signature", header(headers, "X-Gitea-Signature")),
            };
            let value = value.ok_or(WebhookError::MissingSignature(name))?;
            let hex_digest = if forge == Forge::GitHub {
                value
                    .strip_prefix("sha256=")
                    .ok_or(WebhookError::BadSignature)?
            } else {
                value
            };
            let given = hex::decode(hex_digest).map_err(|_| WebhookError::BadSignature)?;
            let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                .map_err(|_| WebhookError::BadSignature)?;
            mac.update(body);
            // `verify_slice` compares in constant time.
            mac.verify_slice(&given)
                .map_err(|_| WebhookError::BadSignature)
        }
    }
}

fn s(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(x) => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn required(v: &Value, path: &[&str]) -> Result<String, WebhookError> {
    s(v, path).ok_or_else(|| WebhookError::Malformed(format!("missing '{}'", path.join("."))))
}

fn github_like(event_name: &str, json: Value) -> Result<Delivery, WebhookError> {
    let repository = || -> Result<RepositoryInfo, WebhookError> {
        let full_name = required(&json, &["repository", "full_name"])?;
        let owner = s(&json, &["repository", "owner", "login"])
            .or_else(|| s(&json, &["repository", "owner", "username"]))
            .or_else(|| full_name.split_once('/').map(|(o, _)| o.to_owned()))
            .unwrap_or_default();
        Ok(RepositoryInfo {
            name: s(&json, &["repository", "name"])
                .unwrap_or_else(|| full_name.rsplit('/').next().unwrap_or_default().to_owned()),
            owner,
            default_branch: s(&json, &["repository", "default_branch"])
                .unwrap_or_else(|| "main".into()),
            html_url: s(&json, &["repository", "html_url"]),
            full_name,
        })
    };
    let actor = s(&json, &["sender", "login"])
        .or_else(|| s(&json, &["sender", "username"]))
        .or_else(|| s(&json, &["pusher", "name"]))
        .or_else(|| s(&json, &["pusher", "login"]))
        .unwrap_or_default();
    match event_name {
        "ping" => Ok(Delivery::Ping),
        "push" => {
            let git_ref = required(&json, &["ref"])?;
            let sha = required(&json, &["after"])?;
            let message = s(&json, &["head_commit", "message"]).or_else(|| {
                json.get("commits")
                    .and_then(Value::as_array)
                    .and_then(|c| c.last())
                    .and_then(|c| s(c, &["message"]))
            });
            Ok(Delivery::Event(Box::new(Event {
                kind: EventKind::Push,
                git_ref,
                before: s(&json, &["before"]),
                sha,
                head_ref: None,
                base_ref: None,
                base_sha: None,
                actor,
                repository: repository()?,
                inputs: IndexMap::new(),
                message,
                payload: json,
            })))
        }
        "pull_request" => {
            let number = json
                .get("number")
                .and_then(Value::as_u64)
                .ok_or_else(|| WebhookError::Malformed("missing 'number'".into()))?;
            let action = required(&json, &["action"])?;
            Ok(Delivery::Event(Box::new(Event {
                kind: EventKind::PullRequest { action, number },
                git_ref: format!("refs/pull/{number}/merge"),
                sha: required(&json, &["pull_request", "head", "sha"])?,
                before: None,
                head_ref: s(&json, &["pull_request", "head", "ref"]),
                base_ref: s(&json, &["pull_request", "base", "ref"]),
                base_sha: s(&json, &["pull_request", "base", "sha"]),
                actor,
                repository: repository()?,
                inputs: IndexMap::new(),
                message: s(&json, &["pull_request", "title"]),
                payload: json,
            })))
        }
        // Gitea/Forgejo announce a pushed tag as `create` as well as `push`; the push wins.
        other => Err(WebhookError::Unsupported(other.to_owned())),
    }
}

fn gitlab(event_name: &str, json: Value) -> Result<Delivery, WebhookError> {
    let repository = || -> Result<RepositoryInfo, WebhookError> {
        let full_name = required(&json, &["project", "path_with_namespace"])?;
        Ok(RepositoryInfo {
            name: s(&json, &["project", "name"]).unwrap_or_default(),
            owner: s(&json, &["project", "namespace"])
                .or_else(|| full_name.rsplit_once('/').map(|(o, _)| o.to_owned()))
                .unwrap_or_default(),
            default_branch: s(&json, &["project", "default_branch"])
                .unwrap_or_else(|| "main".into()),
            html_url: s(&json, &["project", "web_url"]),
            full_name,
        })
    };
    match event_name {
        "Push Hook" | "Tag Push Hook" => {
            let git_ref = required(&json, &["ref"])?;
            let sha = s(&json, &["checkout_sha"])
                .or_else(|| s(&json, &["after"]))
                .ok_or_else(|| WebhookError::Malformed("missing 'after'".into()))?;
            let message = json
                .get("commits")
                .and_then(Value::as_array)
                .and_then(|c| c.last())
                .and_then(|c| s(c, &["message"]));
            Ok(Delivery::Event(Box::new(Event {
                kind: EventKind::Push,
                git_ref,
                before: s(&json, &["before"]),
                sha,
                head_ref: None,
                base_ref: None,
                base_sha: None,
                actor: s(&json, &["user_username"]).unwrap_or_default(),
                repository: repository()?,
                inputs: IndexMap::new(),
                message,
                payload: json,
            })))
        }
        "Merge Request Hook" => {
            let attrs = json
                .get("object_attributes")
                .ok_or_else(|| WebhookError::Malformed("missing 'object_attributes'".into()))?;
            let number = attrs
                .get("iid")
                .and_then(Value::as_u64)
                .ok_or_else(|| WebhookError::Malformed("missing 'object_attributes.iid'".into()))?;
            let action = match s(attrs, &["action"]).as_deref() {
                Some("open") => "opened",
                Some("update") => "synchronize",
                Some("close") | Some("merge") => "closed",
                Some("reopen") => "reopened",
                Some(_) | None => "edited",
            };
            Ok(Delivery::Event(Box::new(Event {
                kind: EventKind::PullRequest {
                    action: action.to_owned(),
                    number,
                },
                git_ref: format!("refs/merge-requests/{number}/head"),
                sha: s(attrs, &["last_commit", "id"]).unwrap_or_else(|| ZERO_SHA.to_owned()),
                before: None,
                head_ref: s(attrs, &["source_branch"]),
                base_ref: s(attrs, &["target_branch"]),
                base_sha: None,
                actor: s(&json, &["user", "username"]).unwrap_or_default(),
                repository: repository()?,
                inputs: IndexMap::new(),
                message: s(attrs, &["title"]),
                payload: json,
            })))
        }
        other => Err(WebhookError::Unsupported(other.to_owned())),
    }
}

/// Signs a body as GitHub does (`sha256=<hex>`), for tests and for forwarding.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", sign_hex(secret, body))
}

/// HMAC-SHA256 of a body, hex (Gitea/Forgejo signatures).
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
