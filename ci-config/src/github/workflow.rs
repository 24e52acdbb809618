//! A GitHub Actions workflow file → [`Workflow`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use indexmap::IndexMap;

use crate::expr::Expression;
use crate::model::{
    Access, AllowFailure, Concurrency, Condition, Container, Dialect, Env, Environment, Job,
    Matrix, Need, Permissions, Retry, RunDefaults, RunsOn, Step, StepAction, Strategy, When,
    Workflow, WorkflowCall,
};
use crate::reader::Reader;
use crate::span::Span;
use crate::template::{self, Template};
use crate::yaml::{Node, ScalarStyle, Value};

use super::{events, ids, scopes};
use crate::reader::Scope;

const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "run-name",
    "description",
    "on",
    "env",
    "defaults",
    "permissions",
    "concurrency",
    "jobs",
];
const JOB_KEYS: &[&str] = &[
    "name",
    "needs",
    "if",
    "runs-on",
    "environment",
    "concurrency",
    "outputs",
    "env",
    "defaults",
    "timeout-minutes",
    "cancel-timeout-minutes",
    "continue-on-error",
    "permissions",
    "strategy",
    "container",
    "services",
    "steps",
    "snapshot",
];
const CALL_JOB_KEYS: &[&str] = &[
    "name",
    "needs",
    "if",
    "uses",
    "with",
    "secrets",
    "permissions",
    "concurrency",
    "strategy",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "if",
    "uses",
    "run",
    "shell",
    "working-directory",
    "with",
    "env",
    "continue-on-error",
    "timeout-minutes",
    "background",
    "wait",
    "wait-all",
    "cancel",
    "parallel",
];
const PERMISSION_SCOPES: &[&str] = Permissions::SCOPES;

/// Reads the document of a workflow file.
pub(super) fn workflow(r: &mut Reader<'_>, doc: &Node) -> Option<Workflow> {
    r.map(doc, "a workflow mapping")?;
    r.check_keys(doc, WORKFLOW_KEYS, &["on", "jobs"]);
    let name = doc.get("name").and_then(|n| r.literal(n, "a string"));
    let run_name = r.scoped(scopes::WORKFLOW, |r| {
        doc.get("run-name").and_then(|n| r.template(n, "a string"))
    });
    if let Some(d) = doc.get("description") {
        r.literal(d, "a string");
    }
    let triggers = r.scoped(scopes::WORKFLOW, |r| {
        doc.get("on")
            .map(|on| events::triggers(r, on))
            .unwrap_or_default()
    });
    let env = r.scoped(scopes::WORKFLOW_ENV, |r| {
        doc.get("env").map(|n| env(r, n)).unwrap_or_default()
    });
    let defaults = doc
        .get("defaults")
        .map(|n| defaults(r, n))
        .unwrap_or_default();
    let permissions = doc.get("permissions").and_then(|n| permissions(r, n));
    let concurrency = r.scoped(scopes::WORKFLOW, |r| {
        doc.get("concurrency").and_then(|n| concurrency(r, n))
    });
    let jobs = doc
        .entry("jobs")
        .map(|(_, v)| jobs(r, v))
        .unwrap_or_default();
    Some(Workflow {
        dialect: Dialect::GitHubActions,
        path: r.path.to_owned(),
        name,
        run_name,
        triggers,
        env,
        defaults,
        permissions,
        concurrency,
        jobs,
        stages: Vec::new(),
        setup: false,
    })
}

fn jobs(r: &mut Reader<'_>, node: &Node) -> IndexMap<String, Job> {
    let mut out = IndexMap::new();
    let Some(entries) = r.map(node, "a mapping of jobs") else {
        return out;
    };
    // `Job` is large: growing the map by doubling would copy every job several times.
    out.reserve(entries.len());
    if entries.is_empty() {
        r.error(
            node.span,
            "no-jobs",
            "The workflow must contain at least one job with no dependencies.",
        );
        return out;
    }
    // Lower-cased id → index in `out` (`None` for a job that could not be read): ids are
    // case-insensitive, and `needs` resolves through this map.
    let mut lower: HashMap<String, Option<usize>> = HashMap::with_capacity(entries.len());
    for (k, v) in entries {
        let Some(id) = k
            .scalar_text()
            .filter(|s| !s.is_empty() && k.as_str().is_some())
        else {
            continue;
        };
        if template::has_expr(&id) {
            continue;
        }
        if let Some(message) = ids::invalid_id(&id) {
            r.error(k.span, "invalid-id", message);
            continue;
        }
        let slot = match lower.entry(id.to_ascii_lowercase()) {
            Entry::Occupied(_) => {
                if !out.contains_key(&id) {
                    r.error(k.span, "duplicate-id", format!("'{id}' is already defined"));
                }
                continue;
            }
            Entry::Vacant(slot) => slot,
        };
        let job = job(r, &id, k, v);
        slot.insert(job.as_ref().map(|_| out.len()));
        if let Some(job) = job {
            out.insert(id, job);
        }
    }
    check_needs(r, &out, &lower);
    out
}

