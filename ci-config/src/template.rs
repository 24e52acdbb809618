//! Strings that may hold `${{ expr }}` parts, kept with their spans.
//!
//! The expression language itself lives in its own module; this one only splits a string into
//! literal text and expression sources, and refuses a `${{` that is never closed.

use crate::span::{Source, Span};

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text used as written.
    Literal(String),
    /// The source between `${{` and `}}`, trimmed, with the span of the whole `${{ … }}`.
    Expr {
        /// Expression text without the delimiters.
        source: String,
        /// Where `${{ … }}` is written (the node's span when it cannot be pinned down).
        span: Span,
    },
}

/// A string value that may contain expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The string as the YAML gave it.
    pub raw: String,
    /// Where the value is written.
    pub span: Span,
    /// Literal and expression parts in order; empty when the value holds no expression (then
    /// `raw` is the whole, literal value).
    pub parts: Vec<Part>,
}

/// A `${{` without its closing `}}`, at byte `offset` of the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclosed {
    /// Byte offset of the `${{` in the string.
    pub offset: usize,
}

impl Template {
    /// A template with no expressions.
    pub fn literal(raw: impl Into<String>, span: Span) -> Self {
        Template {
            raw: raw.into(),
            span,
            parts: Vec::new(),
        }
    }

    /// A template that is one expression (`${{ source }}`), made by a frontend rather than
    /// read from a file; `span` is where the construct it stands for is written.
    pub fn expr(source: impl Into<String>, span: Span) -> Self {
        let source = source.into();
        Template {
            raw: format!("${{{{ {source} }}}}"),
            span,
            parts: vec![Part::Expr { source, span }],
        }
    }

    /// Splits `raw` into parts. `source` is the whole file, used to locate each `${{`.
    pub fn parse(raw: &str, span: Span, source: &Source<'_>) -> Result<Self, Unclosed> {
        if !has_expr(raw) {
            return Ok(Template::literal(raw, span));
        }
        let mut parts = Vec::new();
        let mut rest = 0;
        let mut expr_index = 0;
        while let Some(found) = raw[rest..].find("${{") {
            let open = rest + found;
            let body_start = open + 3;
            let Some(close) = find_close(&raw[body_start..]) else {
                return Err(Unclosed { offset: open });
            };
            if open > rest {
                parts.push(Part::Literal(raw[rest..open].to_owned()));
            }
            let body = &raw[body_start..body_start + close];
            let end = body_start + close + 2;
            parts.push(Part::Expr {
                source: body.trim().to_owned(),
                span: locate(source, span, expr_index, end - open),
            });
            expr_index += 1;
            rest = end;
        }
        if rest < raw.len() {
            parts.push(Part::Literal(raw[rest..].to_owned()));
        }
        Ok(Template {
            raw: raw.to_owned(),
            span,
            parts,
        })
    }

    /// Whether the template has no expressions.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The expression, when the whole value is exactly one `${{ … }}` and nothing else.
    pub fn single_expr(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Expr { source, .. }] => Some(source),
            _ => None,
        }
    }

    /// The template as one expression, as GitHub normalises it: a lone `${{ e }}` is `e`, mixed
    /// text becomes `format('text {0}', e)` (with `'`, `{`, `}` escaped); `None` when there is no
    /// expression at all.
    pub fn to_expression(&self) -> Option<String> {
        if let Some(single) = self.single_expr() {
            return Some(single.to_owned());
        }
        if self.is_literal() {
            return None;
        }
        let mut format = String::new();
        let mut args = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    for c in text.chars() {
                        match c {
                            '\'' => format.push_str("''"),
                            '{' => format.push_str("{{"),
                            '}' => format.push_str("}}"),
                            c => format.push(c),
                        }
                    }
                }
                Part::Expr { source, .. } => {
                    format.push_str(&format!("{{{}}}", args.len()));
                    args.push(source.as_str());
                }
            }
        }
        Some(format!("format('{format}', {})", args.join(", ")))
    }

    /// The expression parts.
    pub fn exprs(&self) -> impl Iterator<Item = (&str, Span)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr { source, span } => Some((source.as_str(), *span)),
            Part::Literal(_) => None,
        })
    }
}

