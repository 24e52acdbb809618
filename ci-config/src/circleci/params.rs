//! Parameters (`parameters:` of jobs, commands, executors and the pipeline), their values,
//! `<< … >>` interpolation, and logic statements (`when`/`unless`).

use indexmap::IndexMap;

use super::Ctx;
use crate::span::Span;
use crate::yaml::{Node, Value};

/// Declared parameters: name → declaration node (`type`, `default`, `enum`, `description`).
pub(super) type Declared = IndexMap<String, Node>;

/// Reads a `parameters:` declaration mapping.
pub(super) fn declared(cx: &mut Ctx<'_>, node: Option<&Node>, pipeline: bool) -> Declared {
    let mut out = IndexMap::new();
    let Some(node) = node else { return out };
    let Some(entries) = node.as_map() else {
        cx.error(node.span, "invalid-type", "parameters should be a mapping");
        return out;
    };
    let types: &[&str] = if pipeline {
        &["string", "boolean", "integer", "enum"]
    } else {
        &[
            "string",
            "boolean",
            "integer",
            "enum",
            "executor",
            "steps",
            "env_var_name",
        ]
    };
    for (k, v) in entries {
        let Some(name) = k.scalar_text() else {
            continue;
        };
        cx.keys(v, &["type", "default", "description", "enum"]);
        match v.get("type").and_then(Node::as_str) {
            Some(t) if types.contains(&t) => {}
            Some(t) => cx.error(
                v.get("type").map_or(v.span, |n| n.span),
                "invalid-value",
                format!(
                    "parameter '{name}': type '{t}' is not one of {}",
                    types.join(", ")
                ),
            ),
            None => cx.error(
                k.span,
                "missing-key",
                format!("parameter '{name}' needs a type"),
            ),
        }
        if v.get("type").and_then(Node::as_str) == Some("enum") && v.get("enum").is_none() {
            cx.error(
                k.span,
                "missing-key",
                format!("enum parameter '{name}' needs enum:"),
            );
        }
        out.insert(name, v.clone());
    }
    out
}

/// The values of `declared` for one invocation: given (checked) or defaults; an argument
/// that is not declared, a required one missing or a value of the wrong type is an error at
/// the argument.
pub(super) fn bind(
    cx: &mut Ctx<'_>,
    what: &str,
    declared: &Declared,
    given: &IndexMap<String, Node>,
    at: Span,
) -> IndexMap<String, Node> {
    bind_with(cx, what, declared, given, at, &Binding::default())
}

/// How lenient [`bind_with`] is.
#[derive(Debug, Default)]
pub(super) struct Binding<'a> {
    /// Arguments that may be undeclared (matrix values a job's name uses).
    pub undeclared_ok: &'a [String],
    /// Missing required arguments become `<< parameters.x >>` placeholders (checking a
    /// definition nothing invokes).
    pub placeholders: bool,
}

/// [`bind`], with the leniency of `binding`.
pub(super) fn bind_with(
    cx: &mut Ctx<'_>,
    what: &str,
    declared: &Declared,
    given: &IndexMap<String, Node>,
    at: Span,
    binding: &Binding<'_>,
) -> IndexMap<String, Node> {
    let mut out = IndexMap::new();
    for (name, value) in given {
        if !declared.contains_key(name) && !binding.undeclared_ok.contains(name) {
            cx.error(
                value.span,
                "unknown-parameter",
                format!("{what}: no parameter '{name}' is declared"),
            );
        }
    }
    for (name, decl) in declared {
        let value = match (given.get(name), decl.get("default")) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) if binding.placeholders => {
                out.insert(
                    name.clone(),
                    Node::new(Value::String(format!("<< parameters.{name} >>")), at),
                );
                continue;
            }
            (None, None) => {
                cx.error(
                    at,
                    "missing-parameter",
                    format!("{what}: parameter '{name}' is required and not given"),
                );
                continue;
            }
        };
        let kind = decl.get("type").and_then(Node::as_str).unwrap_or("string");
        if let Some(problem) = type_problem(kind, decl, &value) {
            cx.error(
                value.span,
                "invalid-type",
                format!("{what}: parameter '{name}' {problem}"),
            );
        }
        out.insert(name.clone(), value);
    }
    out
}