/// Unknown needs, self-needs, cycles, and a workflow where every job waits for another.
fn check_needs(
    r: &mut Reader<'_>,
    jobs: &IndexMap<String, Job>,
    lower: &HashMap<String, Option<usize>>,
) {
    let mut all_known = true;
    for job in jobs.values() {
        for need in &job.needs {
            if !lower.contains_key(&need.job.to_ascii_lowercase()) {
                all_known = false;
                r.error(
                    need.span,
                    "unknown-need",
                    format!("Job '{}' depends on unknown job '{}'.", job.id, need.job),
                );
            }
        }
    }
    if !jobs.is_empty() && jobs.values().all(|j| !j.needs.is_empty()) {
        let first = jobs.values().next().expect("checked non-empty above");
        r.error(
            first.span,
            "no-start-job",
            "The workflow must contain at least one job with no dependencies.",
        );
    }
    if all_known {
        if let Some(cycle) = find_cycle(jobs, lower) {
            let (first, span) = &cycle[0];
            let path: Vec<&str> = cycle
                .iter()
                .map(|(id, _)| id.as_str())
                .chain([first.as_str()])
                .collect();
            let edges: Vec<String> = cycle
                .iter()
                .zip(path.iter().skip(1))
                .map(|((id, span), next)| {
                    format!("'{id}' needs '{next}' (line {})", span.start_pos.line)
                })
                .collect();
            r.error_with_help(
                *span,
                "needs-cycle",
                format!("Jobs depend on each other in a cycle: {}", path.join(" → ")),
                format!("remove one of these needs: {}", edges.join(", ")),
            );
        }
    }
}

/// The first cycle of the `needs` graph, as (job id, span of its edge to the next job).
fn find_cycle(
    jobs: &IndexMap<String, Job>,
    lower: &HashMap<String, Option<usize>>,
) -> Option<Vec<(String, Span)>> {
    let edges: Vec<Vec<(usize, Span)>> = jobs
        .values()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|n| Some(((*lower.get(&n.job.to_ascii_lowercase())?)?, n.span)))
                .collect()
        })
        .collect();
    let ids: Vec<&String> = jobs.keys().collect();
    crate::cycle::find_cycle(&edges).map(|cycle| {
        cycle
            .into_iter()
            .map(|(n, span)| (ids[n].clone(), span))
            .collect()
    })
}

fn job(r: &mut Reader<'_>, id: &str, key: &Node, node: &Node) -> Option<Job> {
    r.map(node, "a job mapping")?;
    let call = node.get("runs-on").is_none() && node.get("uses").is_some();
    if call {
        r.check_keys(node, CALL_JOB_KEYS, &["uses"]);
    } else {
        r.check_keys(node, JOB_KEYS, &["runs-on"]);
    }
    r.scope = scopes::JOB;
    let name = match node.get("name") {
        Some(n) => r.template(n, "a string")?,
        None => Template::literal(id, key.span),
    };
    let needs = node.get("needs").map(|n| needs(r, n)).unwrap_or_default();
    let condition = r.scoped(scopes::JOB_IF, |r| {
        node.get("if")
            .map_or_else(|| default_condition(key.span), |n| condition(r, n))
    });
    let runs_on = node
        .get("runs-on")
        .map(|n| runs_on(r, n))
        .unwrap_or_default();
    let environment = node
        .get("environment")
        .and_then(|n| environment(r, n))
        .map(Box::new);
    let concurrency = node.get("concurrency").and_then(|n| concurrency(r, n));
    let outputs = r.scoped(scopes::JOB_OUTPUTS, |r| {
        node.get("outputs")
            .map(|n| r.template_map(n, "a mapping of outputs"))
            .unwrap_or_default()
    });
    let env = r.scoped(scopes::JOB_ENV, |r| {
        node.get("env").map(|n| env(r, n)).unwrap_or_default()
    });
    let defaults = r.scoped(scopes::JOB_DEFAULTS, |r| {
        node.get("defaults")
            .map(|n| defaults(r, n))
            .unwrap_or_default()
    });
    let timeout_minutes = node
        .get("timeout-minutes")
        .and_then(|n| r.number_or_expr(n));
    if let Some(n) = node.get("cancel-timeout-minutes") {
        r.number_or_expr(n);
    }
    if let Some(n) = node.get("snapshot") {
        snapshot(r, n);
    }
    let continue_on_error = node
        .get("continue-on-error")
        .and_then(|n| r.bool_or_expr(n));
    let permissions = node.get("permissions").and_then(|n| permissions(r, n));
    let strategy = r.scoped(scopes::JOB_STRATEGY, |r| {
        node.get("strategy")
            .and_then(|n| strategy(r, n))
            .map(Box::new)
    });
    let container = node
        .get("container")
        .and_then(|n| container(r, n, "container"));
    let services = node
        .get("services")
        .map(|n| services(r, n))
        .unwrap_or_default();
    let steps = node
        .get("steps")
        .map(|n| steps(r, n, &StepRules::WORKFLOW))
        .unwrap_or_default();
    let call = if call {
        node.entry("uses")
            .and_then(|(_, u)| workflow_call(r, node, u))
    } else {
        None
    };
    Some(Job {
        id: id.to_owned(),
        span: key.span,
        name,
        needs_declared: node.get("needs").is_some(),
        needs,
        stage: None,
        when: When::default(),
        allow_failure: AllowFailure::default(),
        retry: Retry::default(),
        parallel: None,
        condition,
        runs_on,
        environment,
        concurrency: concurrency.map(Box::new),
        outputs,
        env,
        defaults,
        timeout_minutes,
        continue_on_error,
        permissions,
        strategy,
        container: container.map(Box::new),
        services,
        steps,
        call: call.map(Box::new),
        inherit_env: None,
        start_in: None,
        log_outputs: Vec::new(),
        cleanup_timeout: 0,
        contexts: Vec::new(),
    })
}

