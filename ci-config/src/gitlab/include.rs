//! `include:` as GitLab reads it: local files and globs, other projects, remote URLs,
//! templates and CI/CD components (through the [`Includes`] resolver, which may fetch),
//! `include:rules`, and `spec:inputs` with `include:inputs` and `$[[ inputs.x ]]`.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use super::compose::{deep_merge, respan, Includes, RemoteInclude, Unfetched};
use super::frontend::{load_all, Ctx};
use crate::span::Span;
use crate::yaml::{Node, Value};

/// How deeply includes may nest (GitLab's limit).
const MAX_DEPTH: usize = 100;

/// How many files a pipeline may include in all (GitLab's limit).
const MAX_INCLUDES: usize = 150;

/// Where one included file's text comes from.
enum Origin<'a> {
    /// A path in the repository.
    Local(String),
    /// A path in a local directory standing in for another project.
    ProjectDir(PathBuf, String),
    /// Outside the repository.
    Remote(RemoteInclude<'a>),
}

impl Origin<'_> {
    fn name(&self) -> String {
        match self {
            Origin::Local(p) | Origin::ProjectDir(_, p) => p.clone(),
            Origin::Remote(r) => r.to_string(),
        }
    }

    fn text(&self, includes: &dyn Includes) -> Result<String, Unfetched> {
        let refused = |message: String| Unfetched {
            message,
            unavailable: false,
        };
        match self {
            Origin::Local(p) => includes
                .read(p)
                .map_err(|e| refused(format!("include {e}"))),
            Origin::ProjectDir(dir, p) => {
                std::fs::read_to_string(dir.join(p.trim_start_matches('/')))
                    .map_err(|e| refused(format!("include '{p}': {e}")))
            }
            Origin::Remote(r) => includes.fetch(r),
        }
    }
}

/// Reads `include:` entries (recursively) and merges them under the file's own keys.
pub(super) fn with_includes(
    cx: &mut Ctx<'_>,
    root: Node,
    includes: &dyn Includes,
    depth: usize,
    seen: &mut Vec<String>,
) -> Node {
    let Some(inc) = root.get("include").cloned() else {
        return root;
    };
    let entries: Vec<Node> = match &inc.value {
        Value::Seq(items) => items.clone(),
        _ => vec![inc.clone()],
    };
    let mut merged: Option<Node> = None;
    for entry in &entries {
        // Point at what names the file, not the whole entry.
        let span = ["local", "project", "remote", "template", "component"]
            .iter()
            .find_map(|k| entry.entry(k))
            .map_or(entry.span, |(k, v)| k.span.to(v.span));
        if let Some(rules) = entry.get("rules") {
            if !rules_allow(cx, rules, includes) {
                continue;
            }
        }
        let Some(origins) = origins(cx, entry, includes) else {
            continue;
        };
        let inputs = entry.get("inputs");
        for origin in origins {
            let name = origin.name();
            if seen.contains(&name) || depth > MAX_DEPTH {
                cx.error(
                    span,
                    "include",
                    format!("include {name} is included again (a cycle)"),
                );
                continue;
            }
            cx.includes_read += 1;
            if cx.includes_read > MAX_INCLUDES {
                cx.error(
                    span,
                    "include",
                    format!("Maximum of {MAX_INCLUDES} nested includes are allowed"),
                );
                return root_without_includes(root, merged);
            }
            let text = match origin.text(includes) {
                Ok(t) => t,
                Err(u) if u.unavailable && !includes.strict() => {
                    cx.includes_unchecked = true;
                    cx.warning(
                        span,
                        "include-unavailable",
                        format!(
                            "{}; what it defines is unknown, so checks that depend on it are \
                             warnings",
                            u.message
                        ),
                    );
                    continue;
                }
                Err(u) => {
                    cx.error(span, "include", u.message);
                    continue;
                }
            };
            let Some(mut doc) = document(cx, &name, &text, inputs, span) else {
                continue;
            };
            respan(&mut doc, span);
            seen.push(name);
            let doc = with_includes(cx, doc, includes, depth + 1, seen);
            seen.pop();
            merged = Some(match merged {
                Some(m) => deep_merge(&m, &doc),
                None => doc,
            });
        }
    }
    root_without_includes(root, merged)
}

