//! CircleCI 2.0/2.1: `.circleci/config.yml` compiled as CircleCI's server does it — inline
//! orbs, commands, executors and jobs with typed parameters, `<< … >>` interpolation of
//! parameters, pipeline parameters and pipeline values, `when`/`unless` logic statements,
//! workflows with `requires`, branch and tag `filters`, `matrix` and approval jobs — and
//! lowered into the same IR as every dialect: one [`Workflow`] per CircleCI workflow that
//! runs for the pipeline's values.
//!
//! A setup configuration (`setup: true`) compiles like any other, marked
//! [`Workflow::setup`]: its jobs continue the pipeline with `circleci continue CONFIG
//! [PARAMETERS]` (what the built-in `circleci/continuation` orb's `continue` does), and the
//! caller runs the configuration they name next. Registry orbs come from
//! [`Pipeline::orbs`]; one that is not there is reported where it is imported.
//!
//! ```
//! use ci_config::circleci::{parse_config, Pipeline};
//! let src = r#"
//! version: 2.1
//! commands:
//!   greet:
//!     parameters:
//!       who: {type: string, default: world}
//!     steps:
//!       - run: echo "hello << parameters.who >>"
//! jobs:
//!   build:
//!     docker: [{image: cimg/base:current}]
//!     steps: [checkout, {greet: {who: gantry}}]
//! workflows:
//!   main:
//!     jobs: [build]
//! "#;
//! let parsed = parse_config(".circleci/config.yml", src, &Pipeline::default());
//! assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
//! let workflows = parsed.value.unwrap();
//! assert_eq!(workflows[0].jobs["build"].steps.len(), 2);
//! ```

mod emit;
mod expr;
mod params;

pub use emit::to_yaml;

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, Parsed};
use crate::model::{
    AllowFailure, ArtifactUpload, Cache, Condition, Container, Dialect, Env, Job, Need, Parallel,
    Retry, RunDefaults, RunsOn, Step, StepAction, Var, When, Workflow,
};
use crate::span::Span;
use crate::template::Template;
use crate::yaml::{self, LoadOptions, Node, Value};
use params::{as_bool, Declared, Scope};

/// The values a pipeline is compiled with: pipeline values (`pipeline.git.branch`,
/// `pipeline.git.revision`, `pipeline.git.tag`, `pipeline.number`, `pipeline.id`,
/// `pipeline.project.git_url`, `pipeline.trigger_source`, …) and the pipeline parameters
/// given for the run (others take their defaults).
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `pipeline.…` name → value.
    pub values: IndexMap<String, String>,
    /// Pipeline parameter name → value (as text; typed by its declaration).
    pub parameters: IndexMap<String, String>,
    /// Sources of registry orbs: reference (`ns/name@1.2.3`, or `ns/name` for any version)
    /// → the orb's YAML, as the orb registry would give it.
    pub orbs: IndexMap<String, String>,
}

impl Default for Pipeline {
    /// What `circleci config process` fabricates locally: branch `main`, pipeline 1.
    fn default() -> Self {
        let mut values = IndexMap::new();
        for (k, v) in [
            ("pipeline.id", "00000000-0000-0000-0000-000000000001"),
            ("pipeline.number", "1"),
            ("pipeline.git.branch", "main"),
            ("pipeline.git.tag", ""),
            ("pipeline.git.revision", ""),
            ("pipeline.git.base_revision", ""),
            ("pipeline.project.git_url", ""),
            ("pipeline.project.type", "github"),
            ("pipeline.trigger_source", "webhook"),
        ] {
            values.insert(k.to_owned(), v.to_owned());
        }
        Pipeline {
            values,
            parameters: IndexMap::new(),
            orbs: IndexMap::new(),
        }
    }
}

impl Pipeline {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }
}

/// Keys of a job invocation in a workflow that are not job parameters.
const RESERVED: &[&str] = &[
    "requires",
    "name",
    "context",
    "type",
    "filters",
    "matrix",
    "pre-steps",
    "post-steps",
    "serial-group",
    "override-with",
    GROUP_KEY,
];

/// The hidden key marking a job that came from a job group (its invocation's name).
const GROUP_KEY: &str = "__gantry_group";

/// The outcomes `requires` may wait for.
const REQUIRE_STATUSES: &[&str] = &[
    "success",
    "failed",
    "canceled",
    "unauthorized",
    "not_run",
    "terminal",
];

/// How many jobs one matrix may make.
const MAX_MATRIX: usize = 1000;

/// How many commands one job may expand in all (a command calling others several times at
/// every level multiplies).
const MAX_EXPANSIONS: usize = 10_000;

/// Commands expand into commands at most this deep (a command calling itself).
const MAX_COMMAND_DEPTH: usize = 50;