/// The longest expression GitHub accepts, in characters.
pub const MAX_EXPRESSION_LENGTH: usize = 21_000;

/// Whether a string is exactly the `${{ insert }}` directive (a mapping key that splices in the
/// mapping an expression produces).
pub fn is_insert(s: &str) -> bool {
    s.strip_prefix("${{")
        .and_then(|r| r.strip_suffix("}}"))
        .is_some_and(|body| body.trim().eq_ignore_ascii_case("insert"))
}

/// Whether a string contains `${{`.
pub fn has_expr(s: &str) -> bool {
    // Most strings hold no `$` at all; a byte scan is much cheaper than a substring search.
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'$' && b.get(i + 1) == Some(&b'{') && b.get(i + 2) == Some(&b'{'))
}

/// Finds the `}}` that closes an expression body, skipping `'string literals'` (where `''` is an
/// escaped quote) so that `${{ format('}}') }}` closes at the second `}}`.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => in_string = !in_string,
            b'}' if !in_string && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Best effort: the `index`-th `${{` inside the node's source text, `len` bytes long. Quoting and
/// folding can shift text, but they never create or remove a `${{`, so counting is reliable.
fn locate(source: &Source<'_>, span: Span, index: usize, len: usize) -> Span {
    let Some(text) = source.text.get(span.range()) else {
        return span;
    };
    let Some((offset, _)) = text.match_indices("${{").nth(index) else {
        return span;
    };
    let start = span.range().start + offset;
    let end = (start + len).min(span.range().end);
    source.span(start, end)
}

/// The span of the `${{` at byte `offset` of `raw`, a value written at `span`.
pub(crate) fn unclosed_span(raw: &str, offset: usize, span: Span, source: &Source<'_>) -> Span {
    let count = raw[..offset].matches("${{").count();
    locate(source, span, count, 3)
}

/// Replaces every `open … close` part of `text` by what `f` makes of its inside (the text
/// between the delimiters), or keeps it as written when `f` gives `None`. An `open` without
/// its `close` and what follows stay as they are. GitLab's `$[[ … ]]`, CircleCI's `<< … >>`
/// and cache keys' `{{ … }}` are read with it.
pub(crate) fn replace_delimited(
    text: &str,
    open: &str,
    close: &str,
    mut f: impl FnMut(&str) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + open.len()..].find(close) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let end = start + open.len() + len + close.len();
        match f(&rest[start + open.len()..start + open.len() + len]) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_literals_and_expressions() {
        let t = Template::parse(
            "a ${{ x }} b ${{ format('}}') }}",
            Span::default(),
            &Source::new(""),
        )
        .unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("a ".into()),
                Part::Expr {
                    source: "x".into(),
                    span: Span::default()
                },
                Part::Literal(" b ".into()),
                Part::Expr {
                    source: "format('}}')".into(),
                    span: Span::default()
                },
            ]
        );
    }

    #[test]
    fn mixed_templates_become_format_calls() {
        let t = Template::parse(
            "it's {x} ${{ a }}-${{ b }}",
            Span::default(),
            &Source::new(""),
        )
        .unwrap();
        assert_eq!(
            t.to_expression().unwrap(),
            "format('it''s {{x}} {0}-{1}', a, b)"
        );
        let lone = Template::parse("${{ a }}", Span::default(), &Source::new("")).unwrap();
        assert_eq!(lone.to_expression().unwrap(), "a");
    }

    #[test]
    fn unclosed_expression_is_refused_with_offset() {
        assert_eq!(
            Template::parse("echo ${{ x", Span::default(), &Source::new("")),
            Err(Unclosed { offset: 5 })
        );
    }

    #[test]
    fn single_expression_is_recognised() {
        let t = Template::parse("${{ matrix.os }}", Span::default(), &Source::new("")).unwrap();
        assert_eq!(t.single_expr(), Some("matrix.os"));
        assert!(!t.is_literal());
    }
}
