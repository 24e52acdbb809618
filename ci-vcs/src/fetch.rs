//! The fetch layer: remote actions, reusable workflows and GitLab includes, fetched the way
//! the forge would and kept in an on-disk cache, so later runs work offline.
//!
//! Everything lands under one cache directory (`$XDG_CACHE_HOME/gantry`, else
//! `~/.cache/gantry`):
//!
//! - `objects/<sha256>` — HTTP bodies, content-addressed; `http/<sha256(url)>` names the
//!   object a URL last gave.
//! - `git/<sha256(url)>/<commit>/` — a repository's files at a commit (no `.git`), never
//!   changed once written; `git/<sha256(url)>/refs/<sha256(ref)>` names the commit a ref
//!   last resolved to.
//! - `locks/` — one lock file per URL, held while it is fetched, so parallel runs do not race.
//!
//! Modes ([`FetchMode`]): `Online` asks the server (a commit SHA that is cached needs no
//! network; a branch or tag is resolved with `git ls-remote` and fetched only when its commit
//! is new) and falls back to the cache when the server cannot be reached; `Offline` uses the
//! cache only; `Refresh` fetches everything again. Tokens (`GITHUB_TOKEN`, `GITLAB_TOKEN`,
//! `CI_JOB_TOKEN`) go only to the configured forge, in headers or git's environment, never
//! on a command line and never in a message.

pub mod loopback;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// How the fetch layer may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchMode {
    /// Fetch what is not cached or may have moved; use the cache when the server is down.
    #[default]
    Online,
    /// Only the cache (`--offline`).
    Offline,
    /// Fetch everything again (`--refresh`).
    Refresh,
}

/// Where things are fetched from and where they are kept.
#[derive(Clone)]
pub struct FetchConfig {
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// How the network may be used.
    pub mode: FetchMode,
    /// GitHub's web URL (`https://github.com`, or a GitHub Enterprise or Forgejo server);
    /// an action `owner/repo@ref` is cloned from `{github_url}/owner/repo`. Any git URL
    /// scheme works (`file://` too).
    pub github_url: String,
    /// GitLab's URL (`https://gitlab.com` or a self-hosted server).
    pub gitlab_url: String,
    /// Where `include: template:` files are read from (default: GitLab's own repository's
    /// `lib/gitlab/ci/templates` on `gitlab_url`).
    pub template_url: Option<String>,
    /// CircleCI's URL (`https://circleci.com`, or a CircleCI server): registry orbs come from
    /// its GraphQL API.
    pub circleci_url: String,
    /// Sent to the GitHub URL only.
    pub github_token: Option<String>,
    /// Sent to the CircleCI URL only (`Circle-Token`), for private orbs.
    pub circleci_token: Option<String>,
    /// Sent to the GitLab URL only: (header, token) — `PRIVATE-TOKEN` or `JOB-TOKEN`.
    pub gitlab_token: Option<(&'static str, String)>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for FetchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchConfig")
            .field("cache_dir", &self.cache_dir)
            .field("mode", &self.mode)
            .field("github_url", &self.github_url)
            .field("gitlab_url", &self.gitlab_url)
            .field("template_url", &self.template_url)
            .field("circleci_url", &self.circleci_url)
            .field("github_token", &self.github_token.as_ref().map(|_| "***"))
            .field(
                "circleci_token",
                &self.circleci_token.as_ref().map(|_| "***"),
            )
            .field("gitlab_token", &self.gitlab_token.as_ref().map(|(h, _)| h))
            .finish()
    }
}