fn needs(r: &mut Reader<'_>, node: &Node) -> Vec<Need> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    items
        .into_iter()
        .filter_map(|n| {
            r.literal(n, "a job id or a list of job ids")
                .map(|s| Need::new(s, n.span))
        })
        .collect()
}

fn default_condition(span: Span) -> Condition {
    Condition {
        source: String::new(),
        effective: "success()".to_owned(),
        span,
    }
}

/// Reads `if:`. Like GitHub, a condition without a status function is evaluated as
/// `success() && (condition)`.
fn condition(r: &mut Reader<'_>, node: &Node) -> Condition {
    if node.is_null() {
        return default_condition(node.span);
    }
    let Some(text) = r.text(node, "an expression") else {
        return default_condition(node.span);
    };
    let Some(t) = r.template_of(node, &text) else {
        return default_condition(node.span);
    };
    let (source, tree) = match t.single_expr() {
        // `template_of` has already reported any error in it.
        Some(expr) => (
            expr.to_owned(),
            Expression::parse(expr, &r.scope.options()).ok(),
        ),
        None if t.is_literal() => {
            let source = text.trim().to_owned();
            let tree = r.parse_expr(&source, literal_start(node, &text), node.span);
            (source, tree)
        }
        None => {
            // GitHub evaluates this as `format(…)`: a non-empty string, so always true.
            r.warning(
                node.span,
                "condition-always-true",
                "Text mixed with ${{ }} makes this condition a string, which is always true",
            );
            let source = t.to_expression().unwrap_or_else(|| text.clone());
            (source, None)
        }
    };
    let calls_status = tree
        .as_ref()
        .and_then(Expression::tree)
        .is_some_and(|e| e.calls_status_function());
    let effective = if source.is_empty() {
        "success()".to_owned()
    } else if calls_status {
        source.clone()
    } else {
        format!("success() && ({source})")
    };
    Condition {
        source,
        effective,
        span: node.span,
    }
}

/// Where the text of a plain or quoted scalar starts in the file (after leading blanks).
fn literal_start(node: &Node, text: &str) -> Option<usize> {
    let quote = match node.style? {
        ScalarStyle::Plain => 0,
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => 1,
        _ => return None,
    };
    let leading = text.len() - text.trim_start().len();
    Some(node.span.range().start + quote + leading)
}