pub(crate) struct Ctx<'a> {
    path: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(&mut self, span: Span, code: &'static str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(self.path, span, code, message));
    }

    fn warning(&mut self, span: Span, code: &'static str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(self.path, span, code, message));
    }

    fn keys(&mut self, node: &Node, allowed: &[&str]) {
        for (k, _) in node.as_map().unwrap_or_default() {
            let key = k.scalar_text().unwrap_or_default();
            if !allowed.contains(&key.as_str()) {
                self.error(
                    k.span,
                    "unknown-key",
                    format!(
                        "unexpected key '{key}'; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
}

/// Definitions by name (`name`, or `alias/name` for an inline orb's).
#[derive(Default)]
struct Defs {
    commands: IndexMap<String, Node>,
    executors: IndexMap<String, Node>,
    jobs: IndexMap<String, Node>,
    /// `job-groups`: named lists of job invocations, invoked like a job.
    job_groups: IndexMap<String, Node>,
    /// Aliases of registry orbs, which are not compiled: what they define is unknown.
    registry_orbs: IndexMap<String, String>,
}

impl Defs {
    fn add(&mut self, cx: &mut Ctx<'_>, root: &Node, prefix: &str) {
        for (kind, map) in [
            ("commands", &mut self.commands),
            ("executors", &mut self.executors),
            ("jobs", &mut self.jobs),
        ] {
            let Some(node) = root.get(kind) else { continue };
            let Some(entries) = node.as_map() else {
                cx.error(
                    node.span,
                    "invalid-type",
                    format!("{kind} should be a mapping"),
                );
                continue;
            };
            for (k, v) in entries {
                if let Some(name) = k.scalar_text() {
                    map.insert(format!("{prefix}{name}"), v.clone());
                }
            }
        }
    }

    /// A definition named inside namespace `ns` (`orb/` for an orb's own elements, which
    /// name each other without the prefix): `ns` + name first, then the name as written.
    fn find<'a>(
        map: &'a IndexMap<String, Node>,
        name: &str,
        ns: &str,
    ) -> Option<(String, &'a Node)> {
        let scoped = format!("{ns}{name}");
        map.get(&scoped)
            .map(|n| (scoped, n))
            .or_else(|| map.get(name).map(|n| (name.to_owned(), n)))
    }

    /// The registry orb a name like `node/install` comes from, if it is one.
    fn registry_orb_of(&self, name: &str) -> Option<&str> {
        let (alias, _) = name.split_once('/')?;
        self.registry_orbs.get(alias).map(String::as_str)
    }
}

/// The registry orbs a configuration imports (`ns/name@version` under `orbs:`, without
/// `<< >>` parts), for a caller that fetches their sources into [`Pipeline::orbs`].
pub fn registry_orbs(src: &str) -> Vec<String> {
    let (docs, _) = yaml::load("config.yml", src, &LoadOptions::default());
    docs.first()
        .and_then(|root| root.get("orbs"))
        .and_then(Node::as_map)
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, v)| v.as_str())
        .filter(|r| r.contains('/') && !r.contains("<<"))
        .filter(|r| r.split('@').next() != Some(CONTINUATION_ORB_NAME))
        .map(str::to_owned)
        .collect()
}

/// The orb dynamic configuration continues with; Gantry has its own (any version).
const CONTINUATION_ORB_NAME: &str = "circleci/continuation";

/// Gantry's `circleci/continuation` orb: `continue` runs `circleci continue CONFIG
/// PARAMETERS` in the job, `finish` runs `circleci finish`.
const CONTINUATION_ORB: &str = include_str!("continuation.yml");

/// Compiles a CircleCI configuration for a pipeline: the workflows that run, lowered.
pub fn parse_config(path: &str, src: &str, pipeline: &Pipeline) -> Parsed<Vec<Workflow>> {
    let mut cx = Ctx {
        path,
        diags: Vec::new(),
    };
    let (docs, mut d) = yaml::load(path, src, &LoadOptions::default());
    cx.diags.append(&mut d);
    let Some(root) = docs.into_iter().next() else {
        return Parsed {
            value: None,
            diagnostics: cx.diags,
        };
    };
    let mut workflows = compile(&mut cx, &root, pipeline);
    if root.get("setup").and_then(as_bool) == Some(true) {
        for w in workflows.iter_mut().flatten() {
            w.setup = true;
        }
    }
    // A job run by several workflows is compiled for each: one report per mistake.
    let mut seen = std::collections::HashSet::new();
    cx.diags
        .retain(|d| seen.insert((d.span.start, d.span.end, d.message.clone())));
    Parsed {
        value: workflows,
        diagnostics: cx.diags,
    }
}

fn compile(cx: &mut Ctx<'_>, root: &Node, pipeline: &Pipeline) -> Option<Vec<Workflow>> {
    if root.as_map().is_none() {
        cx.error(
            root.span,
            "invalid-type",
            "the configuration should be a mapping",
        );
        return None;
    }
    // Other top-level keys are often anchors' holders; CircleCI ignores them.
    const TOP: &[&str] = &[
        "version",
        "setup",
        "orbs",
        "commands",
        "parameters",
        "executors",
        "jobs",
        "workflows",
        "job-groups",
        "experimental",
        "display",
        "examples",
        "description",
        "references",
        "aliases",
        "defaults",
    ];
    for (k, _) in root.as_map().unwrap_or_default() {
        let key = k.scalar_text().unwrap_or_default();
        if !TOP.contains(&key.as_str()) {
            cx.warning(
                k.span,
                "unknown-key",
                format!("top-level key '{key}' is not CircleCI's; it is ignored"),
            );
        }
    }
    let version = root.get("version").and_then(Node::scalar_text);
    match version.as_deref() {
        Some("2" | "2.0" | "2.1") => {}
        Some(v) => cx.error(
            root.get("version").map_or(root.span, |n| n.span),
            "invalid-value",
            format!("version {v} is not supported; use 2.1"),
        ),
        None => cx.error(
            root.span,
            "missing-key",
            "the configuration needs version: 2.1",
        ),
    }
    let setup = root.get("setup").and_then(as_bool) == Some(true);
    if setup {
        let span = root.get("setup").map_or(root.span, |n| n.span);
        if version.as_deref() != Some("2.1") {
            cx.error(
                span,
                "invalid-value",
                "a setup configuration needs version: 2.1",
            );
        }
        let workflows = root
            .get("workflows")
            .and_then(Node::as_map)
            .unwrap_or_default();
        let count = workflows
            .iter()
            .filter(|(k, _)| k.as_str() != Some("version"))
            .count();
        if count > 1 {
            cx.error(
                span,
                "setup-workflows",
                format!("a setup configuration runs one workflow; this one has {count}"),
            );
        }
    }
    // Pipeline parameters and values, interpolated everywhere first.
    let declared = params::declared(cx, root.get("parameters"), true);
    let given: IndexMap<String, Node> = pipeline
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), typed(v, declared.get(k))))
        .collect();
    let bound = params::bind(cx, "pipeline", &declared, &given, root.span);
    let mut values: IndexMap<String, Node> = pipeline
        .values
        .iter()
        .map(|(k, v)| (k.clone(), Node::new(Value::String(v.clone()), root.span)))
        .collect();
    for (k, v) in bound {
        values.insert(format!("pipeline.parameters.{k}"), v);
    }
    let mut root = root.clone();
    if let Value::Map(entries) = &mut root.value {
        let scope = Scope {
            pipeline: Some(&values),
            ..Scope::default()
        };
        for (k, v) in entries.iter_mut() {
            if k.as_str() != Some("parameters") {
                scope.apply(cx, v);
            }
        }
    }
    let mut defs = Defs::default();
    if let Some(orbs) = root.get("orbs") {
        for (k, v) in orbs.as_map().unwrap_or_default() {
            let Some(alias) = k.scalar_text() else {
                continue;
            };
            match &v.value {
                Value::String(reference)
                    if registry_orb(cx, pipeline, reference, v.span)
                        .map(|orb| defs.add(cx, &orb, &format!("{alias}/")))
                        .is_some() => {}
                Value::String(reference) => {
                    cx.warning(
                        v.span,
                        "orb-not-fetched",
                        format!(
                            "registry orb '{reference}' is not compiled here; what '{alias}/…' \
                             names is not checked (define it as an inline orb to use it)"
                        ),
                    );
                    defs.registry_orbs.insert(alias, reference.clone());
                }
                Value::Map(_) => defs.add(cx, v, &format!("{alias}/")),
                _ => cx.error(v.span, "invalid-type", "an orb is a reference or a mapping"),
            }
        }
    }
    defs.add(cx, &root, "");
    for (k, v) in root
        .get("job-groups")
        .and_then(Node::as_map)
        .unwrap_or_default()
    {
        if let Some(name) = k.scalar_text() {
            defs.job_groups.insert(name, v.clone());
        }
    }
    let Some(workflows) = root.get("workflows") else {
        // A 2.0 file may hold a single `build` job and no workflows.
        if defs.jobs.contains_key("build") {
            let entry = Node::new(Value::String("build".into()), root.span);
            let wf = Node::new(
                Value::Map(vec![(
                    Node::new(Value::String("jobs".into()), root.span),
                    Node::new(Value::Seq(vec![entry]), root.span),
                )]),
                root.span,
            );
            return workflow(cx, "workflow", &wf, &defs, pipeline, &values).map(|w| vec![w]);
        }
        cx.warning(
            root.span,
            "no-workflows",
            "the configuration has no workflows: nothing runs",
        );
        check_uninvoked(cx, &defs, &values, &[]);
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    let mut invoked = Vec::new();
    for (k, v) in workflows.as_map().unwrap_or_default() {
        let Some(name) = k.scalar_text() else {
            continue;
        };
        if name == "version" {
            continue;
        }
        for entry in v.get("jobs").and_then(Node::as_seq).unwrap_or_default() {
            let job = match &entry.value {
                Value::Map(m) => m.first().and_then(|(k, _)| k.scalar_text()),
                _ => entry.scalar_text(),
            };
            invoked.extend(job);
        }
        if let Some(w) = workflow(cx, &name, v, &defs, pipeline, &values) {
            out.push(w);
        }
    }
    check_uninvoked(cx, &defs, &values, &invoked);
    Some(out)
}

/// Jobs no workflow runs are still checked (their parameters bound to placeholders), and
/// reported as unused.
fn check_uninvoked(
    cx: &mut Ctx<'_>,
    defs: &Defs,
    values: &IndexMap<String, Node>,
    invoked: &[String],
) {
    for (name, def) in &defs.jobs {
        if invoked.contains(name) || name.contains('/') {
            continue;
        }
        let inv = Invocation {
            name: name.clone(),
            alias: name.clone(),
            job: name.clone(),
            args: IndexMap::new(),
            requires: Vec::new(),
            approval: false,
            pre: Vec::new(),
            post: Vec::new(),
            span: def.span,
            matrix_keys: Vec::new(),
            lenient: true,
            group: None,
            contexts: Vec::new(),
            when: When::OnSuccess,
        };
        compile_job(cx, &inv, def, defs, values, Vec::new());
    }
    let lenient = params::Binding {
        undeclared_ok: &[],
        placeholders: true,
    };
    // Every executor and command is checked once on its own too (what jobs use again is
    // reported once: diagnostics are deduplicated).
    for (name, def) in &defs.executors {
        if name.contains('/') {
            continue;
        }
        let declared = params::declared(cx, def.get("parameters"), false);
        let bound = params::bind_with(cx, name, &declared, &IndexMap::new(), def.span, &lenient);
        let mut def = def.clone();
        Scope {
            parameters: Some(&bound),
            pipeline: Some(values),
            placeholders: true,
            ..Scope::default()
        }
        .apply(cx, &mut def);
        executor_of(cx, &def, defs, values, "", 0);
    }
    for (name, def) in &defs.commands {
        if name.contains('/') {
            continue;
        }
        let declared = params::declared(cx, def.get("parameters"), false);
        let bound = params::bind_with(cx, name, &declared, &IndexMap::new(), def.span, &lenient);
        let scope = Scope {
            parameters: Some(&bound),
            pipeline: Some(values),
            placeholders: true,
            ..Scope::default()
        };
        let mut steps = def
            .get("steps")
            .cloned()
            .unwrap_or_else(|| Node::new(Value::Seq(Vec::new()), def.span));
        scope.apply(cx, &mut steps);
        let mut lowering = Lowering {
            defs,
            values,
            shell: None,
            working_directory: None,
            steps: Vec::new(),
            expanding: Vec::new(),
            expansions: 0,
        };
        let steps = steps.as_seq().unwrap_or_default().to_vec();
        lowering.steps_of(cx, &steps, &scope, "", 1);
    }
}

