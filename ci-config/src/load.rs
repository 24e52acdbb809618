//! One entry point for every dialect: a CI file's text → the lowered [`Workflow`]s it holds,
//! plus what decides, for a given event, which of their jobs are in a run (GitLab's `rules`,
//! `only`/`except` and `workflow:rules`). The CLI and the engine both read files through
//! [`load`]; nothing else dispatches on the dialect.

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, Parsed};
use crate::github::WorkflowResolver;
use crate::gitlab::{self, Facts, Includes, NoIncludes, ResolveError};
use crate::model::{Dialect, Workflow};
use crate::span::Source;

/// How to read a file.
#[derive(Clone, Copy)]
pub struct LoadOptions<'a> {
    /// The dialect; `None`: detected from the path and the top-level keys.
    pub dialect: Option<Dialect>,
    /// Where GitLab `include:` files come from.
    pub includes: &'a dyn Includes,
    /// Where called reusable workflows come from, to check calls against their inputs;
    /// `None`: calls are not checked while loading.
    pub workflows: Option<&'a dyn WorkflowResolver>,
    /// The pipeline a CircleCI configuration is compiled for (its values decide `when`,
    /// filters and `<< pipeline.… >>`); `None`: CircleCI's local defaults.
    pub circleci: Option<&'a crate::circleci::Pipeline>,
}

impl std::fmt::Debug for LoadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        LoadOptions {
            dialect: None,
            includes: &NoIncludes,
            workflows: None,
            circleci: None,
        }
    }
}

/// A file read as its dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The dialect it was read as.
    pub dialect: Dialect,
    /// The workflows the file holds, in order (one for GitHub and GitLab files).
    pub workflows: Vec<Workflow>,
    selection: Selection,
}

/// What decides which jobs of a loaded file are in a run.
#[derive(Debug, Clone, PartialEq)]
enum Selection {
    /// Every job (the event filters of GitHub are the triggers of the workflow).
    All,
    /// GitLab's rules.
    GitLab {
        rules: Vec<gitlab::Rule>,
        jobs: IndexMap<String, gitlab::JobRules>,
    },
}

impl Loaded {
    /// Whether jobs are chosen per event by rules ([`Loaded::select`] needs real facts).
    pub fn has_rules(&self) -> bool {
        matches!(self.selection, Selection::GitLab { .. })
    }

    /// Decides with an event's facts which jobs are in the run: jobs that are not are removed,
    /// the others get what their matching rule says. `facts.variables` are every variable the
    /// rules see (predefined, the workflow's `env` expanded, the run's own). Returns the run's
    /// variables that the rules add (GitLab `workflow:rules:variables`). Without rules this
    /// changes nothing.
    pub fn select(&mut self, facts: &Facts<'_>) -> Result<IndexMap<String, String>, ResolveError> {
        let Selection::GitLab { rules, jobs } = &self.selection else {
            return Ok(IndexMap::new());
        };
        let Some(workflow) = self.workflows.pop() else {
            return Ok(IndexMap::new());
        };
        let mut pipeline = gitlab::Pipeline {
            workflow,
            rules: rules.clone(),
            jobs: jobs.clone(),
        };
        let result = gitlab::resolve(&mut pipeline, facts);
        self.workflows.push(pipeline.workflow);
        result
    }
}

/// Reads a CI file of any dialect into the lowered model, with every diagnostic.
pub fn load(path: &str, src: &str, options: &LoadOptions<'_>) -> Parsed<Loaded> {
    let dialect = options
        .dialect
        .unwrap_or_else(|| crate::detect_dialect(path, src));
    let one = |parsed: Parsed<Workflow>| Parsed {
        value: parsed.value.map(|w| Loaded {
            dialect,
            workflows: vec![w],
            selection: Selection::All,
        }),
        diagnostics: parsed.diagnostics,
    };
    match dialect {
        Dialect::GitHubActions => one(match options.workflows {
            Some(resolver) => crate::github::parse_workflow_with(path, src, resolver),
            None => crate::github::parse_workflow(path, src),
        }),
        Dialect::GitLabCi => {
            let parsed = gitlab::parse_pipeline(path, src, options.includes);
            Parsed {
                value: parsed.value.map(|p| Loaded {
                    dialect,
                    workflows: vec![p.workflow],
                    selection: Selection::GitLab {
                        rules: p.rules,
                        jobs: p.jobs,
                    },
                }),
                diagnostics: parsed.diagnostics,
            }
        }
        Dialect::CircleCi => {
            let default = crate::circleci::Pipeline::default();
            let parsed =
                crate::circleci::parse_config(path, src, options.circleci.unwrap_or(&default));
            Parsed {
                value: parsed.value.map(|workflows| Loaded {
                    dialect,
                    workflows,
                    selection: Selection::All,
                }),
                diagnostics: parsed.diagnostics,
            }
        }
        other => {
            let span = Source::new(src).span(0, 0);
            let what = match other {
                Dialect::GitHubAction => "an action's metadata (action.yml) is not a workflow",
                _ => "files of this dialect are not supported yet",
            };
            Parsed {
                value: None,
                diagnostics: vec![Diagnostic::error(
                    path,
                    span,
                    "unsupported",
                    format!("{}: {what}", other.name()),
                )
                .with_help(
                    "Gantry reads GitHub Actions workflows, action.yml files and GitLab CI \
                     pipelines today",
                )],
            }
        }
    }
}
