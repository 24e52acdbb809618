//! Located diagnostics and their rustc-style and JSON renderings.
//!
//! Gantry owns the [`Diagnostic`] type; `annotate-snippets` only draws it.

use std::fmt;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

use crate::span::Span;

/// How bad a diagnostic is. Only errors make `gantry lint` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// The file is accepted, but probably not as meant.
    Warning,
    /// The forge would refuse the file.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding about one place in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub path: String,
    /// Where in the file.
    pub span: Span,
    /// How bad it is.
    pub severity: Severity,
    /// A stable, kebab-case code (`unknown-key`, `yaml-syntax`, …) tools can filter on.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when we know.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(path: &str, span: Span, code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_owned(),
            span,
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(path: &str, span: Span, code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, span, code, message)
        }
    }

    /// Adds a hint on how to fix the problem.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this diagnostic is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line of the start.
    pub fn line(&self) -> usize {
        self.span.start_pos.line as usize
    }

    /// 1-based column (in characters) of the start.
    pub fn column(&self) -> usize {
        self.span.start_pos.column as usize
    }

    /// The JSON shape of `gantry lint --format json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "line": self.span.start_pos.line,
            "column": self.span.start_pos.column,
            "end_line": self.span.end_pos.line,
            "end_column": self.span.end_pos.column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "help": self.help,
        })
    }

    /// Renders rustc-style with a snippet of `source` (the text of `self.path`).
    ///
    /// `color` adds ANSI styles; callers decide (terminal, `NO_COLOR`).
    pub fn render(&self, source: &str, color: bool) -> String {
        let level = match self.severity {
            Severity::Warning => Level::WARNING,
            Severity::Error => Level::ERROR,
        };
        let range = self.span.range();
        let start = floor_char_boundary(source, range.start);
        let end = floor_char_boundary(source, range.end.max(start));
        let title = level
            .primary_title(self.message.as_str())
            .id(self.code)
            .element(
                Snippet::source(source)
                    .path(self.path.as_str())
                    .fold(true)
                    .annotation(AnnotationKind::Primary.span(start..end)),
            );
        let mut report = vec![title];
        if let Some(help) = &self.help {
            report.push(Group::with_title(
                Level::HELP.secondary_title(help.as_str()),
            ));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.render(&report).to_string()
    }
}

impl fmt::Display for Diagnostic {
    /// The one-line form: `path:line:col: severity[code]: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            self.path,
            self.line(),
            self.column(),
            self.severity,
            self.code,
            self.message
        )
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A parse result: the model (when the file could be read at all) and every diagnostic.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// The model; present even when there are errors, as far as it could be read.
    pub value: Option<T>,
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Parsed<T> {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}