/// A registry orb's definitions from the pipeline's orb sources (by full reference, else by
/// name without the version); `None` when it has none for it.
fn registry_orb(
    cx: &mut Ctx<'_>,
    pipeline: &Pipeline,
    reference: &str,
    span: Span,
) -> Option<Node> {
    let name = reference.split('@').next().unwrap_or(reference);
    let text = if name == CONTINUATION_ORB_NAME {
        CONTINUATION_ORB
    } else {
        pipeline
            .orbs
            .get(reference)
            .or_else(|| pipeline.orbs.get(name))?
    };
    let (docs, diags) = yaml::load(reference, text, &LoadOptions::default());
    for d in diags.iter().filter(|d| d.is_error()) {
        cx.error(span, "orb", format!("orb {reference}: {}", d.message));
    }
    let orb = docs.into_iter().next()?;
    if orb.as_map().is_none() {
        cx.error(span, "orb", format!("orb {reference} is not a mapping"));
        return None;
    }
    Some(orb)
}

/// A pipeline parameter given as text, typed by its declaration.
fn typed(text: &str, decl: Option<&Node>) -> Node {
    let kind = decl
        .and_then(|d| d.get("type"))
        .and_then(Node::as_str)
        .unwrap_or("string");
    let value = match kind {
        "boolean" => match text {
            "true" | "yes" | "on" => Value::Bool(true),
            "false" | "no" | "off" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        "integer" => text
            .parse()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        _ => Value::String(text.to_owned()),
    };
    Node::new(value, Span::default())
}

/// One invocation of a job in a workflow, expanded (matrix instances each).
struct Invocation {
    /// The instance's name.
    name: String,
    /// The name `requires` uses for all instances (`alias`, else the job's name).
    alias: String,
    job: String,
    args: IndexMap<String, Node>,
    requires: Vec<(String, Span)>,
    approval: bool,
    pre: Vec<Node>,
    post: Vec<Node>,
    span: Span,
    /// Arguments that come from the matrix (they need not be declared).
    matrix_keys: Vec<String>,
    /// Checking a job no workflow runs: missing arguments are placeholders.
    lenient: bool,
    /// The job group invocation this job came from.
    group: Option<String>,
    /// `context:` names.
    contexts: Vec<String>,
    /// After which outcomes of what it requires the job runs.
    when: When,
}

fn workflow(
    cx: &mut Ctx<'_>,
    name: &str,
    node: &Node,
    defs: &Defs,
    pipeline: &Pipeline,
    values: &IndexMap<String, Node>,
) -> Option<Workflow> {
    cx.keys(
        node,
        &["jobs", "when", "unless", "triggers", "max_auto_reruns"],
    );
    if let Some(m) = node.get("max_auto_reruns") {
        if !matches!(m.value, Value::Int(1..=5)) {
            cx.error(
                m.span,
                "invalid-value",
                "max_auto_reruns is a number from 1 to 5",
            );
        }
    }
    let holds = |cx: &mut Ctx<'_>, n: &Node| match n.as_str() {
        // A bare expression (`pipeline.git.branch == "main"`), not a literal.
        Some(text) if is_expression(text) => Scope {
            pipeline: Some(values),
            ..Scope::default()
        }
        .expression(cx, text, n.span)
        .is_some_and(|v| v.truthy()),
        _ => params::logic(cx, n, 0),
    };
    if let Some(w) = node.get("when") {
        if !holds(cx, w) {
            return None;
        }
    }
    if let Some(u) = node.get("unless") {
        if holds(cx, u) {
            return None;
        }
    }
    if node.get("triggers").is_some()
        && pipeline.value("pipeline.trigger_source") != "scheduled_pipeline"
    {
        // Legacy scheduled workflows run on their schedule only.
        return None;
    }
    let Some(entries) = node.get("jobs").and_then(Node::as_seq) else {
        cx.error(
            node.span,
            "missing-key",
            format!("workflow '{name}' needs a list of jobs"),
        );
        return None;
    };
    let (entries, group_aliases) = expand_groups(cx, entries, defs);
    let mut invocations = Vec::new();
    let mut filtered: Vec<String> = Vec::new();
    for entry in &entries {
        let (job, config) = match &entry.value {
            Value::String(s) => (s.clone(), None),
            Value::Map(m) if m.len() == 1 => match m[0].0.scalar_text() {
                Some(k) => (k, Some(&m[0].1)),
                None => continue,
            },
            _ => {
                cx.error(
                    entry.span,
                    "invalid-type",
                    "a workflow job is a job name or a mapping of one job name to its options",
                );
                continue;
            }
        };
        let config = config.filter(|c| !c.is_null());
        let approval =
            config.and_then(|c| c.get("type")).and_then(Node::as_str) == Some("approval");
        if !approval && !defs.jobs.contains_key(&job) {
            match defs.registry_orb_of(&job) {
                Some(orb) => cx.warning(
                    entry.span,
                    "orb-not-fetched",
                    format!(
                        "job '{job}' comes from registry orb '{orb}', which is not compiled here"
                    ),
                ),
                None => cx.error(
                    entry.span,
                    "unknown-job",
                    format!("workflow '{name}' names job '{job}', which is not defined"),
                ),
            }
            continue;
        }
        if let Some(f) = config.and_then(|c| c.get("filters")) {
            if !filters_pass(cx, f, pipeline, values) {
                filtered.push(
                    config
                        .and_then(|c| c.get("name"))
                        .and_then(Node::scalar_text)
                        .unwrap_or_else(|| job.clone()),
                );
                continue;
            }
        } else if !pipeline.value("pipeline.git.tag").is_empty() {
            // CircleCI runs a job for a tag only when its filters name tags.
            filtered.push(job.clone());
            continue;
        }
        // `requires: [a: failed]` / `[a: [success, failed]]` / `[a: terminal]`: the job runs
        // after those outcomes of `a` (success only, by default).
        let mut statuses: Vec<String> = Vec::new();
        let requires: Vec<(String, Span)> = config
            .and_then(|c| c.get("requires"))
            .map(|r| match &r.value {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|i| match &i.value {
                        Value::Map(m) => {
                            let (k, v) = m.first()?;
                            for st in strings(Some(v)) {
                                if !REQUIRE_STATUSES.contains(&st.as_str()) {
                                    cx.error(
                                        v.span,
                                        "invalid-value",
                                        format!(
                                            "requires status '{st}' is not one of {}",
                                            REQUIRE_STATUSES.join(", ")
                                        ),
                                    );
                                }
                                statuses.push(st);
                            }
                            k.scalar_text().map(|k| (k, i.span))
                        }
                        _ => {
                            statuses.push("success".into());
                            i.scalar_text().map(|s| (s, i.span))
                        }
                    })
                    .collect(),
                _ => {
                    cx.error(
                        r.span,
                        "invalid-type",
                        "requires should be a list of job names",
                    );
                    Vec::new()
                }
            })
            .unwrap_or_default();
        let args: IndexMap<String, Node> = config
            .and_then(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| {
                let key = k.scalar_text()?;
                (!RESERVED.contains(&key.as_str())).then(|| (key, v.clone()))
            })
            .collect();
        let steps_of = |key: &str| -> Vec<Node> {
            config
                .and_then(|c| c.get(key))
                .and_then(Node::as_seq)
                .map(<[Node]>::to_vec)
                .unwrap_or_default()
        };
        let given_name = config
            .and_then(|c| c.get("name"))
            .and_then(Node::scalar_text);
        let success = statuses.iter().any(|s| s == "success" || s == "terminal");
        let other = statuses.iter().any(|s| s != "success");
        let when = match (success, other) {
            (true, true) => When::Always,
            (false, true) => When::OnFailure,
            _ => When::OnSuccess,
        };
        let base = Invocation {
            name: given_name.clone().unwrap_or_else(|| job.clone()),
            alias: job.clone(),
            job: job.clone(),
            args,
            requires,
            approval,
            pre: steps_of("pre-steps"),
            post: steps_of("post-steps"),
            span: entry.span,
            matrix_keys: Vec::new(),
            lenient: false,
            group: config
                .and_then(|c| c.get(GROUP_KEY))
                .and_then(Node::scalar_text),
            contexts: strings(config.and_then(|c| c.get("context"))),
            when,
        };
        match config.and_then(|c| c.get("matrix")) {
            Some(m) => invocations.extend(matrix(cx, m, base, given_name.is_some())),
            None => invocations.push(base),
        }
    }
    // Names of instances by the name `requires` uses (a job group's: all its jobs).
    let mut by_alias: IndexMap<String, Vec<String>> = group_aliases;
    for inv in &invocations {
        by_alias
            .entry(inv.alias.clone())
            .or_default()
            .push(inv.name.clone());
        if inv.alias != inv.name {
            by_alias
                .entry(inv.name.clone())
                .or_default()
                .push(inv.name.clone());
        }
    }
    let mut jobs = IndexMap::new();
    for inv in &invocations {
        if jobs.contains_key(&inv.name) {
            cx.error(
                inv.span,
                "duplicate-job",
                format!(
                    "workflow '{name}' runs two jobs named '{}'; give one a name:",
                    inv.name
                ),
            );
            continue;
        }
        let mut needs = Vec::new();
        let mut all_filtered = !inv.requires.is_empty();
        for (r, span) in &inv.requires {
            let pattern = r.contains("<<").then(|| name_pattern(r)).flatten();
            let member_of = invocations
                .iter()
                .find(|i| i.name == *r && i.group.is_some())
                .and_then(|i| i.group.clone());
            if member_of.is_some() && member_of != inv.group {
                cx.error(
                    *span,
                    "unknown-need",
                    format!(
                        "job '{}' requires '{r}', a job inside job group '{}': require the group instead",
                        inv.name,
                        member_of.unwrap_or_default()
                    ),
                );
                continue;
            }
            match by_alias.get(r) {
                Some(names) => {
                    all_filtered = false;
                    needs.extend(names.iter().map(|n| Need::new(n.clone(), *span)));
                }
                // `build-<< matrix.os >>` outside a matrix: every instance it can name.
                None if pattern.is_some() => {
                    all_filtered = false;
                    let re = pattern.as_ref().expect("checked by the guard");
                    needs.extend(
                        invocations
                            .iter()
                            .filter(|i| re.is_match(&i.name) && i.name != inv.name)
                            .map(|i| Need::new(i.name.clone(), *span)),
                    );
                }
                None if filtered.contains(r) => {}
                None => {
                    all_filtered = false;
                    cx.error(
                        *span,
                        "unknown-need",
                        format!(
                            "job '{}' requires '{r}', which is not in workflow '{name}'",
                            inv.name
                        ),
                    );
                }
            }
        }
        if all_filtered {
            continue;
        }
        let job = if inv.approval {
            approval_job(inv, needs)
        } else {
            let Some(def) = defs.jobs.get(&inv.job) else {
                continue;
            };
            compile_job(cx, inv, def, defs, values, needs)
        };
        jobs.insert(inv.name.clone(), job);
    }
    check_cycles(cx, &jobs);
    Some(Workflow {
        dialect: Dialect::CircleCi,
        path: cx.path.to_owned(),
        name: Some(name.to_owned()),
        run_name: None,
        triggers: Vec::new(),
        env: Env::Empty,
        defaults: RunDefaults::default(),
        permissions: None,
        concurrency: None,
        jobs,
        stages: Vec::new(),
        setup: false,
    })
}

