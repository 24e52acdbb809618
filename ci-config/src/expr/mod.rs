//! The GitHub Actions expression language (`${{ … }}`), evaluated exactly as GitHub does.
//!
//! One engine for every dialect: GitHub `if:` and `${{ }}`, and later GitLab `rules:if`
//! compiled to it. The engine knows no context names: the caller says which are allowed
//! ([`ParseOptions`]) and supplies them at evaluation ([`EvalContext`], [`Contexts`]).
//!
//! ```
//! use ci_config::expr::{Contexts, Expression, ParseOptions, Value};
//!
//! let options = ParseOptions { contexts: &["github"], ..Default::default() };
//! let e = Expression::parse("github.event_name == 'PUSH' && contains(github.ref, 'main')", &options)?;
//! let mut contexts = Contexts::new();
//! contexts.insert("github", Value::from_json(&serde_json::json!({
//!     "event_name": "push", "ref": "refs/heads/main"
//! })));
//! assert!(e.evaluate(&contexts)?.is_truthy());
//! # Ok::<(), ci_config::expr::ExprError>(())
//! ```

mod ast;
mod error;
mod eval;
mod hash_files;
mod lexer;
mod parser;
mod regex;
mod value;

pub use ast::{CmpOp, Expr, ExprKind, Function, Literal};
pub use error::{ErrorKind, ExprError};
pub use eval::{evaluate, Contexts, EvalContext, MAX_STRING_BYTES};
pub use hash_files::{hash_files, Directory, FileSystem};
pub use parser::{parse, ParseOptions, MAX_DEPTH};
pub use regex::{regex, split_regex};
pub use value::{format_number, parse_number_string, Kind, Value};

use crate::template::{Part, Template};

/// A parsed expression with its source text (for error messages).
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    tree: Option<Expr>,
}

impl Expression {
    /// Parses `source` (without `${{ }}`); an empty expression evaluates to null.
    pub fn parse(source: &str, options: &ParseOptions<'_>) -> Result<Self, ExprError> {
        Ok(Expression {
            source: source.to_owned(),
            tree: parse(source, options)?,
        })
    }

    /// The tree; `None` for an empty expression.
    pub fn tree(&self) -> Option<&Expr> {
        self.tree.as_ref()
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `ctx`.
    pub fn evaluate(&self, ctx: &dyn EvalContext) -> Result<Value, ExprError> {
        match &self.tree {
            Some(tree) => evaluate(tree, &self.source, ctx),
            None => Ok(Value::Null),
        }
    }
}

/// Strips one surrounding `${{ … }}`, if the whole text is one.
pub fn strip_delimiters(text: &str) -> &str {
    let t = text.trim();
    match t.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("${{") => inner,
        _ => text,
    }
}

/// Renders a value into a template's text as GitHub does: null as empty, arrays and
/// objects as JSON, everything else as its string.
pub fn render(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => value.to_pretty_json(),
        other => other.to_display_string().into_owned(),
    }
}

/// Evaluates a template: literal parts as written, each `${{ }}` rendered with [`render`].
pub fn render_template(
    template: &Template,
    options: &ParseOptions<'_>,
    ctx: &dyn EvalContext,
) -> Result<String, ExprError> {
    if template.parts.is_empty() {
        return Ok(template.raw.clone());
    }
    let mut out = String::new();
    for part in &template.parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Expr { source, .. } => {
                let value = Expression::parse(source, options)?.evaluate(ctx)?;
                out.push_str(&render(&value));
            }
        }
    }
    Ok(out)
}

/// Evaluates a template that may be a single expression keeping its type (`${{ matrix }}`
/// gives an object), or text (always a string).
pub fn evaluate_template(
    template: &Template,
    options: &ParseOptions<'_>,
    ctx: &dyn EvalContext,
) -> Result<Value, ExprError> {
    match template.single_expr() {
        Some(source) => Expression::parse(source, options)?.evaluate(ctx),
        None => render_template(template, options, ctx).map(Value::string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> Value {
        Expression::parse(src, &ParseOptions::default())
            .and_then(|e| e.evaluate(&Contexts::new()))
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn and_or_return_operands() {
        assert_eq!(eval("0 || 'a'").to_display_string(), "a");
        assert_eq!(eval("1 && ''").to_display_string(), "");
        assert_eq!(eval("null || false").kind(), Kind::Boolean);
    }

    #[test]
    fn equality_is_loose_and_case_insensitive() {
        assert!(eval("'ABC' == 'abc'").is_truthy());
        assert!(eval("'1' == 1").is_truthy());
        assert!(eval("null == 0").is_truthy());
        assert!(!eval("NaN == NaN").is_truthy());
        assert!(eval("'b' > 'A'").is_truthy());
    }

    #[test]
    fn errors_are_located_like_github() {
        let e = Expression::parse("1 < )", &ParseOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unexpected symbol: ')'. Located at position 5 within expression: 1 < )"
        );
        assert_eq!(e.kind, ErrorKind::Parsing);
        let e = Expression::parse("github.sha", &ParseOptions::default()).unwrap_err();
        assert!(e.message.contains("Unrecognized named-value: 'github'"));
    }

    #[test]
    fn templates_render_values() {
        let t = Template::parse(
            "a ${{ fromJSON('[1]') }} ${{ null }}b",
            Default::default(),
            &crate::span::Source::new(""),
        )
        .unwrap();
        let s = render_template(&t, &ParseOptions::default(), &Contexts::new()).unwrap();
        assert_eq!(s, "a [\n  1\n] b");
    }
}
