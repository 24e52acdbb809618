//! `ci-config` reads CI configuration files into one dialect-neutral [`Workflow`] model, with
//! precise, located [`Diagnostic`]s.
//!
//! What it is for: turning the bytes of a GitHub Actions workflow (and `action.yml` metadata),
//! a `.gitlab-ci.yml` or a `.circleci/config.yml` into a typed model that a planner can expand
//! and an engine can run,
//! and telling the user exactly where a file is wrong (`path:line:col`, with a rustc-style
//! snippet). It is synchronous: give it a path (for messages and dialect detection) and the
//! text; the only files it reads are GitLab `include:`s, through an [`gitlab::Includes`] you
//! choose.
//!
//! What it is not for: planning (matrix expansion, the job graph: `ci-graph`) or running anything.
//!
//! Layers, bottom up: [`yaml`] (a spanned YAML 1.2 tree with anchors, aliases, merge keys and an
//! alias-bomb limit), [`Template`] (strings with `${{ }}` parts), the [`github`], [`gitlab`]
//! and [`circleci`] frontends, and the [`model`]; [`expr`] is the one expression engine (GitLab
//! `rules:if` compiles into its tree).
//!
//! Every dialect lowers into the same model: a GitLab job's `script:` is a step of
//! [`StepAction::Commands`], its project fetch a [`StepAction::Checkout`], and its `rules`
//! are decided per event by [`Loaded::select`].
//!
//! ```
//! use ci_config::{load, LoadOptions, StepAction};
//! let src = ".base:\n  script: [make]\nbuild:\n  extends: .base\n  rules:\n    - if: $CI_COMMIT_BRANCH =~ /^release/\n";
//! let parsed = load(".gitlab-ci.yml", src, &LoadOptions::default());
//! assert!(!parsed.has_errors());
//! let loaded = parsed.value.unwrap();
//! let job = &loaded.workflows[0].jobs["build"];
//! assert!(job.steps.iter().any(|s| matches!(&s.action,
//!     StepAction::Commands { commands, .. } if commands == &["make"])));
//! ```
//!
//! # Example
//!
//! ```
//! let src = "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make\n";
//! let parsed = ci_config::github::parse_workflow(".github/workflows/ci.yml", src);
//! assert!(!parsed.has_errors());
//! let workflow = parsed.value.unwrap();
//! assert_eq!(workflow.jobs["build"].steps[0].id, "__run");
//!
//! // Mistakes come back located.
//! let bad = "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    needs: biuld\n    steps: [{run: make}]\n  build:\n    runs-on: ubuntu-latest\n    steps: [{run: make}]\n";
//! let parsed = ci_config::github::parse_workflow("ci.yml", bad);
//! let d = &parsed.diagnostics[0];
//! assert_eq!((d.line(), d.column()), (5, 12));
//! assert_eq!(d.message, "Job 'test' depends on unknown job 'biuld'.");
//! eprintln!("{}", d.render(bad, false)); // rustc-style, with the line and a caret
//! ```

pub mod circleci;
pub mod cycle;
pub mod diagnostic;
pub mod expr;
pub mod github;
pub mod gitlab;
mod load;
pub mod model;
mod reader;
pub mod span;
pub mod template;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use gitlab::Facts;
pub use load::{load, LoadOptions, Loaded};
pub use model::{Dialect, Job, Step, StepAction, Workflow};
pub use span::{Position, Span};
pub use template::Template;

use std::path::Path;

/// Guesses the dialect of a file from its path, then from its top-level keys.
pub fn detect_dialect(path: &str, src: &str) -> Dialect {
    let normalized = path.replace('\\', "/");
    let file = Path::new(&normalized)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    if normalized.contains(".github/workflows/") {
        return Dialect::GitHubActions;
    }
    if matches!(file, "action.yml" | "action.yaml") {
        return Dialect::GitHubAction;
    }
    if file.ends_with(".gitlab-ci.yml") || file.ends_with(".gitlab-ci.yaml") {
        return Dialect::GitLabCi;
    }
    if normalized.ends_with(".circleci/config.yml") || normalized.ends_with(".circleci/config.yaml")
    {
        return Dialect::CircleCi;
    }
    let top_keys: Vec<&str> = src
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && !l.is_empty())
        .filter_map(|l| l.split(':').next())
        .map(|k| k.trim().trim_matches(['"', '\'']))
        .collect();
    let has = |k: &str| top_keys.contains(&k);
    if has("runs") && !has("jobs") {
        Dialect::GitHubAction
    } else if has("version") && (has("workflows") || has("orbs") || has("executors")) {
        Dialect::CircleCi
    } else if has("stages")
        || (!has("on") && (has("include") || (!has("jobs") && has_gitlab_job(src))))
    {
        Dialect::GitLabCi
    } else {
        Dialect::GitHubActions
    }
}

