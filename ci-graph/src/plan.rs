//! `Workflow` + run facts → `Plan`: job instances (matrix and `parallel` expanded), resolved
//! needs, stage ordering, and the instance DAG.

use std::collections::HashMap;
use std::sync::Arc;

use ci_config::expr::{self, Contexts, EvalContext, Expression, ParseOptions, Value};
use ci_config::model::{AllowFailure, Job, Matrix, Parallel, Retry, Strategy, When, Workflow};
use ci_config::yaml::{self as yaml, Node};
use ci_config::{Diagnostic, Span, Template};
use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::matrix::{self, Combination, MatrixSpec};

/// What is known about the run when planning: the contexts expressions may read at plan time
/// (`github`, `inputs`, `vars`, `env` …). `needs` outputs are not known yet; a matrix that
/// reads them is expanded later ([`crate::Scheduler::expand`]).
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// Contexts by name.
    pub contexts: Contexts,
}

/// A concurrency group an instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyGroup {
    /// The evaluated group key.
    pub group: String,
    /// Whether a newer run cancels the one in progress.
    pub cancel_in_progress: bool,
}

/// One schedulable unit: a job, or one combination of its matrix / `parallel`.
#[derive(Debug, Clone)]
pub struct JobInstance {
    /// Stable, unique id: the job id, plus the combination as GitHub shows it
    /// (`build (ubuntu-latest, 18)`) or `job 2/3` for `parallel`.
    pub id: String,
    /// The job it comes from.
    pub job: String,
    /// Index of the job in the workflow (siblings share it).
    pub job_index: usize,
    /// The display name.
    pub name: String,
    /// The matrix values, when the job has a matrix.
    pub matrix: Option<Combination>,
    /// Instances this one waits for.
    pub needs: Vec<usize>,
    /// Stage position (0 without stages).
    pub stage: usize,
    /// The condition to evaluate when its needs are done (GitHub's effective `if`).
    pub condition: String,
    /// GitLab `when`.
    pub when: When,
    /// Tolerated failures.
    pub allow_failure: AllowFailure,
    /// Job-level `continue-on-error` (evaluated for this instance).
    pub continue_on_error: bool,
    /// Retries.
    pub retry: Retry,
    /// Concurrency group, when set.
    pub concurrency: Option<ConcurrencyGroup>,
    /// Most instances of this job running at once (`max-parallel`).
    pub max_parallel: Option<usize>,
    /// Whether a failing instance cancels its siblings (`fail-fast`).
    pub fail_fast: bool,
    /// A placeholder whose matrix waits for its needs' outputs.
    pub deferred_matrix: Option<Matrix>,
}

/// The planned run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every instance, in definition order.
    pub instances: Vec<JobInstance>,
    /// Job id → its instances.
    pub jobs: IndexMap<String, Vec<usize>>,
    /// Stage names (empty without stages).
    pub stages: Vec<String>,
    /// Job id → the jobs it needs (for re-wiring deferred expansions).
    pub(crate) job_needs: IndexMap<String, Vec<String>>,
    /// Contexts used to evaluate names and groups of later expansions.
    pub(crate) facts: RunFacts,
}

