//! Tokens of the expression language, as GitHub's lexer cuts them.

use super::error::{ErrorKind, ExprError};
use super::value::parse_number_literal;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    String(String),
    True,
    False,
    Null,
    /// An identifier followed by `(`.
    Function(String),
    /// An identifier after `.`.
    Property(String),
    /// Any other identifier: a context name.
    NamedValue(String),
    /// `*` after `.` or `[`.
    Wildcard,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Not,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

/// A token with its byte range in the expression.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Characters that end a number, an identifier or an unknown symbol.
fn is_terminator(c: char, dot_terminates: bool) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '[' | ']' | ',' | '!' | '=' | '<' | '>' | '&' | '|'
        )
        || (dot_terminates && c == '.')
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) fn tokenize(expr: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens: Vec<Token> = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = expr[i..].chars().next().expect("i is on a char boundary");
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let prev = tokens.last().map(|t| &t.tok);
        let value_may_start = matches!(
            prev,
            None | Some(
                Tok::LParen
                    | Tok::LBracket
                    | Tok::Comma
                    | Tok::Not
                    | Tok::Lt
                    | Tok::Le
                    | Tok::Gt
                    | Tok::Ge
                    | Tok::Eq
                    | Tok::Ne
                    | Tok::And
                    | Tok::Or
            )
        );
        let two = expr.get(i..i + 2).unwrap_or("");
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '*' if matches!(prev, Some(Tok::Dot | Tok::LBracket)) => (Tok::Wildcard, 1),
            '.' if !value_may_start => (Tok::Dot, 1),
            '!' if two == "!=" => (Tok::Ne, 2),
            '!' => (Tok::Not, 1),
            '<' if two == "<=" => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if two == ">=" => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '=' if two == "==" => (Tok::Eq, 2),
            '&' if two == "&&" => (Tok::And, 2),
            '|' if two == "||" => (Tok::Or, 2),
            '\'' => {
                let (s, len) = read_string(expr, i)?;
                (Tok::String(s), len)
            }
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => {
                let len = run_length(expr, i, false);
                let text = &expr[i..i + len];
                match parse_number_literal(text) {
                    Some(n) => (Tok::Number(n), len),
                    None => return Err(unexpected_symbol(expr, i, text)),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = run_length(expr, i, true);
                let word = &expr[i..i + len];
                if !is_identifier(word) {
                    return Err(unexpected_symbol(expr, i, word));
                }
                let next = expr[i + len..].trim_start().chars().next();
                let tok = if matches!(prev, Some(Tok::Dot)) {
                    Tok::Property(word.to_owned())
                } else if next == Some('(') {
                    Tok::Function(word.to_owned())
                } else {
                    match word {
                        "true" => Tok::True,
                        "false" => Tok::False,
                        "null" => Tok::Null,
                        "NaN" => Tok::Number(f64::NAN),
                        "Infinity" => Tok::Number(f64::INFINITY),
                        _ => Tok::NamedValue(word.to_owned()),
                    }
                };
                (tok, len)
            }
            _ => {
                // An unknown symbol runs to the next terminator (its first char included).
                let first = c.len_utf8();
                let len = first + run_length(expr, i + first, false);
                return Err(unexpected_symbol(expr, start, &expr[i..i + len]));
            }
        };
        tokens.push(Token {
            tok,
            start,
            end: start + len,
        });
        i += len;
    }
    Ok(tokens)
}

/// Bytes from `at` up to the next terminator.
fn run_length(expr: &str, at: usize, dot_terminates: bool) -> usize {
    expr[at..]
        .char_indices()
        .find(|&(_, c)| is_terminator(c, dot_terminates))
        .map_or(expr.len() - at, |(i, _)| i)
}

/// A `'…'` literal with `''` escapes; returns the value and the byte length.
fn read_string(expr: &str, start: usize) -> Result<(String, usize), ExprError> {
    let mut value = String::new();
    let mut chars = expr[start + 1..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|&(_, n)| n) == Some('\'') {
                chars.next();
                value.push('\'');
                continue;
            }
            return Ok((value, i + 2));
        }
        value.push(c);
    }
    Err(unexpected_symbol(expr, start, &expr[start..]))
}

fn unexpected_symbol(expr: &str, at: usize, text: &str) -> ExprError {
    ExprError::at(
        ErrorKind::Lexing,
        format!("Unexpected symbol: '{text}'"),
        expr,
        at,
    )
}
