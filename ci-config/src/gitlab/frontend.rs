//! Reading a composed GitLab configuration into the model, with located diagnostics.

use indexmap::IndexMap;

use super::compose::{resolve_extends, resolve_references, Includes};
use super::{
    duration_secs, rules, Artifacts, Cache, GitLabJob, Image, JobRules, Pipeline, RefFilter, Rule,
    Variable,
};
use crate::diagnostic::Diagnostic;
use crate::diagnostic::Parsed;
use crate::model::{
    AllowFailure, ArtifactUpload, Condition, Container, Dialect, Env, Job, LogOutput, Need,
    Parallel, Retry, RunDefaults, RunsOn, Step, StepAction, Var, When, Workflow,
};
use crate::span::Span;
use crate::template::Template;
use crate::yaml::{self, DuplicateKeys, LoadOptions, Node, TagPolicy, Value};

/// Top-level keys that are not jobs.
const GLOBAL_KEYS: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "types",
    "spec",
];

/// Keys of a job.
const JOB_KEYS: &[&str] = &[
    "script",
    "before_script",
    "after_script",
    "image",
    "services",
    "stage",
    "variables",
    "rules",
    "only",
    "except",
    "when",
    "allow_failure",
    "needs",
    "dependencies",
    "parallel",
    "retry",
    "timeout",
    "artifacts",
    "cache",
    "interruptible",
    "resource_group",
    "environment",
    "coverage",
    "extends",
    "tags",
    "trigger",
    "release",
    "secrets",
    "id_tokens",
    "inherit",
    "start_in",
    "hooks",
    "pages",
    "manual_confirmation",
    "identity",
    "dast_configuration",
    "run",
    "type",
];

/// Keys `default:` may hold.
const DEFAULT_KEYS: &[&str] = &[
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
];

const RETRY_WHEN: &[&str] = &[
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
];

pub(super) struct Ctx<'a> {
    pub(super) path: &'a str,
    pub(super) diags: Vec<Diagnostic>,
    /// Some includes were left out (their paths name variables only a pipeline knows, or
    /// they could not be fetched): what they would define is unknown.
    pub(super) includes_unchecked: bool,
    /// Files read by `include:` so far (GitLab allows 150 per pipeline).
    pub(super) includes_read: usize,
}

impl Ctx<'_> {
    pub(super) fn error(&mut self, span: Span, code: &'static str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(self.path, span, code, message));
    }

    pub(super) fn warning(&mut self, span: Span, code: &'static str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(self.path, span, code, message));
    }

    pub(super) fn keys(&mut self, node: &Node, allowed: &[&str], what: &str) {
        if let Some(entries) = node.as_map() {
            for (k, _) in entries {
                let key = k.scalar_text().unwrap_or_default();
                if !allowed.contains(&key.as_str()) {
                    self.error(
                        k.span,
                        "unknown-key",
                        format!("{what} config contains unknown key: {key}"),
                    );
                }
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => node.scalar_text(),
            _ => {
                self.error(
                    node.span,
                    "invalid-type",
                    format!("{what} should be a string"),
                );
                None
            }
        }
    }

    /// A string or a list of strings (nested lists flattened, as in scripts).
    pub(super) fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.flatten(node, what, &mut out, 0);
        out
    }

    fn flatten(&mut self, node: &Node, what: &str, out: &mut Vec<String>, depth: usize) {
        match &node.value {
            Value::Seq(items) if depth < 10 => {
                for i in items {
                    self.flatten(i, what, out, depth + 1);
                }
            }
            Value::Null if depth == 0 => {}
            _ => {
                if let Some(s) = self.string(node, what) {
                    out.push(s);
                }
            }
        }
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let b = node.as_bool();
        if b.is_none() {
            self.error(
                node.span,
                "invalid-type",
                format!("{what} should be a boolean"),
            );
        }
        b
    }
}

/// Loads every document of a file's YAML as GitLab does (last duplicate key wins, tags kept).
pub(super) fn load_all(path: &str, src: &str, diags: &mut Vec<Diagnostic>) -> Vec<Node> {
    let options = LoadOptions {
        duplicate_keys: DuplicateKeys::LastWins,
        tags: TagPolicy::Keep,
        ..LoadOptions::default()
    };
    let (docs, mut d) = yaml::load(path, src, &options);
    diags.append(&mut d);
    docs
}

/// Loads a file's YAML as GitLab does (last duplicate key wins, tags kept).
fn load(path: &str, src: &str, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    load_all(path, src, diags).into_iter().next()
}

/// The composed configuration (includes, extends, references), or why it cannot be made.
fn compose(cx: &mut Ctx<'_>, src: &str, includes: &dyn Includes) -> Option<Node> {
    let root = load(cx.path, src, &mut cx.diags)?;
    if root.is_null() {
        cx.error(
            root.span,
            "empty-file",
            "Please provide content of .gitlab-ci.yml",
        );
        return None;
    }
    if root.as_map().is_none() {
        cx.error(
            root.span,
            "invalid-type",
            "The configuration should be a mapping",
        );
        return None;
    }
    let mut root = super::include::with_includes(cx, root, includes, 0, &mut Vec::new());
    let lenient = cx.includes_unchecked;
    let mut missing = Vec::new();
    if let Err((span, m)) = resolve_extends(&mut root, lenient, &mut missing) {
        cx.error(span, "extends", m);
        return None;
    }
    if let Err((span, m)) = resolve_references(&mut root, lenient, &mut missing) {
        cx.error(span, "reference", m);
        return None;
    }
    for (span, m) in missing {
        cx.warning(
            span,
            "include-unchecked",
            format!("{m} (an include that was not read may define it)"),
        );
    }
    Some(root)
}

pub(super) fn merged(
    path: &str,
    src: &str,
    includes: &dyn Includes,
) -> Result<Node, Vec<Diagnostic>> {
    let mut cx = Ctx {
        path,
        diags: Vec::new(),
        includes_unchecked: false,
        includes_read: 0,
    };
    match compose(&mut cx, src, includes) {
        Some(n) if !cx.diags.iter().any(Diagnostic::is_error) => Ok(n),
        _ => Err(cx.diags),
    }
}

