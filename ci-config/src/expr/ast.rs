//! The expression tree, and a printer whose output parses back to the same tree.

use std::fmt::{self, Write as _};

use super::value::format_number;

/// A node with its byte range in the expression text.
#[derive(Debug, Clone)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Byte offset of the node's first token.
    pub start: usize,
    /// Byte offset one past its last token.
    pub end: usize,
}

impl PartialEq for Expr {
    /// Structural equality; positions are ignored.
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number (decimal, hex, octal, exponent, `NaN`, `Infinity`).
    Number(f64),
    /// `'text'`
    String(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// The functions of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Function {
    /// `contains(search, item)`
    Contains,
    /// `startsWith(text, prefix)`
    StartsWith,
    /// `endsWith(text, suffix)`
    EndsWith,
    /// `format(text, args…)`
    Format,
    /// `join(array, separator?)`
    Join,
    /// `toJSON(value)`
    ToJson,
    /// `fromJSON(text)`
    FromJson,
    /// `case(pred, value, …, default)`
    Case,
    /// `hashFiles(patterns…)` (where the caller allows it)
    HashFiles,
    /// `success()` (status function)
    Success,
    /// `failure()` (status function)
    Failure,
    /// `always()` (status function)
    Always,
    /// `cancelled()` (status function)
    Cancelled,
    /// GitLab's `==`: case-sensitive, and an unset variable (null) equals only null.
    GitLabEquals,
    /// GitLab's `=~`: `(value, pattern, flags)` or `(value, '/pattern/flags')`, RE2 syntax;
    /// an unset variable matches nothing.
    GitLabMatches,
}

impl Function {
    /// Every function, with its canonical name.
    pub const ALL: &'static [(Function, &'static str)] = &[
        (Function::Contains, "contains"),
        (Function::StartsWith, "startsWith"),
        (Function::EndsWith, "endsWith"),
        (Function::Format, "format"),
        (Function::Join, "join"),
        (Function::ToJson, "toJSON"),
        (Function::FromJson, "fromJSON"),
        (Function::Case, "case"),
        (Function::HashFiles, "hashFiles"),
        (Function::Success, "success"),
        (Function::Failure, "failure"),
        (Function::Always, "always"),
        (Function::Cancelled, "cancelled"),
        (Function::GitLabEquals, "gitlabEquals"),
        (Function::GitLabMatches, "gitlabMatches"),
    ];

    /// The functions every expression may call.
    pub const BUILT_IN: &'static [Function] = &[
        Function::Contains,
        Function::StartsWith,
        Function::EndsWith,
        Function::Format,
        Function::Join,
        Function::ToJson,
        Function::FromJson,
        Function::Case,
    ];

    /// The job-status functions.
    pub const STATUS: &'static [Function] = &[
        Function::Success,
        Function::Failure,
        Function::Always,
        Function::Cancelled,
    ];

    /// The canonical name (`startsWith`).
    pub fn name(self) -> &'static str {
        Function::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |(_, n)| n)
    }

    /// Looks a name up, ignoring case.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }

    /// (minimum, maximum) number of arguments.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Function::Contains | Function::StartsWith | Function::EndsWith => (2, 2),
            Function::Format | Function::HashFiles => (1, usize::MAX),
            Function::Join => (1, 2),
            Function::ToJson | Function::FromJson => (1, 1),
            Function::Case => (3, usize::MAX),
            Function::Success | Function::Failure => (0, usize::MAX),
            Function::Always | Function::Cancelled => (0, 0),
            Function::GitLabEquals => (2, 2),
            Function::GitLabMatches => (2, 3),
        }
    }

    /// Whether this is `success`, `failure`, `always` or `cancelled`.
    pub fn is_status(self) -> bool {
        Function::STATUS.contains(&self)
    }
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Literal(Literal),
    /// A context (named value), as written.
    Context(String),
    /// `target.name`
    Property(Box<Expr>, String),
    /// `target[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `target.*` or `target[*]`
    Wildcard(Box<Expr>),
    /// `!operand`
    Not(Box<Expr>),
    /// `left OP right`
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `a && b && …` (one node for a chain)
    And(Vec<Expr>),
    /// `a || b || …` (one node for a chain)
    Or(Vec<Expr>),
    /// `f(args…)`
    Call(Function, Vec<Expr>),
}