impl Plan {
    /// Plans `workflow`. Errors (unknown needs, cycles, bad matrices) come back located.
    pub fn new(workflow: &Workflow, facts: &RunFacts) -> Result<Plan, Vec<Diagnostic>> {
        let mut errors = check_needs(workflow);
        if !errors.is_empty() {
            return Err(errors);
        }
        let stage_of = |job: &Job| -> usize {
            job.stage
                .as_ref()
                .and_then(|s| workflow.stages.iter().position(|x| x == s))
                .unwrap_or(0)
        };
        let mut plan = Plan {
            instances: Vec::with_capacity(workflow.jobs.len()),
            jobs: IndexMap::with_capacity(workflow.jobs.len()),
            stages: workflow.stages.clone(),
            job_needs: IndexMap::with_capacity(workflow.jobs.len()),
            facts: facts.clone(),
        };
        let names: Vec<&str> = facts.contexts.names().collect();
        for (job_index, job) in workflow.jobs.values().enumerate() {
            let stage = stage_of(job);
            let mut needed: Vec<String> = job.needs.iter().map(|n| n.job.clone()).collect();
            if !workflow.stages.is_empty() && !job.needs_declared {
                needed = workflow
                    .jobs
                    .values()
                    .filter(|other| stage_of(other) < stage)
                    .map(|other| other.id.clone())
                    .collect();
            }
            plan.job_needs.insert(job.id.clone(), needed);
            // Needs are wired once every job has its instances (a job may need a later one).
            let needs = Vec::new();
            match combinations(job, facts, &names) {
                Ok(Expansion::Combinations(combos)) => {
                    let ids: Vec<usize> = combos
                        .into_iter()
                        .map(|(suffix, combo)| {
                            plan.push(job, job_index, stage, needs.clone(), suffix, combo)
                        })
                        .collect();
                    plan.jobs.insert(job.id.clone(), ids);
                }
                Ok(Expansion::Deferred(matrix)) => {
                    let i = plan.push(job, job_index, stage, needs, None, None);
                    plan.instances[i].deferred_matrix = Some(*matrix);
                    plan.jobs.insert(job.id.clone(), vec![i]);
                }
                Err(message) => errors.push(Diagnostic::error(
                    &workflow.path,
                    job.span,
                    "matrix",
                    message,
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // GitLab `needs: [{job, parallel: {matrix: …}}]` waits for the matching instances only.
        let filters: HashMap<(&str, &str), &[IndexMap<String, String>]> = workflow
            .jobs
            .values()
            .flat_map(|j| {
                j.needs
                    .iter()
                    .filter(|n| !n.matrix.is_empty())
                    .map(move |n| ((j.id.as_str(), n.job.as_str()), n.matrix.as_slice()))
            })
            .collect();
        let mut problems = Vec::new();
        for i in 0..plan.instances.len() {
            let job = plan.instances[i].job.clone();
            // `$[[ matrix.KEY ]]` in a selector stands for this instance's own value.
            let own = plan.instances[i].matrix.clone();
            let value_of = |v: &str| -> String {
                let key = v
                    .strip_prefix("$[[")
                    .and_then(|r| r.strip_suffix("]]"))
                    .map(str::trim)
                    .and_then(|r| r.strip_prefix("matrix."));
                match (key, &own) {
                    (Some(k), Some(own)) => own.get(k.trim()).map(expr::render).unwrap_or_default(),
                    _ => v.to_owned(),
                }
            };
            let mut needs = Vec::new();
            for n in &plan.job_needs[&job] {
                let Some(entries) = filters.get(&(job.as_str(), n.as_str())) else {
                    needs.extend(plan.jobs[n].iter().copied());
                    continue;
                };
                let matching: Vec<usize> = plan.jobs[n]
                    .iter()
                    .copied()
                    .filter(|&m| {
                        entries.iter().any(|want| {
                            want.iter().all(|(k, v)| {
                                plan.instances[m]
                                    .matrix
                                    .as_ref()
                                    .and_then(|c| c.get(k))
                                    .is_some_and(|have| expr::render(have) == value_of(v))
                            })
                        })
                    })
                    .collect();
                if matching.is_empty() {
                    let span = workflow
                        .jobs
                        .get(&job)
                        .and_then(|j| j.needs.iter().find(|x| x.job == *n))
                        .map_or(Span::default(), |x| x.span);
                    problems.push(Diagnostic::error(
                        &workflow.path,
                        span,
                        "unknown-need",
                        format!(
                            "'{}' needs instances of '{n}' that its parallel:matrix does not have",
                            plan.instances[i].id
                        ),
                    ));
                }
                needs.extend(matching);
            }
            plan.instances[i].needs = needs;
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(plan)
    }

    /// Adds one instance; `suffix` distinguishes instances of a job.
    fn push(
        &mut self,
        job: &Job,
        job_index: usize,
        stage: usize,
        needs: Vec<usize>,
        suffix: Option<String>,
        combo: Option<Combination>,
    ) -> usize {
        let instance = instance(job, job_index, stage, needs, suffix, combo, &self.facts);
        self.instances.push(instance);
        self.instances.len() - 1
    }

    /// Replaces the deferred placeholder `index` by one instance per combination (its
    /// dependents then wait for all of them). Returns the new instance indices.
    pub(crate) fn expand_deferred(
        &mut self,
        index: usize,
        job: &Job,
        combos: Vec<Combination>,
    ) -> Vec<usize> {
        let template = &self.instances[index];
        let (job_index, stage, needs) =
            (template.job_index, template.stage, template.needs.clone());
        let new: Vec<usize> = combos
            .into_iter()
            .map(|combo| {
                let suffix = matrix::display_values(&combo);
                self.push(
                    job,
                    job_index,
                    stage,
                    needs.clone(),
                    Some(suffix),
                    Some(combo),
                )
            })
            .collect();
        for inst in &mut self.instances {
            if inst.needs.contains(&index) {
                inst.needs.retain(|&n| n != index);
                inst.needs.extend(&new);
            }
        }
        if let Some(list) = self.jobs.get_mut(&job.id) {
            *list = new.clone();
        }
        new
    }

    /// The instance DAG (edge: need → dependent), for exports and analyses.
    pub fn graph(&self) -> DiGraph<usize, ()> {
        let mut g = DiGraph::with_capacity(self.instances.len(), self.instances.len());
        let nodes: Vec<NodeIndex> = (0..self.instances.len()).map(|i| g.add_node(i)).collect();
        for (i, inst) in self.instances.iter().enumerate() {
            for &n in &inst.needs {
                g.add_edge(nodes[n], nodes[i], ());
            }
        }
        g
    }

    /// The instance with this id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.id == id)
    }
}

enum Expansion {
    /// (id suffix, matrix values) per instance; one `(None, None)` for a plain job.
    Combinations(Vec<(Option<String>, Option<Combination>)>),
    /// A matrix that reads `needs`: expanded once they finished.
    Deferred(Box<Matrix>),
}

fn combinations(job: &Job, facts: &RunFacts, names: &[&str]) -> Result<Expansion, String> {
    if let Some(parallel) = &job.parallel {
        return Ok(Expansion::Combinations(match parallel {
            Parallel::Count(n) => (1..=*n).map(|i| (Some(format!("{i}/{n}")), None)).collect(),
            Parallel::Matrix(entries) => matrix::expand_parallel_matrix(entries)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|c| {
                    let values: Vec<String> = c
                        .values()
                        .map(|v| v.to_display_string().into_owned())
                        .collect();
                    (Some(format!(": [{}]", values.join(", "))), Some(c))
                })
                .collect(),
        }));
    }
    let Some(Strategy {
        matrix: Some(m), ..
    }) = job.strategy.as_deref()
    else {
        return Ok(Expansion::Combinations(vec![(None, None)]));
    };
    if matrix_reads_needs(m) {
        return Ok(Expansion::Deferred(Box::new(m.clone())));
    }
    let spec = matrix_spec(m, &facts.contexts, names)?;
    let combos = spec.expand().map_err(|e| e.to_string())?;
    if combos.is_empty() {
        return Ok(Expansion::Combinations(vec![(None, None)]));
    }
    Ok(Expansion::Combinations(
        combos
            .into_iter()
            .map(|c| (Some(matrix::display_values(&c)), Some(c)))
            .collect(),
    ))
}

/// Whether a matrix reads `needs` anywhere (its expression, a key, a value, an include or
/// exclude entry): then it is expanded once the jobs it needs finished.
fn matrix_reads_needs(m: &Matrix) -> bool {
    fn node(n: &Node) -> bool {
        match &n.value {
            yaml::Value::String(s) if s.contains("${{") => text(s),
            yaml::Value::Seq(items) => items.iter().any(node),
            yaml::Value::Map(entries) => entries.iter().any(|(k, v)| node(k) || node(v)),
            _ => false,
        }
    }
    fn text(s: &str) -> bool {
        let source = ci_config::span::Source::new("");
        Template::parse(s, Span::default(), &source).is_ok_and(|t| reads_needs(&t))
    }
    match m {
        Matrix::Expr(t) => reads_needs(t),
        Matrix::Static {
            vectors,
            include,
            exclude,
        } => {
            vectors.iter().any(|(k, v)| text(k) || node(v))
                || include.as_ref().is_some_and(node)
                || exclude.as_ref().is_some_and(node)
        }
    }
}

/// A matrix evaluated against `contexts` (named `names`): an expression's value, or each
/// vector — keys may be expressions too — with its include and exclude entries.
pub fn matrix_spec(m: &Matrix, contexts: &Contexts, names: &[&str]) -> Result<MatrixSpec, String> {
    let options = ParseOptions {
        contexts: names,
        functions: &[],
    };
    Ok(match m {
        Matrix::Expr(t) => {
            let value =
                expr::evaluate_template(t, &options, contexts).map_err(|e| e.to_string())?;
            MatrixSpec::from_value(&value).map_err(|e| e.to_string())?
        }
        Matrix::Static {
            vectors,
            include,
            exclude,
        } => {
            let eval = |n: &Node| node_value(n, contexts, names);
            let mut spec = MatrixSpec::default();
            for (k, v) in vectors {
                let key = if k.contains("${{") {
                    let source = ci_config::span::Source::new("");
                    let t = Template::parse(k, Span::default(), &source)
                        .map_err(|_| format!("matrix key '{k}': an unclosed ${{{{"))?;
                    expr::render(
                        &expr::evaluate_template(&t, &options, contexts)
                            .map_err(|e| format!("matrix key '{k}': {e}"))?,
                    )
                } else {
                    k.clone()
                };
                match eval(v)? {
                    Value::Array(items) => {
                        spec.vectors.insert(key, items.as_ref().clone());
                    }
                    other => {
                        return Err(format!(
                            "Matrix vector '{key}' must be a list, found {}",
                            other.kind().name()
                        ))
                    }
                }
            }
            let entries = |n: &Option<Node>| -> Result<Vec<Combination>, String> {
                let Some(n) = n else { return Ok(Vec::new()) };
                match eval(n)? {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            Value::Object(map) => Ok(map.as_ref().clone()),
                            _ => Err("include/exclude entries must be mappings".to_owned()),
                        })
                        .collect(),
                    _ => Err("include/exclude must be a list of mappings".to_owned()),
                }
            };
            spec.include = entries(include)?;
            spec.exclude = entries(exclude)?;
            spec
        }
    })
}

fn reads_needs(t: &Template) -> bool {
    t.exprs().any(|(source, _)| {
        let all = ParseOptions {
            contexts: &[
                "github", "needs", "inputs", "vars", "env", "secrets", "matrix", "strategy",
            ],
            functions: &[],
        };
        Expression::parse(source, &all)
            .ok()
            .and_then(|e| {
                let mut found = false;
                e.tree()?.walk(&mut |n| {
                    if let expr::ExprKind::Context(name) = &n.kind {
                        found |= name.eq_ignore_ascii_case("needs");
                    }
                });
                Some(found)
            })
            .unwrap_or(false)
    })
}

/// A YAML node as an expression value, evaluating `${{ }}` strings with the plan-time
/// contexts (a string that cannot be evaluated yet stays as written).
pub fn node_value(node: &Node, contexts: &Contexts, names: &[&str]) -> Result<Value, String> {
    Ok(match &node.value {
        yaml::Value::Null => Value::Null,
        yaml::Value::Bool(b) => Value::Bool(*b),
        yaml::Value::Int(i) => Value::Number(*i as f64),
        yaml::Value::Float(f) => Value::Number(*f),
        yaml::Value::String(s) if s.contains("${{") => {
            let source = ci_config::span::Source::new("");
            match Template::parse(s, node.span, &source) {
                Ok(t) => {
                    let options = ParseOptions {
                        contexts: names,
                        functions: &[],
                    };
                    expr::evaluate_template(&t, &options, contexts)
                        .unwrap_or_else(|_| Value::string(s.as_str()))
                }
                Err(_) => Value::string(s.as_str()),
            }
        }
        yaml::Value::String(s) => Value::string(s.as_str()),
        yaml::Value::Seq(items) => Value::Array(Arc::new(
            items
                .iter()
                .map(|i| node_value(i, contexts, names))
                .collect::<Result<_, _>>()?,
        )),
        yaml::Value::Map(entries) => Value::Object(Arc::new(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.scalar_text().unwrap_or_default(),
                        node_value(v, contexts, names)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        )),
    })
}

/// Contexts for one instance: the run's, plus `matrix` and `strategy`.
struct InstanceContexts<'a> {
    facts: &'a Contexts,
    matrix: Value,
    strategy: Value,
}

