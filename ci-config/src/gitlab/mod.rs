//! The GitLab CI frontend: `.gitlab-ci.yml` → the dialect-neutral [`Workflow`], like GitLab
//! builds a pipeline: `include:` (local files and globs) merged first, then `extends:` (deep
//! merge, several parents, several levels), `!reference` tags, `default:` and the legacy
//! top-level defaults, hidden jobs dropped; `rules:if` compiled into the shared expression
//! tree ([`rules`]); variables expanded as GitLab does ([`vars`]).
//!
//! Run-time facts (variables, changed files, existing files) decide `rules`/`only`/`except`:
//! [`resolve`] turns the parsed pipeline into the jobs that run.

mod compose;
mod frontend;
mod include;
pub mod rules;
pub mod vars;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diagnostic::Diagnostic;
use crate::diagnostic::Parsed;
use crate::expr::{self, Contexts, Expr, Value};
use crate::model::{AllowFailure, Env, StepAction, Var, When, Workflow};

pub use crate::model::Cache;

pub use crate::expr::{regex, split_regex};
pub use compose::{to_yaml, Includes, LocalIncludes, NoIncludes, RemoteInclude, Unfetched};

/// A parsed `.gitlab-ci.yml`: the lowered workflow (every job, as written) plus what GitLab
/// decides before a pipeline is created — `workflow:rules` and each job's `rules`/`only`/
/// `except` — which [`resolve`] applies with the facts of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The lowered workflow.
    pub workflow: Workflow,
    /// `workflow: rules`.
    pub rules: Vec<Rule>,
    /// Each job's selection rules, by job id.
    pub jobs: IndexMap<String, JobRules>,
}

/// What decides whether a job is in a pipeline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobRules {
    /// `rules:`
    pub rules: Vec<Rule>,
    /// `only:`
    pub only: Option<RefFilter>,
    /// `except:`
    pub except: Option<RefFilter>,
}

/// A variable definition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variable {
    /// The value.
    pub value: String,
    /// `expand: false` keeps `$` references as written.
    pub expand: bool,
    /// `description:` (global variables).
    pub description: Option<String>,
    /// `options:` (global variables).
    pub options: Vec<String>,
}

/// A job's image or service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    /// Image reference.
    pub name: String,
    /// `entrypoint:`
    pub entrypoint: Vec<String>,
    /// `command:` (services).
    pub command: Vec<String>,
    /// `alias:` (services).
    pub alias: Option<String>,
    /// `variables:` (services).
    pub variables: IndexMap<String, String>,
}

/// One `rules:` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    /// `if:` as written and compiled.
    pub condition: Option<(String, Expr)>,
    /// `changes:` globs.
    pub changes: Vec<String>,
    /// `exists:` globs.
    pub exists: Vec<String>,
    /// `when:`
    pub when: Option<When>,
    /// `start_in:` (with `when: delayed`).
    pub start_in: Option<String>,
    /// `allow_failure:`
    pub allow_failure: Option<AllowFailure>,
    /// `variables:`
    pub variables: IndexMap<String, String>,
}

/// `only:`/`except:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RefFilter {
    /// `refs:` (branch names, `/regex/`, `branches`, `tags`, `merge_requests`, …).
    pub refs: Vec<String>,
    /// `variables:` conditions.
    pub variables: Vec<(String, Expr)>,
    /// `changes:` globs.
    pub changes: Vec<String>,
}

/// `artifacts:` as written (lowered into an upload step).
#[derive(Debug, Clone, PartialEq, Default)]
struct Artifacts {
    /// `name:`
    pub name: Option<String>,
    /// `paths:`
    pub paths: Vec<String>,
    /// `exclude:`
    pub exclude: Vec<String>,
    /// `untracked:`
    pub untracked: bool,
    /// `when:` (`on_success` default, `on_failure`, `always`).
    pub when: When,
    /// `expire_in:`
    pub expire_in: Option<String>,
    /// `reports: dotenv`
    pub dotenv: Vec<String>,
    /// `reports: junit`
    pub junit: Vec<String>,
}