fn check_cycles(cx: &mut Ctx<'_>, jobs: &IndexMap<String, Job>) {
    let index: IndexMap<&str, usize> = jobs
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let edges: Vec<Vec<(usize, Span)>> = jobs
        .values()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|n| index.get(n.job.as_str()).map(|&i| (i, n.span)))
                .collect()
        })
        .collect();
    if let Some(cycle) = crate::cycle::find_cycle(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&(j, _)| jobs[j].id.as_str()).collect();
        cx.error(
            cycle[0].1,
            "needs-cycle",
            format!(
                "jobs require each other in a cycle: {} → {}",
                names.join(" → "),
                names[0]
            ),
        );
    }
}

/// Job-group invocations replaced by the group's jobs: named `<name>-<job>` when the
/// invocation has a `name:`, their internal `requires` kept, the invocation's `requires` added
/// to the group's first jobs. Returns the entries and, for each group invocation's name, the
/// jobs `requires` on it waits for.
fn expand_groups(
    cx: &mut Ctx<'_>,
    entries: &[Node],
    defs: &Defs,
) -> (Vec<Node>, IndexMap<String, Vec<String>>) {
    let mut out = Vec::new();
    let mut aliases: IndexMap<String, Vec<String>> = IndexMap::new();
    let text = |s: &str, span: Span| Node::new(Value::String(s.to_owned()), span);
    // A group invoked more than once needs a name on every invocation.
    let mut invoked: IndexMap<String, Vec<(Span, bool)>> = IndexMap::new();
    for entry in entries {
        let (group, named) = match &entry.value {
            Value::String(s) => (s.clone(), false),
            Value::Map(m) if m.len() == 1 => (
                m[0].0.scalar_text().unwrap_or_default(),
                m[0].1.get("name").is_some(),
            ),
            _ => continue,
        };
        if defs.job_groups.contains_key(&group) {
            invoked.entry(group).or_default().push((entry.span, named));
        }
    }
    for (group, uses) in &invoked {
        if uses.len() > 1 {
            for (span, named) in uses {
                if !named {
                    cx.error(
                        *span,
                        "duplicate-job",
                        format!("job group '{group}' is invoked more than once: give each invocation a name:"),
                    );
                }
            }
        }
    }
    for entry in entries {
        let (group, config) = match &entry.value {
            Value::String(s) => (s.clone(), None),
            Value::Map(m) if m.len() == 1 => match m[0].0.scalar_text() {
                Some(k) => (k, Some(&m[0].1)),
                None => {
                    out.push(entry.clone());
                    continue;
                }
            },
            _ => {
                out.push(entry.clone());
                continue;
            }
        };
        let Some(def) = defs.job_groups.get(&group) else {
            out.push(entry.clone());
            continue;
        };
        let config = config.filter(|c| !c.is_null());
        for (k, _) in config.and_then(Node::as_map).unwrap_or_default() {
            let key = k.scalar_text().unwrap_or_default();
            if !matches!(key.as_str(), "name" | "requires" | "serial-group") {
                cx.error(
                    k.span,
                    "invalid-value",
                    format!("'{key}' is not allowed on the job group invocation '{group}' (only name, requires, serial-group)"),
                );
            }
        }
        let named = config
            .and_then(|c| c.get("name"))
            .and_then(Node::scalar_text);
        let instance = named.clone().unwrap_or_else(|| group.clone());
        let outer: Vec<Node> = config
            .and_then(|c| c.get("requires"))
            .and_then(Node::as_seq)
            .map(<[Node]>::to_vec)
            .unwrap_or_default();
        let members = def.get("jobs").and_then(Node::as_seq).unwrap_or_default();
        let member_names: Vec<String> = members
            .iter()
            .filter_map(|m| match &m.value {
                Value::Map(e) => e.first().and_then(|(k, v)| {
                    v.get("name")
                        .and_then(Node::scalar_text)
                        .or_else(|| k.scalar_text())
                }),
                _ => m.scalar_text(),
            })
            .collect();
        let rename = |n: &str| match &named {
            Some(prefix) if member_names.iter().any(|m| m == n) => format!("{prefix}-{n}"),
            _ => n.to_owned(),
        };
        for member in members {
            let (job, options) = match &member.value {
                Value::Map(e) if e.len() == 1 => match e[0].0.scalar_text() {
                    Some(k) => (
                        k,
                        e[0].1
                            .as_map()
                            .map(<[(Node, Node)]>::to_vec)
                            .unwrap_or_default(),
                    ),
                    None => continue,
                },
                _ => match member.scalar_text() {
                    Some(k) => (k, Vec::new()),
                    None => continue,
                },
            };
            let own_name = options
                .iter()
                .find(|(k, _)| k.as_str() == Some("name"))
                .and_then(|(_, v)| v.scalar_text())
                .unwrap_or_else(|| job.clone());
            for (k, _) in &options {
                if k.as_str() == Some("serial-group") {
                    cx.error(
                        k.span,
                        "invalid-value",
                        "serial-group is not allowed on a job inside a job group (put it on the group's invocation)",
                    );
                }
            }
            let mut options: Vec<(Node, Node)> = options
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), Some("name" | "requires")))
                .collect();
            options.push((text(GROUP_KEY, member.span), text(&instance, member.span)));
            let inner: Vec<Node> = member
                .as_map()
                .and_then(|e| e.first())
                .and_then(|(_, v)| v.get("requires"))
                .and_then(Node::as_seq)
                .unwrap_or_default()
                .iter()
                .map(|r| text(&rename(&r.scalar_text().unwrap_or_default()), r.span))
                .collect();
            let requires = if inner.is_empty() {
                outer.clone()
            } else {
                inner
            };
            let full = rename(&own_name);
            aliases
                .entry(instance.clone())
                .or_default()
                .push(full.clone());
            options.push((text("name", member.span), text(&full, member.span)));
            if !requires.is_empty() {
                options.push((
                    text("requires", member.span),
                    Node::new(Value::Seq(requires), member.span),
                ));
            }
            out.push(Node::new(
                Value::Map(vec![(
                    text(&job, member.span),
                    Node::new(Value::Map(options), member.span),
                )]),
                member.span,
            ));
        }
    }
    (out, aliases)
}

