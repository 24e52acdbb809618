//! Local mirrors of the repositories a server or runner builds (git over the forge's clone
//! URL: `file://`, `http(s)://`, `ssh://` all work) and checkouts made from them. Git runs as
//! the `git` program; an HTTP header (a token) reaches it through the environment, never its
//! command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// What went wrong with a mirror or checkout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MirrorError(pub String);

type Result<T> = std::result::Result<T, MirrorError>;

macro_rules! bail {
    ($($arg:tt)*) => { return Err(MirrorError(format!($($arg)*))) };
}

/// `.context(…)` for the results and options of this module.
trait Context<T> {
    fn context(self, what: &str) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| MirrorError(format!("{what}: {e}")))
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| MirrorError(format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T> {
        self.ok_or_else(|| MirrorError(what.to_owned()))
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| MirrorError(what()))
    }
}

fn io(e: std::io::Error) -> MirrorError {
    MirrorError(e.to_string())
}

/// Mirrors under one directory; one fetch per URL at a time.
#[derive(Debug, Clone)]
pub struct Mirrors {
    dir: PathBuf,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

fn git(args: &[&str], cwd: Option<&Path>) -> Result<String> {
    git_with(args, cwd, None)
}

/// Runs git; `header` (`Authorization: …`) is sent with its HTTP requests.
fn git_with(args: &[&str], cwd: Option<&Path>, header: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(header) = header {
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", header);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether `sha` looks like a full commit id (it goes on git's command line).
fn check_sha(sha: &str) -> Result<()> {
    if sha.len() < 7 || sha.len() > 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{sha:?} is not a commit id");
    }
    Ok(())
}

impl Mirrors {
    /// Mirrors kept in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Mirrors {
            dir,
            locks: Arc::default(),
        }
    }

    fn lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("never poisoned");
        Arc::clone(locks.entry(url.to_owned()).or_default())
    }

    /// The mirror of `url` holding `sha`: cloned the first time, fetched when the commit is
    /// missing.
    pub async fn ensure(&self, url: &str, sha: &str) -> Result<PathBuf> {
        check_sha(sha)?;
        self.ensure_with(url, Some(sha), None).await
    }

    /// The mirror of `url` (cloned the first time).
    async fn ensure_mirror(&self, url: &str) -> Result<PathBuf> {
        self.ensure_with(url, None, None).await
    }

    async fn ensure_with(
        &self,
        url: &str,
        sha: Option<&str>,
        header: Option<&str>,
    ) -> Result<PathBuf> {
        if url.starts_with('-') {
            bail!("clone URL {url:?} is not allowed");
        }
        let lock = self.lock(url);
        let _held = lock.lock().await;
        let name = {
            use sha2::{Digest, Sha256};
            hex::encode(&Sha256::digest(url.as_bytes())[..10])
        };
        let dir = self.dir.join(format!("{name}.git"));
        let (url, sha) = (url.to_owned(), sha.map(str::to_owned));
        let header = header.map(str::to_owned);
        let mirror = dir.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let header = header.as_deref();
            let git = |args: &[&str], cwd: Option<&Path>| git_with(args, cwd, header);
            if !mirror.join("HEAD").exists() {
                std::fs::create_dir_all(mirror.parent().expect("mirrors have a parent"))
                    .map_err(io)?;
                let tmp = mirror.with_extension(format!("tmp{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                git(
                    &[
                        "clone",
                        "--quiet",
                        "--mirror",
                        &url,
                        tmp.to_str().context("a UTF-8 state dir")?,
                    ],
                    None,
                )?;
                std::fs::rename(&tmp, &mirror).map_err(io)?;
            }
            let Some(sha) = sha else { return Ok(()) };
            let have = |sha: &str| {
                git(
                    &["cat-file", "-e", &format!("{sha}^{{commit}}")],
                    Some(&mirror),
                )
                .is_ok()
            };
            if !have(&sha) {
                git(&["fetch", "--quiet", "--prune", "origin"], Some(&mirror))?;
            }
            if !have(&sha) {
                // A commit no ref points at (a force-pushed branch): ask for it by id.
                git(&["fetch", "--quiet", "origin", &sha], Some(&mirror))
                    .with_context(|| format!("commit {sha} is not in {url}"))?;
            }
            Ok(())
        })
        .await
        .context("the git task stopped")??;
        Ok(dir)
    }

    /// The commit `git_ref` (`refs/heads/main`, `refs/tags/v1`) points at, fetched now.
    pub async fn resolve(&self, url: &str, git_ref: &str) -> Result<String> {
        if git_ref.starts_with('-') || git_ref.contains("..") {
            bail!("{git_ref:?} is not a ref");
        }
        let head = self.ensure_mirror(url).await?;
        let git_ref = git_ref.to_owned();
        tokio::task::spawn_blocking(move || -> Result<String> {
            git(&["fetch", "--quiet", "--prune", "origin"], Some(&head))?;
            git(
                &["rev-parse", "--verify", &format!("{git_ref}^{{commit}}")],
                Some(&head),
            )
            .with_context(|| format!("no {git_ref} in the repository"))
        })
        .await
        .context("the git task stopped")?
    }

    /// A checkout of `sha` at `dest` (kept when it is there already).
    pub async fn checkout(&self, url: &str, sha: &str, dest: &Path) -> Result<()> {
        self.checkout_with(url, sha, dest, None).await
    }

    /// [`Mirrors::checkout`] sending `header` (`Authorization: …`) with git's HTTP requests
    /// (a forge's job token).
    pub async fn checkout_with(
        &self,
        url: &str,
        sha: &str,
        dest: &Path,
        header: Option<&str>,
    ) -> Result<()> {
        check_sha(sha)?;
        let mirror = self.ensure_with(url, Some(sha), header).await?;
        let dest = dest.to_owned();
        let sha = sha.to_owned();
        tokio::task::spawn_blocking(move || -> Result<()> {
            if dest.join(".git").exists() {
                if let Ok(head) = git(&["rev-parse", "HEAD"], Some(&dest)) {
                    if head.starts_with(&sha) {
                        return Ok(());
                    }
                }
                std::fs::remove_dir_all(&dest).map_err(io)?;
            }
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::create_dir_all(dest.parent().expect("checkouts have a parent")).map_err(io)?;
            let d = dest.to_str().context("a UTF-8 state dir")?;
            let m = mirror.to_str().context("a UTF-8 state dir")?;
            git(
                &["clone", "--quiet", "--shared", "--no-checkout", m, d],
                None,
            )?;
            git(&["checkout", "--quiet", "--detach", &sha], Some(&dest))?;
            Ok(())
        })
        .await
        .context("the git task stopped")?
    }
}