pub(super) fn parse(path: &str, src: &str, includes: &dyn Includes) -> Parsed<Pipeline> {
    let mut cx = Ctx {
        path,
        diags: Vec::new(),
        includes_unchecked: false,
        includes_read: 0,
    };
    let value = compose(&mut cx, src, includes).and_then(|root| pipeline(&mut cx, &root));
    let mut diagnostics = cx.diags;
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    Parsed { value, diagnostics }
}

fn literal(s: &str, span: Span) -> Template {
    Template::literal(s, span)
}

fn when(cx: &mut Ctx<'_>, node: &Node, allowed: &[&str]) -> Option<When> {
    let s = cx.string(node, "when")?;
    if !allowed.contains(&s.as_str()) {
        cx.error(
            node.span,
            "invalid-value",
            format!("when should be one of: {}", allowed.join(", ")),
        );
        return None;
    }
    Some(match s.as_str() {
        "on_failure" => When::OnFailure,
        "always" => When::Always,
        "manual" => When::Manual,
        "never" => When::Never,
        // `delayed` runs after its `start_in`, otherwise like on_success.
        _ => When::OnSuccess,
    })
}

/// A job's own `when:` (`never` belongs to `rules` and `workflow:rules` only).
const JOB_WHEN: &[&str] = &["on_success", "on_failure", "always", "manual", "delayed"];

/// A job rule's `when:`.
const RULE_WHEN: &[&str] = &[
    "on_success",
    "on_failure",
    "always",
    "manual",
    "delayed",
    "never",
];

fn variables(cx: &mut Ctx<'_>, node: &Node, global: bool) -> IndexMap<String, Variable> {
    let mut out = IndexMap::new();
    let Some(entries) = node.as_map() else {
        if !node.is_null() {
            cx.error(node.span, "invalid-type", "variables should be a mapping");
        }
        return out;
    };
    for (k, v) in entries {
        let Some(name) = k.scalar_text() else {
            continue;
        };
        let var = match &v.value {
            Value::Map(_) => {
                let allowed: &[&str] = if global {
                    &["value", "description", "options", "expand"]
                } else {
                    &["value", "expand"]
                };
                cx.keys(v, allowed, &format!("variables:{name}"));
                Variable {
                    value: v
                        .get("value")
                        .and_then(|n| cx.string(n, "value"))
                        .unwrap_or_default(),
                    expand: v.get("expand").and_then(Node::as_bool).unwrap_or(true),
                    description: v
                        .get("description")
                        .and_then(|n| cx.string(n, "description")),
                    options: v
                        .get("options")
                        .map(|n| cx.strings(n, "options"))
                        .unwrap_or_default(),
                }
            }
            Value::Seq(_) => {
                cx.error(
                    v.span,
                    "invalid-type",
                    format!("variable {name} should be a string"),
                );
                continue;
            }
            Value::Null => Variable {
                expand: true,
                ..Variable::default()
            },
            _ => Variable {
                value: v.scalar_text().unwrap_or_default(),
                expand: true,
                ..Variable::default()
            },
        };
        if !var.options.is_empty() && !var.options.contains(&var.value) {
            cx.error(
                v.span,
                "invalid-value",
                format!("variable {name}: the value must be one of its options"),
            );
        }
        out.insert(name, var);
    }
    out
}