/// `filters:` of a job invocation: branches and tags, `only` then `ignore`, strings or
/// `/regex/` matching the whole name.
fn filters_pass(
    cx: &mut Ctx<'_>,
    filters: &Node,
    pipeline: &Pipeline,
    values: &IndexMap<String, Node>,
) -> bool {
    if let Some(text) = filters.as_str() {
        // An expression filter: `pipeline.git.branch == "main" or …`.
        return Scope {
            pipeline: Some(values),
            ..Scope::default()
        }
        .expression(cx, text, filters.span)
        .is_some_and(|v| v.truthy());
    }
    cx.keys(filters, &["branches", "tags"]);
    let tag = pipeline.value("pipeline.git.tag");
    let (what, value) = if tag.is_empty() {
        ("branches", pipeline.value("pipeline.git.branch"))
    } else {
        ("tags", tag)
    };
    let Some(f) = filters.get(what) else {
        // Branch pipelines run without branch filters; tag pipelines need tag filters.
        return what == "branches";
    };
    cx.keys(f, &["only", "ignore"]);
    let matches = |cx: &mut Ctx<'_>, node: &Node| -> bool {
        let patterns: Vec<Node> = match &node.value {
            Value::Seq(items) => items.clone(),
            _ => vec![node.clone()],
        };
        patterns.iter().any(|p| {
            let text = p.scalar_text().unwrap_or_default();
            match text.strip_prefix('/').and_then(|t| t.strip_suffix('/')) {
                Some(re) => match crate::expr::regex(&format!("^(?:{re})$"), "") {
                    Ok(r) => r.is_match(value),
                    Err(e) => {
                        cx.error(p.span, "invalid-value", format!("filter {text}: {e}"));
                        false
                    }
                },
                None => text == value,
            }
        })
    };
    if let Some(only) = f.get("only") {
        if !matches(cx, only) {
            return false;
        }
    }
    if let Some(ignore) = f.get("ignore") {
        if matches(cx, ignore) {
            return false;
        }
    }
    true
}

/// `matrix:` — every combination of `parameters` minus `exclude`; instances are named
/// `job-v1-v2` (values in the order of the parameters' names) unless a `name:` (with
/// `<< matrix.x >>`) names them.
fn matrix(cx: &mut Ctx<'_>, node: &Node, base: Invocation, named: bool) -> Vec<Invocation> {
    cx.keys(node, &["parameters", "exclude", "alias"]);
    let Some(parameters) = node.get("parameters").and_then(Node::as_map) else {
        cx.error(node.span, "missing-key", "matrix needs parameters:");
        return Vec::new();
    };
    let mut axes: Vec<(String, Vec<Node>)> = parameters
        .iter()
        .filter_map(|(k, v)| {
            let values = match &v.value {
                Value::Seq(items) => items.clone(),
                _ => vec![v.clone()],
            };
            Some((k.scalar_text()?, values))
        })
        .collect();
    axes.sort_by(|a, b| a.0.cmp(&b.0));
    let size = axes
        .iter()
        .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
        .unwrap_or(usize::MAX);
    if size > MAX_MATRIX {
        cx.error(
            node.span,
            "invalid-value",
            format!("matrix makes {size} jobs; at most {MAX_MATRIX} are allowed"),
        );
        return Vec::new();
    }
    let mut combos: Vec<IndexMap<String, Node>> = vec![IndexMap::new()];
    for (k, values) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(k.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    let excluded: Vec<IndexMap<String, String>> = node
        .get("exclude")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            e.as_map()
                .unwrap_or_default()
                .iter()
                .filter_map(|(k, v)| Some((k.scalar_text()?, params::render(v))))
                .collect()
        })
        .collect();
    let alias = node
        .get("alias")
        .and_then(Node::scalar_text)
        .unwrap_or_else(|| base.job.clone());
    let mut out = Vec::new();
    for combo in combos {
        let rendered: IndexMap<String, String> = combo
            .iter()
            .map(|(k, v)| (k.clone(), params::render(v)))
            .collect();
        if excluded.contains(&rendered) {
            continue;
        }
        let name = if named {
            let mut n = Node::new(Value::String(base.name.clone()), base.span);
            Scope {
                matrix: Some(&combo),
                ..Scope::default()
            }
            .apply(cx, &mut n);
            params::render(&n)
        } else {
            let values: Vec<&str> = rendered.values().map(String::as_str).collect();
            format!("{}-{}", base.job, values.join("-"))
        };
        let mut args = base.args.clone();
        args.extend(combo.clone());
        let scope = Scope {
            matrix: Some(&combo),
            ..Scope::default()
        };
        let requires = base
            .requires
            .iter()
            .map(|(r, s)| {
                let mut n = Node::new(Value::String(r.clone()), *s);
                scope.apply(cx, &mut n);
                (params::render(&n), *s)
            })
            .collect();
        out.push(Invocation {
            name,
            alias: alias.clone(),
            job: base.job.clone(),
            args,
            requires,
            approval: base.approval,
            pre: base.pre.clone(),
            post: base.post.clone(),
            span: base.span,
            matrix_keys: combo.keys().cloned().collect(),
            lenient: false,
            group: base.group.clone(),
            contexts: base.contexts.clone(),
            when: base.when,
        });
    }
    out
}

fn literal(s: &str, span: Span) -> Template {
    Template::literal(s, span)
}

fn condition(effective: &str, span: Span) -> Condition {
    Condition {
        source: String::new(),
        effective: effective.to_owned(),
        span,
    }
}

fn empty_job(id: &str, span: Span, needs: Vec<Need>) -> Job {
    Job {
        id: id.to_owned(),
        span,
        name: literal(id, span),
        needs_declared: true,
        needs,
        stage: None,
        when: When::OnSuccess,
        allow_failure: AllowFailure::default(),
        retry: Retry::default(),
        parallel: None,
        condition: condition("success()", span),
        runs_on: RunsOn::default(),
        environment: None,
        concurrency: None,
        outputs: IndexMap::new(),
        env: Env::Empty,
        defaults: RunDefaults::default(),
        timeout_minutes: None,
        continue_on_error: None,
        permissions: None,
        strategy: None,
        container: None,
        services: IndexMap::new(),
        steps: Vec::new(),
        call: None,
        inherit_env: None,
        start_in: None,
        log_outputs: Vec::new(),
        cleanup_timeout: 300,
        contexts: Vec::new(),
    }
}

/// `type: approval`: held like a manual job until approved; nothing runs in it.
fn approval_job(inv: &Invocation, needs: Vec<Need>) -> Job {
    let mut job = empty_job(&inv.name, inv.span, needs);
    job.when = When::Manual;
    job
}

/// What a job runs in: `docker` images (the first is the job's, the others services),
/// `machine`/`macos` (the host), or a named `executor` with its parameters.
struct Executor {
    container: Option<Container>,
    services: IndexMap<String, Container>,
    env: IndexMap<String, Var>,
    shell: Option<String>,
    working_directory: Option<String>,
    resource_class: Option<String>,
    /// A `macos` executor: the job runs on the `macos` label.
    macos: bool,
}

fn env_vars(cx: &mut Ctx<'_>, node: Option<&Node>, into: &mut IndexMap<String, Var>) {
    let Some(node) = node else { return };
    match node.as_map() {
        Some(entries) => {
            for (k, v) in entries {
                if let Some(name) = k.scalar_text() {
                    into.insert(
                        name,
                        Var {
                            value: v.scalar_text().unwrap_or_default(),
                            expand: false,
                        },
                    );
                }
            }
        }
        None => cx.error(node.span, "invalid-type", "environment should be a mapping"),
    }
}