fn runs_on(r: &mut Reader<'_>, node: &Node) -> RunsOn {
    match &node.value {
        Value::Map(_) => {
            r.map(node, "runner labels");
            r.check_keys(node, &["group", "labels"], &[]);
            let group = node.get("group").and_then(|g| {
                let t = r.template(g, "a runner group name")?;
                if t.is_literal() {
                    check_group(r, g, &t.raw);
                }
                Some(t)
            });
            let labels = node
                .get("labels")
                .map(|l| r.template_list(l, "a runner label"))
                .unwrap_or_default();
            if group.is_none() && labels.is_empty() {
                r.error(
                    node.span,
                    "invalid-runs-on",
                    "runs-on needs a `group` or `labels`",
                );
            }
            RunsOn { labels, group }
        }
        Value::Seq(items) if items.is_empty() => {
            r.error(
                node.span,
                "invalid-runs-on",
                "runs-on needs at least one label",
            );
            RunsOn::default()
        }
        _ => {
            let labels = r.template_list(node, "a runner label, a list of labels or a group");
            for label in &labels {
                if label.raw.trim().is_empty() {
                    r.error(
                        label.span,
                        "invalid-runs-on",
                        "A runner label may not be empty",
                    );
                }
            }
            RunsOn {
                labels,
                group: None,
            }
        }
    }
}

fn check_group(r: &mut Reader<'_>, node: &Node, group: &str) {
    let Some((prefix, name)) = group.split_once('/') else {
        return;
    };
    if !matches!(prefix, "organization" | "org" | "enterprise" | "ent") || name.contains('/') {
        r.error(
            node.span,
            "invalid-runs-on",
            format!("Invalid runs-on group name '{group}'. Please use 'organization/' or 'enterprise/' prefix to target a single runner group."),
        );
    } else if name.is_empty() {
        r.error(
            node.span,
            "invalid-runs-on",
            format!("Invalid runs-on group name '{group}'."),
        );
    }
}

fn environment(r: &mut Reader<'_>, node: &Node) -> Option<Environment> {
    if node.as_map().is_some() {
        r.map(node, "an environment")?;
        r.check_keys(node, &["name", "url", "deployment"], &["name"]);
        let name = node
            .get("name")
            .and_then(|n| r.template(n, "an environment name"))?;
        let url = r.scoped(scopes::ENVIRONMENT_URL, |r| {
            node.get("url").and_then(|n| r.template(n, "a URL"))
        });
        if let Some(d) = node.get("deployment") {
            r.bool_or_expr(d);
        }
        return Some(Environment {
            name,
            url,
            action: None,
            tier: None,
        });
    }
    let name = r.template(node, "an environment name or mapping")?;
    Some(Environment {
        name,
        url: None,
        action: None,
        tier: None,
    })
}

fn concurrency(r: &mut Reader<'_>, node: &Node) -> Option<Concurrency> {
    if node.as_map().is_some() {
        r.map(node, "a concurrency mapping")?;
        r.check_keys(node, &["group", "cancel-in-progress"], &["group"]);
        let group = node
            .get("group")
            .and_then(|n| r.template(n, "a group name"))?;
        let cancel_in_progress = node.get("cancel-in-progress").and_then(|n| {
            r.bool_or_expr(n)?;
            Some(Template::literal(n.scalar_text()?, n.span))
        });
        return Some(Concurrency {
            group,
            cancel_in_progress,
        });
    }
    let group = r.template(node, "a group name or a concurrency mapping")?;
    Some(Concurrency {
        group,
        cancel_in_progress: None,
    })
}

/// `env:` — a mapping of scalars, or one expression.
pub(super) fn env(r: &mut Reader<'_>, node: &Node) -> Env {
    match &node.value {
        Value::Map(_) => {
            let Some(entries) = r.map(node, "a mapping of variables") else {
                return Env::Empty;
            };
            let mut vars = IndexMap::new();
            for (k, v) in entries {
                let Some(name) = k.scalar_text() else {
                    continue;
                };
                let value = if v.is_null() {
                    Some(Template::literal("", v.span))
                } else if v.is_scalar() {
                    let text = v.scalar_text().unwrap_or_default();
                    r.template_of(v, &text)
                } else {
                    r.unexpected(v, "a string, number or boolean");
                    None
                };
                if let Some(value) = value {
                    vars.insert(name, value);
                }
            }
            Env::Map(vars)
        }
        Value::String(s) => match r.template_of(node, s) {
            Some(t) if t.single_expr().is_some() => Env::Expr(t),
            Some(_) => {
                r.unexpected(node, "a mapping of variables or one ${{ }} expression");
                Env::Empty
            }
            None => Env::Empty,
        },
        Value::Null => Env::Empty,
        _ => {
            r.unexpected(node, "a mapping of variables");
            Env::Empty
        }
    }
}

fn defaults(r: &mut Reader<'_>, node: &Node) -> RunDefaults {
    if r.map(node, "a defaults mapping").is_none() {
        return RunDefaults::default();
    }
    r.check_keys(node, &["run"], &[]);
    let Some(run) = node.get("run") else {
        return RunDefaults::default();
    };
    if r.map(run, "a mapping with shell and working-directory")
        .is_none()
    {
        return RunDefaults::default();
    }
    r.check_keys(run, &["shell", "working-directory"], &[]);
    RunDefaults {
        shell: run.get("shell").and_then(|n| r.template(n, "a shell")),
        working_directory: run
            .get("working-directory")
            .and_then(|n| r.template(n, "a directory")),
    }
}