fn type_problem(kind: &str, decl: &Node, value: &Node) -> Option<String> {
    if interpolated(value) && kind != "string" {
        // Decided once the interpolation is.
        return None;
    }
    let fits = match kind {
        "string" => matches!(value.value, Value::String(_)),
        "boolean" => as_bool(value).is_some(),
        "integer" => matches!(value.value, Value::Int(_)) || interpolated(value),
        "enum" => {
            let options: Vec<String> = decl
                .get("enum")
                .and_then(Node::as_seq)
                .unwrap_or_default()
                .iter()
                .filter_map(Node::scalar_text)
                .collect();
            let v = value.scalar_text().unwrap_or_default();
            if !options.contains(&v) && !interpolated(value) {
                return Some(format!("is '{v}', not one of {}", options.join(", ")));
            }
            true
        }
        "steps" => value.as_seq().is_some(),
        "env_var_name" => value.as_str().is_some_and(|s| {
            interpolated(value)
                || (s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        }),
        "executor" => value.as_str().is_some() || value.as_map().is_some(),
        _ => true,
    };
    (!fits).then(|| format!("should be {}", article(kind)))
}

fn article(kind: &str) -> String {
    match kind {
        "integer" | "enum" | "executor" | "env_var_name" => format!("an {kind}"),
        "steps" => "a list of steps".into(),
        _ => format!("a {kind}"),
    }
}

fn interpolated(node: &Node) -> bool {
    node.as_str().is_some_and(|s| s.contains("<<"))
}

/// A boolean as CircleCI reads one (YAML 1.1 words too).
pub(super) fn as_bool(node: &Node) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ if s.contains("<<") => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// What `<< … >>` may name: `parameters.x`, `pipeline.parameters.x`, `pipeline.…` values and
/// `matrix.x`.
#[derive(Debug, Default, Clone)]
pub(super) struct Scope<'a> {
    pub parameters: Option<&'a IndexMap<String, Node>>,
    pub pipeline: Option<&'a IndexMap<String, Node>>,
    pub matrix: Option<&'a IndexMap<String, Node>>,
    /// Checking a definition on its own: parameters it does not declare stay as written.
    pub placeholders: bool,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Option<Node> {
        if let Some(p) = name.strip_prefix("parameters.") {
            return self.parameters?.get(p).cloned().or_else(|| {
                self.placeholders
                    .then(|| Node::new(Value::String(format!("<< {name} >>")), Span::default()))
            });
        }
        if let Some(m) = name.strip_prefix("matrix.") {
            return self.matrix?.get(m).cloned();
        }
        if name.starts_with("pipeline.") {
            return self.pipeline?.get(name).cloned();
        }
        None
    }

    /// Whether `name` belongs to a namespace this scope resolves (others are left for a
    /// later pass: a job's `<< parameters.x >>` inside a workflow-level matrix name).
    fn resolves(&self, name: &str) -> bool {
        is_name(name) && self.namespace_known(name)
    }

    fn namespace_known(&self, name: &str) -> bool {
        (name.starts_with("parameters.") && self.parameters.is_some())
            || (name.starts_with("matrix.") && self.matrix.is_some())
            || (name.starts_with("pipeline.") && self.pipeline.is_some())
    }

    /// Replaces `<< name >>` in every string of `node`; a string that is only one
    /// interpolation takes the value's own type (a `steps` parameter becomes a list).
    pub(super) fn apply(&self, cx: &mut Ctx<'_>, node: &mut Node) {
        match &mut node.value {
            Value::String(s) if s.contains("<<") => {
                let trimmed = s.trim();
                if let Some(inner) = trimmed
                    .strip_prefix("<<")
                    .and_then(|r| r.strip_suffix(">>"))
                    .filter(|i| !i.contains("<<") && !i.contains(">>"))
                {
                    let name = inner.trim();
                    if self.resolves(name) {
                        match self.lookup(name) {
                            Some(v) => {
                                let span = node.span;
                                *node = v;
                                node.span = span;
                            }
                            None => self.unknown(cx, name, node.span),
                        }
                        return;
                    }
                    if !is_name(name) {
                        if let Some(v) = self.expression(cx, name, node.span) {
                            *node = v.into_node(node.span);
                            return;
                        }
                    }
                }
                let text = s.clone();
                let span = node.span;
                if let Value::String(s) = &mut node.value {
                    *s = self.text(cx, &text, span);
                }
            }
            Value::Seq(items) => items.iter_mut().for_each(|i| self.apply(cx, i)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    self.apply(cx, k);
                    self.apply(cx, v);
                }
            }
            _ => {}
        }
    }

    fn unknown(&self, cx: &mut Ctx<'_>, name: &str, span: Span) {
        if name.starts_with("pipeline.") && !name.starts_with("pipeline.parameters.") {
            // Pipeline values Gantry does not fabricate locally are empty, with a warning.
            cx.warning(
                span,
                "unknown-pipeline-value",
                format!("<< {name} >> has no local value; it is empty here"),
            );
        } else {
            cx.error(
                span,
                "unknown-parameter",
                format!("<< {name} >> names no declared parameter"),
            );
        }
    }

    fn text(&self, cx: &mut Ctx<'_>, text: &str, span: Span) -> String {
        crate::template::replace_delimited(text, "<<", ">>", |inner| {
            let inner = inner.trim();
            if self.resolves(inner) {
                match self.lookup(inner) {
                    Some(v) => Some(render(&v)),
                    None => {
                        self.unknown(cx, inner, span);
                        Some(String::new())
                    }
                }
            } else if !is_name(inner) {
                self.expression(cx, inner, span).map(|v| v.text())
            } else {
                None
            }
        })
    }
}

