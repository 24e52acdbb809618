//! The environment of a run's jobs: which runner table of `ci-vcs` the workflow's dialect
//! gets, the run's own variables, and shell-style variables ([`Env::Vars`]) expanded in
//! order. The tables themselves live in `ci-vcs` (`ci_vcs::jobenv`, `Event::gitlab_variables`).

use std::path::Path;

use ci_config::model::{Dialect, Var};
use ci_vcs::Event;
use indexmap::IndexMap;

/// Which runner environment a workflow's jobs see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `GITHUB_*`/`RUNNER_*` for every step, file commands, the `vars` context.
    GitHub,
    /// Predefined `CI_*` variables; run variables are environment variables and override
    /// every definition.
    GitLab,
    /// `CIRCLE_*` variables; otherwise as GitLab (no file or workflow commands; run
    /// variables override).
    CircleCi,
}

impl Table {
    /// The table of a dialect.
    pub fn of(dialect: Dialect) -> Table {
        match dialect {
            Dialect::GitLabCi => Table::GitLab,
            Dialect::CircleCi => Table::CircleCi,
            _ => Table::GitHub,
        }
    }

    /// Whether steps see plain environment variables only (no GitHub file commands or
    /// expression contexts), and the run's variables win over definitions.
    pub fn shell_style(self) -> bool {
        self != Table::GitHub
    }

    /// The predefined run-level variables of an event (GitHub's live in the contexts).
    pub fn run_variables(self, event: &Event, root: &Path) -> IndexMap<String, String> {
        match self {
            Table::GitHub => IndexMap::new(),
            Table::GitLab => event.gitlab_variables(&ci_vcs::RunInfo {
                workspace: root.to_string_lossy().into_owned(),
                server_url: "https://gitlab.com".into(),
                api_url: "https://gitlab.com/api/v4".into(),
                ..ci_vcs::RunInfo::default()
            }),
            Table::CircleCi => ci_vcs::jobenv::circleci_run_variables(event),
        }
    }
}

/// Variables a run gives its jobs besides their own definitions.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunVars {
    /// Predefined for the run; every job starts from them.
    pub predefined: IndexMap<String, String>,
    /// Added by the run's rules after the workflow's own variables.
    pub from_rules: IndexMap<String, String>,
    /// The run's variables (and secrets) where they are environment variables: they win
    /// over every definition.
    pub overrides: IndexMap<String, String>,
}

/// Shell-style expansion where `overrides` win over `vars`; `HOME` and `PATH` come from the
/// engine's environment when nothing defines them.
pub(crate) fn expand(
    text: &str,
    vars: &IndexMap<String, String>,
    overrides: &IndexMap<String, String>,
) -> String {
    ci_config::gitlab::vars::expand(text, &|name| {
        overrides
            .get(name)
            .or_else(|| vars.get(name))
            .cloned()
            .or_else(|| {
                std::env::var(name)
                    .ok()
                    .filter(|_| name == "HOME" || name == "PATH")
            })
    })
}

/// Adds `vars` to `into` in order, each expanded against what came before; only the names
/// in `keep`, when given.
pub(crate) fn add_vars(
    vars: &IndexMap<String, Var>,
    keep: Option<&[String]>,
    into: &mut IndexMap<String, String>,
    overrides: &IndexMap<String, String>,
) {
    for (k, v) in vars {
        if keep.is_some_and(|keep| !keep.contains(k)) {
            continue;
        }
        let value = if v.expand {
            expand(&v.value, into, overrides)
        } else {
            v.value.clone()
        };
        into.insert(k.clone(), value);
    }
}
