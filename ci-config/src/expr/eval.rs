//! Evaluation with GitHub's semantics: loose equality, case-insensitive strings, short-circuit
//! `&&`/`||` returning operands, `.*` filters.

use std::sync::Arc;

use indexmap::IndexMap;

use super::ast::{CmpOp, Expr, ExprKind, Function, Literal};
use super::error::{ErrorKind, ExprError};
use super::value::{cmp_ignore_case, eq_ignore_case, format_number, upper, Value};

/// The largest string an evaluation may build, as GitHub caps expression memory.
pub const MAX_STRING_BYTES: usize = 10 * 1024 * 1024;

/// What an expression reads: its contexts, and (where allowed) job status and file hashes.
pub trait EvalContext {
    /// The context called `name` (the caller decides about case; [`Contexts`] ignores it).
    fn context(&self, name: &str) -> Option<Value>;

    /// The answer of a status function (`success()`, …); `None` when not available here.
    fn status(&self, _function: Function) -> Option<bool> {
        None
    }

    /// `hashFiles(patterns)`: the hex SHA-256 GitHub documents, or why it failed.
    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        Err("hashFiles is not available in this context".to_owned())
    }
}

/// Contexts by name, looked up case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    map: IndexMap<String, Value>,
}

impl Contexts {
    /// No contexts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a context.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) -> &mut Self {
        self.map.insert(name.into(), value);
        self
    }

    /// Contexts from a JSON object `{"github": {...}, "env": {...}}`.
    pub fn from_json(json: &serde_json::Map<String, serde_json::Value>) -> Self {
        Contexts {
            map: json
                .iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect(),
        }
    }

    /// The names, as given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

impl EvalContext for Contexts {
    fn context(&self, name: &str) -> Option<Value> {
        self.map
            .get(name)
            .or_else(|| {
                self.map
                    .iter()
                    .find(|(k, _)| eq_ignore_case(k, name))
                    .map(|(_, v)| v)
            })
            .cloned()
    }
}

/// An intermediate result: `.*` produces a filtered array whose later `.x`/`[i]` apply to
/// each element.
enum Ev {
    Value(Value),
    Filtered(Vec<Value>),
}

impl Ev {
    fn into_value(self) -> Value {
        match self {
            Ev::Value(v) => v,
            Ev::Filtered(items) => Value::Array(Arc::new(items)),
        }
    }
}

/// Evaluates a parsed expression.
pub fn evaluate(expr: &Expr, source: &str, ctx: &dyn EvalContext) -> Result<Value, ExprError> {
    Evaluator { source, ctx }.eval(expr).map(Ev::into_value)
}

struct Evaluator<'a> {
    source: &'a str,
    ctx: &'a dyn EvalContext,
}