fn executor_of(
    cx: &mut Ctx<'_>,
    node: &Node,
    defs: &Defs,
    values: &IndexMap<String, Node>,
    ns: &str,
    depth: usize,
) -> Executor {
    let mut ex = Executor {
        container: None,
        services: IndexMap::new(),
        env: IndexMap::new(),
        shell: None,
        working_directory: None,
        resource_class: None,
        macos: false,
    };
    // A named executor first; the node's own keys override it.
    if let Some(e) = node.get("executor") {
        let (name, args): (Option<String>, IndexMap<String, Node>) = match &e.value {
            Value::String(s) => (Some(s.clone()), IndexMap::new()),
            Value::Map(_) => (
                e.get("name").and_then(Node::scalar_text),
                e.as_map()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|(k, v)| {
                        let key = k.scalar_text()?;
                        (key != "name").then(|| (key, v.clone()))
                    })
                    .collect(),
            ),
            _ => (None, IndexMap::new()),
        };
        match name.as_deref().and_then(|n| Defs::find(&defs.executors, n, ns)) {
            Some((n, def)) if depth < 10 => {
                let declared: Declared = params::declared(cx, def.get("parameters"), false);
                let bound = params::bind(cx, &format!("executor '{n}'"), &declared, &args, e.span);
                let mut def = def.clone();
                Scope {
                    parameters: Some(&bound),
                    pipeline: Some(values),
                    ..Scope::default()
                }
                .apply(cx, &mut def);
                ex = executor_of(cx, &def, defs, values, namespace(&n), depth + 1);
            }
            _ => match name.as_deref().and_then(|n| defs.registry_orb_of(n).map(|o| (n, o))) {
                Some((n, orb)) => cx.warning(
                    e.span,
                    "orb-not-fetched",
                    format!("executor '{n}' comes from registry orb '{orb}', which is not compiled here; the job runs on the host"),
                ),
                None => cx.error(
                    e.span,
                    "unknown-executor",
                    format!("executor '{}' is not defined", name.unwrap_or_default()),
                ),
            },
        }
    }
    if let Some(images) = node.get("docker") {
        ex.container = None;
        ex.services.clear();
        match images.as_seq() {
            Some(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    let Some(image) = item.get("image").and_then(Node::scalar_text) else {
                        cx.error(item.span, "missing-key", "a docker image needs image:");
                        continue;
                    };
                    if let Some((_, digest)) = image.split_once('@') {
                        let ok = digest.strip_prefix("sha256:").is_some_and(|h| {
                            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
                        });
                        if !ok && !digest.contains("<<") {
                            cx.error(
                                item.get("image").map_or(item.span, |n| n.span),
                                "invalid-value",
                                format!("image digest '{digest}' is not sha256: and 64 hex digits"),
                            );
                        }
                    }
                    let mut env = IndexMap::new();
                    env_vars(cx, item.get("environment"), &mut env);
                    let words = |key: &str| {
                        item.get(key).map(|n| match &n.value {
                            Value::Seq(w) => w
                                .iter()
                                .filter_map(Node::scalar_text)
                                .map(|word| sh_quote(&word))
                                .collect::<Vec<_>>()
                                .join(" "),
                            _ => n.scalar_text().unwrap_or_default(),
                        })
                    };
                    let container = Container {
                        image: literal(&image, item.span),
                        credentials: None,
                        env: if env.is_empty() {
                            Env::Empty
                        } else {
                            Env::Vars(env)
                        },
                        ports: Vec::new(),
                        volumes: Vec::new(),
                        options: None,
                        command: words("command").map(|c| literal(&c, item.span)),
                        entrypoint: words("entrypoint").map(|c| literal(&c, item.span)),
                        optional: true,
                        span: item.span,
                    };
                    if i == 0 {
                        ex.container = Some(container);
                    } else {
                        let name = item
                            .get("name")
                            .and_then(Node::scalar_text)
                            .unwrap_or_else(|| service_name(&image));
                        ex.services.insert(name, container);
                    }
                }
            }
            _ => cx.error(
                images.span,
                "invalid-type",
                "docker should be a list of images",
            ),
        }
    }
    if let Some(m) = node.get("machine") {
        ex.container = None;
        ex.services.clear();
        let _ = m;
    }
    if node.get("macos").is_some() {
        cx.warning(
            node.get("macos").map_or(node.span, |n| n.span),
            "unsupported",
            "a macos executor needs a macOS machine: elsewhere a run refuses the job unless \
             --platform macos=host (or another executor) maps it",
        );
        ex.container = None;
        ex.macos = true;
    }
    env_vars(cx, node.get("environment"), &mut ex.env);
    if let Some(s) = node.get("shell").and_then(Node::scalar_text) {
        ex.shell = Some(s);
    }
    if let Some(w) = node.get("working_directory").and_then(Node::scalar_text) {
        ex.working_directory = Some(w);
    }
    if let Some(r) = node.get("resource_class").and_then(Node::scalar_text) {
        ex.resource_class = Some(r);
    }
    ex
}

/// A service's host name from its image (`cimg/postgres:14.0` → `postgres`).
fn service_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '@']).next().unwrap_or(last).to_owned()
}

fn compile_job(
    cx: &mut Ctx<'_>,
    inv: &Invocation,
    def: &Node,
    defs: &Defs,
    values: &IndexMap<String, Node>,
    needs: Vec<Need>,
) -> Job {
    let kind = def.get("type").and_then(Node::as_str).unwrap_or("build");
    // Other job types take keys of their own (CircleCI accepts any).
    let checked_keys: &[&str] = if matches!(kind, "build" | "approval") {
        &[
            "type",
            "docker",
            "machine",
            "macos",
            "windows",
            "executor",
            "shell",
            "parameters",
            "steps",
            "working_directory",
            "parallelism",
            "environment",
            "branches",
            "resource_class",
            "retention",
            "circleci_ip_ranges",
            "description",
            "key",
            "plan_name",
        ]
    } else {
        &[]
    };
    if !checked_keys.is_empty() {
        cx.keys(def, checked_keys);
    }
    let declared = params::declared(cx, def.get("parameters"), false);
    let bound = params::bind_with(
        cx,
        &format!("job '{}'", inv.job),
        &declared,
        &inv.args,
        inv.span,
        &params::Binding {
            undeclared_ok: &inv.matrix_keys,
            placeholders: inv.lenient,
        },
    );
    let scope = Scope {
        parameters: Some(&bound),
        pipeline: Some(values),
        placeholders: inv.lenient,
        ..Scope::default()
    };
    let mut def = def.clone();
    if let Value::Map(entries) = &mut def.value {
        for (k, v) in entries.iter_mut() {
            if k.as_str() != Some("parameters") {
                scope.apply(cx, v);
            }
        }
    }
    let ns = namespace(&inv.job);
    let ex = executor_of(cx, &def, defs, values, ns, 0);
    let mut job = empty_job(&inv.name, inv.span, needs);
    job.contexts = inv.contexts.clone();
    job.when = inv.when;
    job.container = ex.container.map(Box::new);
    job.services = ex.services;
    if ex.macos {
        job.runs_on.labels.push(literal("macos", inv.span));
    }
    if let Some(class) = &ex.resource_class {
        job.runs_on.labels.push(literal(class, inv.span));
    }
    let mut env = ex.env;
    env_vars(cx, def.get("environment"), &mut env);
    if !env.is_empty() {
        job.env = Env::Vars(env);
    }
    if let Some(p) = def.get("parallelism") {
        match &p.value {
            Value::Int(n) if *n > 1 => job.parallel = u32::try_from(*n).ok().map(Parallel::Count),
            Value::Int(_) => {}
            _ => cx.error(p.span, "invalid-type", "parallelism should be an integer"),
        }
    }
    let working_directory = ex
        .working_directory
        .filter(|w| w != "~/project" && w != "." && !w.is_empty())
        .map(|w| w.trim_start_matches("~/project/").to_owned());
    let shell = ex.shell;
    let mut lowering = Lowering {
        defs,
        values,
        shell: shell.as_deref(),
        working_directory: working_directory.as_deref(),
        steps: Vec::new(),
        expanding: Vec::new(),
        expansions: 0,
    };
    lowering.steps_of(cx, &inv.pre, &scope, "", 0);
    if matches!(kind, "lock" | "unlock") && def.get("key").is_none() {
        cx.error(def.span, "missing-key", format!("a {kind} job needs key:"));
    }
    match def.get("steps").and_then(Node::as_seq) {
        _ if kind != "build" => {}
        Some(steps) => lowering.steps_of(cx, steps, &scope, ns, 0),
        None => cx.error(
            def.span,
            "missing-key",
            format!("job '{}' needs steps:", inv.job),
        ),
    }
    lowering.steps_of(cx, &inv.post, &scope, "", 0);
    job.steps = lowering.steps;
    match kind {
        "approval" => job.when = When::Manual,
        "build" | "release" | "no-op" | "lock" | "unlock" => {}
        other => cx.error(
            def.get("type").map_or(def.span, |n| n.span),
            "invalid-value",
            format!("job type '{other}' is not build, release, no-op, approval, lock or unlock"),
        ),
    }
    job
}

/// Steps of a job, commands expanded.
struct Lowering<'a> {
    defs: &'a Defs,
    values: &'a IndexMap<String, Node>,
    shell: Option<&'a str>,
    working_directory: Option<&'a str>,
    steps: Vec<Step>,
    /// Commands being expanded (a command may not call itself).
    expanding: Vec<String>,
    /// Commands expanded so far (commands calling others several times multiply).
    expansions: usize,
}