/// A job as written, before it is lowered into the workflow model.
#[derive(Debug, Clone, PartialEq, Default)]
struct GitLabJob {
    /// `before_script:` (nested lists flattened).
    pub before_script: Vec<String>,
    /// `script:`
    pub script: Vec<String>,
    /// `after_script:`
    pub after_script: Vec<String>,
    /// `image:`
    pub image: Option<Image>,
    /// `services:`
    pub services: Vec<Image>,
    /// Job `variables:`.
    pub variables: IndexMap<String, Variable>,
    /// Which global variables the job inherits (`inherit: variables`); `None`: all.
    pub inherit_variables: Option<Vec<String>>,
    /// `rules:`
    pub rules: Vec<Rule>,
    /// `only:`
    pub only: Option<RefFilter>,
    /// `except:`
    pub except: Option<RefFilter>,
    /// `dependencies:`; `None`: every job of earlier stages.
    pub dependencies: Option<Vec<String>>,
    /// `start_in:`
    pub start_in: Option<String>,
    /// `timeout:` in seconds.
    pub timeout: Option<u64>,
    /// `artifacts:`
    pub artifacts: Option<Artifacts>,
    /// `cache:`
    pub cache: Vec<Cache>,
    /// `interruptible:`
    pub interruptible: bool,
    /// `resource_group:`
    pub resource_group: Option<String>,
    /// `environment:` (name, url, action, deployment tier).
    pub environment: Option<crate::model::Environment>,
    /// `coverage:` regex.
    pub coverage: Option<String>,
    /// `tags:`
    pub tags: Vec<String>,
}

/// Reads a `.gitlab-ci.yml`; local includes come from `includes`.
pub fn parse_pipeline(path: &str, src: &str, includes: &dyn Includes) -> Parsed<Pipeline> {
    frontend::parse(path, src, includes)
}

/// The merged configuration (includes, `extends`, `!reference` and defaults applied, hidden
/// jobs kept), as YAML — GitLab's "full configuration" view.
pub fn merged_yaml(
    path: &str,
    src: &str,
    includes: &dyn Includes,
) -> Result<String, Vec<Diagnostic>> {
    frontend::merged(path, src, includes).map(|node| to_yaml(&node))
}

/// Parses a duration as GitLab writes them (`1h 30m`, `90 minutes`, `2 days`, `45`) into
/// seconds.
pub fn duration_secs(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut number: Option<f64> = None;
    let mut any = false;
    let words = text
        .replace(',', " ")
        .split_whitespace()
        .flat_map(|w| {
            // `1h30m` → `1 h 30 m`
            let mut parts = Vec::new();
            let mut cur = String::new();
            let mut digit = None;
            for c in w.chars() {
                let d = c.is_ascii_digit() || c == '.';
                if digit.is_some_and(|p| p != d) {
                    parts.push(std::mem::take(&mut cur));
                }
                digit = Some(d);
                cur.push(c);
            }
            parts.push(cur);
            parts
        })
        .collect::<Vec<_>>();
    for w in words {
        if let Ok(n) = w.parse::<f64>() {
            number = Some(n);
            continue;
        }
        let unit = match w.trim_end_matches('s') {
            "sec" | "second" | "" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hr" | "hour" => 3600.0,
            "d" | "day" => 86_400.0,
            "w" | "wk" | "week" => 604_800.0,
            "mo" | "month" => 2_592_000.0,
            "y" | "yr" | "year" => 31_536_000.0,
            _ if w == "s" => 1.0,
            _ => return None,
        };
        total = total.saturating_add((number.take()? * unit) as u64);
        any = true;
    }
    if number.is_some() {
        return None;
    }
    any.then_some(total)
}

/// What `rules`, `only` and `except` are decided on.
pub struct Facts<'a> {
    /// Every variable (predefined `CI_*`, global, pipeline); jobs add their own.
    pub variables: &'a IndexMap<String, String>,
    /// Paths changed by the push (`None`: unknown — `changes:` is then true, as GitLab does
    /// for pipelines without a diff).
    pub changed: Option<&'a [String]>,
    /// Whether a glob matches a file in the repository.
    pub exists: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("variables", &self.variables.len())
            .field("changed", &self.changed.map(<[String]>::len))
            .finish_non_exhaustive()
    }
}

fn variables_context(vars: &IndexMap<String, String>) -> Contexts {
    let map: IndexMap<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::string(v.as_str())))
        .collect();
    let mut c = Contexts::new();
    c.insert("variables", Value::Object(std::sync::Arc::new(map)));
    c
}