impl EvalContext for InstanceContexts<'_> {
    fn context(&self, name: &str) -> Option<Value> {
        if name.eq_ignore_ascii_case("matrix") {
            Some(self.matrix.clone())
        } else if name.eq_ignore_ascii_case("strategy") {
            Some(self.strategy.clone())
        } else {
            self.facts.context(name)
        }
    }
}

/// `build (a, b)`, `shard 1/3`, and GitLab's `test: [aws, app]` (a suffix starting with `:`).
fn join_suffix(base: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(s) if s.starts_with(':') => format!("{base}{s}"),
        Some(s) => format!("{base} {s}"),
        None => base.to_owned(),
    }
}

fn instance(
    job: &Job,
    job_index: usize,
    stage: usize,
    needs: Vec<usize>,
    suffix: Option<String>,
    combo: Option<Combination>,
    facts: &RunFacts,
) -> JobInstance {
    let strategy = job.strategy.as_deref();
    let matrix_value = combo
        .as_ref()
        .map_or(Value::Null, |c| Value::Object(Arc::new(c.clone())));
    let ctx = InstanceContexts {
        facts: &facts.contexts,
        matrix: matrix_value,
        strategy: Value::Null,
    };
    let mut names: Vec<&str> = facts.contexts.names().collect();
    names.extend(["matrix", "strategy"]);
    let options = ParseOptions {
        contexts: &names,
        functions: &[],
    };
    let eval = |t: &Template| -> Option<Value> {
        if t.is_literal() {
            return Some(Value::string(t.raw.as_str()));
        }
        expr::evaluate_template(t, &options, &ctx).ok()
    };
    let eval_node = |n: &Node| -> Option<Value> {
        match &n.value {
            yaml::Value::String(s) => {
                let t = Template::parse(s, n.span, &ci_config::span::Source::new("")).ok()?;
                eval(&t)
            }
            _ => Some(Value::from_json(&n.to_json())),
        }
    };
    let custom_name = job.name.raw != job.id;
    let name = if custom_name && !job.name.is_literal() {
        eval(&job.name).map_or_else(|| job.name.raw.clone(), |v| expr::render(&v))
    } else {
        join_suffix(&job.name.raw, suffix.as_deref())
    };
    let id = join_suffix(&job.id, suffix.as_deref());
    let concurrency = job.concurrency.as_deref().map(|c| ConcurrencyGroup {
        group: eval(&c.group).map_or_else(|| c.group.raw.clone(), |v| expr::render(&v)),
        cancel_in_progress: c
            .cancel_in_progress
            .as_ref()
            .and_then(eval)
            .is_some_and(|v| v.is_truthy() && v.to_display_string() != "false"),
    });
    JobInstance {
        id,
        job: job.id.clone(),
        job_index,
        name,
        matrix: combo,
        needs,
        stage,
        condition: job.condition.effective.clone(),
        when: job.when,
        allow_failure: job.allow_failure.clone(),
        continue_on_error: job
            .continue_on_error
            .as_ref()
            .and_then(eval_node)
            .is_some_and(|v| v.is_truthy() && v.to_display_string() != "false"),
        retry: job.retry.clone(),
        concurrency,
        max_parallel: strategy
            .and_then(|s| s.max_parallel.as_ref())
            .and_then(eval_node)
            .map(|v| v.to_number())
            .filter(|n| n.is_finite() && *n >= 1.0)
            .map(|n| n as usize),
        // Fail-fast belongs to `strategy` (GitHub's matrix, default on); GitLab's
        // `parallel:` instances all run whatever their siblings do.
        fail_fast: strategy.is_some_and(|s| {
            s.fail_fast
                .as_ref()
                .and_then(eval_node)
                .is_none_or(|v| v.is_truthy() && v.to_display_string() != "false")
        }),
        deferred_matrix: None,
    }
}