fn access(r: &mut Reader<'_>, node: &Node, scope: &str) -> Option<Access> {
    let text = r.literal(node, "read, write or none")?;
    let allowed: &[&str] = match scope {
        "id-token" => &["write", "none"],
        "models" => &["read", "none"],
        _ => &["read", "write", "none"],
    };
    match text.as_str() {
        t if !allowed.contains(&t) => {
            r.error_with_help(
                node.span,
                "invalid-permission",
                format!("Unexpected value '{text}'"),
                format!("'{scope}' accepts: {}", allowed.join(", ")),
            );
            None
        }
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        _ => Some(Access::None),
    }
}

fn permissions(r: &mut Reader<'_>, node: &Node) -> Option<Permissions> {
    match &node.value {
        Value::Map(_) => {
            let entries = r.map(node, "a mapping of permissions")?;
            let mut scopes = IndexMap::new();
            for (k, v) in entries {
                let Some(scope) = k.as_str() else { continue };
                if !PERMISSION_SCOPES.contains(&scope) {
                    r.error_with_help(
                        k.span,
                        "invalid-permission",
                        format!("Unexpected value '{scope}'"),
                        format!("expected one of: {}", PERMISSION_SCOPES.join(", ")),
                    );
                    continue;
                }
                if let Some(a) = access(r, v, scope) {
                    scopes.insert(scope.to_owned(), a);
                }
            }
            Some(Permissions::Scopes(scopes))
        }
        _ => match r
            .literal(node, "read-all, write-all or a mapping")?
            .as_str()
        {
            "read-all" => Some(Permissions::All(Access::Read)),
            "write-all" => Some(Permissions::All(Access::Write)),
            other => {
                r.error_with_help(
                    node.span,
                    "invalid-permission",
                    format!("Unexpected value '{other}'"),
                    "expected read-all, write-all or a mapping of scopes",
                );
                None
            }
        },
    }
}

fn strategy(r: &mut Reader<'_>, node: &Node) -> Option<Strategy> {
    if let Some(s) = node.as_str() {
        if r.template_of(node, s)?.single_expr().is_some() {
            return Some(Strategy {
                matrix: None,
                fail_fast: None,
                max_parallel: None,
            });
        }
    }
    r.map(node, "a strategy mapping")?;
    r.check_keys(node, &["matrix", "fail-fast", "max-parallel"], &[]);
    let matrix = node.get("matrix").and_then(|m| matrix(r, m));
    let fail_fast = node.get("fail-fast").and_then(|n| r.bool_or_expr(n));
    let max_parallel = node.get("max-parallel").and_then(|n| r.number_or_expr(n));
    Some(Strategy {
        matrix,
        fail_fast,
        max_parallel,
    })
}

fn matrix(r: &mut Reader<'_>, node: &Node) -> Option<Matrix> {
    if let Some(s) = node.as_str() {
        let t = r.template_of(node, s)?;
        if t.single_expr().is_some() {
            return Some(Matrix::Expr(t));
        }
        r.unexpected(node, "a matrix mapping or one ${{ }} expression");
        return None;
    }
    // Keys are free-form here: an expression (`${{ needs.a.outputs.key }}:`) names a vector
    // whose name is known when the job runs, as GitHub allows.
    let Value::Map(entries) = &node.value else {
        r.unexpected(node, "a matrix mapping");
        return None;
    };
    for (k, _) in entries {
        match k.as_str() {
            Some(s) if crate::template::has_expr(s) => {
                r.template_of(k, s);
            }
            _ => r.key(k),
        }
    }
    let mut vectors = IndexMap::new();
    let (mut include, mut exclude) = (None, None);
    for (k, v) in entries {
        let Some(key) = k.scalar_text() else { continue };
        scan_templates(r, v);
        match key.as_str() {
            "include" | "exclude" => {
                let ok = match &v.value {
                    Value::Seq(items) => items.iter().all(|i| {
                        i.as_map().is_some()
                            || i.as_str()
                                .is_some_and(|s| s.trim_start().starts_with("${{"))
                    }),
                    Value::String(s) => s.trim_start().starts_with("${{"),
                    _ => false,
                };
                if !ok {
                    r.unexpected(v, "a list of mappings");
                    continue;
                }
                if key == "include" {
                    include = Some(v.clone());
                } else {
                    exclude = Some(v.clone());
                }
            }
            _ => {
                match &v.value {
                    Value::Seq(items) if items.is_empty() => r.error(
                        v.span,
                        "empty-matrix-vector",
                        format!("Matrix vector '{key}' does not contain any values"),
                    ),
                    Value::Seq(_) => {}
                    Value::String(s) if s.trim_start().starts_with("${{") => {}
                    _ => {
                        r.unexpected(v, "a list of values");
                        continue;
                    }
                }
                vectors.insert(key, v.clone());
            }
        }
    }
    Some(Matrix::Static {
        vectors,
        include,
        exclude,
    })
}