/// The file's own keys (without `include`) merged over what its includes gave.
fn root_without_includes(root: Node, merged: Option<Node>) -> Node {
    let mut own = root;
    if let Value::Map(e) = &mut own.value {
        e.retain(|(k, _)| k.as_str() != Some("include"));
    }
    match merged {
        Some(m) => {
            let mut out = deep_merge(&m, &own);
            out.span = own.span;
            out
        }
        None => own,
    }
}

/// The files one `include:` entry names.
fn origins<'a>(
    cx: &mut Ctx<'_>,
    entry: &'a Node,
    includes: &dyn Includes,
) -> Option<Vec<Origin<'a>>> {
    let span = entry.span;
    let local = |cx: &mut Ctx<'_>, path: &str| -> Option<Vec<Origin<'a>>> {
        let path = expand_variables(cx, path, includes, span)?;
        if path.contains(['*', '?', '[']) {
            match includes.glob(&path) {
                Ok(n) => Some(n.into_iter().map(Origin::Local).collect()),
                Err(e) => {
                    cx.error(span, "include", format!("include '{path}': {e}"));
                    None
                }
            }
        } else {
            Some(vec![Origin::Local(path)])
        }
    };
    match &entry.value {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            Some(vec![Origin::Remote(RemoteInclude::Url(s))])
        }
        Value::String(s) => local(cx, s),
        Value::Map(_) => {
            cx.keys(
                entry,
                &[
                    "local",
                    "project",
                    "ref",
                    "file",
                    "remote",
                    "template",
                    "component",
                    "artifact",
                    "job",
                    "rules",
                    "inputs",
                    "integrity",
                ],
                "include",
            );
            if let Some(path) = entry.get("local").and_then(Node::as_str) {
                local(cx, path)
            } else if let Some(project) = entry.get("project").and_then(Node::as_str) {
                let files = entry
                    .get("file")
                    .map(|f| cx.strings(f, "include:file"))
                    .unwrap_or_default();
                if files.is_empty() {
                    cx.error(span, "missing-key", "include:project needs file:");
                    return None;
                }
                match includes.project(project) {
                    Some(dir) => Some(
                        files
                            .into_iter()
                            .map(|f| Origin::ProjectDir(dir.clone(), f))
                            .collect(),
                    ),
                    None => {
                        let git_ref = entry.get("ref").and_then(Node::as_str);
                        Some(
                            entry
                                .get("file")
                                .map(flat_strs)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|file| {
                                    Origin::Remote(RemoteInclude::Project {
                                        project,
                                        git_ref,
                                        file,
                                    })
                                })
                                .collect(),
                        )
                    }
                }
            } else if let Some(url) = entry.get("remote").and_then(Node::as_str) {
                Some(vec![Origin::Remote(RemoteInclude::Url(url))])
            } else if let Some(name) = entry.get("template").and_then(Node::as_str) {
                Some(vec![Origin::Remote(RemoteInclude::Template(name))])
            } else if let Some(c) = entry.get("component").and_then(Node::as_str) {
                Some(vec![Origin::Remote(RemoteInclude::Component(c))])
            } else if entry.get("artifact").is_some() {
                cx.warning(
                    span,
                    "unsupported",
                    "include:artifact (child pipelines made by a job) is not run locally",
                );
                None
            } else {
                cx.error(
                    span,
                    "invalid-value",
                    "an include names one of local, project, remote, template or component",
                );
                None
            }
        }
        _ => {
            cx.error(
                span,
                "invalid-type",
                "include entries are paths or mappings",
            );
            None
        }
    }
}

/// The strings of a string or a (nested) list of them, borrowed.
fn flat_strs(node: &Node) -> Vec<&str> {
    match &node.value {
        Value::Seq(items) => items.iter().flat_map(flat_strs).collect(),
        Value::String(s) => vec![s.as_str()],
        _ => Vec::new(),
    }
}

/// Expands variables in an include path; `None` (with a warning) when they are known only
/// when a pipeline runs.
fn expand_variables(
    cx: &mut Ctx<'_>,
    path: &str,
    includes: &dyn Includes,
    span: Span,
) -> Option<String> {
    if !path.contains('$') {
        return Some(path.to_owned());
    }
    let unknown = std::cell::Cell::new(false);
    let expanded = super::vars::expand(path, &|name| {
        let v = includes.variable(name);
        if v.is_none() {
            unknown.set(true);
        }
        v
    });
    if unknown.get() {
        cx.includes_unchecked = true;
        cx.warning(
            span,
            "include-variables",
            format!("include '{path}' names variables known only when a pipeline runs: not checked here"),
        );
        return None;
    }
    Some(expanded)
}

