//! `ci-vcs` connects CI runs to repositories and forges.
//!
//! What it is for: reading git repositories (refs, commits, changed paths, fast checkouts into
//! job workspaces), turning forge events into the contexts a run sees (GitHub's `github`
//! context, GitLab's `CI_*` variables), deciding whether an event passes a workflow's
//! branch/tag/path filters, parsing and verifying webhook deliveries from GitHub, GitLab,
//! Gitea and Forgejo, computing cron schedules, publishing commit statuses, and fetching what
//! CI files name from elsewhere — remote actions, reusable workflows, GitLab includes — into
//! an on-disk cache that works offline ([`fetch`]; its [`fetch::loopback`] has an example).
//!
//! What it is not for: reading workflow files (`ci-config`) — filters take plain patterns and
//! events are plain data, so forge integrators can embed this crate on its own.
//!
//! # Example
//!
//! ```
//! use ci_vcs::filter::{EventFilters, GitRef};
//! use ci_vcs::webhook::{self, Delivery, Forge, WebhookConfig};
//!
//! let body = br#"{"ref": "refs/heads/main", "before": "a", "after": "b",
//!                 "repository": {"full_name": "octo/app"}, "sender": {"login": "octocat"}}"#;
//! let config = WebhookConfig { secret: Some(b"s3cret".to_vec()), ..Default::default() };
//! let signature = webhook::sign_github(b"s3cret", body);
//! let headers = [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", signature.as_str())];
//! let Ok(Delivery::Event(event)) = webhook::parse(Forge::GitHub, &headers, body, &config) else {
//!     panic!("a valid delivery");
//! };
//! let filters = EventFilters { branches: Some(vec!["main".into(), "releases/**".into()]), ..Default::default() };
//! assert!(filters.allows(GitRef::from_full(&event.git_ref), None).unwrap());
//! let github = event.github_context(&ci_vcs::event::RunInfo::default());
//! assert_eq!(github["ref_name"], "main");
//! ```

#[cfg(feature = "reporters")]
pub mod conformance;
pub mod event;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod filter;
pub mod git;
pub mod jobenv;
#[cfg(feature = "mirror")]
pub mod mirror;
pub mod schedule;
#[cfg(feature = "reporters")]
pub mod status;
pub mod webhook;

pub use event::{Event, EventKind, RepositoryInfo, RunInfo};
pub use git::{GitError, Repository};