impl Evaluator<'_> {
    fn error(&self, message: impl Into<String>) -> ExprError {
        ExprError::unlocated(ErrorKind::Evaluation, message, self.source)
    }

    fn value(&self, expr: &Expr) -> Result<Value, ExprError> {
        self.eval(expr).map(Ev::into_value)
    }

    fn eval(&self, expr: &Expr) -> Result<Ev, ExprError> {
        Ok(Ev::Value(match &expr.kind {
            ExprKind::Literal(l) => match l {
                Literal::Null => Value::Null,
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Number(n) => Value::Number(*n),
                Literal::String(s) => Value::string(s.as_str()),
            },
            ExprKind::Context(name) => self.ctx.context(name).unwrap_or_default(),
            ExprKind::Property(target, name) => {
                return Ok(match self.eval(target)? {
                    Ev::Value(v) => Ev::Value(v.get(name).cloned().unwrap_or_default()),
                    Ev::Filtered(items) => {
                        Ev::Filtered(items.iter().filter_map(|i| i.get(name).cloned()).collect())
                    }
                });
            }
            ExprKind::Index(target, index) => {
                let target = self.eval(target)?;
                let index = self.value(index)?;
                return Ok(match target {
                    Ev::Value(v) => Ev::Value(index_value(&v, &index).unwrap_or_default()),
                    Ev::Filtered(items) => Ev::Filtered(
                        items
                            .iter()
                            .filter_map(|i| index_value(i, &index))
                            .collect(),
                    ),
                });
            }
            ExprKind::Wildcard(target) => {
                return Ok(Ev::Filtered(match self.eval(target)? {
                    Ev::Value(v) => children(&v).collect(),
                    Ev::Filtered(items) => items.iter().flat_map(children).collect(),
                }));
            }
            ExprKind::Not(operand) => Value::Bool(!self.value(operand)?.is_truthy()),
            ExprKind::Compare(op, left, right) => {
                let (l, r) = (self.value(left)?, self.value(right)?);
                Value::Bool(compare(*op, &l, &r))
            }
            ExprKind::And(items) => {
                let mut last = Value::Null;
                for item in items {
                    last = self.value(item)?;
                    if !last.is_truthy() {
                        break;
                    }
                }
                last
            }
            ExprKind::Or(items) => {
                let mut last = Value::Null;
                for item in items {
                    last = self.value(item)?;
                    if last.is_truthy() {
                        break;
                    }
                }
                last
            }
            ExprKind::Call(function, args) => self.call(*function, args)?,
        }))
    }

    fn call(&self, function: Function, args: &[Expr]) -> Result<Value, ExprError> {
        let arg = |i: usize| self.value(&args[i]);
        Ok(match function {
            Function::Contains => {
                let (search, item) = (arg(0)?, arg(1)?);
                Value::Bool(match &search {
                    Value::Array(items) => items.iter().any(|i| loose_eq(i, &item)),
                    _ => {
                        let hay = search.to_display_string();
                        let needle = item.to_display_string();
                        contains_ignore_case(&hay, &needle)
                    }
                })
            }
            Function::StartsWith | Function::EndsWith => {
                let (text, affix) = (arg(0)?, arg(1)?);
                let text = upper(&text.to_display_string()).into_owned();
                let affix = upper(&affix.to_display_string()).into_owned();
                Value::Bool(if function == Function::StartsWith {
                    text.starts_with(&affix)
                } else {
                    text.ends_with(&affix)
                })
            }
            Function::Format => {
                let format = arg(0)?;
                let rest: Vec<Value> = (1..args.len()).map(arg).collect::<Result<_, _>>()?;
                Value::string(self.format(&format.to_display_string(), &rest)?)
            }
            Function::Join => {
                let items = arg(0)?;
                // A separator that is not a primitive falls back to the default `,`.
                let separator = match args.get(1).map(|e| self.value(e)).transpose()? {
                    Some(Value::Array(_) | Value::Object(_)) | None => ",".to_owned(),
                    Some(v) => v.to_display_string().into_owned(),
                };
                let joined = match &items {
                    Value::Array(items) => {
                        let parts: Vec<_> = items.iter().map(Value::to_display_string).collect();
                        parts.join(&separator)
                    }
                    Value::Object(_) => String::new(),
                    scalar => scalar.to_display_string().into_owned(),
                };
                self.check_size(&joined)?;
                Value::string(joined)
            }
            Function::ToJson => {
                let json = arg(0)?.to_pretty_json();
                self.check_size(&json)?;
                Value::string(json)
            }
            Function::FromJson => {
                let text = arg(0)?;
                let text = text.to_display_string();
                let json: serde_json::Value = serde_json::from_str(text.trim())
                    .map_err(|e| self.error(format!("Error parsing fromJson: {e}")))?;
                Value::from_json(&json)
            }
            Function::Case => {
                let mut i = 0;
                while i + 1 < args.len() {
                    match self.value(&args[i])? {
                        Value::Bool(true) => return self.value(&args[i + 1]),
                        Value::Bool(false) => i += 2,
                        _ => {
                            return Err(
                                self.error("case predicate must evaluate to a boolean value")
                            )
                        }
                    }
                }
                return self.value(&args[args.len() - 1]);
            }
            Function::HashFiles => {
                let patterns: Vec<String> = (0..args.len())
                    .map(|i| arg(i).map(|v| v.to_display_string().into_owned()))
                    .collect::<Result<_, _>>()?;
                Value::string(self.ctx.hash_files(&patterns).map_err(|e| self.error(e))?)
            }
            Function::GitLabEquals => {
                let (a, b) = (arg(0)?, arg(1)?);
                Value::Bool(match (&a, &b) {
                    (Value::Null, Value::Null) => true,
                    (Value::Null, _) | (_, Value::Null) => false,
                    _ => a.to_display_string() == b.to_display_string(),
                })
            }
            Function::GitLabMatches => {
                let value = arg(0)?;
                let pattern = arg(1)?.to_display_string().into_owned();
                let (pattern, flags) = match args.get(2) {
                    Some(_) => (pattern, arg(2)?.to_display_string().into_owned()),
                    None => super::regex::split_regex(&pattern)
                        .ok_or_else(|| self.error(format!("'{pattern}' is not a /regex/")))?,
                };
                if matches!(value, Value::Null) {
                    return Ok(Value::Bool(false));
                }
                let re = super::regex::regex(&pattern, &flags).map_err(|e| self.error(e))?;
                Value::Bool(re.is_match(&value.to_display_string()))
            }
            Function::Success | Function::Failure | Function::Always | Function::Cancelled => {
                let answer = self.ctx.status(function).ok_or_else(|| {
                    self.error(format!(
                        "The function '{}' is not available here",
                        function.name()
                    ))
                })?;
                Value::Bool(answer)
            }
        })
    }

    fn check_size(&self, s: &str) -> Result<(), ExprError> {
        if s.len() > MAX_STRING_BYTES {
            return Err(self.error("The maximum allowed memory size was exceeded"));
        }
        Ok(())
    }

    /// `format`: `{N}` takes argument N, `{{` and `}}` are braces, anything else is invalid.
    fn format(&self, format: &str, args: &[Value]) -> Result<String, ExprError> {
        let invalid = || self.error(format!("The following format string is invalid: {format}"));
        let mut out = String::with_capacity(format.len());
        let mut missing = false;
        let mut chars = format.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    out.push('{');
                }
                '{' => {
                    let mut digits = String::new();
                    loop {
                        match chars.next() {
                            Some((_, d)) if d.is_ascii_digit() => digits.push(d),
                            Some((_, '}')) if !digits.is_empty() => break,
                            _ => return Err(invalid()),
                        }
                    }
                    match digits.parse::<usize>().ok().and_then(|i| args.get(i)) {
                        Some(v) => out.push_str(&v.to_display_string()),
                        None => missing = true,
                    }
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    out.push('}');
                }
                '}' => return Err(invalid()),
                c => out.push(c),
            }
            if out.len() > MAX_STRING_BYTES {
                return Err(self.error("The maximum allowed memory size was exceeded"));
            }
        }
        if missing {
            return Err(self.error(format!(
                "The following format string references more arguments than were supplied: {format}"
            )));
        }
        Ok(out)
    }
}