/// Whether a top-level mapping holds a key only GitLab jobs have (`script:`, `extends:`,
/// `trigger:`, `stage:`), read off the lines indented once.
fn has_gitlab_job(src: &str) -> bool {
    src.lines().any(|l| {
        let trimmed = l.trim_start();
        let indent = l.len() - trimmed.len();
        (1..=4).contains(&indent)
            && ["script:", "extends:", "trigger:", "stage:"]
                .iter()
                .any(|k| trimmed.starts_with(k))
    })
}

/// Checks one file of any dialect and returns its diagnostics (GitLab local includes are read
/// relative to the file's directory). CircleCI, without a frontend yet, produces one
/// `unsupported` error.
pub fn lint(path: &str, src: &str) -> Vec<Diagnostic> {
    lint_with(path, src, &NoWorkflows)
}

/// A resolver that knows no workflows: calls of reusable workflows are not followed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWorkflows;

impl github::WorkflowResolver for NoWorkflows {
    fn resolve(&self, _uses: &str) -> Option<String> {
        None
    }
}

/// Like [`lint`], and checks reusable-workflow calls against what `resolver` supplies.
pub fn lint_with(
    path: &str,
    src: &str,
    resolver: &dyn github::WorkflowResolver,
) -> Vec<Diagnostic> {
    lint_as(path, src, resolver, None)
}

/// Like [`lint_with`], reading the file as `dialect` (`None`: detected).
pub fn lint_as(
    path: &str,
    src: &str,
    resolver: &dyn github::WorkflowResolver,
    dialect: Option<Dialect>,
) -> Vec<Diagnostic> {
    let root = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    lint_including(
        path,
        src,
        resolver,
        &gitlab::LocalIncludes::new(root),
        dialect,
    )
}

/// [`lint_as`] with GitLab includes read through `includes` (which may fetch).
pub fn lint_including(
    path: &str,
    src: &str,
    resolver: &dyn github::WorkflowResolver,
    includes: &dyn gitlab::Includes,
    dialect: Option<Dialect>,
) -> Vec<Diagnostic> {
    match dialect.unwrap_or_else(|| detect_dialect(path, src)) {
        // An action's metadata is not a workflow: its own reader.
        Dialect::GitHubAction => github::parse_action(path, src).diagnostics,
        dialect => {
            let options = LoadOptions {
                dialect: Some(dialect),
                includes,
                workflows: Some(resolver),
                circleci: None,
            };
            load(path, src, &options).diagnostics
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_is_detected_by_path_then_shape() {
        assert_eq!(
            detect_dialect(".github/workflows/ci.yml", ""),
            Dialect::GitHubActions
        );
        assert_eq!(detect_dialect("x/action.yaml", ""), Dialect::GitHubAction);
        assert_eq!(detect_dialect(".gitlab-ci.yml", ""), Dialect::GitLabCi);
        // By shape, whatever the file is called.
        let gitlab = "build:\n  script: make\n";
        assert_eq!(detect_dialect("ci/build.yml", gitlab), Dialect::GitLabCi);
        let github = "on: push\njobs:\n  build:\n    runs-on: x\n    steps: [{run: make}]\n";
        assert_eq!(
            detect_dialect("ci/build.yml", github),
            Dialect::GitHubActions
        );
        assert_eq!(
            detect_dialect("a/.circleci/config.yml", ""),
            Dialect::CircleCi
        );
        assert_eq!(
            detect_dialect("x.yml", "name: a\nruns:\n  using: composite\n"),
            Dialect::GitHubAction
        );
        assert_eq!(detect_dialect("x.yml", "stages: [a]\n"), Dialect::GitLabCi);
        assert_eq!(
            detect_dialect("x.yml", "on: push\njobs: {}\n"),
            Dialect::GitHubActions
        );
    }
}
