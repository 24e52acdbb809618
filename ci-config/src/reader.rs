//! Typed reading of YAML nodes with located diagnostics, shared by the dialect frontends.
//!
//! Every accessor reports what is wrong at the node it was given and returns `None`, so a
//! frontend reads as far as it can and collects every mistake in one pass.

use indexmap::IndexMap;

use crate::diagnostic::Diagnostic;
use crate::expr::{self, ExprError, Function, ParseOptions};
use crate::span::{Source, Span};
use crate::template::{self, Template};
use crate::yaml::{Node, Value};

/// The contexts and functions expressions may use where the reader currently is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    pub contexts: &'static [&'static str],
    pub functions: &'static [Function],
}

impl Scope {
    /// Where the dialect has not said: every context and function GitHub knows.
    pub const ANY: Scope = Scope {
        contexts: &[
            "github", "env", "vars", "secrets", "inputs", "needs", "strategy", "matrix", "job",
            "jobs", "runner", "steps",
        ],
        functions: &[
            Function::Success,
            Function::Failure,
            Function::Always,
            Function::Cancelled,
            Function::HashFiles,
        ],
    };

    pub fn options(&self) -> ParseOptions<'static> {
        ParseOptions {
            contexts: self.contexts,
            functions: self.functions,
        }
    }
}

/// Diagnostics collected while reading one file.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    pub path: &'a str,
    pub source: Source<'a>,
    pub diagnostics: Vec<Diagnostic>,
    /// What expressions may use at the key being read.
    pub scope: Scope,
}

impl<'a> Reader<'a> {
    pub fn new(path: &'a str, text: &'a str) -> Self {
        Reader {
            path,
            source: Source::new(text),
            diagnostics: Vec::new(),
            scope: Scope::ANY,
        }
    }

    pub fn error(&mut self, span: Span, code: &'static str, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(self.path, span, code, message));
    }

    pub fn error_with_help(
        &mut self,
        span: Span,
        code: &'static str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(self.path, span, code, message).with_help(help));
    }

    pub fn warning(&mut self, span: Span, code: &'static str, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(self.path, span, code, message));
    }

    /// Reports a node of the wrong type, in the forge's words.
    pub fn unexpected(&mut self, node: &Node, expected: &str) {
        if node.as_str().is_some_and(template::has_expr) {
            self.expression_not_allowed(node.span);
            return;
        }
        let message = match &node.value {
            Value::Seq(_) => "A sequence was not expected".to_owned(),
            Value::Map(_) => "A mapping was not expected".to_owned(),
            _ => format!(
                "Unexpected value '{}'",
                node.scalar_text().unwrap_or_default()
            ),
        };
        self.error_with_help(node.span, "type", message, format!("expected {expected}"));
    }