impl Scope<'_> {
    /// An expression inside `<< >>`; `None` (left as written) when it names something this
    /// scope does not resolve yet (a job's parameters while the pipeline's are resolved), or
    /// (with an error) when it is wrong.
    pub(super) fn expression(
        &self,
        cx: &mut Ctx<'_>,
        text: &str,
        span: Span,
    ) -> Option<super::expr::Val> {
        let deferred = std::cell::Cell::new(false);
        let lookup = |name: &str| {
            if self.resolves(name) {
                self.lookup(name)
            } else {
                deferred.set(true);
                None
            }
        };
        match super::expr::evaluate(text, &lookup) {
            Ok(v) => Some(v),
            Err(_) if deferred.get() => None,
            Err(e) => {
                cx.error(span, "invalid-expression", format!("<< {text} >>: {e}"));
                None
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A value as text (lists of steps or maps as their JSON).
pub(super) fn render(node: &Node) -> String {
    match &node.value {
        Value::Seq(_) | Value::Map(_) => node.to_json().to_string(),
        _ => node.scalar_text().unwrap_or_default(),
    }
}

/// Evaluates a logic statement (`when:`/`unless:` of steps and workflows), already
/// interpolated: literals (falsy: false, null, 0, "", NaN), `and`, `or`, `not`, `equal`,
/// `matches: {pattern, value}`.
pub(super) fn logic(cx: &mut Ctx<'_>, node: &Node, depth: usize) -> bool {
    if depth > 100 {
        cx.error(
            node.span,
            "invalid-value",
            "logic statements nest more than 100 levels",
        );
        return false;
    }
    let Some(entries) = node.as_map() else {
        return truthy(node);
    };
    if entries.len() != 1 {
        cx.error(
            node.span,
            "invalid-value",
            "a logic statement is one of and, or, not, equal, matches",
        );
        return false;
    }
    let (k, v) = &entries[0];
    let list = |cx: &mut Ctx<'_>| -> Vec<Node> {
        match v.as_seq() {
            Some(items) if !items.is_empty() => items.to_vec(),
            _ => {
                cx.error(
                    v.span,
                    "invalid-value",
                    "this statement takes a non-empty list",
                );
                Vec::new()
            }
        }
    };
    match k.as_str().unwrap_or_default() {
        "and" => list(cx).iter().all(|i| logic(cx, i, depth + 1)),
        "or" => list(cx).iter().any(|i| logic(cx, i, depth + 1)),
        "not" => !logic(cx, v, depth + 1),
        "equal" => {
            let items = list(cx);
            items.windows(2).all(|w| {
                w[0].to_json() == w[1].to_json()
                    || render(&w[0]) == render(&w[1])
                        && w[0].is_scalar()
                        && w[1].is_scalar()
                        && same_kind(&w[0], &w[1])
            })
        }
        "matches" => {
            let pattern = v.get("pattern").and_then(Node::scalar_text);
            let value = v.get("value").map(render);
            match (pattern, value) {
                (Some(p), Some(val)) => match crate::expr::regex(&format!("^(?:{p})$"), "") {
                    Ok(re) => re.is_match(&val),
                    Err(e) => {
                        cx.error(v.span, "invalid-value", format!("matches: {e}"));
                        false
                    }
                },
                _ => {
                    cx.error(v.span, "missing-key", "matches takes pattern and value");
                    false
                }
            }
        }
        other => {
            cx.error(
                k.span,
                "invalid-value",
                format!("'{other}' is not a logic statement (and, or, not, equal, matches)"),
            );
            false
        }
    }
}

fn same_kind(a: &Node, b: &Node) -> bool {
    std::mem::discriminant(&a.value) == std::mem::discriminant(&b.value)
}

fn truthy(node: &Node) -> bool {
    match &node.value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0 && !f.is_nan(),
        Value::String(s) => !s.is_empty(),
        Value::Seq(items) => !items.is_empty(),
        Value::Map(_) => true,
    }
}
