//! Expression errors, worded and located as GitHub reports them.

use std::fmt;

/// The stage at which processing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The tokenizer refused the text.
    Lexing,
    /// The grammar, an unknown name or an arity.
    Parsing,
    /// Evaluation (e.g. a bad `format` string).
    Evaluation,
}

impl ErrorKind {
    /// `lexing`, `parsing` or `evaluation`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Lexing => "lexing",
            ErrorKind::Parsing => "parsing",
            ErrorKind::Evaluation => "evaluation",
        }
    }
}

/// An expression error. Displayed as
/// `<message>. Located at position N within expression: <expr>` (N is 1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ExprError {
    /// The stage.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// Byte offset of the offending token in the expression, when there is one.
    pub offset: Option<usize>,
    /// 1-based character position of the offending token, when there is one.
    pub position: Option<usize>,
    /// The whole expression.
    pub expr: String,
}

impl ExprError {
    pub(crate) fn at(
        kind: ErrorKind,
        message: impl Into<String>,
        expr: &str,
        offset: usize,
    ) -> Self {
        ExprError {
            kind,
            message: message.into(),
            offset: Some(offset),
            position: Some(expr.get(..offset).map_or(offset, |s| s.chars().count()) + 1),
            expr: expr.to_owned(),
        }
    }

    pub(crate) fn unlocated(kind: ErrorKind, message: impl Into<String>, expr: &str) -> Self {
        ExprError {
            kind,
            message: message.into(),
            offset: None,
            position: None,
            expr: expr.to_owned(),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "{}. Located at position {p} within expression: {}",
                self.message, self.expr
            ),
            None => write!(
                f,
                "{}. Located within expression: {}",
                self.message, self.expr
            ),
        }
    }
}