/// `include:rules`: the first rule that matches decides (`when: never` leaves the file out);
/// none matching leaves it out. Without a pipeline's variables the file is included.
fn rules_allow(cx: &mut Ctx<'_>, rules: &Node, includes: &dyn Includes) -> bool {
    let Some(items) = rules.as_seq() else {
        cx.error(rules.span, "invalid-type", "include:rules should be a list");
        return false;
    };
    let Some(variables) = includes.variables() else {
        return true;
    };
    let mut contexts = crate::expr::Contexts::new();
    let map: IndexMap<String, crate::expr::Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), crate::expr::Value::string(v.as_str())))
        .collect();
    contexts.insert("variables", crate::expr::Value::Object(Arc::new(map)));
    for rule in items {
        cx.keys(rule, &["if", "exists", "changes", "when"], "include:rules");
        let mut matches = true;
        if let Some(cond) = rule.get("if").and_then(Node::scalar_text) {
            matches &= match super::rules::compile(&cond) {
                Ok(expr) => crate::expr::evaluate(&expr, &cond, &contexts)
                    .map(|v| v.is_truthy())
                    .unwrap_or(false),
                Err(e) => {
                    cx.error(rule.span, "invalid-rule", format!("include:rules:if: {e}"));
                    false
                }
            };
        }
        if let Some(exists) = rule.get("exists") {
            let patterns = match exists.get("paths") {
                Some(p) => flat_strs(p),
                None => flat_strs(exists),
            };
            matches &= patterns
                .iter()
                .any(|p| includes.glob(p).is_ok_and(|found| !found.is_empty()));
        }
        if matches {
            return rule.get("when").and_then(Node::as_str) != Some("never");
        }
    }
    false
}

/// An included file's configuration: its one document, or — with a `spec:` header — the
/// second document with `$[[ inputs.x ]]` replaced by the inputs given (or their defaults).
fn document(
    cx: &mut Ctx<'_>,
    name: &str,
    text: &str,
    given: Option<&Node>,
    span: Span,
) -> Option<Node> {
    let mut file_diags = Vec::new();
    let docs = load_all(name, text, &mut file_diags);
    for d in file_diags.iter().filter(|d| d.is_error()) {
        cx.error(
            span,
            "include",
            format!("in included file {name}: {}", d.message),
        );
    }
    if file_diags.iter().any(|d| d.is_error()) {
        return None;
    }
    let mut docs = docs.into_iter();
    let first = docs.next()?;
    let spec = first
        .get("spec")
        .filter(|_| first.as_map().is_some_and(|m| m.len() == 1));
    let Some(spec) = spec.cloned() else {
        if given.is_some() {
            cx.error(
                span,
                "invalid-value",
                format!("include:inputs given, but {name} has no spec:inputs header"),
            );
        }
        return Some(first);
    };
    let mut doc = docs
        .next()
        .unwrap_or_else(|| Node::new(Value::Map(Vec::new()), span));
    let inputs = inputs(cx, name, &spec, given, span)?;
    let mut interpolation = Interpolation {
        inputs: &inputs,
        problems: Vec::new(),
    };
    interpolation.node(&mut doc);
    for p in interpolation.problems {
        cx.error(span, "invalid-value", format!("{name}: {p}"));
    }
    Some(doc)
}