impl FetchConfig {
    /// The configuration a user's environment gives: `GANTRY_CACHE_DIR` (else
    /// `$XDG_CACHE_HOME/gantry`, else `~/.cache/gantry`), `GANTRY_OFFLINE=1`,
    /// `GANTRY_GITHUB_URL`, `GANTRY_GITLAB_URL` (else `CI_SERVER_URL`),
    /// `GANTRY_GITLAB_TEMPLATE_URL`, `GANTRY_CIRCLECI_URL`, and the tokens `GITHUB_TOKEN`,
    /// `GITLAB_TOKEN`, `CI_JOB_TOKEN`, `CIRCLECI_TOKEN`.
    pub fn from_env() -> FetchConfig {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = var("GANTRY_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gantry")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache").join("gantry")))
            .unwrap_or_else(|| std::env::temp_dir().join("gantry-cache"));
        let mode = if var("GANTRY_OFFLINE").is_some_and(|v| v != "0" && v != "false") {
            FetchMode::Offline
        } else {
            FetchMode::Online
        };
        FetchConfig {
            cache_dir,
            mode,
            github_url: var("GANTRY_GITHUB_URL").unwrap_or_else(|| "https://github.com".into()),
            gitlab_url: var("GANTRY_GITLAB_URL")
                .or_else(|| var("CI_SERVER_URL"))
                .unwrap_or_else(|| "https://gitlab.com".into()),
            template_url: var("GANTRY_GITLAB_TEMPLATE_URL"),
            circleci_url: var("GANTRY_CIRCLECI_URL")
                .unwrap_or_else(|| "https://circleci.com".into()),
            github_token: var("GITHUB_TOKEN"),
            circleci_token: var("CIRCLECI_TOKEN").or_else(|| var("CIRCLE_TOKEN")),
            gitlab_token: var("GITLAB_TOKEN")
                .map(|t| ("PRIVATE-TOKEN", t))
                .or_else(|| var("CI_JOB_TOKEN").map(|t| ("JOB-TOKEN", t))),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why something could not be fetched. Messages name the URL and the fix, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Not in the cache, and the network may not be used or cannot be reached.
    #[error("{url} is not in the cache ({why}); run once with the network to fetch it")]
    Unavailable {
        /// What was wanted.
        url: String,
        /// Offline, or what the network said.
        why: String,
    },
    /// The server answered, and not with the content.
    #[error("{url}: {message}")]
    Refused {
        /// What was wanted.
        url: String,
        /// What the server said (status, git's message).
        message: String,
    },
    /// The cache could not be read or written.
    #[error("cache {path}: {message}")]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl FetchError {
    /// Whether the content could not be had at all (offline, network down), as opposed to
    /// the server refusing it: lint reports what it therefore cannot check as warnings.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, FetchError::Unavailable { .. })
    }
}

/// The fetch layer (cheap to clone; all state is on disk).
#[derive(Debug, Clone)]
pub struct Fetcher {
    config: FetchConfig,
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn cache_err(path: &Path, e: impl std::fmt::Display) -> FetchError {
    FetchError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes a file atomically (a temporary file renamed into place).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| cache_err(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| cache_err(dir, e))?;
    tmp.write_all(bytes).map_err(|e| cache_err(path, e))?;
    tmp.persist(path).map_err(|e| cache_err(path, e.error))?;
    Ok(())
}

/// A held lock file (released on drop).
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Whether `s` is a full commit SHA (40 or 64 hex digits).
fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// URL-encodes one path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Fetcher {
    /// A fetcher with this configuration.
    pub fn new(config: FetchConfig) -> Fetcher {
        Fetcher { config }
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    fn lock(&self, key: &str) -> Result<Lock, FetchError> {
        let path = self.config.cache_dir.join("locks").join(digest(key));
        std::fs::create_dir_all(path.parent().unwrap_or(&self.config.cache_dir))
            .map_err(|e| cache_err(&path, e))?;
        let file = File::create(&path).map_err(|e| cache_err(&path, e))?;
        file.lock().map_err(|e| cache_err(&path, e))?;
        Ok(Lock(file))
    }

    // --- HTTP --------------------------------------------------------------------------------

    /// The body at `url` (GET), cached by content.
    pub fn http(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.http_with(url, &[])
    }

    fn http_with(&self, url: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, FetchError> {
        self.request(url, headers, None)
    }

    /// A GET, or a POST of `body`, cached by content under the URL (and body).
    fn request(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Vec<u8>, FetchError> {
        let cache_key = match body {
            Some(b) => format!("{url}\n{b}"),
            None => url.to_owned(),
        };
        let index = self.config.cache_dir.join("http").join(digest(&cache_key));
        let cached = || -> Option<Vec<u8>> {
            let object = std::fs::read_to_string(&index).ok()?;
            let object = object.trim();
            let bytes = std::fs::read(self.config.cache_dir.join("objects").join(object)).ok()?;
            // Content-addressed: a damaged object is a miss, never wrong content.
            (hex::encode(Sha256::digest(&bytes)) == object).then_some(bytes)
        };
        if self.config.mode == FetchMode::Offline {
            return cached().ok_or_else(|| FetchError::Unavailable {
                url: url.to_owned(),
                why: "offline".into(),
            });
        }
        let _lock = self.lock(url)?;
        match self.send(url, headers, body) {
            Ok(body) => {
                let object = hex::encode(Sha256::digest(&body));
                write_atomic(&self.config.cache_dir.join("objects").join(&object), &body)?;
                write_atomic(&index, object.as_bytes())?;
                Ok(body)
            }
            Err(e @ FetchError::Unavailable { .. }) if self.config.mode == FetchMode::Online => {
                cached().ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    fn send(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Vec<u8>, FetchError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let unavailable = |e: ureq::Error| FetchError::Unavailable {
            url: url.to_owned(),
            why: e.to_string(),
        };
        let mut response = match body {
            None => {
                let mut request = agent.get(url);
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                request.call().map_err(unavailable)?
            }
            Some(b) => {
                let mut request = agent.post(url).header("Content-Type", "application/json");
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                request.send(b).map_err(unavailable)?
            }
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let hint = match status {
                401 | 403 => " (set a token: GITHUB_TOKEN, GITLAB_TOKEN or CI_JOB_TOKEN)",
                404 => " (check the name, the ref and the base URL)",
                _ => "",
            };
            return Err(FetchError::Refused {
                url: url.to_owned(),
                message: format!("HTTP {status}{hint}"),
            });
        }
        response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| FetchError::Unavailable {
                url: url.to_owned(),
                why: e.to_string(),
            })
    }

    // --- git ---------------------------------------------------------------------------------

    /// The files of the repository at `url` at `git_ref` (a branch, a tag or a full commit
    /// SHA, which is verified), as a cached directory that must not be changed.
    pub fn git(&self, url: &str, git_ref: &str) -> Result<PathBuf, FetchError> {
        let repo_dir = self.config.cache_dir.join("git").join(digest(url));
        let ref_file = repo_dir.join("refs").join(digest(git_ref));
        let checkout = |commit: &str| repo_dir.join(commit);
        let cached_commit = || -> Option<String> {
            let commit = if is_sha(git_ref) {
                git_ref.to_ascii_lowercase()
            } else {
                std::fs::read_to_string(&ref_file).ok()?.trim().to_owned()
            };
            checkout(&commit).is_dir().then_some(commit)
        };
        let shown = format!("{url}@{git_ref}");
        match self.config.mode {
            FetchMode::Offline => {
                return cached_commit().map(|c| checkout(&c)).ok_or_else(|| {
                    FetchError::Unavailable {
                        url: shown,
                        why: "offline".into(),
                    }
                });
            }
            FetchMode::Online if is_sha(git_ref) => {
                if let Some(c) = cached_commit() {
                    return Ok(checkout(&c));
                }
            }
            _ => {}
        }
        let _lock = self.lock(url)?;
        // A branch or tag: its commit now, and nothing to fetch when that is cached.
        let wanted = if is_sha(git_ref) {
            Some(git_ref.to_ascii_lowercase())
        } else {
            match self.ls_remote(url, git_ref) {
                Ok(commit) => Some(commit),
                Err(e @ FetchError::Unavailable { .. }) => {
                    return match (self.config.mode, cached_commit()) {
                        (FetchMode::Online, Some(c)) => Ok(checkout(&c)),
                        _ => Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        };
        if self.config.mode == FetchMode::Online {
            if let Some(c) = wanted.as_deref().filter(|c| checkout(c).is_dir()) {
                write_atomic(&ref_file, c.as_bytes())?;
                return Ok(checkout(c));
            }
        }
        let commit = self.clone_at(url, git_ref, wanted.as_deref(), &repo_dir)?;
        if !is_sha(git_ref) {
            write_atomic(&ref_file, commit.as_bytes())?;
        }
        Ok(checkout(&commit))
    }

    /// A `git` command with the token for `url` (when it is the GitHub URL) in its
    /// environment, never on its command line.
    fn git_command(&self, url: &str) -> Command {
        let mut cmd = Command::new("git");
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null());
        let for_github = url.starts_with(self.config.github_url.trim_end_matches('/'));
        if let (true, Some(token), true) = (
            for_github,
            &self.config.github_token,
            url.starts_with("http"),
        ) {
            use base64::Engine as _;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        cmd
    }

    fn run_git(&self, url: &str, dir: Option<&Path>, args: &[&str]) -> Result<String, FetchError> {
        let mut cmd = self.git_command(url);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd.args(args).output().map_err(|e| FetchError::Refused {
            url: url.to_owned(),
            message: format!("cannot run git: {e}"),
        })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let unreachable = [
            "Could not resolve host",
            "Connection refused",
            "Failed to connect",
            "Couldn't connect",
            "Connection timed out",
            "unable to connect",
            "Network is unreachable",
            "Operation timed out",
        ]
        .iter()
        .any(|m| stderr.contains(m));
        Err(if unreachable {
            FetchError::Unavailable {
                url: url.to_owned(),
                why: stderr,
            }
        } else {
            FetchError::Refused {
                url: url.to_owned(),
                message: stderr,
            }
        })
    }

    /// The commit a branch or tag names on the server.
    fn ls_remote(&self, url: &str, git_ref: &str) -> Result<String, FetchError> {
        let out = self.run_git(url, None, &["ls-remote", "--", url, git_ref])?;
        let mut best: Option<(u8, String)> = None;
        for line in out.lines() {
            let Some((sha, name)) = line.split_once('\t') else {
                continue;
            };
            // A peeled tag names the commit; branches before tags, as git resolves them.
            let rank = if name == format!("refs/tags/{git_ref}^{{}}") {
                1
            } else if name == format!("refs/heads/{git_ref}") || name == git_ref {
                0
            } else if name == format!("refs/tags/{git_ref}") {
                2
            } else {
                continue;
            };
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, sha.to_owned()));
            }
        }
        best.map(|(_, sha)| sha).ok_or_else(|| FetchError::Refused {
            url: url.to_owned(),
            message: format!("no branch or tag '{git_ref}' (check the ref)"),
        })
    }

    /// Fetches one commit shallowly into a new directory and moves its files into the cache;
    /// returns the commit.
    fn clone_at(
        &self,
        url: &str,
        git_ref: &str,
        wanted: Option<&str>,
        repo_dir: &Path,
    ) -> Result<String, FetchError> {
        std::fs::create_dir_all(repo_dir).map_err(|e| cache_err(repo_dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(repo_dir)
            .map_err(|e| cache_err(repo_dir, e))?;
        let dir = tmp.path();
        self.run_git(url, Some(dir), &["init", "-q"])?;
        let target = wanted.unwrap_or(git_ref);
        let shallow = self.run_git(
            url,
            Some(dir),
            &["fetch", "-q", "--depth=1", "--no-tags", "--", url, target],
        );
        if let Err(e) = shallow {
            if e.is_unavailable() {
                return Err(e);
            }
            // Servers that refuse to serve a commit by SHA: fetch everything, then pick it.
            self.run_git(url, Some(dir), &["fetch", "-q", "--tags", "--", url])?;
            self.run_git(url, Some(dir), &["update-ref", "FETCH_HEAD", target])
                .map_err(|_| FetchError::Refused {
                    url: url.to_owned(),
                    message: format!("no commit '{target}'"),
                })?;
        }
        let commit = self
            .run_git(url, Some(dir), &["rev-parse", "FETCH_HEAD^{commit}"])?
            .trim()
            .to_owned();
        if let Some(w) = wanted {
            if !commit.eq_ignore_ascii_case(w) {
                return Err(FetchError::Refused {
                    url: url.to_owned(),
                    message: format!("asked for {w}, the server gave {commit}"),
                });
            }
        }
        self.run_git(
            url,
            Some(dir),
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                "FETCH_HEAD",
            ],
        )?;
        std::fs::remove_dir_all(dir.join(".git")).map_err(|e| cache_err(dir, e))?;
        let dest = repo_dir.join(&commit);
        if !dest.is_dir() {
            let kept = tmp.keep();
            if let Err(e) = std::fs::rename(&kept, &dest) {
                let _ = std::fs::remove_dir_all(&kept);
                if !dest.is_dir() {
                    return Err(cache_err(&dest, e));
                }
            }
        }
        Ok(commit)
    }

    // --- forges ------------------------------------------------------------------------------

    /// A GitHub repository (`owner/repo`) at a ref: actions and reusable workflows.
    pub fn github_repo(&self, repo: &str, git_ref: &str) -> Result<PathBuf, FetchError> {
        let url = format!("{}/{repo}", self.config.github_url.trim_end_matches('/'));
        self.git(&url, git_ref)
    }

    fn gitlab_headers(&self, url: &str) -> Vec<(&str, &str)> {
        match &self.config.gitlab_token {
            Some((header, token))
                if url.starts_with(self.config.gitlab_url.trim_end_matches('/')) =>
            {
                vec![(*header, token.as_str())]
            }
            _ => Vec::new(),
        }
    }

    fn text(&self, url: &str, bytes: Vec<u8>) -> Result<String, FetchError> {
        String::from_utf8(bytes).map_err(|_| FetchError::Refused {
            url: url.to_owned(),
            message: "not UTF-8 text".into(),
        })
    }

    /// A CircleCI registry orb's source (`ns/name@1.2.3`), from the orb registry's GraphQL
    /// API on the CircleCI URL.
    pub fn circleci_orb(&self, reference: &str) -> Result<String, FetchError> {
        let url = format!(
            "{}/graphql-unstable",
            self.config.circleci_url.trim_end_matches('/')
        );
        let body = serde_json::json!({
            "query": "query($orbVersionRef: String!) { orbVersion(orbVersionRef: $orbVersionRef) { source } }",
            "variables": {"orbVersionRef": reference},
        })
        .to_string();
        let headers: Vec<(&str, &str)> = self
            .config
            .circleci_token
            .iter()
            .map(|t| ("Circle-Token", t.as_str()))
            .collect();
        let bytes = self.request(&url, &headers, Some(&body))?;
        let shown = format!("{url} (orb {reference})");
        let reply: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| FetchError::Refused {
                url: shown.clone(),
                message: format!("not a GraphQL answer: {e}"),
            })?;
        match reply["data"]["orbVersion"]["source"].as_str() {
            Some(source) => Ok(source.to_owned()),
            None => Err(FetchError::Refused {
                url: shown,
                message: format!(
                    "the orb registry has no {reference} (or it is private: set CIRCLECI_TOKEN)"
                ),
            }),
        }
    }

    /// `include: remote:` — the file at a URL.
    pub fn remote_file(&self, url: &str) -> Result<String, FetchError> {
        let bytes = self.http_with(url, &self.gitlab_headers(url))?;
        self.text(url, bytes)
    }

    /// `include: template:` — one of GitLab's templates (`Auto-DevOps.gitlab-ci.yml`,
    /// `Jobs/Build.gitlab-ci.yml`).
    pub fn gitlab_template(&self, name: &str) -> Result<String, FetchError> {
        let base = match &self.config.template_url {
            Some(t) => t.trim_end_matches('/').to_owned(),
            None => format!(
                "{}/gitlab-org/gitlab/-/raw/master/lib/gitlab/ci/templates",
                self.config.gitlab_url.trim_end_matches('/')
            ),
        };
        let path: Vec<String> = name.split('/').map(encode).collect();
        self.remote_file(&format!("{base}/{}", path.join("/")))
    }

    /// `include: project:` — a file of another project at a ref (the default branch when
    /// `None`), through GitLab's repository files API.
    pub fn gitlab_project_file(
        &self,
        project: &str,
        git_ref: Option<&str>,
        file: &str,
    ) -> Result<String, FetchError> {
        let mut url = format!(
            "{}/api/v4/projects/{}/repository/files/{}/raw",
            self.config.gitlab_url.trim_end_matches('/'),
            encode(project.trim_matches('/')),
            encode(file.trim_start_matches('/')),
        );
        if let Some(r) = git_ref {
            url.push_str(&format!("?ref={}", encode(r)));
        }
        self.remote_file(&url)
    }

    /// `include: component:` — `host/group/project/name@version`: the component's template
    /// (`templates/name.yml` or `templates/name/template.yml`) at that version. The host must
    /// be the configured GitLab's.
    pub fn gitlab_component(&self, address: &str) -> Result<String, FetchError> {
        let (path, version) = address
            .rsplit_once('@')
            .ok_or_else(|| FetchError::Refused {
                url: address.to_owned(),
                message: "a component is host/project/name@version".into(),
            })?;
        let (project_path, name) = path.rsplit_once('/').ok_or_else(|| FetchError::Refused {
            url: address.to_owned(),
            message: "a component is host/project/name@version".into(),
        })?;
        let (host, project) = project_path
            .split_once('/')
            .ok_or_else(|| FetchError::Refused {
                url: address.to_owned(),
                message: "a component is host/project/name@version".into(),
            })?;
        let configured = self
            .config
            .gitlab_url
            .split("://")
            .nth(1)
            .unwrap_or(&self.config.gitlab_url)
            .trim_end_matches('/');
        let host = host.replace("$CI_SERVER_FQDN", configured);
        if host != configured {
            return Err(FetchError::Refused {
                url: address.to_owned(),
                message: format!(
                    "the component's host is not the configured GitLab ({configured}); set \
                     --gitlab-url or GANTRY_GITLAB_URL"
                ),
            });
        }
        let version = match version {
            "~latest" => None,
            v => Some(v),
        };
        let first = format!("templates/{name}.yml");
        // Either layout; offline, whichever the cache holds.
        match self.gitlab_project_file(project, version, &first) {
            Ok(text) => Ok(text),
            Err(e) => {
                let second = format!("templates/{name}/template.yml");
                match self.gitlab_project_file(project, version, &second) {
                    Ok(text) => Ok(text),
                    Err(e2) if matches!(e, FetchError::Refused { .. }) => Err(e2),
                    Err(_) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_the_files_api() {
        assert_eq!(encode("group/sub project"), "group%2Fsub%20project");
        assert_eq!(encode("a.yml"), "a.yml");
    }

    #[test]
    fn shas_are_told_from_refs() {
        assert!(is_sha(&"a".repeat(40)));
        assert!(!is_sha("v4"));
        assert!(!is_sha(&"g".repeat(40)));
    }

    #[test]
    fn tokens_stay_out_of_debug_output() {
        let mut config = FetchConfig::from_env();
        config.github_token = Some("ghp_secret".into());
        config.gitlab_token = Some(("PRIVATE-TOKEN", "glpat-secret".into()));
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
