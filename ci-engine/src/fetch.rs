//! What the engine fetches: GitLab includes from outside the repository, remote actions and
//! reusable workflows — through `ci_vcs::fetch` and its cache; `ci-config` sees only its
//! [`Includes`] resolver.

use std::path::PathBuf;

use ci_config::gitlab::{Includes, LocalIncludes, RemoteInclude, Unfetched};
use ci_vcs::fetch::{FetchError, Fetcher};
use indexmap::IndexMap;

use crate::inner::Inner;

/// GitLab includes: repository files and mapped projects locally, everything else through
/// the fetch layer (when there is one).
#[derive(Debug, Clone)]
pub struct FetchingIncludes {
    local: LocalIncludes,
    fetcher: Option<Fetcher>,
    strict: bool,
}

impl FetchingIncludes {
    /// Includes from `local`, and remote ones from `fetcher`. Lint: an include that cannot be
    /// had is a warning (what depends on it is not checked).
    pub fn new(local: LocalIncludes, fetcher: Option<Fetcher>) -> Self {
        FetchingIncludes {
            local,
            fetcher,
            strict: false,
        }
    }

    /// A run: an include that cannot be had is an error.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

/// A fetch failure as the message a user reads: what, why, and the fix.
fn unfetched(e: FetchError) -> Unfetched {
    let unavailable = e.is_unavailable();
    let message = match &e {
        FetchError::Unavailable { .. } => {
            format!("{e} (or map a project with --include-dir, or set --gitlab-url)")
        }
        _ => e.to_string(),
    };
    Unfetched {
        message,
        unavailable,
    }
}

impl Includes for FetchingIncludes {
    fn read(&self, path: &str) -> Result<String, String> {
        self.local.read(path)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        self.local.glob(pattern)
    }

    fn project(&self, project: &str) -> Option<PathBuf> {
        self.local.project(project)
    }

    fn variable(&self, name: &str) -> Option<String> {
        self.local.variable(name)
    }

    fn variables(&self) -> Option<IndexMap<String, String>> {
        Includes::variables(&self.local)
    }

    fn fetch(&self, include: &RemoteInclude<'_>) -> Result<String, Unfetched> {
        let Some(fetcher) = &self.fetcher else {
            return Err(Unfetched {
                message: format!("{include} needs the network, and fetching is off"),
                unavailable: true,
            });
        };
        let text = blocking(|| match *include {
            RemoteInclude::Url(url) => fetcher.remote_file(url),
            RemoteInclude::Template(name) => fetcher.gitlab_template(name),
            RemoteInclude::Project {
                project,
                git_ref,
                file,
            } => fetcher.gitlab_project_file(project, git_ref, file),
            RemoteInclude::Component(c) => fetcher.gitlab_component(c),
        });
        text.map_err(unfetched)
    }

    fn strict(&self) -> bool {
        self.strict
    }
}

/// Runs blocking fetch work from async code without stalling the runtime's other tasks
/// (on a multi-threaded runtime; a current-thread runtime just runs it).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The directory of a remote action or reusable workflow (`owner/repo[/path]@ref`): mapped
/// with `action_dir`, else fetched (once per commit; then from the cache).
pub(crate) async fn remote_dir(inner: &Inner, uses: &str) -> Result<PathBuf, String> {
    if let Some((dir, sub)) = crate::inner::mapped_action(inner, uses) {
        return Ok(dir.join(sub));
    }
    let (name, git_ref) = uses
        .split_once('@')
        .filter(|(_, r)| !r.is_empty())
        .ok_or_else(|| format!("'{uses}' names no ref (owner/repo@ref)"))?;
    let mut parts = name.splitn(3, '/');
    let (Some(owner), Some(repo)) = (parts.next(), parts.next()) else {
        return Err(format!("'{uses}' is not owner/repo[/path]@ref"));
    };
    let sub = parts.next().unwrap_or("").to_owned();
    if sub.split('/').any(|c| c == "..") {
        return Err(format!("'{uses}': the path leaves the repository"));
    }
    let Some(fetcher) = inner.fetcher.clone() else {
        return Err(format!(
            "'{uses}' would have to be fetched, and fetching is off; map it to a local copy \
             with --action-dir {owner}/{repo}=PATH"
        ));
    };
    let repo_name = format!("{owner}/{repo}");
    let git_ref = git_ref.to_owned();
    let dir = tokio::task::spawn_blocking(move || fetcher.github_repo(&repo_name, &git_ref))
        .await
        .map_err(|e| format!("fetching '{uses}': {e}"))?
        .map_err(|e| {
            format!(
                "'{uses}': {e} (or map it to a local copy with --action-dir {owner}/{repo}=PATH)"
            )
        })?;
    Ok(dir.join(&sub))
}

/// Sources of the registry orbs a CircleCI configuration imports that `known` does not hold,
/// fetched from the orb registry (and its cache); what cannot be had is left out, with why.
pub(crate) async fn circleci_orbs(
    inner: &Inner,
    src: &str,
    known: &IndexMap<String, String>,
) -> (IndexMap<String, String>, Vec<String>) {
    let mut found = IndexMap::new();
    let mut problems = Vec::new();
    let Some(fetcher) = inner.fetcher.clone() else {
        return (found, problems);
    };
    for reference in ci_config::circleci::registry_orbs(src) {
        let name = reference.split('@').next().unwrap_or(&reference).to_owned();
        if known.contains_key(&reference) || known.contains_key(&name) {
            continue;
        }
        let f = fetcher.clone();
        let r = reference.clone();
        match tokio::task::spawn_blocking(move || f.circleci_orb(&r)).await {
            Ok(Ok(source)) => {
                found.insert(reference, source);
            }
            Ok(Err(e)) => problems.push(e.to_string()),
            Err(e) => problems.push(format!("fetching orb {reference}: {e}")),
        }
    }
    (found, problems)
}
