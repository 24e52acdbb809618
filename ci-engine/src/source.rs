//! What a run runs: a CI file's text, where it was read from, and its repository.

use std::path::{Path, PathBuf};

use ci_vcs::{Event, EventKind, RepositoryInfo};
use indexmap::IndexMap;

use crate::error::EngineError;

/// A workflow to run: its text, where it was read from, and the repository it belongs to.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path shown in messages (relative to the repository root when possible).
    pub path: String,
    /// The file's text.
    pub text: String,
    /// The repository root: checkouts come from it and `./` actions and reusable workflows
    /// are found in it.
    pub root: PathBuf,
    /// The dialect; `None`: detected from the path and the file's top-level keys.
    pub dialect: Option<ci_config::Dialect>,
}

impl Source {
    /// Reads a workflow file; the root is the enclosing git repository (else the directory
    /// holding `.github`, else the file's directory).
    pub fn read(path: impl AsRef<Path>) -> Result<Source, EngineError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let absolute = std::path::absolute(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        let root = ci_vcs::Repository::open(&dir)
            .map(|r| r.root().to_path_buf())
            .ok()
            .or_else(|| {
                absolute
                    .ancestors()
                    .find(|a| a.file_name().is_some_and(|n| n == ".github"))
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
            })
            .unwrap_or(dir);
        let shown = absolute
            .strip_prefix(&root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf());
        Ok(Source {
            path: shown.display().to_string(),
            text,
            root,
            dialect: None,
        })
    }

    /// A workflow given as text, in the repository at `root`.
    pub fn new(path: impl Into<String>, text: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
            root: root.into(),
            dialect: None,
        }
    }

    /// Reads the file as `dialect` instead of detecting it.
    pub fn with_dialect(mut self, dialect: ci_config::Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// The event of a local run of this source: a push of the repository's HEAD, or (outside
    /// a git repository) a manual event without a commit.
    pub fn local_event(&self) -> Event {
        match ci_vcs::Repository::open(&self.root).and_then(|r| r.local_push()) {
            Ok(event) => event,
            Err(_) => {
                let name = self
                    .root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "workspace".into());
                Event {
                    kind: EventKind::Manual,
                    git_ref: "refs/heads/main".into(),
                    sha: ci_vcs::event::ZERO_SHA.into(),
                    before: None,
                    head_ref: None,
                    base_ref: None,
                    base_sha: None,
                    actor: std::env::var("USER").unwrap_or_else(|_| "gantry".into()),
                    repository: RepositoryInfo {
                        full_name: format!("local/{name}"),
                        owner: "local".into(),
                        name,
                        default_branch: "main".into(),
                        html_url: None,
                    },
                    inputs: IndexMap::new(),
                    message: None,
                    payload: serde_json::json!({}),
                }
            }
        }
    }
}
