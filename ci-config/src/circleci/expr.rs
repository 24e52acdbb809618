//! CircleCI's expression language inside `<< … >>` (and in workflow `when`/expression
//! filters): names (`pipeline.git.branch`, `parameters.x`, `matrix.x`), string, number and
//! boolean literals, `not` (binding tightest), `==`, `!=`, `<`, `<=`, `>`, `>=`,
//! `starts-with`, `matches /regex/` (the whole value), and `and`/`or` that short-circuit and
//! return an operand's value, with parentheses.

use crate::yaml::{Node, Value};

/// A value of the language.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Val {
    pub(super) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
        }
    }

    pub(super) fn into_node(self, span: crate::span::Span) -> Node {
        let value = match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 9e15 => Value::Int(n as i64),
            Val::Num(n) => Value::Float(n),
            Val::Str(s) => Value::String(s),
        };
        Node::new(value, span)
    }

    pub(super) fn text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(b) => b.to_string(),
            Val::Num(n) => crate::yaml::format_float(*n),
            Val::Str(s) => s.clone(),
        }
    }

    fn of(node: &Node) -> Val {
        match &node.value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(i) => Val::Num(*i as f64),
            Value::Float(f) => Val::Num(*f),
            Value::String(s) => Val::Str(s.clone()),
            _ => Val::Str(node.to_json().to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(f64),
    Regex(String),
    Op(&'static str),
    Open,
    Close,
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '"' | '\'' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or("an unclosed string")?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            '/' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&x| x == '/')
                    .ok_or("an unclosed /regex/")?;
                out.push(Tok::Regex(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            '=' | '!' | '<' | '>' => {
                let two = chars.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('=', true) => "==",
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => return Err(format!("unexpected '{c}'")),
                };
                out.push(Tok::Op(op));
                i += if two { 2 } else { 1 };
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let t: String = chars[start..i].iter().collect();
                out.push(Tok::Num(
                    t.parse().map_err(|_| format!("bad number '{t}'"))?,
                ));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "and" => Tok::Op("and"),
                    "or" => Tok::Op("or"),
                    "not" => Tok::Op("not"),
                    "starts-with" => Tok::Op("starts-with"),
                    "matches" => Tok::Op("matches"),
                    _ => Tok::Name(word),
                });
            }
            other => return Err(format!("unexpected '{other}'")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<Node>,
}

/// Evaluates `text` with `lookup` for names (`None`: an unknown name, an error).
pub(super) fn evaluate(text: &str, lookup: &dyn Fn(&str) -> Option<Node>) -> Result<Val, String> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        lookup,
    };
    let v = p.or()?;
    match p.toks.get(p.pos) {
        None => Ok(v),
        Some(t) => Err(format!("unexpected {t:?} in '{}'", text.trim())),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Tok::Op(match op {
                "and" => "and",
                "or" => "or",
                "not" => "not",
                _ => return false,
            }))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Val, String> {
        let mut left = self.and()?;
        while self.eat("or") {
            let right = self.and()?;
            if !left.truthy() {
                left = right;
            }
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Val, String> {
        let mut left = self.comparison()?;
        while self.eat("and") {
            let right = self.comparison()?;
            if left.truthy() {
                left = right;
            }
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Val, String> {
        let left = self.unary()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) if !matches!(*op, "and" | "or" | "not") => *op,
            _ => return Ok(left),
        };
        self.pos += 1;
        if op == "matches" {
            let pattern = match self.toks.get(self.pos) {
                Some(Tok::Regex(r) | Tok::Str(r)) => r.clone(),
                _ => return Err("matches takes a /regex/".into()),
            };
            self.pos += 1;
            let re = crate::expr::regex(&format!("^(?:{pattern})$"), "")?;
            return Ok(Val::Bool(re.is_match(&left.text())));
        }
        let right = self.unary()?;
        Ok(Val::Bool(match op {
            "==" => left == right,
            "!=" => left != right,
            "starts-with" => match (&left, &right) {
                (Val::Str(a), Val::Str(b)) => a.starts_with(b.as_str()),
                _ => false,
            },
            _ => {
                let ordering = match (&left, &right) {
                    (Val::Num(a), Val::Num(b)) => a.partial_cmp(b),
                    (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
                    _ => None,
                };
                match (op, ordering) {
                    (_, None) => false,
                    ("<", Some(o)) => o.is_lt(),
                    ("<=", Some(o)) => o.is_le(),
                    (">", Some(o)) => o.is_gt(),
                    (_, Some(o)) => o.is_ge(),
                }
            }
        }))
    }

    fn unary(&mut self) -> Result<Val, String> {
        if self.eat("not") {
            return Ok(Val::Bool(!self.unary()?.truthy()));
        }
        let tok = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or("an expression ends early")?;
        self.pos += 1;
        match tok {
            Tok::Open => {
                let v = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("a '(' is not closed".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Tok::Str(s) => Ok(Val::Str(s)),
            Tok::Num(n) => Ok(Val::Num(n)),
            Tok::Name(n) if n == "true" => Ok(Val::Bool(true)),
            Tok::Name(n) if n == "false" => Ok(Val::Bool(false)),
            Tok::Name(n) if n == "null" => Ok(Val::Null),
            Tok::Name(n) => (self.lookup)(&n)
                .map(|node| Val::of(&node))
                .ok_or_else(|| format!("'{n}' names no parameter or pipeline value")),
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn eval(text: &str) -> Val {
        let lookup = |name: &str| -> Option<Node> {
            match name {
                "pipeline.git.branch" => {
                    Some(Node::new(Value::String("main".into()), Span::default()))
                }
                "parameters.n" => Some(Node::new(Value::Int(3), Span::default())),
                "parameters.off" => Some(Node::new(Value::Bool(false), Span::default())),
                _ => None,
            }
        };
        evaluate(text, &lookup).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn operators_follow_circleci() {
        assert_eq!(eval(r#"pipeline.git.branch == "main""#), Val::Bool(true));
        assert_eq!(
            eval(r#"pipeline.git.branch starts-with "ma""#),
            Val::Bool(true)
        );
        assert_eq!(eval("pipeline.git.branch matches /ma.*/"), Val::Bool(true));
        assert_eq!(eval("pipeline.git.branch matches /a/"), Val::Bool(false));
        assert_eq!(
            eval("parameters.n >= 3 and not parameters.off"),
            Val::Bool(true)
        );
        // `and`/`or` give an operand's value.
        assert_eq!(
            eval(r#"pipeline.git.branch == "main" and 10 or 1"#),
            Val::Num(10.0)
        );
        assert_eq!(
            eval(r#"pipeline.git.branch == "dev" and 10 or 1"#),
            Val::Num(1.0)
        );
        // Values of different types are never equal.
        assert_eq!(eval(r#"parameters.n == "3""#), Val::Bool(false));
        assert_eq!(eval("not (parameters.off or false)"), Val::Bool(true));
    }

    #[test]
    fn mistakes_are_errors() {
        let none = |_: &str| None;
        assert!(evaluate("a ==", &none).is_err());
        assert!(evaluate("(1", &none).is_err());
        assert!(evaluate("pipeline.nope", &none).is_err());
        assert!(evaluate("\"open", &none).is_err());
    }
}