fn glob_matches(patterns: &[String], paths: &[String]) -> bool {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        if let Ok(g) = globset::GlobBuilder::new(p.trim_start_matches("./"))
            .literal_separator(true)
            .build()
        {
            b.add(g);
        }
    }
    let Ok(set) = b.build() else { return false };
    paths.iter().any(|p| set.is_match(p))
}

impl Rule {
    /// Whether this rule matches (every clause it has must hold).
    pub fn matches(
        &self,
        facts: &Facts<'_>,
        job_vars: &IndexMap<String, String>,
    ) -> Result<bool, String> {
        if let Some((source, expr)) = &self.condition {
            let mut all = facts.variables.clone();
            all.extend(job_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            let ctx = variables_context(&all);
            let v = expr::evaluate(expr, source, &ctx).map_err(|e| format!("if: {source}: {e}"))?;
            if !v.is_truthy() {
                return Ok(false);
            }
        }
        if !self.changes.is_empty() {
            if let Some(changed) = facts.changed {
                if !glob_matches(&self.changes, changed) {
                    return Ok(false);
                }
            }
        }
        if !self.exists.is_empty() {
            // Paths may name variables (`$DIR/Dockerfile`), the job's winning.
            let lookup = |name: &str| {
                job_vars
                    .get(name)
                    .or_else(|| facts.variables.get(name))
                    .cloned()
            };
            if !self
                .exists
                .iter()
                .any(|g| (facts.exists)(&vars::expand(g, &lookup)))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Whether a ref filter (`only`/`except`) matches.
fn filter_matches(filter: &RefFilter, facts: &Facts<'_>) -> Result<bool, String> {
    let var = |k: &str| facts.variables.get(k).cloned().unwrap_or_default();
    if !filter.refs.is_empty() {
        let branch = var("CI_COMMIT_BRANCH");
        let tag = var("CI_COMMIT_TAG");
        let source = var("CI_PIPELINE_SOURCE");
        let name = if tag.is_empty() {
            branch.clone()
        } else {
            tag.clone()
        };
        let any = filter.refs.iter().any(|r| match r.as_str() {
            "branches" => !branch.is_empty(),
            "tags" => !tag.is_empty(),
            "merge_requests" => source == "merge_request_event",
            "pushes" => source == "push",
            "schedules" => source == "schedule",
            "web" => source == "web",
            "api" | "triggers" | "pipelines" | "external" | "chat" => source == *r,
            pattern => match split_regex(pattern) {
                Some((re, flags)) => regex(&re, &flags).is_ok_and(|re| re.is_match(&name)),
                None => pattern == name,
            },
        });
        if !any {
            return Ok(false);
        }
    }
    for (source, expr) in &filter.variables {
        let ctx = variables_context(facts.variables);
        if !expr::evaluate(expr, source, &ctx)
            .map_err(|e| format!("{source}: {e}"))?
            .is_truthy()
        {
            return Ok(false);
        }
    }
    if !filter.changes.is_empty() {
        if let Some(changed) = facts.changed {
            if !glob_matches(&filter.changes, changed) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Why a pipeline has no jobs to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// `workflow: rules` refused the pipeline.
    #[error("the pipeline is not created: workflow:rules {0}")]
    Filtered(String),
    /// A rule could not be evaluated, or a needed job is not in the pipeline.
    #[error("{0}")]
    Invalid(String),
}

/// Decides `workflow:rules`, each job's `rules` (or `only`/`except`) with the facts: jobs that
/// do not run are removed from the workflow; the others get the `when`, `allow_failure`,
/// `start_in` and variables of their matching rule. Returns the pipeline's variables from
/// `workflow:rules`.
pub fn resolve(
    pipeline: &mut Pipeline,
    facts: &Facts<'_>,
) -> Result<IndexMap<String, String>, ResolveError> {
    let mut pipeline_vars = IndexMap::new();
    if !pipeline.rules.is_empty() {
        let mut matched = false;
        for rule in &pipeline.rules {
            if rule
                .matches(facts, &IndexMap::new())
                .map_err(ResolveError::Invalid)?
            {
                if rule.when == Some(When::Never) {
                    return Err(ResolveError::Filtered(
                        "matched a `when: never` rule".into(),
                    ));
                }
                pipeline_vars.extend(rule.variables.clone());
                matched = true;
                break;
            }
        }
        if !matched {
            return Err(ResolveError::Filtered("matched no rule".into()));
        }
    }
    let workflow = &mut pipeline.workflow;
    let mut drop = Vec::new();
    for (id, job) in workflow.jobs.iter_mut() {
        let Some(selection) = pipeline.jobs.get(id) else {
            continue;
        };
        let job_vars: IndexMap<String, String> = match &job.env {
            Env::Vars(vars) => vars
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            _ => IndexMap::new(),
        };
        if !selection.rules.is_empty() {
            let mut chosen = None;
            for rule in &selection.rules {
                if rule
                    .matches(facts, &job_vars)
                    .map_err(|e| ResolveError::Invalid(format!("job '{id}': {e}")))?
                {
                    chosen = Some(rule.clone());
                    break;
                }
            }
            match chosen {
                None => drop.push(id.clone()),
                Some(rule) if rule.when == Some(When::Never) => drop.push(id.clone()),
                Some(rule) => {
                    if let Some(w) = rule.when {
                        job.when = w;
                        if w == When::Manual && rule.allow_failure.is_none() {
                            // Unlike the `when: manual` keyword, a manual job made by a rule
                            // fails the pipeline unless the rule allows it.
                            job.allow_failure = AllowFailure::default();
                        }
                    }
                    if let Some(a) = rule.allow_failure {
                        job.allow_failure = a;
                    }
                    if let Some(s) = rule.start_in.as_deref().and_then(duration_secs) {
                        job.start_in = Some(s);
                    }
                    if !rule.variables.is_empty() {
                        if !matches!(job.env, Env::Vars(_)) {
                            job.env = Env::Vars(IndexMap::new());
                        }
                        if let Env::Vars(vars) = &mut job.env {
                            for (k, v) in rule.variables {
                                vars.insert(
                                    k,
                                    Var {
                                        value: v,
                                        expand: true,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            continue;
        }
        let only_ok = match &selection.only {
            Some(f) => filter_matches(f, facts).map_err(ResolveError::Invalid)?,
            None => true,
        };
        let except_hit = match &selection.except {
            Some(f) => filter_matches(f, facts).map_err(ResolveError::Invalid)?,
            None => false,
        };
        if !only_ok || except_hit || job.when == When::Never {
            drop.push(id.clone());
        }
    }
    for id in &drop {
        workflow.jobs.shift_remove(id);
        pipeline.jobs.shift_remove(id);
    }
    // Needs on removed jobs: optional ones go, others are an error (as GitLab says).
    let present: Vec<String> = workflow.jobs.keys().cloned().collect();
    for (id, job) in workflow.jobs.iter_mut() {
        let mut problems = Vec::new();
        job.needs.retain(|n| {
            let here = present.contains(&n.job);
            if !here && !n.optional {
                problems.push(n.job.clone());
            }
            here
        });
        if let Some(p) = problems.first() {
            return Err(ResolveError::Invalid(format!(
                "job '{id}' needs '{p}', which is not in the pipeline (add `optional: true` to the need)"
            )));
        }
        for step in &mut job.steps {
            if let StepAction::ArtifactDownload { from: Some(from) } = &mut step.action {
                from.retain(|d| present.contains(d));
            }
        }
    }
    Ok(pipeline_vars)
}

/// A local include resolver over a directory (the repository root).
pub fn local_includes(root: impl Into<PathBuf>) -> LocalIncludes {
    LocalIncludes::new(root)
}

/// Whether `path` looks like a GitLab CI file.
pub fn is_gitlab_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == ".gitlab-ci.yml" || n == ".gitlab-ci.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_gitlab_writes_them() {
        assert_eq!(duration_secs("45"), Some(45));
        assert_eq!(duration_secs("1h 30m"), Some(5400));
        assert_eq!(duration_secs("1h30m"), Some(5400));
        assert_eq!(duration_secs("2 days"), Some(172_800));
        assert_eq!(duration_secs("10 minutes"), Some(600));
        assert_eq!(duration_secs("3 mins 4 sec"), Some(184));
        assert_eq!(duration_secs("soon"), None);
        assert_eq!(duration_secs("5"), Some(5));
        assert_eq!(
            duration_secs("99999999999999999999 years 9 years"),
            Some(u64::MAX)
        );
    }
}
