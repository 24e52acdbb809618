//! The server's one TOML file. Secrets never live in it: each names the environment variable
//! that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the database (SQLite), blobs, mirrors and job directories go by default.
    pub state_dir: PathBuf,
    /// `sqlite` (in the state dir; the default) or a `postgres://` URL (several servers may
    /// share it).
    #[serde(default)]
    pub database: Option<String>,
    /// Where logs, artifacts and caches go: `file:///dir` (default: the state dir),
    /// `s3://bucket/prefix`.
    #[serde(default)]
    pub blobs: Option<String>,
    /// The address users reach the server at (links in commit statuses).
    #[serde(default)]
    pub public_url: Option<String>,
    /// This server's id among servers sharing a database (default: `server`). A server that
    /// restarts under the same id gives up its old leases at once.
    #[serde(default = "default_id")]
    pub server_id: String,
    /// Local workers: runs at once on this server.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Labels the local workers offer (a project's runs need all of theirs).
    #[serde(default = "default_labels")]
    pub worker_labels: Vec<String>,
    /// How long a lease lasts without a heartbeat.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// How many times a run whose worker was lost is started again.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Tokens for the API.
    #[serde(default)]
    pub tokens: Tokens,
    /// Forges that send webhooks (one per kind).
    #[serde(default)]
    pub forges: Vec<ForgeConfig>,
    /// Projects by `owner/name`: capacity, labels, clone URL.
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectConfig>,
    /// Capacity per label: runs needing the label at once.
    #[serde(default)]
    pub label_capacity: BTreeMap<String, u32>,
    /// `runs-on` label → `host` or `docker://image`; `default` for the rest (default: host).
    #[serde(default)]
    pub executors: BTreeMap<String, String>,
    /// Secrets given to runs: name → environment variable holding the value.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Pipeline schedules kept on the server (GitLab's kind; GitHub's `on.schedule` is read
    /// from the projects' files).
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// Remote agents (`gantry-server agent`): jobs whose label maps to `agent:LABEL` in
    /// `executors` run on them.
    #[serde(default)]
    pub agents: Option<AgentsConfig>,
    /// HTTPS: the server's certificate chain and private key (PEM files). Without it the
    /// server speaks plain HTTP (behind a TLS proxy).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Largest webhook body and API request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// API requests per client address per minute (0: no limit).
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
}

/// API tokens: names of environment variables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// Holds the token that may read and change (cancel, rerun, approve, manual runs).
    #[serde(default)]
    pub admin_env: Option<String>,
    /// Holds the token that may read.
    #[serde(default)]
    pub read_env: Option<String>,
    /// Reading without a token (the UI's default on a trusted network). Changing never is.
    #[serde(default)]
    pub anonymous_read: bool,
}

/// A forge sending webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    /// `github`, `gitlab`, `gitea` or `forgejo`.
    pub kind: String,
    /// The environment variable holding the webhook secret (GitLab: the token).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The API root for commit statuses (`https://api.github.com`, `…/api/v4`, `…/api/v1`);
    /// none: statuses are not posted.
    #[serde(default)]
    pub status_api: Option<String>,
    /// The environment variable holding the API token for statuses.
    #[serde(default)]
    pub token_env: Option<String>,
}

/// Remote agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// The environment variable holding the token agents register with.
    pub token_env: String,
    /// An agent not heard from for this long is lost (its jobs run again elsewhere).
    #[serde(default = "default_agent_timeout")]
    pub timeout_seconds: u64,
}

fn default_agent_timeout() -> u64 {
    30
}

/// A schedule kept on the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `owner/name` (its `clone_url` must be configured).
    pub repo: String,
    /// Five-field cron, UTC.
    pub cron: String,
    /// The branch.
    #[serde(default = "default_branch", rename = "ref")]
    pub git_ref: String,
    /// Only this CI file.
    #[serde(default)]
    pub workflow: Option<String>,
}

/// A project's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Runs of the project at once.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Labels a worker needs for the project's runs.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Where to fetch the repository (default: the clone URL in the delivery).
    #[serde(default)]
    pub clone_url: Option<String>,
    /// Priority of the project's runs (higher first).
    #[serde(default)]
    pub priority: i64,
    /// Which forge's CI files it has (for manual and scheduled runs; default `github`).
    #[serde(default)]
    pub forge: Option<String>,
    /// The branch whose `on.schedule` workflows run (default `main`); needs `clone_url`.
    #[serde(default)]
    pub default_branch: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_branch() -> String {
    "main".into()
}
fn default_id() -> String {
    "server".into()
}
fn default_workers() -> usize {
    2
}
fn default_labels() -> Vec<String> {
    vec!["linux".into()]
}
fn default_lease() -> u64 {
    30
}
fn default_retries() -> u32 {
    1
}
fn default_max_body() -> usize {
    ci_engine::vcs::webhook::DEFAULT_MAX_BODY
}
fn default_rate() -> u32 {
    600
}