impl Expr {
    /// Height of the tree (a leaf is 1); GitHub refuses more than 50.
    pub fn depth(&self) -> usize {
        1 + match &self.kind {
            ExprKind::Literal(_) | ExprKind::Context(_) => 0,
            ExprKind::Property(t, _) | ExprKind::Wildcard(t) | ExprKind::Not(t) => t.depth(),
            ExprKind::Index(t, i) | ExprKind::Compare(_, t, i) => t.depth().max(i.depth()),
            ExprKind::And(items) | ExprKind::Or(items) | ExprKind::Call(_, items) => {
                items.iter().map(Expr::depth).max().unwrap_or(0)
            }
        }
    }

    /// Whether the expression calls a status function anywhere.
    pub fn calls_status_function(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if let ExprKind::Call(f, _) = &e.kind {
                found |= f.is_status();
            }
        });
        found
    }

    /// Visits every node, parents first.
    pub fn walk(&self, visit: &mut dyn FnMut(&Expr)) {
        visit(self);
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Context(_) => {}
            ExprKind::Property(t, _) | ExprKind::Wildcard(t) | ExprKind::Not(t) => t.walk(visit),
            ExprKind::Index(t, i) | ExprKind::Compare(_, t, i) => {
                t.walk(visit);
                i.walk(visit);
            }
            ExprKind::And(items) | ExprKind::Or(items) | ExprKind::Call(_, items) => {
                items.iter().for_each(|e| e.walk(visit));
            }
        }
    }
}

impl fmt::Display for Expr {
    /// Prints fully parenthesised text that parses back to an equal tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(Literal::Null) => f.write_str("null"),
            ExprKind::Literal(Literal::Bool(b)) => write!(f, "{b}"),
            ExprKind::Literal(Literal::Number(n)) if n.is_nan() => f.write_str("NaN"),
            ExprKind::Literal(Literal::Number(n))
                if *n < 0.0 || (*n == 0.0 && n.is_sign_negative()) =>
            {
                // Negative literals are written with their sign, which the lexer reads as
                // part of the number.
                write!(f, "-{}", print_number(-n))
            }
            ExprKind::Literal(Literal::Number(n)) => f.write_str(&print_number(*n)),
            ExprKind::Literal(Literal::String(s)) => {
                f.write_char('\'')?;
                f.write_str(&s.replace('\'', "''"))?;
                f.write_char('\'')
            }
            ExprKind::Context(name) => f.write_str(name),
            ExprKind::Property(t, name) => write!(f, "{}.{name}", Target(t)),
            ExprKind::Index(t, i) => write!(f, "{}[{i}]", Target(t)),
            ExprKind::Wildcard(t) => write!(f, "{}.*", Target(t)),
            ExprKind::Not(t) => write!(f, "!{t}"),
            ExprKind::Compare(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            ExprKind::And(items) => write_list(f, items, " && ", true),
            ExprKind::Or(items) => write_list(f, items, " || ", true),
            ExprKind::Call(func, args) => {
                f.write_str(func.name())?;
                write_list(f, args, ", ", true)
            }
        }
    }
}

/// The target of `.`/`[]`, parenthesised where it would otherwise bind differently.
struct Target<'a>(&'a Expr);

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            ExprKind::Not(_) | ExprKind::Literal(Literal::Number(_)) => write!(f, "({})", self.0),
            _ => write!(f, "{}", self.0),
        }
    }
}

/// Numbers print in a form the lexer reads back exactly (`Infinity`, shortest round trip).
fn print_number(n: f64) -> String {
    if n.is_infinite() {
        "Infinity".to_owned()
    } else if n == n.trunc() && n.abs() < 1e21 {
        format!("{n}")
    } else {
        let s = format!("{n:e}");
        if s.parse::<f64>() == Ok(n) {
            s
        } else {
            format_number(n)
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, parens: bool) -> fmt::Result {
    if parens {
        f.write_char('(')?;
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    if parens {
        f.write_char(')')?;
    }
    Ok(())
}