/// Unknown needs, and cycles named with every edge's span.
fn check_needs(workflow: &Workflow) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let index: HashMap<&str, usize> = workflow
        .jobs
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let jobs: Vec<&Job> = workflow.jobs.values().collect();
    for job in &jobs {
        for need in &job.needs {
            if !index.contains_key(need.job.as_str()) {
                out.push(Diagnostic::error(
                    &workflow.path,
                    need.span,
                    "unknown-need",
                    format!("Job '{}' depends on unknown job '{}'.", job.id, need.job),
                ));
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    let edges: Vec<Vec<(usize, Span)>> = jobs
        .iter()
        .map(|j| {
            j.needs
                .iter()
                .map(|n| (index[n.job.as_str()], n.span))
                .collect()
        })
        .collect();
    if let Some(cycle) = ci_config::cycle::find_cycle(&edges) {
        let ids: Vec<&str> = cycle.iter().map(|&(j, _)| jobs[j].id.as_str()).collect();
        let path = format!("{} → {}", ids.join(" → "), ids[0]);
        for (j, span) in &cycle {
            out.push(Diagnostic::error(
                &workflow.path,
                *span,
                "needs-cycle",
                format!("'{}' is part of a dependency cycle: {path}", jobs[*j].id),
            ));
        }
    }
    out
}