impl Lowering<'_> {
    fn push(&mut self, name: &str, action: StepAction, span: Span) -> &mut Step {
        let id = format!("step-{}", self.steps.len() + 1);
        self.steps
            .push(Step::generated(id, name, "success()", action, span));
        self.steps.last_mut().expect("a step was just pushed")
    }

    fn steps_of(
        &mut self,
        cx: &mut Ctx<'_>,
        steps: &[Node],
        scope: &Scope<'_>,
        ns: &str,
        depth: usize,
    ) {
        for step in steps {
            self.step(cx, step, scope, ns, depth);
        }
    }

    fn step(&mut self, cx: &mut Ctx<'_>, step: &Node, scope: &Scope<'_>, ns: &str, depth: usize) {
        let (kind, args) = match &step.value {
            Value::String(s) => (s.clone(), None),
            Value::Map(m) if m.len() == 1 => match m[0].0.scalar_text() {
                Some(k) => (k, Some(&m[0].1)),
                None => return,
            },
            _ => {
                cx.error(
                    step.span,
                    "invalid-type",
                    "a step is a name or a mapping of one name to its options",
                );
                return;
            }
        };
        let span = step.span;
        let get = |key: &str| args.and_then(|a| a.get(key));
        let text = |key: &str| get(key).and_then(Node::scalar_text);
        match kind.as_str() {
            "run" => self.run(cx, args, span),
            "checkout" => {
                if let Some(args) = args {
                    cx.keys(args, &["path", "method", "name", "depth"]);
                    if let Some(m) = args.get("method") {
                        if !matches!(m.as_str(), Some("blobless" | "full" | "shallow")) {
                            cx.error(
                                m.span,
                                "invalid-value",
                                "checkout method is blobless, shallow or full",
                            );
                        }
                    }
                }
                self.push("Checkout code", StepAction::Checkout, span);
            }
            "save_cache" => {
                let Some(key) = text("key") else {
                    cx.error(span, "missing-key", "save_cache needs key:");
                    return;
                };
                let paths = strings(get("paths"));
                if paths.is_empty() {
                    cx.error(span, "missing-key", "save_cache needs paths:");
                }
                let mut cache = cache_key(&key, self.values);
                cache.paths = paths;
                cache.policy = "push".into();
                cache.when = match text("when").as_deref() {
                    Some("always") => When::Always,
                    Some("on_fail") => When::OnFailure,
                    _ => When::OnSuccess,
                };
                let name = text("name").unwrap_or_else(|| "Saving cache".into());
                self.push(
                    &name,
                    StepAction::CacheSave {
                        caches: vec![cache],
                    },
                    span,
                );
            }
            "restore_cache" => {
                let mut keys = strings(get("keys"));
                if let Some(k) = text("key") {
                    keys.insert(0, k);
                }
                let Some(first) = keys.first() else {
                    cx.error(span, "missing-key", "restore_cache needs key: or keys:");
                    return;
                };
                let mut cache = cache_key(first, self.values);
                cache.fallback_keys = keys[1..]
                    .iter()
                    .map(|k| cache_key(k, self.values))
                    .map(|c| c.key_prefix.unwrap_or(c.key))
                    .collect();
                cache.policy = "pull".into();
                cache.prefix_match = true;
                let name = text("name").unwrap_or_else(|| "Restoring cache".into());
                self.push(
                    &name,
                    StepAction::CacheRestore {
                        caches: vec![cache],
                    },
                    span,
                );
            }
            "persist_to_workspace" => {
                let root = text("root").unwrap_or_else(|| ".".into());
                let root = self.project_path(cx, &root, span);
                self.push(
                    "Persisting to workspace",
                    StepAction::WorkspacePersist {
                        root,
                        paths: strings(get("paths")),
                    },
                    span,
                );
            }
            "attach_workspace" => {
                let at = text("at").unwrap_or_else(|| ".".into());
                let at = self.project_path(cx, &at, span);
                self.push(
                    "Attaching workspace",
                    StepAction::WorkspaceAttach { at },
                    span,
                );
            }
            "store_artifacts" => {
                let Some(path) = text("path") else {
                    cx.error(span, "missing-key", "store_artifacts needs path:");
                    return;
                };
                let upload = ArtifactUpload {
                    name: text("destination"),
                    paths: vec![path],
                    ..ArtifactUpload::default()
                };
                self.push(
                    "Uploading artifacts",
                    StepAction::ArtifactUpload(Box::new(upload)),
                    span,
                )
                .condition = condition("always()", span);
            }
            "store_test_results" => {
                let Some(path) = text("path") else {
                    cx.error(span, "missing-key", "store_test_results needs path:");
                    return;
                };
                let junit = if path.ends_with(".xml") {
                    path
                } else {
                    format!("{}/**/*.xml", path.trim_end_matches('/'))
                };
                let upload = ArtifactUpload {
                    name: Some("test-results".into()),
                    junit: vec![junit],
                    ..ArtifactUpload::default()
                };
                self.push(
                    "Uploading test results",
                    StepAction::ArtifactUpload(Box::new(upload)),
                    span,
                )
                .condition = condition("always()", span);
            }
            "when" | "unless" => {
                let Some(args) = args else { return };
                let cond = args.get("condition");
                let holds = cond.is_some_and(|c| params::logic(cx, c, 0));
                if cond.is_none() {
                    cx.error(span, "missing-key", format!("{kind} needs condition:"));
                }
                if holds == (kind == "when") {
                    let steps = args.get("steps").and_then(Node::as_seq).unwrap_or_default();
                    self.steps_of(cx, steps, scope, ns, depth);
                }
            }
            "steps" => {
                // A `steps` parameter inserted in place.
                let steps = args.and_then(Node::as_seq).unwrap_or_default();
                self.steps_of(cx, steps, scope, ns, depth);
            }
            "setup_remote_docker" | "add_ssh_keys" | "install_signing_bundle" => {
                cx.warning(
                    span,
                    "unsupported",
                    format!("{kind} does nothing locally (jobs reach the local Docker daemon and your SSH agent directly)"),
                );
            }
            name => self.command(cx, name, args, span, ns, depth),
        }
    }

    /// A path of a workspace step as a path of the project: `~/project/x` is `x`, a relative
    /// path is taken from the job's working directory; a path outside the project is read as
    /// if it were inside it, with a warning (workspaces live in the project here).
    fn project_path(&self, cx: &mut Ctx<'_>, path: &str, span: Span) -> String {
        let rel = if path == "~/project" {
            ".".to_owned()
        } else if let Some(rest) = path.strip_prefix("~/project/") {
            rest.to_owned()
        } else if path.starts_with('/') || path.starts_with('~') {
            let inside = path.trim_start_matches('~').trim_start_matches('/');
            cx.warning(
                span,
                "unsupported",
                format!(
                    "workspace path {path} is outside the project; Gantry keeps workspaces in \
                     the project and reads it as {inside}"
                ),
            );
            inside.to_owned()
        } else {
            match self.working_directory {
                Some(wd) if path == "." => wd.to_owned(),
                Some(wd) => format!("{wd}/{path}"),
                None => path.to_owned(),
            }
        };
        if rel.is_empty() {
            ".".into()
        } else {
            rel
        }
    }

    fn run(&mut self, cx: &mut Ctx<'_>, args: Option<&Node>, span: Span) {
        let Some(args) = args else {
            cx.error(span, "missing-key", "run needs a command");
            return;
        };
        let (command, options) = match &args.value {
            Value::String(s) => (s.clone(), None),
            Value::Map(_) => {
                cx.keys(
                    args,
                    &[
                        "command",
                        "name",
                        "shell",
                        "environment",
                        "background",
                        "working_directory",
                        "no_output_timeout",
                        "when",
                        "max_auto_reruns",
                        "auto_rerun_delay",
                    ],
                );
                match args.get("command").and_then(Node::scalar_text) {
                    Some(c) => (c, Some(args)),
                    None => {
                        cx.error(args.span, "missing-key", "run needs command:");
                        return;
                    }
                }
            }
            _ => {
                cx.error(args.span, "invalid-type", "run is a command or a mapping");
                return;
            }
        };
        let get = |k: &str| options.and_then(|o| o.get(k));
        let name = get("name")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| command.lines().next().unwrap_or_default().to_owned());
        let dir = get("working_directory")
            .and_then(Node::scalar_text)
            .map(|w| w.trim_start_matches("~/project/").to_owned())
            .or(self.working_directory.map(str::to_owned));
        let shell = get("shell")
            .and_then(Node::scalar_text)
            .or(self.shell.map(str::to_owned));
        let background = get("background").and_then(as_bool).unwrap_or(false);
        let reruns = auto_reruns(
            cx,
            get("max_auto_reruns"),
            get("auto_rerun_delay"),
            background,
            span,
        );
        // A step rerun: the command again in a fresh shell, after the delay.
        let command = match reruns {
            Some((n, delay)) => format!(
                "__gantry_step() {{ if [ -n \"$BASH_VERSION\" ]; then bash -eo pipefail -c \"$1\"; else sh -e -c \"$1\"; fi; }}\n\
                 for __gantry_try in $(seq 0 {n}); do\n\
                 if __gantry_step {script}; then exit 0; fi\n\
                 if [ \"$__gantry_try\" -lt {n} ]; then echo \"step failed; rerun $((__gantry_try + 1)) of {n} in {delay}s\"; sleep {delay}; fi\n\
                 done\nexit 1",
                script = sh_quote(&command),
            ),
            None => command,
        };
        let action = match shell {
            Some(sh) => StepAction::Run {
                script: literal(&command, span),
                shell: Some(literal(&format!("{sh} {{0}}"), span)),
                working_directory: dir.map(|d| literal(&d, span)),
            },
            None => {
                let mut commands = Vec::new();
                if let Some(d) = dir {
                    commands.push(format!("mkdir -p {0} && cd {0}", sh_quote(&d)));
                }
                commands.push(command);
                StepAction::Commands {
                    commands,
                    echo: false,
                }
            }
        };
        let mut env = IndexMap::new();
        env_vars(cx, get("environment"), &mut env);
        let effective = match get("when").and_then(Node::as_str) {
            Some("always") => "always()",
            Some("on_fail") => "failure()",
            Some("on_success") | None => "success()",
            Some(other) => {
                cx.error(
                    span,
                    "invalid-value",
                    format!("run when: '{other}' is not always, on_success or on_fail"),
                );
                "success()"
            }
        };
        let no_output = match get("no_output_timeout") {
            Some(n) => match duration_secs(&n.scalar_text().unwrap_or_default()) {
                Some(secs) if secs > 0 => secs,
                _ => {
                    cx.error(
                        n.span,
                        "invalid-value",
                        "no_output_timeout is a duration like 30s, 20m or 1h30m",
                    );
                    DEFAULT_NO_OUTPUT_TIMEOUT
                }
            },
            None => DEFAULT_NO_OUTPUT_TIMEOUT,
        };
        let step = self.push(&name, action, span);
        step.condition = condition(effective, span);
        step.background = background;
        step.no_output_timeout = Some(no_output);
        if !env.is_empty() {
            step.env = Env::Vars(env);
        }
    }

    fn command(
        &mut self,
        cx: &mut Ctx<'_>,
        name: &str,
        args: Option<&Node>,
        span: Span,
        ns: &str,
        depth: usize,
    ) {
        let Some((full, def)) = Defs::find(&self.defs.commands, name, ns) else {
            match self.defs.registry_orb_of(name) {
                Some(orb) => cx.error(
                    span,
                    "orb-not-fetched",
                    format!("command '{name}' comes from registry orb '{orb}', which is not compiled here; define it as an inline orb"),
                ),
                None => cx.error(span, "unknown-command", format!("'{name}' is not a step or a defined command")),
            }
            return;
        };
        if self.expanding.contains(&full) {
            cx.error(
                span,
                "command-cycle",
                format!(
                    "command '{full}' calls itself: {} → {full}",
                    self.expanding.join(" → ")
                ),
            );
            return;
        }
        self.expansions += 1;
        if self.expansions == MAX_EXPANSIONS + 1 {
            cx.error(
                span,
                "invalid-value",
                format!("a job expands more than {MAX_EXPANSIONS} commands"),
            );
        }
        if self.expansions > MAX_EXPANSIONS {
            return;
        }
        if depth >= MAX_COMMAND_DEPTH {
            cx.error(span, "invalid-value", format!("command '{name}' expands more than {MAX_COMMAND_DEPTH} levels deep (does it call itself?)"));
            return;
        }
        let declared = params::declared(cx, def.get("parameters"), false);
        let given: IndexMap<String, Node> = args
            .and_then(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| Some((k.scalar_text()?, v.clone())))
            .collect();
        let bound = params::bind(cx, &format!("command '{name}'"), &declared, &given, span);
        let scope = Scope {
            parameters: Some(&bound),
            pipeline: Some(self.values),
            ..Scope::default()
        };
        let mut steps = def
            .get("steps")
            .cloned()
            .unwrap_or_else(|| Node::new(Value::Seq(Vec::new()), span));
        scope.apply(cx, &mut steps);
        let steps = steps.as_seq().unwrap_or_default().to_vec();
        self.expanding.push(full.clone());
        self.steps_of(cx, &steps, &scope, namespace(&full), depth + 1);
        self.expanding.pop();
    }
}