/// Checks every string of a free-form tree for unclosed `${{`.
fn scan_templates(r: &mut Reader<'_>, node: &Node) {
    match &node.value {
        Value::String(s) if s.contains("${{") => {
            r.template_of(node, s);
        }
        Value::Seq(items) => items.iter().for_each(|i| scan_templates(r, i)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| scan_templates(r, v)),
        _ => {}
    }
}

fn container(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<Container> {
    if node.as_str().is_some() {
        let image = r.template(node, "an image")?;
        return Some(Container {
            image,
            credentials: None,
            env: Env::Empty,
            ports: Vec::new(),
            volumes: Vec::new(),
            options: None,
            command: None,
            entrypoint: None,
            optional: false,
            span: node.span,
        });
    }
    r.map(node, &format!("a {what} image or mapping"))?;
    r.check_keys(
        node,
        if what == "service" {
            &[
                "image",
                "credentials",
                "env",
                "ports",
                "volumes",
                "options",
                "command",
                "entrypoint",
            ]
        } else {
            &["image", "credentials", "env", "ports", "volumes", "options"]
        },
        &["image"],
    );
    let image = node.get("image").and_then(|n| r.template(n, "an image"))?;
    let outer = std::mem::replace(&mut r.scope, scopes::CONTAINER_ENV);
    let credentials = node.get("credentials").and_then(|c| {
        r.map(c, "a mapping with username and password")?;
        r.check_keys(c, &["username", "password"], &["username", "password"]);
        let user = c
            .get("username")
            .and_then(|n| r.template(n, "a user name"))?;
        let password = c
            .get("password")
            .and_then(|n| r.template(n, "a password"))?;
        Some((user, password))
    });
    let env = node.get("env").map(|n| env(r, n)).unwrap_or_default();
    r.scope = outer;
    let ports = node
        .get("ports")
        .map(|n| r.template_list(n, "a list of ports"))
        .unwrap_or_default();
    let volumes = node
        .get("volumes")
        .map(|n| r.template_list(n, "a list of volumes"))
        .unwrap_or_default();
    let options = node
        .get("options")
        .and_then(|n| r.template(n, "docker create options"));
    let command = node.get("command").and_then(|n| r.template(n, "a command"));
    let entrypoint = node
        .get("entrypoint")
        .and_then(|n| r.template(n, "an entrypoint"));
    Some(Container {
        image,
        credentials,
        env,
        ports,
        volumes,
        options,
        command,
        entrypoint,
        optional: false,
        span: node.span,
    })
}

fn services(r: &mut Reader<'_>, node: &Node) -> IndexMap<String, Container> {
    let mut out = IndexMap::new();
    let Some(entries) = r.map(node, "a mapping of services") else {
        return out;
    };
    for (k, v) in entries {
        let Some(name) = k.scalar_text() else {
            continue;
        };
        if let Some(c) = container(r, v, "service") {
            out.insert(name, c);
        }
    }
    out
}

fn snapshot(r: &mut Reader<'_>, node: &Node) {
    if node.as_map().is_some() {
        r.check_keys(node, &["image-name", "version"], &["image-name"]);
    } else {
        r.literal(node, "an image name or mapping");
    }
}

/// How steps are read in a workflow and in a composite action.
pub(super) struct StepRules {
    /// False for composite actions, where GitHub's schema accepts repeated ids (we warn).
    pub duplicate_ids_are_errors: bool,
    /// What expressions in step keys may use.
    pub body: Scope,
    /// What a step's `if` may use.
    pub condition: Scope,
}

impl StepRules {
    pub const WORKFLOW: StepRules = StepRules {
        duplicate_ids_are_errors: true,
        body: scopes::STEP,
        condition: scopes::STEP_IF,
    };
    pub const COMPOSITE: StepRules = StepRules {
        duplicate_ids_are_errors: false,
        body: scopes::ACTION_STEP,
        condition: scopes::ACTION_STEP_IF,
    };
}

/// Reads a list of steps.
pub(super) fn steps(r: &mut Reader<'_>, node: &Node, rules: &StepRules) -> Vec<Step> {
    let outer = std::mem::replace(&mut r.scope, rules.body);
    let steps = read_steps(r, node, rules);
    r.scope = outer;
    steps
}

fn read_steps(r: &mut Reader<'_>, node: &Node, rules: &StepRules) -> Vec<Step> {
    let mut ids = ids::StepIds::default();
    // Explicit ids first, so generated ones never take a name the user chose.
    let mut id_nodes = Vec::new();
    collect_id_nodes(node, &mut id_nodes);
    for id_node in id_nodes {
        let Some(id) = id_node
            .as_str()
            .filter(|s| !s.is_empty() && !template::has_expr(s))
        else {
            continue;
        };
        if let Some(message) = ids::invalid_id(id) {
            r.error(id_node.span, "invalid-id", message);
        } else if !ids.explicit(id) {
            let message = format!(
                "The identifier '{id}' may not be used more than once within the same scope."
            );
            if rules.duplicate_ids_are_errors {
                r.error(id_node.span, "duplicate-id", message);
            } else {
                r.warning(id_node.span, "duplicate-id", message);
            }
        }
    }
    steps_in(r, node, &mut ids, rules)
}

/// The `id:` nodes of a step list, including steps inside `parallel:` groups.
fn collect_id_nodes<'n>(steps: &'n Node, out: &mut Vec<&'n Node>) {
    for item in steps.as_seq().unwrap_or_default() {
        if let Some(id) = item.get("id") {
            out.push(id);
        }
        if let Some(group) = item.get("parallel") {
            collect_id_nodes(group, out);
        }
    }
}