/// The elements a `.*` filter yields from one value.
fn children(v: &Value) -> Box<dyn Iterator<Item = Value> + '_> {
    match v {
        Value::Array(items) => Box::new(items.iter().cloned()),
        Value::Object(map) => Box::new(map.values().cloned()),
        _ => Box::new(std::iter::empty()),
    }
}

/// `target[index]`: objects by the index as a string, arrays by the index as a whole number.
fn index_value(target: &Value, index: &Value) -> Option<Value> {
    match target {
        Value::Object(_) => {
            let key = match index {
                Value::Array(_) | Value::Object(_) => return None,
                Value::Number(n) => format_number(*n).into(),
                other => other.to_display_string(),
            };
            target.get(&key).cloned()
        }
        Value::Array(items) => {
            let n = index.to_number();
            if !n.is_finite() || n < 0.0 {
                return None;
            }
            items.get(n.floor() as usize).cloned()
        }
        _ => None,
    }
}

/// GitHub's `==`: same kinds compare directly (strings ignoring case, arrays and objects by
/// identity); different scalar kinds compare as numbers.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::String(x), Value::String(y)) => eq_ignore_case(x, y),
        (Value::Array(x), Value::Array(y)) => Arc::ptr_eq(x, y),
        (Value::Object(x), Value::Object(y)) => Arc::ptr_eq(x, y),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => a.to_number() == b.to_number(),
    }
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        _ if matches!(op, CmpOp::Eq) => return loose_eq(a, b),
        _ if matches!(op, CmpOp::Ne) => return !loose_eq(a, b),
        (Value::String(x), Value::String(y)) => Some(cmp_ignore_case(x, y)),
        _ => a.to_number().partial_cmp(&b.to_number()),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
        CmpOp::Eq | CmpOp::Ne => unreachable!("handled above"),
    }
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    upper(hay).contains(&*upper(needle))
}