    /// A mapping whose keys are all plain strings; reports other shapes.
    pub fn map<'n>(&mut self, node: &'n Node, expected: &str) -> Option<&'n [(Node, Node)]> {
        match &node.value {
            Value::Map(entries) => {
                for (k, _) in entries {
                    self.key(k);
                }
                Some(entries)
            }
            _ => {
                self.unexpected(node, expected);
                None
            }
        }
    }

    /// A mapping key: a non-empty string (or a number/boolean) without expressions.
    pub fn key(&mut self, key: &Node) {
        match &key.value {
            Value::String(s) if template::is_insert(s) => {}
            Value::String(s) if template::has_expr(s) => self.expression_not_allowed(key.span),
            Value::String(s) if !s.is_empty() => {}
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {}
            _ => self.unexpected(key, "a non-empty string key"),
        }
    }

    /// Reports keys not in `allowed` and missing `required` keys.
    pub fn check_keys(&mut self, node: &Node, allowed: &[&str], required: &[&str]) {
        let Some(entries) = node.as_map() else { return };
        for (k, _) in entries {
            if let Some(name) = k.as_str() {
                if !name.is_empty() && !template::has_expr(name) && !allowed.contains(&name) {
                    self.error_with_help(
                        k.span,
                        "unknown-key",
                        format!("Unexpected value '{name}'"),
                        format!("expected one of: {}", allowed.join(", ")),
                    );
                }
            }
        }
        for name in required {
            if node.get(name).is_none() {
                self.error(
                    node.span,
                    "missing-key",
                    format!("Required property is missing: {name}"),
                );
            }
        }
    }

    pub fn expression_not_allowed(&mut self, span: Span) {
        self.error(
            span,
            "expression-not-allowed",
            "A template expression is not allowed in this context",
        );
    }

    /// A scalar read as a string (numbers and booleans as their text), without expressions.
    pub fn literal(&mut self, node: &Node, expected: &str) -> Option<String> {
        let text = self.text(node, expected)?;
        if template::has_expr(&text) {
            self.expression_not_allowed(node.span);
            return None;
        }
        Some(text)
    }

    /// A scalar read as a string, without checking for expressions. Null is refused.
    pub fn text(&mut self, node: &Node, expected: &str) -> Option<String> {
        if node.is_null() || !node.is_scalar() {
            self.unexpected(node, expected);
            return None;
        }
        node.scalar_text()
    }

    /// A scalar read as a template (expressions allowed).
    pub fn template(&mut self, node: &Node, expected: &str) -> Option<Template> {
        let text = self.text(node, expected)?;
        self.template_of(node, &text)
    }

    /// Parses `text` (the value of `node`) as a template, reporting an unclosed `${{`.
    pub fn template_of(&mut self, node: &Node, text: &str) -> Option<Template> {
        match Template::parse(text, node.span, &self.source) {
            Ok(t) => {
                self.check_exprs(&t);
                Some(t)
            }
            Err(unclosed) => {
                let span = template::unclosed_span(text, unclosed.offset, node.span, &self.source);
                self.error(
                    span,
                    "expression-syntax",
                    "The expression is not closed. An unescaped ${{ sequence was found, but the closing }} sequence was not found.",
                );
                None
            }
        }
    }

    /// Sets the scope for the reads in `f`.
    pub fn scoped<T>(&mut self, scope: Scope, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::replace(&mut self.scope, scope);
        let out = f(self);
        self.scope = outer;
        out
    }

    /// Parses an expression in the current scope, reporting an error at its exact place:
    /// `at` is the byte offset in the file where the expression text starts, when known.
    pub fn parse_expr(
        &mut self,
        source: &str,
        at: Option<usize>,
        fallback: Span,
    ) -> Option<expr::Expression> {
        match expr::Expression::parse(source, &self.scope.options()) {
            Ok(e) => Some(e),
            Err(e) => {
                let span = self.expr_error_span(&e, at, fallback);
                self.error(span, "expression", e.to_string());
                None
            }
        }
    }

    fn expr_error_span(&self, e: &ExprError, at: Option<usize>, fallback: Span) -> Span {
        let (Some(at), Some(offset)) = (at, e.offset) else {
            return fallback;
        };
        let start = at + offset;
        let Some(rest) = self.source.text.get(start..) else {
            return fallback;
        };
        let len = rest.chars().next().map_or(0, char::len_utf8);
        self.source.span(start, start + len)
    }

    /// Checks each expression of a template: syntax, names allowed here, GitHub's limits.
    fn check_exprs(&mut self, t: &Template) {
        let embedded = t.single_expr().is_none();
        // Located at the value, as GitHub reports expression errors.
        let span = t.span;
        // GitHub turns text with expressions into one `format(…)` call; the limit applies to it.
        if embedded && !t.is_literal() {
            let length = t.to_expression().map_or(0, |e| e.chars().count());
            if length > template::MAX_EXPRESSION_LENGTH {
                self.error(
                    span,
                    "expression-syntax",
                    format!(
                        "Exceeded max expression length {}",
                        template::MAX_EXPRESSION_LENGTH
                    ),
                );
            }
        }
        for (source, part_span) in t.exprs() {
            if source.is_empty() {
                self.error(span, "expression-syntax", "An expression was expected");
            } else if source.chars().count() > template::MAX_EXPRESSION_LENGTH {
                self.error(
                    span,
                    "expression-syntax",
                    format!(
                        "Exceeded max expression length {}",
                        template::MAX_EXPRESSION_LENGTH
                    ),
                );
            } else if embedded && source.eq_ignore_ascii_case("insert") {
                self.error(
                    span,
                    "expression-syntax",
                    "The directive 'insert' is not allowed in this context. Directives are not supported for expressions that are embedded within a string. Directives are only supported when the entire value is an expression.",
                );
            } else if !source.eq_ignore_ascii_case("insert") {
                let at = self.expr_text_start(part_span);
                self.parse_expr(source, at, part_span);
            }
        }
    }

    /// Where the text of the expression inside `${{ … }}` written at `span` starts, when the
    /// span really covers `${{` in the file.
    fn expr_text_start(&self, span: Span) -> Option<usize> {
        let text = self.source.text.get(span.range())?;
        let body = text.strip_prefix("${{")?;
        let leading = body.len() - body.trim_start().len();
        Some(span.range().start + 3 + leading)
    }

    /// A string, or a sequence of strings (no expressions).
    pub fn string_list(&mut self, node: &Node, expected: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.literal(i, expected))
                .collect(),
            _ => self.literal(node, expected).into_iter().collect(),
        }
    }

    /// A string or a sequence of strings, as templates.
    pub fn template_list(&mut self, node: &Node, expected: &str) -> Vec<Template> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.template(i, expected))
                .collect(),
            _ => self.template(node, expected).into_iter().collect(),
        }
    }

    /// A boolean, or a string holding one expression. Returns the node for the model.
    pub fn bool_or_expr(&mut self, node: &Node) -> Option<Node> {
        self.scalar_or_expr(
            node,
            matches!(node.value, Value::Bool(_)),
            "a boolean or an expression",
        )
    }

    /// A number, or a string holding one expression.
    pub fn number_or_expr(&mut self, node: &Node) -> Option<Node> {
        let ok = matches!(node.value, Value::Int(_) | Value::Float(_));
        self.scalar_or_expr(node, ok, "a number or an expression")
    }

    fn scalar_or_expr(&mut self, node: &Node, ok: bool, expected: &str) -> Option<Node> {
        if ok {
            return Some(node.clone());
        }
        if let Some(s) = node.as_str() {
            let t = self.template_of(node, s)?;
            if t.single_expr().is_some() {
                return Some(node.clone());
            }
        }
        self.unexpected(node, expected);
        None
    }

    /// A mapping of string → template (outputs, secrets passed to a call).
    pub fn template_map(&mut self, node: &Node, expected: &str) -> IndexMap<String, Template> {
        let mut out = IndexMap::new();
        let Some(entries) = self.map(node, expected) else {
            return out;
        };
        for (k, v) in entries {
            let (Some(name), Some(value)) = (k.as_str(), self.template(v, "a string")) else {
                continue;
            };
            out.insert(name.to_owned(), value);
        }
        out
    }

    /// A mapping of string → free-form node (`with:` inputs).
    pub fn node_map(&mut self, node: &Node, expected: &str) -> IndexMap<String, Node> {
        let mut out = IndexMap::new();
        let Some(entries) = self.map(node, expected) else {
            return out;
        };
        for (k, v) in entries {
            if let Some(name) = k.as_str() {
                if let Some(s) = v.as_str() {
                    self.template_of(v, s);
                }
                out.insert(name.to_owned(), v.clone());
            }
        }
        out
    }
}