fn steps_in(
    r: &mut Reader<'_>,
    node: &Node,
    ids: &mut ids::StepIds,
    rules: &StepRules,
) -> Vec<Step> {
    let Some(items) = node.as_seq() else {
        r.unexpected(node, "a list of steps");
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| step(r, item, ids, rules))
        .collect()
}

fn step(
    r: &mut Reader<'_>,
    node: &Node,
    ids: &mut ids::StepIds,
    rules: &StepRules,
) -> Option<Step> {
    r.map(node, "a step mapping")?;
    r.check_keys(node, STEP_KEYS, &[]);
    let run = node.get("run");
    let uses = node.entry("uses");
    let action = match (run, uses) {
        (Some(_), Some((k, _))) => {
            r.error_with_help(
                k.span,
                "run-and-uses",
                "A step may not have both 'run' and 'uses'",
                "split it into two steps",
            );
            return None;
        }
        (Some(script), None) => {
            for key in ["with"] {
                if let Some((k, _)) = node.entry(key) {
                    r.error(k.span, "unknown-key", format!("Unexpected value '{key}'"));
                }
            }
            StepAction::Run {
                script: r.template(script, "a script")?,
                shell: node.get("shell").and_then(|n| r.template(n, "a shell")),
                working_directory: node
                    .get("working-directory")
                    .and_then(|n| r.template(n, "a directory")),
            }
        }
        (None, Some((_, u))) => {
            for key in ["shell", "working-directory"] {
                if let Some((k, _)) = node.entry(key) {
                    r.error(k.span, "unknown-key", format!("Unexpected value '{key}'"));
                }
            }
            let uses = r.literal(u, "an action reference")?;
            check_step_uses(r, u, &uses);
            let with = match node.get("with") {
                Some(w) if w.is_null() => IndexMap::new(),
                Some(w) => r.node_map(w, "a mapping of inputs"),
                None => IndexMap::new(),
            };
            StepAction::Uses { uses, with }
        }
        (None, None) if node.get("wait").is_some() => {
            let steps = node
                .get("wait")
                .map(|w| r.string_list(w, "a step id or a list of step ids"));
            StepAction::Wait {
                steps: steps.unwrap_or_default(),
            }
        }
        (None, None) if node.get("wait-all").is_some() => StepAction::WaitAll,
        (None, None) if node.get("parallel").is_some() => {
            let group = node.get("parallel").map(|p| steps_in(r, p, ids, rules));
            StepAction::Parallel {
                steps: group.unwrap_or_default(),
            }
        }
        (None, None) if node.get("cancel").is_some() => {
            let step = node.get("cancel").and_then(|c| r.literal(c, "a step id"))?;
            StepAction::Cancel { step }
        }
        (None, None) => {
            let missing = if node.get("with").is_some() {
                "uses"
            } else {
                "run"
            };
            r.error_with_help(
                node.span,
                "missing-key",
                format!("Required property is missing: {missing}"),
                "a step needs either `run` (a script) or `uses` (an action)",
            );
            return None;
        }
    };
    let explicit_id = node
        .get("id")
        .and_then(|n| n.as_str())
        .filter(|s| !s.is_empty() && ids::invalid_id(s).is_none());
    let (id, generated_id) = match explicit_id {
        Some(id) => (id.to_owned(), false),
        None => {
            let base = match &action {
                StepAction::Uses { uses, .. } => ids::uses_segment(uses),
                StepAction::Run { .. } => "run".to_owned(),
                StepAction::Wait { .. } => "wait".to_owned(),
                StepAction::WaitAll => "wait-all".to_owned(),
                StepAction::Cancel { .. } => "cancel".to_owned(),
                StepAction::Parallel { .. } => "parallel".to_owned(),
                // Kinds only frontends of other dialects produce.
                _ => "step".to_owned(),
            };
            (ids.generate(&base), true)
        }
    };
    Some(Step {
        id,
        generated_id,
        name: node.get("name").and_then(|n| r.template(n, "a string")),
        condition: r.scoped(rules.condition, |r| {
            node.get("if")
                .map_or_else(|| default_condition(node.span), |n| condition(r, n))
        }),
        action,
        env: node.get("env").map(|n| env(r, n)).unwrap_or_default(),
        continue_on_error: node
            .get("continue-on-error")
            .and_then(|n| r.bool_or_expr(n)),
        timeout_minutes: node
            .get("timeout-minutes")
            .and_then(|n| r.number_or_expr(n)),
        background: node
            .get("background")
            .and_then(|n| r.bool_or_expr(n))
            .and_then(|n| n.as_bool())
            .unwrap_or(false),
        no_output_timeout: None,
        cleanup: false,
        span: node.span,
    })
}