/// `max_auto_reruns` (1–5) and `auto_rerun_delay` (`Ns` or `Nm`, above 0, at most 10
/// minutes, only with `max_auto_reruns`; not on background steps): the reruns and the delay
/// in seconds.
fn auto_reruns(
    cx: &mut Ctx<'_>,
    max: Option<&Node>,
    delay: Option<&Node>,
    background: bool,
    span: Span,
) -> Option<(i64, u64)> {
    let n = match max {
        None => {
            if let Some(d) = delay {
                cx.error(
                    d.span,
                    "invalid-value",
                    "auto_rerun_delay needs max_auto_reruns",
                );
            }
            return None;
        }
        Some(m) => match m.value {
            Value::Int(n) if (1..=5).contains(&n) => n,
            _ => {
                cx.error(
                    m.span,
                    "invalid-value",
                    "max_auto_reruns is a number from 1 to 5",
                );
                return None;
            }
        },
    };
    if background {
        cx.error(
            span,
            "invalid-value",
            "a background step cannot have max_auto_reruns",
        );
        return None;
    }
    let secs = match delay {
        None => 0,
        Some(d) => {
            let text = d.scalar_text().unwrap_or_default();
            let parsed = text
                .strip_suffix('m')
                .and_then(|v| v.parse::<u64>().ok().map(|v| v * 60))
                .or_else(|| text.strip_suffix('s').and_then(|v| v.parse::<u64>().ok()));
            match parsed {
                Some(s) if (1..=600).contains(&s) => s,
                _ => {
                    cx.error(
                        d.span,
                        "invalid-value",
                        "auto_rerun_delay is a duration like 30s or 5m, above 0 and at most 10m",
                    );
                    return None;
                }
            }
        }
    };
    Some((n, secs))
}

/// How long a `run` step may stay quiet: CircleCI's default, 10 minutes.
const DEFAULT_NO_OUTPUT_TIMEOUT: u64 = 600;

/// Seconds of a CircleCI duration: numbers with `h`, `m` or `s` units (`1h30m`, `90s`,
/// `2.5m`); a bare number is seconds.
fn duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    if text.is_empty() {
        return None;
    }
    let (mut total, mut number) = (0f64, String::new());
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = number.parse().ok()?;
                total += n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                number.clear();
            }
            _ => return None,
        }
    }
    (number.is_empty() && total.is_finite() && total < 1e9).then_some(total.round() as u64)
}

/// Whether a bare `when`/`filters` string is an expression rather than a literal.
fn is_expression(text: &str) -> bool {
    !matches!(text.trim(), "true" | "false" | "")
        && (text.contains("==")
            || text.contains("!=")
            || [" and ", " or ", "not ", " starts-with ", " matches "]
                .iter()
                .any(|w| text.contains(w)))
}

/// A name holding `<< … >>` parts as a pattern where each part stands for anything.
fn name_pattern(name: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let mut rest = name;
    while let Some(start) = rest.find("<<") {
        re.push_str(&regex::escape(&rest[..start]));
        let end = rest[start..].find(">>")?;
        re.push_str(".+");
        rest = &rest[start + end + 2..];
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    regex::Regex::new(&re).ok()
}

/// The namespace of a definition's name: `orb/` for `orb/name`, else none.
fn namespace(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..=i])
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn strings(node: Option<&Node>) -> Vec<String> {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        Some(_) => node.and_then(Node::scalar_text).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A cache key template: `{{ .Branch }}`, `{{ .Revision }}`, `{{ epoch }}`, `{{ arch }}` are
/// decided now; `{{ .Environment.X }}` becomes `${X}` (expanded when the job runs);
/// `{{ checksum "f" }}` makes the key from the files' contents at that point, as the cache's
/// `key_files`.
fn cache_key(template: &str, values: &IndexMap<String, Node>) -> Cache {
    let value = |k: &str| values.get(k).map(params::render).unwrap_or_default();
    let mut files = Vec::new();
    let key = crate::template::replace_delimited(template, "{{", "}}", |inner| {
        Some(match inner.trim() {
            ".Branch" => value("pipeline.git.branch"),
            ".Revision" => value("pipeline.git.revision"),
            ".BuildNum" => value("pipeline.number"),
            "epoch" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
                .to_string(),
            "arch" => format!("arch1-linux-{}", std::env::consts::ARCH),
            other => {
                if let Some(var) = other.strip_prefix(".Environment.") {
                    format!("${{{var}}}")
                } else if let Some(file) = other.strip_prefix("checksum") {
                    files.push(file.trim().trim_matches('"').to_owned());
                    String::new()
                } else {
                    return None;
                }
            }
        })
    });
    if files.is_empty() {
        Cache {
            key,
            ..Cache::default()
        }
    } else {
        Cache {
            key: String::new(),
            key_prefix: Some(key),
            key_files: files,
            ..Cache::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::duration_secs;

    #[test]
    fn durations_read_as_circleci_writes_them() {
        assert_eq!(duration_secs("30s"), Some(30));
        assert_eq!(duration_secs("20m"), Some(1200));
        assert_eq!(duration_secs("1h30m"), Some(5400));
        assert_eq!(duration_secs("2.5m"), Some(150));
        assert_eq!(duration_secs("90"), Some(90));
        assert_eq!(duration_secs("10 minutes"), None);
        assert_eq!(duration_secs("5m3"), None);
        assert_eq!(duration_secs(""), None);
    }
}