/// The inputs' values: given, else defaults; checked against the spec.
fn inputs(
    cx: &mut Ctx<'_>,
    name: &str,
    spec: &Node,
    given: Option<&Node>,
    span: Span,
) -> Option<IndexMap<String, Node>> {
    let declared = spec
        .get("inputs")
        .and_then(Node::as_map)
        .unwrap_or_default();
    let mut out = IndexMap::new();
    let mut ok = true;
    for (k, v) in given.and_then(Node::as_map).unwrap_or_default() {
        let key = k.scalar_text().unwrap_or_default();
        if !declared
            .iter()
            .any(|(d, _)| d.scalar_text().as_deref() == Some(&key))
        {
            cx.error(
                k.span,
                "unknown-key",
                format!("{name}: unknown input '{key}'"),
            );
            ok = false;
        }
        out.insert(key, v.clone());
    }
    for (k, def) in declared {
        let key = k.scalar_text().unwrap_or_default();
        let value = match (out.get(&key), def.get("default")) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                cx.error(
                    span,
                    "missing-key",
                    format!("{name}: input '{key}' is required"),
                );
                ok = false;
                continue;
            }
        };
        let kind = def.get("type").and_then(Node::as_str).unwrap_or("string");
        let fits = match kind {
            "string" => value.scalar_text().is_some() && !matches!(value.value, Value::Seq(_)),
            "number" => value.as_f64().is_some(),
            "boolean" => value.as_bool().is_some(),
            "array" => value.as_seq().is_some(),
            _ => true,
        };
        if !fits {
            cx.error(
                value.span,
                "invalid-type",
                format!("{name}: input '{key}' should be a {kind}"),
            );
            ok = false;
        }
        if let (Some(options), Some(v)) = (
            def.get("options").and_then(Node::as_seq),
            value.scalar_text(),
        ) {
            if !options
                .iter()
                .any(|o| o.scalar_text().as_deref() == Some(&v))
            {
                cx.error(
                    value.span,
                    "invalid-value",
                    format!("{name}: input '{key}' is '{v}', not one of its options"),
                );
                ok = false;
            }
        }
        if let (Some(re), Some(v)) = (def.get("regex").and_then(Node::as_str), value.scalar_text())
        {
            let (pattern, flags) =
                crate::expr::split_regex(re).unwrap_or_else(|| (re.to_owned(), String::new()));
            if crate::expr::regex(&pattern, &flags).is_ok_and(|r| !r.is_match(&v)) {
                cx.error(
                    value.span,
                    "invalid-value",
                    format!("{name}: input '{key}' does not match {re}"),
                );
                ok = false;
            }
        }
        out.insert(key, value);
    }
    ok.then_some(out)
}

/// Replaces `$[[ inputs.x ]]` (optionally `| expand_vars`, `| truncate(a,b)`) in keys and
/// string values; a value that is nothing but one interpolation takes the input's type.
struct Interpolation<'a> {
    inputs: &'a IndexMap<String, Node>,
    problems: Vec<String>,
}

impl Interpolation<'_> {
    fn node(&mut self, node: &mut Node) {
        match &mut node.value {
            Value::String(s) if s.contains("$[[") => {
                let trimmed = s.trim();
                if trimmed.starts_with("$[[")
                    && trimmed.ends_with("]]")
                    && trimmed.matches("$[[").count() == 1
                {
                    let inner = &trimmed[3..trimmed.len() - 2];
                    if let Some(v) = self.whole(inner) {
                        let span = node.span;
                        *node = v;
                        node.span = span;
                        return;
                    }
                }
                let text = s.clone();
                *s = self.text(&text);
            }
            Value::Seq(items) => items.iter_mut().for_each(|i| self.node(i)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    self.node(k);
                    self.node(v);
                }
            }
            _ => {}
        }
    }

    /// An interpolation that stands alone and takes no function: the input's own node.
    fn whole(&mut self, inner: &str) -> Option<Node> {
        let name = inner.trim().strip_prefix("inputs.")?;
        if name.contains('|') {
            return None;
        }
        self.inputs.get(name.trim()).cloned()
    }

    fn text(&mut self, text: &str) -> String {
        crate::template::replace_delimited(text, "$[[", "]]", |inner| self.evaluate(inner))
    }

    /// `inputs.x | fn | fn`, or `None` (left as written) when it names no input.
    fn evaluate(&mut self, inner: &str) -> Option<String> {
        let mut parts = inner.split('|').map(str::trim);
        let name = parts.next()?.strip_prefix("inputs.")?;
        let Some(node) = self.inputs.get(name) else {
            self.problems
                .push(format!("unknown input '{name}' in $[[ {} ]]", inner.trim()));
            return None;
        };
        let mut value = match &node.value {
            Value::Seq(_) | Value::Map(_) => node.to_json().to_string(),
            _ => node.scalar_text().unwrap_or_default(),
        };
        for f in parts {
            if f == "expand_vars" {
                continue;
            }
            let args = f
                .strip_prefix("truncate(")
                .and_then(|a| a.strip_suffix(')'))
                .and_then(|a| a.split_once(','))
                .and_then(|(a, b)| {
                    Some((
                        a.trim().parse::<usize>().ok()?,
                        b.trim().parse::<usize>().ok()?,
                    ))
                });
            match args {
                Some((offset, len)) => {
                    value = value.chars().skip(offset).take(len).collect();
                }
                None => {
                    self.problems
                        .push(format!("unknown function '{f}' in $[[ {} ]]", inner.trim()));
                }
            }
        }
        Some(value)
    }
}
