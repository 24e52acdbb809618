//! `rules:if` (and `only:variables`) compiled into the shared expression tree: variables
//! become `variables['NAME']`, `==`/`!=` GitLab's case-sensitive equality, `=~`/`!~` a regex
//! match with RE2 semantics (the `regex` crate).

use crate::expr::{Expr, ExprKind, Function, Literal};

/// Compiles a GitLab condition. Errors say what is wrong and where (byte offset).
pub fn compile(text: &str) -> Result<Expr, String> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        text,
    };
    let expr = p.or()?;
    match p.tokens.get(p.pos) {
        None => Ok(expr),
        Some((_, at)) => Err(format!(
            "unexpected '{}' at position {}",
            p.rest(*at),
            at + 1
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Var(String),
    Str(String),
    Regex(String, String),
    Null,
    Eq,
    Ne,
    Match,
    NoMatch,
    And,
    Or,
    Open,
    Close,
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // A `/` starts a regex only where an operand is expected (after `=~`/`!~`).
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let two = text.get(i..i + 2).unwrap_or("");
        let tok = match c {
            b'$' => {
                let (name, len) = if b.get(i + 1) == Some(&b'{') {
                    let end = text[i + 2..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed '${{' at position {}", i + 1))?;
                    (&text[i + 2..i + 2 + end], end + 3)
                } else {
                    let len = text[i + 1..]
                        .bytes()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                        .count();
                    (&text[i + 1..i + 1 + len], len + 1)
                };
                if name.is_empty() {
                    return Err(format!(
                        "a variable name must follow '$' at position {}",
                        i + 1
                    ));
                }
                i += len;
                Tok::Var(name.to_owned())
            }
            b'"' | b'\'' => {
                let end = text[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| format!("unclosed string at position {}", i + 1))?;
                let s = text[i + 1..i + 1 + end].to_owned();
                i += end + 2;
                Tok::Str(s)
            }
            b'/' if matches!(out.last(), Some((Tok::Match | Tok::NoMatch, _))) => {
                let mut j = i + 1;
                let mut escaped = false;
                while j < b.len() {
                    match b[j] {
                        b'\\' if !escaped => escaped = true,
                        b'/' if !escaped => break,
                        _ => escaped = false,
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Err(format!("unclosed regex at position {}", i + 1));
                }
                let pattern = text[i + 1..j].to_owned();
                let flags_len = text[j + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_alphabetic)
                    .count();
                let flags = text[j + 1..j + 1 + flags_len].to_owned();
                i = j + 1 + flags_len;
                Tok::Regex(pattern, flags)
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            _ if two == "==" => {
                i += 2;
                Tok::Eq
            }
            _ if two == "!=" => {
                i += 2;
                Tok::Ne
            }
            _ if two == "=~" => {
                i += 2;
                Tok::Match
            }
            _ if two == "!~" => {
                i += 2;
                Tok::NoMatch
            }
            _ if two == "&&" => {
                i += 2;
                Tok::And
            }
            _ if two == "||" => {
                i += 2;
                Tok::Or
            }
            _ if text[i..].starts_with("null")
                && !text[i + 4..]
                    .bytes()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') =>
            {
                i += 4;
                Tok::Null
            }
            _ => {
                let word: String = text[i..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                return Err(format!(
                    "unexpected '{word}' at position {} (variables start with '$', strings are quoted)",
                    i + 1
                ));
            }
        };
        out.push((tok, start));
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    text: &'a str,
}

fn node(kind: ExprKind, start: usize, end: usize) -> Expr {
    Expr { kind, start, end }
}

impl Parser<'_> {
    fn rest(&self, at: usize) -> String {
        self.text[at..].chars().take(20).collect()
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.text.len(), |(_, a)| *a)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let start = self.at();
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            node(ExprKind::Or(items), start, self.at())
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let start = self.at();
        let mut items = vec![self.comparison()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.comparison()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            node(ExprKind::And(items), start, self.at())
        })
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let start = self.at();
        let left = self.operand()?;
        let op = match self.peek() {
            Some(t @ (Tok::Eq | Tok::Ne | Tok::Match | Tok::NoMatch)) => t.clone(),
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.operand()?;
        let end = self.at();
        let call = match (&op, right.kind.clone()) {
            (Tok::Eq | Tok::Ne, _) => ExprKind::Call(Function::GitLabEquals, vec![left, right]),
            (_, ExprKind::Call(Function::GitLabMatches, parts)) => {
                // A literal regex: `(pattern, flags)` ride along as its parts.
                let mut args = vec![left];
                args.extend(parts);
                ExprKind::Call(Function::GitLabMatches, args)
            }
            _ => ExprKind::Call(Function::GitLabMatches, vec![left, right]),
        };
        let call = node(call, start, end);
        Ok(if matches!(op, Tok::Ne | Tok::NoMatch) {
            node(ExprKind::Not(Box::new(call)), start, end)
        } else {
            call
        })
    }

    fn operand(&mut self) -> Result<Expr, String> {
        let at = self.at();
        let Some((tok, _)) = self.tokens.get(self.pos).cloned() else {
            return Err(format!(
                "unexpected end of the condition at position {}",
                at + 1
            ));
        };
        self.pos += 1;
        let end = self.at();
        Ok(match tok {
            Tok::Var(name) => node(
                ExprKind::Index(
                    Box::new(node(ExprKind::Context("variables".into()), at, end)),
                    Box::new(node(ExprKind::Literal(Literal::String(name)), at, end)),
                ),
                at,
                end,
            ),
            Tok::Str(s) => node(ExprKind::Literal(Literal::String(s)), at, end),
            Tok::Null => node(ExprKind::Literal(Literal::Null), at, end),
            Tok::Regex(pattern, flags) => {
                crate::expr::regex(&pattern, &flags)
                    .map_err(|e| format!("{e} at position {}", at + 1))?;
                node(
                    ExprKind::Call(
                        Function::GitLabMatches,
                        vec![
                            node(ExprKind::Literal(Literal::String(pattern)), at, end),
                            node(ExprKind::Literal(Literal::String(flags)), at, end),
                        ],
                    ),
                    at,
                    end,
                )
            }
            Tok::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(format!("missing ')' at position {}", self.at() + 1));
                }
                self.pos += 1;
                inner
            }
            other => {
                return Err(format!(
                    "unexpected '{}' at position {}",
                    match other {
                        Tok::Eq => "==",
                        Tok::Ne => "!=",
                        Tok::Match => "=~",
                        Tok::NoMatch => "!~",
                        Tok::And => "&&",
                        Tok::Or => "||",
                        _ => ")",
                    },
                    at + 1
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{evaluate, Contexts, Value};
    use indexmap::IndexMap;

    fn eval(cond: &str, vars: &[(&str, &str)]) -> bool {
        let expr = compile(cond).unwrap_or_else(|e| panic!("{cond}: {e}"));
        let map: IndexMap<String, Value> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::string(*v)))
            .collect();
        let mut ctx = Contexts::new();
        ctx.insert("variables", Value::Object(std::sync::Arc::new(map)));
        evaluate(&expr, cond, &ctx)
            .unwrap_or_else(|e| panic!("{cond}: {e}"))
            .is_truthy()
    }

    #[test]
    fn comparisons_follow_gitlab() {
        let v = [("BRANCH", "main"), ("EMPTY", ""), ("TAG", "v1.2.3")];
        assert!(eval("$BRANCH == \"main\"", &v));
        assert!(!eval("$BRANCH == 'Main'", &v), "case-sensitive");
        assert!(eval("$BRANCH != 'dev'", &v));
        assert!(eval("$MISSING == null", &v));
        assert!(!eval("$EMPTY == null", &v), "empty is not unset");
        assert!(eval("$EMPTY == ''", &v));
        assert!(!eval("$MISSING == ''", &v));
        assert!(!eval("$EMPTY", &v) && eval("$BRANCH", &v) && !eval("$MISSING", &v));
        assert!(eval("$TAG =~ /^v\\d+\\.\\d+/", &v));
        assert!(eval("$BRANCH =~ /MAIN/i", &v));
        assert!(eval("$BRANCH !~ /^release/", &v));
        assert!(!eval("$MISSING =~ /.*/", &v));
        assert!(eval(
            "($BRANCH == 'dev' || $TAG =~ /^v/) && ${BRANCH} != null",
            &v
        ));
    }

    #[test]
    fn errors_are_located() {
        for (bad, want) in [
            ("$A == ", "end of the condition"),
            ("$A = 'x'", "unexpected"),
            ("($A == 'x'", "missing ')'"),
            ("$A =~ /[/", "invalid regex"),
            ("'open", "unclosed string"),
        ] {
            let e = compile(bad).expect_err(bad);
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
