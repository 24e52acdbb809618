//! Why a run could not start.

use std::path::PathBuf;

use ci_config::Diagnostic;
use ci_store::StoreError;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The workflow has errors (rendered with [`Diagnostic::render`] against the source).
    #[error("{path} has {} error(s)", diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// The file.
        path: String,
        /// Its diagnostics.
        diagnostics: Vec<Diagnostic>,
    },
    /// Something the workflow asks for that Gantry cannot do (named).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Bad options (an unknown `--job`, a malformed `--matrix`…).
    #[error("{0}")]
    Usage(String),
    /// Nothing runs for this event (GitLab `workflow:rules`, or every job's rules said no).
    #[error("{0}")]
    NotCreated(String),
    /// Recording the run failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a file or making a directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