impl Config {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses and checks the text of a file.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    /// Everything that can be checked without starting: kinds, executors, environment
    /// variables named for secrets.
    pub fn check(&self) -> Result<()> {
        if self.workers == 0 {
            bail!("workers: at least 1");
        }
        if self.lease_seconds < 2 {
            bail!("lease_seconds: at least 2");
        }
        for f in &self.forges {
            forge_kind(&f.kind)?;
            for var in [&f.secret_env, &f.token_env].into_iter().flatten() {
                if std::env::var(var).is_err() {
                    bail!("forge {}: environment variable {var} is not set", f.kind);
                }
            }
            if f.status_api.is_some() && f.token_env.is_none() {
                bail!("forge {}: status_api needs token_env", f.kind);
            }
        }
        for (label, target) in &self.executors {
            if target.starts_with("agent:") && self.agents.is_none() {
                bail!("executors.{label}: {target:?} needs an [agents] section");
            }
            if target != "host"
                && target != "bwrap"
                && !target.starts_with("docker://")
                && !target.starts_with("swarm://")
                && !target.starts_with("agent:")
            {
                bail!("executors.{label}: expected \"host\", \"bwrap\", \"docker://IMAGE\", \"swarm://IMAGE\" or \"agent:LABEL\", got {target:?}");
            }
        }
        if let Some(a) = &self.agents {
            if std::env::var(&a.token_env).is_err() {
                bail!("agents: environment variable {} is not set", a.token_env);
            }
        }
        for (name, var) in &self.secrets {
            if std::env::var(var).is_err() {
                bail!("secrets.{name}: environment variable {var} is not set");
            }
        }
        for var in [&self.tokens.admin_env, &self.tokens.read_env]
            .into_iter()
            .flatten()
        {
            if std::env::var(var).is_err() {
                bail!("tokens: environment variable {var} is not set");
            }
        }
        for (i, sch) in self.schedules.iter().enumerate() {
            ci_engine::vcs::schedule::Schedule::parse(&sch.cron)
                .map_err(|e| anyhow::anyhow!("schedules[{i}]: {e}"))?;
            if self.project(&sch.repo).clone_url.is_none() {
                bail!(
                    "schedules[{i}]: project {:?} needs a clone_url ([projects.\"{}\"])",
                    sch.repo,
                    sch.repo
                );
            }
        }
        for (name, p) in &self.projects {
            if let Some(f) = &p.forge {
                forge_kind(f).with_context(|| format!("projects.{name}.forge"))?;
            }
        }
        if let Some(db) = &self.database {
            if db != "sqlite" && !db.starts_with("postgres://") && !db.starts_with("postgresql://")
            {
                bail!("database: expected \"sqlite\" or a postgres:// URL");
            }
        }
        self.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("listen: {:?} is not host:port", self.listen))?;
        Ok(())
    }

    /// The forge configured for `kind`.
    pub fn forge(&self, kind: &str) -> Option<&ForgeConfig> {
        self.forges.iter().find(|f| f.kind == kind)
    }

    /// A project's settings (defaults when not configured).
    pub fn project(&self, name: &str) -> ProjectConfig {
        self.projects.get(name).cloned().unwrap_or_default()
    }

    /// The URL links point to.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The webhook parser's forge for a configured kind.
pub fn forge_kind(kind: &str) -> Result<ci_engine::vcs::webhook::Forge> {
    use ci_engine::vcs::webhook::Forge;
    Ok(match kind {
        "github" => Forge::GitHub,
        "gitlab" => Forge::GitLab,
        "gitea" => Forge::Gitea,
        "forgejo" => Forge::Forgejo,
        other => bail!("unknown forge kind {other:?} (github, gitlab, gitea, forgejo)"),
    })
}

/// An environment variable's value.
pub fn env_value(var: &str) -> Result<String> {
    std::env::var(var).with_context(|| format!("environment variable {var} is not set"))
}

/// The server's TLS certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain (the server's first).
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}
