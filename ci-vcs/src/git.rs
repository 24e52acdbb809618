//! Git repositories through the `git` command line (see ARCHITECTURE.md for why not `gix`):
//! refs, commits, changed paths, and checkouts into job workspaces.

use std::path::{Path, PathBuf};
use std::process::Command;

use indexmap::IndexMap;
use serde_json::json;

use crate::event::{Event, EventKind, RepositoryInfo, ZERO_SHA};

/// A git failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// `git` could not be started.
    #[error("cannot run git: {0}")]
    Spawn(String),
    /// A git command failed.
    #[error("git {args} failed: {stderr}")]
    Command {
        /// The arguments.
        args: String,
        /// What git said.
        stderr: String,
    },
    /// Not a git repository.
    #[error("{0} is not inside a git repository")]
    NotARepository(String),
    /// A file of the repository could not be changed.
    #[error("{0}")]
    Io(String),
}

/// Commit metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full sha.
    pub sha: String,
    /// Parent shas.
    pub parents: Vec<String>,
    /// Author name.
    pub author_name: String,
    /// Author e-mail.
    pub author_email: String,
    /// Author time, seconds since the epoch.
    pub timestamp: i64,
    /// The full message.
    pub message: String,
}

/// An open repository (its work tree root).
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

impl Repository {
    /// Opens the repository containing `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GitError> {
        let path = path.as_ref();
        // The top of a work tree holds `.git` (a directory, or a file for worktrees and
        // submodules): no need to ask git, which would answer the same real path. Git's own
        // environment (`GIT_DIR`, `GIT_WORK_TREE`) can move it: then git is asked.
        if std::env::var_os("GIT_DIR").is_none()
            && std::env::var_os("GIT_WORK_TREE").is_none()
            && path.join(".git").exists()
        {
            if let Ok(root) = std::fs::canonicalize(path) {
                return Ok(Repository { root });
            }
        }
        let out = run_in(path, &["rev-parse", "--show-toplevel"])
            .map_err(|_| GitError::NotARepository(path.display().to_string()))?;
        Ok(Repository {
            root: PathBuf::from(out.trim_end_matches('\n')),
        })
    }

    /// The work tree root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        run_in(&self.root, args)
    }

    /// The sha `rev` names (`HEAD`, a branch, a tag, a sha).
    pub fn resolve(&self, rev: &str) -> Result<String, GitError> {
        Ok(self
            .git(&[
                "rev-parse",
                "--verify",
                "--end-of-options",
                &format!("{rev}^{{commit}}"),
            ])?
            .trim()
            .to_owned())
    }

    /// The sha of HEAD.
    pub fn head(&self) -> Result<String, GitError> {
        self.resolve("HEAD")
    }

    /// The current branch, `None` when HEAD is detached.
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let out = self.git(&["symbolic-ref", "--quiet", "--short", "HEAD"]);
        Ok(out
            .ok()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty()))
    }

    /// Tags pointing at `sha`, sorted.
    pub fn tags_at(&self, sha: &str) -> Result<Vec<String>, GitError> {
        let out = self.git(&["tag", "--points-at", sha, "--sort=refname"])?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// Every branch and tag with its sha (`refs/heads/x` → sha).
    pub fn refs(&self) -> Result<IndexMap<String, String>, GitError> {
        let out = self.git(&[
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)",
            "refs/heads",
            "refs/tags",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut parts = l.split('\0');
                let name = parts.next()?;
                let direct = parts.next()?;
                // Annotated tags: the commit they peel to.
                let peeled = parts.next().filter(|p| !p.is_empty()).unwrap_or(direct);
                Some((name.to_owned(), peeled.to_owned()))
            })
            .collect())
    }

    /// Metadata of one commit.
    pub fn commit(&self, rev: &str) -> Result<Commit, GitError> {
        let out = self.git(&[
            "show",
            "-s",
            "--format=%H%x00%P%x00%an%x00%ae%x00%at%x00%B",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ])?;
        let mut parts = out.splitn(6, '\0');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        let sha = next();
        let parents = next().split_whitespace().map(str::to_owned).collect();
        let author_name = next();
        let author_email = next();
        let timestamp = next().trim().parse().unwrap_or(0);
        let message = next().trim_end().to_owned();
        Ok(Commit {
            sha,
            parents,
            author_name,
            author_email,
            timestamp,
            message,
        })
    }

    /// Paths changed between two commits (both sides of renames), sorted; `base` may be the
    /// all-zero sha of a new ref, then every file of `head` counts.
    pub fn changed_paths(&self, base: &str, head: &str) -> Result<Vec<String>, GitError> {
        let out = if base == ZERO_SHA || base.is_empty() {
            self.git(&["ls-tree", "-r", "-z", "--name-only", head])?
        } else {
            self.git(&["diff", "--name-status", "-z", "-M", base, head])?
        };
        let mut paths: Vec<String> = if base == ZERO_SHA || base.is_empty() {
            out.split('\0')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        } else {
            let mut fields = out.split('\0').filter(|f| !f.is_empty());
            let mut paths = Vec::new();
            while let Some(status) = fields.next() {
                // Renames and copies carry two paths.
                let count = if status.starts_with('R') || status.starts_with('C') {
                    2
                } else {
                    1
                };
                for _ in 0..count {
                    if let Some(p) = fields.next() {
                        paths.push(p.to_owned());
                    }
                }
            }
            paths
        };
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// Every tracked file at `rev` (for GitLab `rules:exists`).
    pub fn files(&self, rev: &str) -> Result<Vec<String>, GitError> {
        let out = self.git(&["ls-tree", "-r", "-z", "--name-only", rev])?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Checks `rev` out into `dest` as a detached worktree (shares the object store: fast, no
    /// copy). Remove it with [`Repository::remove_checkout`].
    pub fn checkout(&self, rev: &str, dest: &Path) -> Result<(), GitError> {
        let sha = self.resolve(rev)?;
        let dest = dest.to_string_lossy();
        self.git(&["worktree", "add", "--detach", "--force", &dest, &sha])?;
        Ok(())
    }

    /// Removes a checkout made by [`Repository::checkout`] (idempotent).
    pub fn remove_checkout(&self, dest: &Path) -> Result<(), GitError> {
        let d = dest.to_string_lossy();
        let _ = self.git(&["worktree", "remove", "--force", &d]);
        self.git(&["worktree", "prune"])?;
        Ok(())
    }

    /// Clones this repository into `dest` at `rev` with history limited to `depth` commits
    /// (`actions/checkout`'s `fetch-depth`; 0 is the full history).
    pub fn clone_at(&self, rev: &str, dest: &Path, depth: u32) -> Result<(), GitError> {
        let sha = self.resolve(rev)?;
        let source = format!("file://{}", self.root.display());
        let dest_s = dest.to_string_lossy().into_owned();
        let mut args = vec!["clone", "--quiet", "--no-checkout"];
        let depth_s = depth.to_string();
        if depth > 0 {
            args.extend(["--depth", &depth_s, "--no-single-branch"]);
        }
        args.extend([source.as_str(), dest_s.as_str()]);
        run_in(Path::new("."), &args)?;
        let clone = Repository {
            root: dest.to_path_buf(),
        };
        if clone.resolve(&sha).is_err() {
            // Not reachable from a branch or tag: fetch the commit itself.
            let mut fetch = vec!["fetch", "--quiet"];
            if depth > 0 {
                fetch.extend(["--depth", &depth_s]);
            }
            fetch.extend(["origin", &sha]);
            clone.git(&fetch)?;
        }
        clone.git(&["checkout", "--quiet", "--detach", &sha])?;
        Ok(())
    }

    /// Makes a clone cheap to copy many times (one copy per job, as GitLab gives each job its
    /// own checkout): refs packed into `packed-refs`, and what a copy would carry for nothing
    /// removed — sample hooks, reflogs, `description`, `info/`, `branches/`, the
    /// `origin/HEAD` pointer and empty directories. Git still reads the result as the same
    /// repository (`status`, `log`, `fetch`, `checkout` work); what is left is `HEAD`,
    /// `config`, `index`, `packed-refs`, `refs/` and the object store.
    pub fn compact_for_copies(&self) -> Result<(), GitError> {
        self.git(&["pack-refs", "--all", "--prune"])?;
        let git_dir = self.root.join(".git");
        for extra in [
            "hooks",
            "logs",
            "description",
            "info",
            "branches",
            "refs/remotes/origin/HEAD",
            "objects/info/packs",
        ] {
            let p = git_dir.join(extra);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        for dir in ["refs", "objects"] {
            remove_empty_dirs(&git_dir.join(dir));
        }
        // Git wants both to exist to call the directory a repository.
        for dir in ["refs", "objects"] {
            std::fs::create_dir_all(git_dir.join(dir))
                .map_err(|e| GitError::Io(format!("{}: {e}", git_dir.join(dir).display())))?;
        }
        Ok(())
    }

    /// The `owner/name` of the `origin` remote, else the directory name.
    pub fn repository_info(&self) -> RepositoryInfo {
        self.repository_info_on(self.current_branch().ok().flatten())
    }

    /// [`repository_info`](Self::repository_info) with the current branch already known.
    fn repository_info_on(&self, branch: Option<String>) -> RepositoryInfo {
        let url = self
            .git(&["remote", "get-url", "origin"])
            .unwrap_or_default();
        let full_name = parse_remote(url.trim()).unwrap_or_else(|| {
            let dir = self
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("local/{dir}")
        });
        let (owner, name) = full_name
            .rsplit_once('/')
            .map(|(o, n)| (o.to_owned(), n.to_owned()))
            .unwrap_or_default();
        let default_branch = self
            .git(&[
                "symbolic-ref",
                "--quiet",
                "--short",
                "refs/remotes/origin/HEAD",
            ])
            .ok()
            .and_then(|b| b.trim().strip_prefix("origin/").map(str::to_owned))
            .or(branch)
            .unwrap_or_else(|| "main".into());
        RepositoryInfo {
            full_name,
            owner,
            name,
            default_branch,
            html_url: None,
        }
    }

    /// The event of a local run: a push of the current HEAD (branch, or the tag at HEAD when
    /// detached), by the configured git user.
    pub fn local_push(&self) -> Result<Event, GitError> {
        let head = self.commit("HEAD")?;
        let branch = self.current_branch()?;
        let git_ref = match &branch {
            Some(b) => format!("refs/heads/{b}"),
            None => match self.tags_at(&head.sha)?.first() {
                Some(t) => format!("refs/tags/{t}"),
                None => head.sha.clone(),
            },
        };
        let actor = self
            .git(&["config", "user.name"])
            .map(|n| n.trim().to_owned())
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "local".into());
        let before = head
            .parents
            .first()
            .cloned()
            .unwrap_or_else(|| ZERO_SHA.to_owned());
        let repository = self.repository_info_on(branch);
        let payload = json!({
            "ref": git_ref,
            "before": before,
            "after": head.sha,
            "repository": {
                "full_name": repository.full_name,
                "name": repository.name,
                "owner": {"login": repository.owner, "name": repository.owner},
                "default_branch": repository.default_branch,
            },
            "pusher": {"name": actor},
            "sender": {"login": actor},
            "head_commit": {
                "id": head.sha,
                "message": head.message,
                "timestamp": head.timestamp,
                "author": {"name": head.author_name, "email": head.author_email},
            },
        });
        Ok(Event {
            kind: EventKind::Push,
            git_ref,
            sha: head.sha.clone(),
            before: Some(before),
            head_ref: None,
            base_ref: None,
            base_sha: None,
            actor,
            repository,
            inputs: IndexMap::new(),
            message: Some(head.message),
            payload,
        })
    }
}

impl Repository {
    /// A local `workflow_dispatch` of HEAD with `inputs` (what `gantry run --event
    /// workflow_dispatch --input K=V` starts).
    pub fn local_dispatch(
        &self,
        inputs: IndexMap<String, serde_json::Value>,
    ) -> Result<Event, GitError> {
        let mut event = self.local_push()?;
        event.kind = EventKind::WorkflowDispatch;
        let inputs_json: serde_json::Map<String, serde_json::Value> =
            inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        event.payload = json!({
            "inputs": inputs_json,
            "ref": event.git_ref,
            "repository": event.payload["repository"],
            "sender": event.payload["sender"],
        });
        event.inputs = inputs;
        event.before = None;
        Ok(event)
    }

    /// A local `schedule` event of HEAD for the cron expression `cron`.
    pub fn local_schedule(&self, cron: &str) -> Result<Event, GitError> {
        let mut event = self.local_push()?;
        event.kind = EventKind::Schedule {
            cron: cron.to_owned(),
        };
        event.payload = json!({ "schedule": cron, "repository": event.payload["repository"] });
        event.before = None;
        Ok(event)
    }
}

/// `owner/name` from `git@host:owner/name.git`, `https://host/owner/name(.git)`, or
/// `ssh://git@host/group/sub/name`.
fn parse_remote(url: &str) -> Option<String> {
    let path = if let Some((_, rest)) = url.split_once("://") {
        rest.split_once('/')?.1
    } else if let Some((_, rest)) = url.split_once(':') {
        rest
    } else {
        return None;
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    path.contains('/').then(|| path.to_owned())
}

fn run_in(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| GitError::Spawn(e.to_string()))?;
    if !out.status.success() {
        return Err(GitError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes the empty directories under `dir` (and `dir` itself when it ends up empty).
fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    // Fails (and keeps it) when something is left inside.
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::parse_remote;

    #[test]
    fn remotes_name_their_repository() {
        assert_eq!(
            parse_remote("git@github.com:octo/app.git").as_deref(),
            Some("octo/app")
        );
        assert_eq!(
            parse_remote("https://gitlab.com/group/sub/app").as_deref(),
            Some("group/sub/app")
        );
        assert_eq!(
            parse_remote("ssh://git@host:22/octo/app.git").as_deref(),
            Some("octo/app")
        );
        assert_eq!(parse_remote("/tmp/x"), None);
    }
}