/// Variables as name → value (services, rules).
fn plain_variables(cx: &mut Ctx<'_>, node: &Node) -> IndexMap<String, String> {
    variables(cx, node, false)
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

/// `exit_codes:` — one code or a list.
fn exit_codes(node: Option<&Node>) -> Vec<i32> {
    match node.map(|n| &n.value) {
        Some(Value::Int(i)) => vec![*i as i32],
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|i| match i.value {
                Value::Int(c) => Some(c as i32),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn image(cx: &mut Ctx<'_>, node: &Node, service: bool) -> Option<Image> {
    match &node.value {
        Value::String(s) => Some(Image {
            name: s.clone(),
            ..Image::default()
        }),
        Value::Map(_) => {
            let allowed: &[&str] = if service {
                &[
                    "name",
                    "entrypoint",
                    "command",
                    "alias",
                    "variables",
                    "pull_policy",
                    "docker",
                    "kubernetes",
                ]
            } else {
                &["name", "entrypoint", "pull_policy", "docker", "kubernetes"]
            };
            cx.keys(node, allowed, if service { "services" } else { "image" });
            let Some(name) = node.get("name").and_then(|n| cx.string(n, "image:name")) else {
                cx.error(node.span, "missing-key", "image config requires a name");
                return None;
            };
            Some(Image {
                name,
                entrypoint: node
                    .get("entrypoint")
                    .map(|n| cx.strings(n, "entrypoint"))
                    .unwrap_or_default(),
                command: node
                    .get("command")
                    .map(|n| cx.strings(n, "command"))
                    .unwrap_or_default(),
                alias: node.get("alias").and_then(|n| cx.string(n, "alias")),
                variables: node
                    .get("variables")
                    .map(|n| plain_variables(cx, n))
                    .unwrap_or_default(),
            })
        }
        _ => {
            cx.error(
                node.span,
                "invalid-type",
                "image should be a string or a mapping",
            );
            None
        }
    }
}

fn allow_failure(cx: &mut Ctx<'_>, node: &Node) -> Option<AllowFailure> {
    match &node.value {
        Value::Bool(b) => Some(AllowFailure {
            any: *b,
            exit_codes: Vec::new(),
        }),
        Value::Map(_) => {
            cx.keys(node, &["exit_codes"], "allow_failure");
            Some(AllowFailure {
                any: false,
                exit_codes: exit_codes(node.get("exit_codes")),
            })
        }
        _ => {
            cx.error(
                node.span,
                "invalid-type",
                "allow_failure should be a boolean or a mapping with exit_codes",
            );
            None
        }
    }
}

fn condition(cx: &mut Ctx<'_>, node: &Node) -> Option<(String, crate::expr::Expr)> {
    let text = cx.string(node, "if")?;
    if text.contains("${") {
        cx.error(
            node.span,
            "invalid-condition",
            "rules:if variables are written $VAR (the ${VAR} form is not expanded there)",
        );
        return None;
    }
    match rules::compile(&text) {
        Ok(e) => Some((text, e)),
        Err(e) => {
            cx.error(
                node.span,
                "invalid-condition",
                format!("invalid expression syntax: {e}"),
            );
            None
        }
    }
}

/// The items of a list with nested lists flattened (what `!reference` or an anchor to a list
/// puts inside a list), up to 10 levels, as GitLab does.
/// A need naming one matrix instance by its full name, as the job's matrix selection:
/// `build: [linux, amd64]` is the instance whose values, in the order of its matrix entry's
/// keys, are `linux` and `amd64`.
fn instance_need(need: &Need, root: &Node) -> Option<Need> {
    let (base, rest) = need.job.split_once(": [")?;
    let values: Vec<&str> = rest.strip_suffix(']')?.split(", ").collect();
    let entries = root.get(base)?.get("parallel")?.get("matrix")?.as_seq()?;
    let scalars = |v: &Node| -> Vec<String> {
        match v.as_seq() {
            Some(items) => items.iter().filter_map(Node::scalar_text).collect(),
            None => v.scalar_text().into_iter().collect(),
        }
    };
    entries.iter().find_map(|entry| {
        let keys = entry.as_map()?;
        if keys.len() != values.len() {
            return None;
        }
        let selection: IndexMap<String, String> = keys
            .iter()
            .zip(&values)
            .map(|((k, v), want)| {
                scalars(v)
                    .iter()
                    .any(|have| have == want)
                    .then(|| (k.scalar_text().unwrap_or_default(), (*want).to_owned()))
            })
            .collect::<Option<_>>()?;
        Some(Need {
            job: base.to_owned(),
            matrix: vec![selection],
            ..need.clone()
        })
    })
}

fn flat_items(node: &Node) -> Vec<&Node> {
    fn walk<'a>(node: &'a Node, depth: usize, out: &mut Vec<&'a Node>) {
        match node.as_seq() {
            Some(items) if depth < 10 => {
                for i in items {
                    walk(i, depth + 1, out);
                }
            }
            _ => out.push(node),
        }
    }
    let mut out = Vec::new();
    for item in node.as_seq().unwrap_or_default() {
        walk(item, 1, &mut out);
    }
    out
}

fn rule_list(cx: &mut Ctx<'_>, node: &Node, workflow: bool) -> Vec<Rule> {
    if node.as_seq().is_none() {
        cx.error(node.span, "invalid-type", "rules should be a list");
        return Vec::new();
    }
    let mut out = Vec::new();
    for item in flat_items(node) {
        if item.as_map().is_none() {
            cx.error(item.span, "invalid-type", "a rule should be a mapping");
            continue;
        }
        let allowed: &[&str] = if workflow {
            &[
                "if",
                "changes",
                "exists",
                "when",
                "variables",
                "auto_cancel",
            ]
        } else {
            &[
                "if",
                "changes",
                "exists",
                "when",
                "start_in",
                "allow_failure",
                "variables",
                "needs",
                "interruptible",
            ]
        };
        cx.keys(item, allowed, "rules");
        let paths = |cx: &mut Ctx<'_>, n: &Node, what: &str| match n.get("paths") {
            Some(p) => cx.strings(p, what),
            None => cx.strings(n, what),
        };
        let when_allowed: &[&str] = if workflow {
            &["always", "never"]
        } else {
            RULE_WHEN
        };
        out.push(Rule {
            condition: item.get("if").and_then(|n| condition(cx, n)),
            changes: item
                .get("changes")
                .map(|n| paths(cx, n, "changes"))
                .unwrap_or_default(),
            exists: item
                .get("exists")
                .map(|n| paths(cx, n, "exists"))
                .unwrap_or_default(),
            when: item.get("when").and_then(|n| when(cx, n, when_allowed)),
            start_in: item.get("start_in").and_then(|n| cx.string(n, "start_in")),
            allow_failure: item.get("allow_failure").and_then(|n| allow_failure(cx, n)),
            variables: item
                .get("variables")
                .map(|n| plain_variables(cx, n))
                .unwrap_or_default(),
        });
    }
    out
}

fn ref_filter(cx: &mut Ctx<'_>, node: &Node, what: &str) -> RefFilter {
    match &node.value {
        Value::Seq(_) | Value::String(_) => RefFilter {
            refs: cx.strings(node, what),
            ..RefFilter::default()
        },
        Value::Map(_) => {
            cx.keys(node, &["refs", "variables", "changes", "kubernetes"], what);
            let variables = node
                .get("variables")
                .map(|n| cx.strings(n, "variables"))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| match rules::compile(&v) {
                    Ok(e) => Some((v, e)),
                    Err(e) => {
                        cx.error(
                            node.span,
                            "invalid-condition",
                            format!("{what}:variables: {e}"),
                        );
                        None
                    }
                })
                .collect();
            RefFilter {
                refs: node
                    .get("refs")
                    .map(|n| cx.strings(n, "refs"))
                    .unwrap_or_default(),
                variables,
                changes: node
                    .get("changes")
                    .map(|n| cx.strings(n, "changes"))
                    .unwrap_or_default(),
            }
        }
        _ => {
            cx.error(
                node.span,
                "invalid-type",
                format!("{what} should be a list or a mapping"),
            );
            RefFilter::default()
        }
    }
}

fn artifacts(cx: &mut Ctx<'_>, node: &Node) -> Option<Artifacts> {
    if node.as_map().is_none() {
        cx.error(node.span, "invalid-type", "artifacts should be a mapping");
        return None;
    }
    cx.keys(
        node,
        &[
            "name",
            "paths",
            "exclude",
            "untracked",
            "when",
            "expire_in",
            "expose_as",
            "public",
            "access",
            "reports",
        ],
        "artifacts",
    );
    let mut a = Artifacts {
        name: node
            .get("name")
            .and_then(|n| cx.string(n, "artifacts:name")),
        paths: node
            .get("paths")
            .map(|n| cx.strings(n, "paths"))
            .unwrap_or_default(),
        exclude: node
            .get("exclude")
            .map(|n| cx.strings(n, "exclude"))
            .unwrap_or_default(),
        untracked: node
            .get("untracked")
            .and_then(|n| cx.bool(n, "untracked"))
            .unwrap_or(false),
        when: node
            .get("when")
            .and_then(|n| when(cx, n, &["on_success", "on_failure", "always"]))
            .unwrap_or_default(),
        expire_in: node
            .get("expire_in")
            .and_then(|n| cx.string(n, "expire_in")),
        ..Artifacts::default()
    };
    if let Some(reports) = node.get("reports") {
        if let Some(entries) = reports.as_map() {
            for (k, v) in entries {
                match k.as_str() {
                    Some("dotenv") => a.dotenv = cx.strings(v, "dotenv"),
                    Some("junit") if matches!(v.value, Value::Int(_) | Value::Float(_) | Value::Bool(_)) => cx.error(
                        v.span,
                        "invalid-type",
                        "artifacts:reports:junit config should be a string or an array of strings",
                    ),
                    Some("junit") => a.junit = cx.strings(v, "junit"),
                    _ => {}
                }
            }
        }
    }
    Some(a)
}

fn caches(cx: &mut Ctx<'_>, node: &Node) -> Vec<Cache> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(_) => flat_items(node),
        Value::Map(_) => vec![node],
        Value::Null => Vec::new(),
        _ => {
            cx.error(
                node.span,
                "invalid-type",
                "cache should be a mapping or a list of them",
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for c in items {
        cx.keys(
            c,
            &[
                "key",
                "paths",
                "policy",
                "when",
                "fallback_keys",
                "untracked",
                "unprotect",
            ],
            "cache",
        );
        let mut cache = Cache {
            key: "default".into(),
            policy: "pull-push".into(),
            ..Cache::default()
        };
        if let Some(k) = c.get("key") {
            match &k.value {
                Value::Map(_) => {
                    cx.keys(k, &["files", "prefix"], "cache:key");
                    cache.key_files = k
                        .get("files")
                        .map(|n| cx.strings(n, "files"))
                        .unwrap_or_default();
                    if !(1..=2).contains(&cache.key_files.len()) {
                        cx.error(
                            k.get("files").map_or(k.span, |n| n.span),
                            "invalid-value",
                            "cache:key:files config should be an array of one or two file paths",
                        );
                    }
                    cache.key_prefix = k.get("prefix").and_then(|n| cx.string(n, "prefix"));
                }
                _ => cache.key = cx.string(k, "cache:key").unwrap_or_default(),
            }
        }
        cache.paths = match c.get("paths") {
            Some(n) if n.as_seq().is_none() && !n.is_null() => {
                cx.error(
                    n.span,
                    "invalid-type",
                    "cache:paths config should be an array of strings",
                );
                Vec::new()
            }
            Some(n) => cx.strings(n, "paths"),
            None => Vec::new(),
        };
        if let Some(p) = c.get("policy").and_then(|n| cx.string(n, "policy")) {
            if !["pull", "push", "pull-push"].contains(&p.as_str()) && !p.contains('$') {
                cx.error(
                    c.span,
                    "invalid-value",
                    "cache:policy should be pull, push or pull-push",
                );
            }
            cache.policy = p;
        }
        cache.when = c
            .get("when")
            .and_then(|n| when(cx, n, &["on_success", "on_failure", "always"]))
            .unwrap_or_default();
        cache.fallback_keys = c
            .get("fallback_keys")
            .map(|n| cx.strings(n, "fallback_keys"))
            .unwrap_or_default();
        cache.untracked = c.get("untracked").and_then(Node::as_bool).unwrap_or(false);
        out.push(cache);
    }
    out
}

fn retry(cx: &mut Ctx<'_>, node: &Node) -> Retry {
    match &node.value {
        Value::Int(n) if (0..=2).contains(n) => Retry {
            max: *n as u32,
            ..Retry::default()
        },
        Value::Map(_) => {
            cx.keys(node, &["max", "when", "exit_codes"], "retry");
            let max = match node.get("max").map(|n| &n.value) {
                Some(Value::Int(n)) if (0..=2).contains(n) => *n as u32,
                None => 0,
                Some(_) => {
                    cx.error(node.span, "invalid-value", "retry:max should be 0, 1 or 2");
                    0
                }
            };
            let when = node
                .get("when")
                .map(|n| cx.strings(n, "retry:when"))
                .unwrap_or_default();
            for w in &when {
                if !RETRY_WHEN.contains(&w.as_str()) {
                    cx.error(
                        node.get("when").map_or(node.span, |n| n.span),
                        "invalid-value",
                        format!("retry:when has an unknown value: {w}"),
                    );
                }
            }
            let exit_codes = exit_codes(node.get("exit_codes"));
            Retry {
                max,
                when,
                exit_codes,
            }
        }
        _ => {
            cx.error(
                node.span,
                "invalid-value",
                "retry should be 0, 1, 2 or a mapping",
            );
            Retry::default()
        }
    }
}

fn release(cx: &mut Ctx<'_>, node: &Node) {
    cx.keys(
        node,
        &[
            "tag_name",
            "tag_message",
            "name",
            "description",
            "ref",
            "milestones",
            "released_at",
            "assets",
        ],
        "release",
    );
    if node.get("tag_name").is_none() {
        cx.error(node.span, "missing-key", "release config requires tag_name");
    }
    if let Some(assets) = node.get("assets") {
        match assets.get("links").map(|l| &l.value) {
            Some(Value::Seq(items)) if !items.is_empty() => {}
            Some(_) => cx.error(
                assets.span,
                "invalid-value",
                "release:assets:links should be a non-empty list",
            ),
            None => cx.error(
                assets.span,
                "missing-key",
                "release:assets config requires links",
            ),
        }
    }
}

fn pipeline(cx: &mut Ctx<'_>, root: &Node) -> Option<Pipeline> {
    let mut stages: Vec<String> = match root.get("stages").or_else(|| root.get("types")) {
        Some(n) => cx.strings(n, "stages"),
        None => vec!["build".into(), "test".into(), "deploy".into()],
    };
    stages.retain(|s| s != ".pre" && s != ".post");
    stages.insert(0, ".pre".into());
    stages.push(".post".into());

    let default = root.get("default");
    if let Some(d) = default {
        cx.keys(d, DEFAULT_KEYS, "default");
    }
    // Legacy top-level defaults, overridden by `default:`.
    let default_of = |key: &str| -> Option<Node> {
        default
            .and_then(|d| d.get(key))
            .or_else(|| root.get(key))
            .cloned()
    };

    let mut globals = IndexMap::new();
    if let Some(v) = root.get("variables") {
        globals = variables(cx, v, true);
    }
    let mut name = None;
    let mut workflow_rules = Vec::new();
    if let Some(w) = root.get("workflow") {
        cx.keys(w, &["rules", "name", "auto_cancel"], "workflow");
        name = w.get("name").and_then(|n| cx.string(n, "workflow:name"));
        if let Some(r) = w.get("rules") {
            workflow_rules = rule_list(cx, r, true);
        }
    }
    let mut selections = IndexMap::new();

    let mut jobs = IndexMap::new();
    for (k, v) in root.as_map().unwrap_or_default() {
        let Some(id) = k.scalar_text() else { continue };
        if GLOBAL_KEYS.contains(&id.as_str()) || id.starts_with('.') {
            continue;
        }
        if v.as_map().is_none() {
            cx.error(
                k.span,
                "invalid-type",
                format!("jobs:{id} config should be a mapping"),
            );
            continue;
        }
        if let Some((job, selection)) = job(cx, &id, k.span, v, &default_of, &stages) {
            selections.insert(id.clone(), selection);
            jobs.insert(id, job);
        }
    }
    if jobs.is_empty() && !cx.includes_unchecked {
        cx.error(
            root.span,
            "no-jobs",
            "jobs config should contain at least one visible job",
        );
    }
    // A need may name one `parallel:matrix` instance by its full name ("build: [linux, amd64]").
    let ids: Vec<String> = jobs.keys().cloned().collect();
    for id in ids {
        let Some(job) = jobs.get(&id) else { continue };
        let resolved: Vec<(usize, Need)> = job
            .needs
            .iter()
            .enumerate()
            .filter(|(_, n)| !jobs.contains_key(&n.job))
            .filter_map(|(i, n)| Some((i, instance_need(n, root)?)))
            .collect();
        if let Some(job) = jobs.get_mut(&id) {
            for (i, need) in resolved {
                job.needs[i] = need;
            }
        }
    }
    // Needs on unknown jobs, on the job itself, on later stages.
    let stage_of = |j: &Job| {
        stages
            .iter()
            .position(|s| Some(s) == j.stage.as_ref())
            .unwrap_or(0)
    };
    for job in jobs.values() {
        for need in &job.needs {
            match jobs.get(&need.job) {
                None if !need.optional && cx.includes_unchecked => cx.warning(
                    need.span,
                    "include-unchecked",
                    format!(
                        "job '{}' needs '{}', which is not defined here (an include that was \
                         not read may define it)",
                        job.id, need.job
                    ),
                ),
                None if !need.optional => cx.error(
                    need.span,
                    "unknown-need",
                    format!(
                        "job '{}' needs '{}', which is not defined",
                        job.id, need.job
                    ),
                ),
                None => {}
                Some(other) if other.id == job.id => cx.error(
                    need.span,
                    "needs-cycle",
                    format!("jobs:{} needs itself", job.id),
                ),
                Some(other) if stage_of(other) > stage_of(job) => cx.error(
                    need.span,
                    "invalid-value",
                    format!(
                        "jobs:{} needs '{}', which is in a later stage ({})",
                        job.id,
                        need.job,
                        other.stage.as_deref().unwrap_or_default()
                    ),
                ),
                Some(other) => {
                    if let Some(problem) = matrix_selector_problem(need, other) {
                        cx.error(
                            need.span,
                            "unknown-need",
                            format!("jobs:{} needs:{}: {problem}", job.id, need.job),
                        );
                    }
                }
            }
        }
    }
    // `dependencies:` name jobs of earlier stages, and among `needs` when there are some.
    for (k, v) in root.as_map().unwrap_or_default() {
        let (Some(id), Some(deps)) = (k.scalar_text(), v.get("dependencies")) else {
            continue;
        };
        let Some(job) = jobs.get(&id) else { continue };
        for d in deps.as_seq().unwrap_or_default() {
            let Some(name) = d.scalar_text() else {
                continue;
            };
            let problem = match jobs.get(&name) {
                None => Some(format!("jobs:{id} dependencies: '{name}' is not defined")),
                Some(dep) if stage_of(dep) >= stage_of(job) && !job.needs_declared => Some(
                    format!("jobs:{id} dependencies: '{name}' is not in an earlier stage"),
                ),
                Some(_) if job.needs_declared && !job.needs.iter().any(|n| n.job == name) => Some(
                    format!("jobs:{id} dependencies: '{name}' should be part of needs"),
                ),
                Some(_) => None,
            };
            if let Some(p) = problem {
                cx.error(d.span, "invalid-value", p);
            }
        }
    }
    let env = env_of(&globals);
    Some(Pipeline {
        workflow: Workflow {
            dialect: Dialect::GitLabCi,
            path: cx.path.to_owned(),
            name,
            run_name: None,
            triggers: Vec::new(),
            env,
            defaults: RunDefaults::default(),
            permissions: None,
            concurrency: None,
            jobs,
            stages,
            setup: false,
        },
        rules: workflow_rules,
        jobs: selections,
    })
}

fn job(
    cx: &mut Ctx<'_>,
    id: &str,
    span: Span,
    node: &Node,
    default_of: &dyn Fn(&str) -> Option<Node>,
    stages: &[String],
) -> Option<(Job, JobRules)> {
    cx.keys(node, JOB_KEYS, &format!("jobs:{id}"));
    // `inherit: default` decides which defaults apply.
    let inherit = node.get("inherit");
    let inherit_default = |key: &str| -> bool {
        match inherit.and_then(|i| i.get("default")).map(|n| &n.value) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Seq(items)) => items.iter().any(|i| i.as_str() == Some(key)),
            _ => true,
        }
    };
    if let Some(i) = inherit {
        cx.keys(i, &["default", "variables"], "inherit");
        if let Some(list) = i.get("default").and_then(Node::as_seq) {
            for item in list {
                if !item.as_str().is_some_and(|s| DEFAULT_KEYS.contains(&s)) {
                    cx.error(
                        item.span,
                        "invalid-value",
                        format!(
                            "inherit:default has an unknown key: {}",
                            item.scalar_text().unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }
    let field = |key: &str| -> Option<Node> {
        node.get(key).cloned().or_else(|| {
            (DEFAULT_KEYS.contains(&key) && inherit_default(key))
                .then(|| default_of(key))
                .flatten()
        })
    };
    if node.get("trigger").is_some() {
        cx.warning(
            span,
            "unsupported",
            format!("job '{id}': trigger jobs (downstream pipelines) are not run locally"),
        );
        return None;
    }
    let script = node.get("script").or_else(|| node.get("run"));
    let Some(script) = script else {
        let message =
            format!("jobs:{id} config should implement the script:, run:, or trigger: keyword");
        if cx.includes_unchecked {
            cx.warning(
                span,
                "include-unchecked",
                format!("{message} (an include that was not read may give it)"),
            );
        } else {
            cx.error(span, "missing-key", message);
        }
        return None;
    };
    let mut gl = GitLabJob {
        script: cx.strings(script, "script"),
        before_script: field("before_script")
            .map(|n| cx.strings(&n, "before_script"))
            .unwrap_or_default(),
        after_script: field("after_script")
            .map(|n| cx.strings(&n, "after_script"))
            .unwrap_or_default(),
        ..GitLabJob::default()
    };
    if gl.script.is_empty() && script.as_seq().is_none_or(|s| !s.is_empty()) {
        cx.error(script.span, "invalid-value", format!("jobs:{id}:script config should be a string or a nested array of strings up to 10 levels deep"));
    } else if gl.script.iter().all(|line| line.trim().is_empty()) {
        cx.error(
            script.span,
            "invalid-value",
            format!("jobs:{id} script can't be blank"),
        );
    }
    if let Some(n) = field("image") {
        gl.image = image(cx, &n, false);
    }
    if let Some(n) = field("services") {
        match n.as_seq() {
            Some(items) => {
                for i in items {
                    if let Some(s) = image(cx, i, true) {
                        gl.services.push(s);
                    }
                }
            }
            None => cx.error(n.span, "invalid-type", "services should be a list"),
        }
    }
    if let Some(v) = node.get("variables") {
        gl.variables = variables(cx, v, false);
    }
    gl.inherit_variables = match inherit.and_then(|i| i.get("variables")).map(|n| &n.value) {
        Some(Value::Bool(true)) | None => None,
        Some(Value::Bool(false)) => Some(Vec::new()),
        Some(Value::Seq(items)) => Some(items.iter().filter_map(Node::scalar_text).collect()),
        Some(_) => None,
    };
    let stage = match node.get("stage") {
        Some(n) => cx.string(n, "stage").unwrap_or_else(|| "test".into()),
        None => "test".into(),
    };
    if !stages.contains(&stage) {
        cx.error(
            node.get("stage").map_or(span, |n| n.span),
            "unknown-stage",
            format!(
                "jobs:{id} chosen stage {stage} does not exist; available stages are {}",
                stages.join(", ")
            ),
        );
    }
    let mut job_when = When::OnSuccess;
    if let Some(n) = node.get("when") {
        if let Some(w) = when(cx, n, JOB_WHEN) {
            job_when = w;
        }
        if n.as_str() == Some("delayed") && node.get("start_in").is_none() {
            cx.error(
                n.span,
                "missing-key",
                format!("jobs:{id} start in should be specified for delayed job"),
            );
        }
    }
    gl.start_in = node.get("start_in").and_then(|n| cx.string(n, "start_in"));
    if let Some(s) = &gl.start_in {
        if super::duration_secs(s).is_none() {
            cx.error(
                node.get("start_in").map_or(span, |n| n.span),
                "invalid-value",
                format!("start_in '{s}' is not a duration"),
            );
        }
    }
    let mut allow = AllowFailure::default();
    if let Some(n) = node.get("allow_failure") {
        allow = allow_failure(cx, n).unwrap_or_default();
    } else if job_when == When::Manual {
        // Manual jobs may fail without failing the pipeline, unless said otherwise.
        allow.any = true;
    }
    if let Some(r) = node.get("rules") {
        if node.get("only").is_some() || node.get("except").is_some() {
            cx.error(
                r.span,
                "invalid-value",
                format!("jobs:{id} config key may not be used with `rules`: only, except"),
            );
        }
        if r.as_seq().is_some_and(<[Node]>::is_empty) {
            cx.error(
                r.span,
                "invalid-value",
                format!("jobs:{id}:rules config can't be blank"),
            );
        }
        gl.rules = rule_list(cx, r, false);
    }
    if let Some(n) = node.get("only") {
        gl.only = Some(ref_filter(cx, n, "only"));
    }
    if let Some(n) = node.get("except") {
        gl.except = Some(ref_filter(cx, n, "except"));
    }
    let mut needs = Vec::new();
    let mut needs_declared = false;
    if let Some(n) = node.get("needs") {
        needs_declared = true;
        match n.as_seq().map(|_| flat_items(n)) {
            Some(items) => {
                for i in items {
                    let need = match &i.value {
                        Value::String(s) => Some(Need::new(s.clone(), i.span)),
                        Value::Map(_) => {
                            cx.keys(
                                i,
                                &[
                                    "job",
                                    "artifacts",
                                    "optional",
                                    "parallel",
                                    "pipeline",
                                    "project",
                                    "ref",
                                ],
                                "needs",
                            );
                            if i.get("pipeline").is_some() || i.get("project").is_some() {
                                cx.warning(
                                    i.span,
                                    "unsupported",
                                    "needs from other pipelines or projects are ignored locally",
                                );
                                None
                            } else {
                                let matrix = i
                                    .get("parallel")
                                    .and_then(|p| p.get("matrix"))
                                    .and_then(Node::as_seq)
                                    .map(|entries| {
                                        entries
                                            .iter()
                                            .map(|e| {
                                                e.as_map()
                                                    .unwrap_or_default()
                                                    .iter()
                                                    .map(|(k, v)| {
                                                        (
                                                            k.scalar_text().unwrap_or_default(),
                                                            v.scalar_text().unwrap_or_default(),
                                                        )
                                                    })
                                                    .collect()
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                i.get("job")
                                    .and_then(|j| cx.string(j, "needs:job"))
                                    .map(|job| Need {
                                        job,
                                        span: i.span,
                                        artifacts: i
                                            .get("artifacts")
                                            .and_then(Node::as_bool)
                                            .unwrap_or(true),
                                        optional: i
                                            .get("optional")
                                            .and_then(Node::as_bool)
                                            .unwrap_or(false),
                                        matrix,
                                    })
                            }
                        }
                        _ => {
                            cx.error(
                                i.span,
                                "invalid-type",
                                "needs entries are job names or mappings",
                            );
                            None
                        }
                    };
                    if let Some(need) = need {
                        needs.push(need);
                    }
                }
            }
            None => cx.error(n.span, "invalid-type", "needs should be a list"),
        }
    }
    if let Some(n) = node.get("dependencies") {
        gl.dependencies = Some(cx.strings(n, "dependencies"));
    }
    let parallel = match node.get("parallel") {
        None => None,
        Some(n) => match &n.value {
            Value::Int(c) if (1..=200).contains(c) => Some(Parallel::Count(*c as u32)),
            Value::Map(_) => {
                let entries = n.get("matrix").and_then(Node::as_seq).unwrap_or_default();
                let mut out = Vec::new();
                for e in entries {
                    let mut m = IndexMap::new();
                    for (k, v) in e.as_map().unwrap_or_default() {
                        m.insert(
                            k.scalar_text().unwrap_or_default(),
                            cx.strings(v, "parallel:matrix"),
                        );
                    }
                    out.push(m);
                }
                if out.is_empty() {
                    cx.error(
                        n.span,
                        "invalid-value",
                        "parallel:matrix should be a non-empty list",
                    );
                }
                Some(Parallel::Matrix(out))
            }
            _ => {
                cx.error(
                    n.span,
                    "invalid-value",
                    "parallel should be an integer from 1 to 200 or a matrix",
                );
                None
            }
        },
    };
    let retry = field("retry").map(|n| retry(cx, &n)).unwrap_or_default();
    if let Some(n) = field("timeout") {
        let t = cx.string(&n, "timeout");
        gl.timeout = t.as_deref().and_then(|s| {
            let d = duration_secs(s);
            if d.is_none() {
                cx.error(n.span, "invalid-value", format!("'{s}' is not a duration"));
            }
            d
        });
    }
    if let Some(n) = field("artifacts") {
        gl.artifacts = artifacts(cx, &n);
    }
    if let Some(n) = field("cache") {
        gl.cache = caches(cx, &n);
    }
    gl.interruptible = field("interruptible")
        .and_then(|n| n.as_bool())
        .unwrap_or(false);
    gl.resource_group = node
        .get("resource_group")
        .and_then(|n| cx.string(n, "resource_group"));
    gl.environment = node.get("environment").and_then(|n| {
        let text = |key: &str| n.get(key).and_then(|x| x.scalar_text());
        let (name, url, action, tier) = match &n.value {
            Value::Map(_) => (
                text("name")?,
                text("url"),
                text("action"),
                text("deployment_tier"),
            ),
            _ => (n.scalar_text()?, None, None, None),
        };
        Some(crate::model::Environment {
            name: literal(&name, n.span),
            url: url.map(|u| literal(&u, n.span)),
            action,
            tier,
        })
    });
    gl.coverage = node.get("coverage").and_then(|n| cx.string(n, "coverage"));
    if let Some(c) = &gl.coverage {
        match super::split_regex(c) {
            Some((re, flags)) => {
                if let Err(e) = super::regex(&re, &flags) {
                    cx.error(
                        node.get("coverage").map_or(span, |n| n.span),
                        "invalid-value",
                        e,
                    );
                }
            }
            None => cx.error(
                node.get("coverage").map_or(span, |n| n.span),
                "invalid-value",
                "coverage should be a /regex/",
            ),
        }
    }
    gl.tags = field("tags")
        .map(|n| cx.strings(&n, "tags"))
        .unwrap_or_default();
    if let Some(r) = node.get("release") {
        release(cx, r);
    }
    Some(lower(
        id,
        span,
        gl,
        Lowered {
            needs,
            needs_declared,
            stage,
            when: job_when,
            allow_failure: allow,
            retry,
            parallel,
        },
    ))
}

/// What `job` read besides the [`GitLabJob`].
struct Lowered {
    needs: Vec<Need>,
    needs_declared: bool,
    stage: String,
    when: When,
    allow_failure: AllowFailure,
    retry: Retry,
    parallel: Option<Parallel>,
}

/// GitLab's `after_script` limit.
const AFTER_SCRIPT_TIMEOUT_SECS: u64 = 300;

/// The job's default time limit.
const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// A job as the runner does it, in neutral steps: fetch the project, restore caches, download
/// artifacts, `before_script` + `script`, `after_script` (cleanup), upload artifacts, save
/// caches.
fn lower(id: &str, span: Span, gl: GitLabJob, read: Lowered) -> (Job, JobRules) {
    let condition = |effective: &str| Condition {
        source: String::new(),
        effective: effective.to_owned(),
        span,
    };
    let step = |id: &str, action: StepAction, effective: &str| {
        Step::generated(id, id, effective, action, span)
    };
    let on = |when: When| match when {
        When::Always => "always()",
        When::OnFailure => "failure()",
        _ => "success()",
    };
    let mut steps = vec![step(
        "checkout",
        StepAction::Checkout,
        "success() && env.GIT_STRATEGY != 'none'",
    )];
    if !gl.cache.is_empty() {
        steps.push(step(
            "restore cache",
            StepAction::CacheRestore {
                caches: gl.cache.clone(),
            },
            "success()",
        ));
    }
    // `dependencies:` names them; else the needs that take artifacts; else (stage order)
    // every job before.
    let from = gl.dependencies.clone().or_else(|| {
        read.needs_declared.then(|| {
            read.needs
                .iter()
                .filter(|n| n.artifacts)
                .map(|n| n.job.clone())
                .collect()
        })
    });
    if from.as_ref().is_none_or(|f| !f.is_empty()) {
        steps.push(step(
            "download artifacts",
            StepAction::ArtifactDownload { from },
            "success()",
        ));
    }
    let mut commands = gl.before_script.clone();
    commands.extend(gl.script.iter().cloned());
    steps.push(step(
        "script",
        StepAction::Commands {
            commands,
            echo: true,
        },
        "success()",
    ));
    if !gl.after_script.is_empty() {
        let mut after = step(
            "after_script",
            StepAction::Commands {
                commands: gl.after_script.clone(),
                echo: true,
            },
            "always()",
        );
        after.cleanup = true;
        let mut env = IndexMap::new();
        env.insert(
            "CI_JOB_STATUS".to_owned(),
            Template::expr(
                "job.status == 'failure' && 'failed' || job.status == 'cancelled' && 'canceled' || 'success'",
                span,
            ),
        );
        after.env = Env::Map(env);
        steps.push(after);
    }
    if let Some(a) = &gl.artifacts {
        steps.push(step(
            "upload artifacts",
            StepAction::ArtifactUpload(Box::new(ArtifactUpload {
                name: a.name.clone(),
                paths: a.paths.clone(),
                exclude: a.exclude.clone(),
                untracked: a.untracked,
                expire_in: a.expire_in.clone(),
                dotenv: a.dotenv.clone(),
                junit: a.junit.clone(),
            })),
            on(a.when),
        ));
    }
    let saved: Vec<Cache> = gl
        .cache
        .iter()
        .filter(|c| c.policy != "pull" && !c.paths.is_empty())
        .cloned()
        .collect();
    if !saved.is_empty() {
        steps.push(step(
            "save cache",
            StepAction::CacheSave { caches: saved },
            "always()",
        ));
    }
    let timeout_minutes = Some(Node::new(
        Value::Float(gl.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS) as f64 / 60.0),
        span,
    ));
    let concurrency = gl.resource_group.as_ref().map(|g| {
        Box::new(crate::model::Concurrency {
            group: literal(&format!("resource_group:{g}"), span),
            cancel_in_progress: None,
        })
    });
    let image = gl.image.as_ref().map(|i| Box::new(container(i, span)));
    let services = gl
        .services
        .iter()
        .map(|s| {
            let alias = s.alias.clone().unwrap_or_else(|| {
                let base = s.name.rsplit('/').next().unwrap_or(&s.name);
                base.split([':', '@']).next().unwrap_or(base).to_owned()
            });
            (alias, container(s, span))
        })
        .collect();
    let env = env_of(&gl.variables);
    let job = Job {
        id: id.to_owned(),
        span,
        name: literal(id, span),
        needs: read.needs,
        needs_declared: read.needs_declared,
        stage: Some(read.stage),
        when: read.when,
        allow_failure: read.allow_failure,
        retry: read.retry,
        parallel: read.parallel,
        condition: condition("success()"),
        runs_on: RunsOn {
            labels: gl.tags.iter().map(|t| literal(t, span)).collect(),
            group: None,
        },
        environment: gl.environment.clone().map(Box::new),
        concurrency,
        outputs: IndexMap::new(),
        env,
        defaults: RunDefaults::default(),
        timeout_minutes,
        continue_on_error: None,
        permissions: None,
        strategy: None,
        container: image,
        services,
        steps,
        call: None,
        inherit_env: gl.inherit_variables.clone(),
        start_in: gl.start_in.as_deref().and_then(duration_secs),
        log_outputs: gl
            .coverage
            .iter()
            .map(|c| LogOutput {
                name: "coverage".into(),
                pattern: c.clone(),
                shown: "Coverage: {}%".into(),
            })
            .collect(),
        cleanup_timeout: AFTER_SCRIPT_TIMEOUT_SECS,
        contexts: Vec::new(),
    };
    let selection = JobRules {
        rules: gl.rules,
        only: gl.only,
        except: gl.except,
    };
    (job, selection)
}

/// What is wrong with a `needs:parallel:matrix` selector of `other`'s instances, if
/// anything: a key its matrix does not have, or a value none of its entries gives that key
/// (`$[[ matrix.KEY ]]` stands for the needing instance's own value and is checked when
/// planned).
fn matrix_selector_problem(need: &Need, other: &Job) -> Option<String> {
    if need.matrix.is_empty() {
        return None;
    }
    let Some(Parallel::Matrix(entries)) = &other.parallel else {
        return Some("it has no parallel:matrix to select from".into());
    };
    for want in &need.matrix {
        for (k, v) in want {
            let values: Vec<&String> = entries.iter().filter_map(|e| e.get(k)).flatten().collect();
            if values.is_empty() {
                return Some(format!("its parallel:matrix has no variable {k}"));
            }
            if !v.starts_with("$[[") && !values.contains(&v) {
                return Some(format!("its parallel:matrix has no {k}: {v}"));
            }
        }
    }
    None
}

/// GitLab `variables:` as the model's shell-style variables.
fn env_of(vars: &IndexMap<String, Variable>) -> Env {
    if vars.is_empty() {
        return Env::Empty;
    }
    Env::Vars(
        vars.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Var {
                        value: v.value.clone(),
                        expand: v.expand,
                    },
                )
            })
            .collect(),
    )
}

/// An argument vector as one command line whose words split back as they were (each word
/// single-quoted, a `'` inside written as `'"'"'`).
fn words(argv: &[String]) -> String {
    argv.iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\"'\"'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A job image or service as a container that may fall back to the host.
fn container(image: &Image, span: Span) -> Container {
    let mut env = IndexMap::new();
    for (k, v) in &image.variables {
        env.insert(k.clone(), literal(v, span));
    }
    Container {
        image: literal(&image.name, span),
        credentials: None,
        env: if env.is_empty() {
            Env::Empty
        } else {
            Env::Map(env)
        },
        ports: Vec::new(),
        volumes: Vec::new(),
        options: None,
        command: (!image.command.is_empty()).then(|| literal(&words(&image.command), span)),
        entrypoint: (!image.entrypoint.is_empty())
            .then(|| literal(&words(&image.entrypoint), span)),
        optional: true,
        span,
    }
}