/// `docker://image`, `./local/path` or `{org}/{repo}[/path]@ref`.
fn check_step_uses(r: &mut Reader<'_>, node: &Node, uses: &str) {
    if uses.starts_with("docker://") && uses.len() > "docker://".len() {
        return;
    }
    if uses.starts_with("./") || uses.starts_with(".\\") {
        return;
    }
    let ok = uses.split_once('@').is_some_and(|(name, git_ref)| {
        let mut parts = name.split('/');
        let owner = parts.next().unwrap_or_default();
        let repo = parts.next().unwrap_or_default();
        !git_ref.is_empty()
            && !owner.is_empty()
            && !repo.is_empty()
            && is_name(owner)
            && is_repo_name(repo)
    });
    if !ok {
        r.error(
            node.span,
            "invalid-uses",
            format!("Expected format {{org}}/{{repo}}[/path]@ref. Actual '{uses}'"),
        );
    }
}

/// A repository name: owner-name characters, and it may start with a dot (`org/.github`).
fn is_repo_name(s: &str) -> bool {
    !matches!(s, "" | "." | "..") && is_name(s.trim_start_matches('.'))
}

fn is_name(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
}

fn workflow_call(r: &mut Reader<'_>, job: &Node, uses_node: &Node) -> Option<WorkflowCall> {
    let uses = r.literal(uses_node, "a reusable workflow reference")?;
    let (path, git_ref) = match uses.split_once('@') {
        Some((p, g)) => (p, Some(g)),
        None => (uses.as_str(), None),
    };
    let local = path.starts_with("./");
    let remote_ok = !local && git_ref.is_some_and(|g| !g.is_empty()) && {
        let parts: Vec<&str> = path.splitn(3, '/').collect();
        parts.len() == 3
            && is_name(parts[0])
            && is_repo_name(parts[1])
            && parts[2].starts_with(".github/workflows/")
    };
    let file_ok = path.ends_with(".yml") || path.ends_with(".yaml");
    if !((local && git_ref.is_none()) || remote_ok) || !file_ok {
        r.error_with_help(
            uses_node.span,
            "invalid-uses",
            format!("Invalid workflow reference '{uses}'"),
            "expected ./.github/workflows/FILE.yml or OWNER/REPO/.github/workflows/FILE.yml@REF",
        );
    }
    let with = match job.get("with") {
        Some(w) => r.node_map(w, "a mapping of inputs"),
        None => IndexMap::new(),
    };
    let mut secrets = IndexMap::new();
    let mut inherit_secrets = false;
    if let Some(s) = job.get("secrets") {
        match &s.value {
            Value::String(v) if v == "inherit" => inherit_secrets = true,
            Value::Map(_) => {
                secrets = r.scoped(scopes::JOB_ENV, |r| {
                    r.template_map(s, "a mapping of secrets")
                });
            }
            _ => r.unexpected(s, "`inherit` or a mapping of secrets"),
        }
    }
    Some(WorkflowCall {
        uses,
        span: uses_node.span,
        with,
        secrets,
        inherit_secrets,
    })
}
