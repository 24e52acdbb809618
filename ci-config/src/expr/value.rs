//! Expression values and GitHub's coercions between them.

use std::fmt::Write as _;
use std::sync::Arc;

use indexmap::IndexMap;

/// A value an expression produces or reads from a context. Cloning is cheap: strings, arrays
/// and objects are shared. Arrays and objects compare by identity, as on GitHub.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A double, like JavaScript's numbers.
    Number(f64),
    /// A string.
    String(Arc<str>),
    /// An array.
    Array(Arc<Vec<Value>>),
    /// An object; keys keep their insertion order and are looked up case-insensitively.
    Object(Arc<IndexMap<String, Value>>),
}

/// The kind of a value, with the names GitHub prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// `Null`
    Null,
    /// `Boolean`
    Boolean,
    /// `Number`
    Number,
    /// `String`
    String,
    /// `Array`
    Array,
    /// `Object`
    Object,
}

impl Kind {
    /// `Null`, `Boolean`, `Number`, `String`, `Array` or `Object`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "Null",
            Kind::Boolean => "Boolean",
            Kind::Number => "Number",
            Kind::String => "String",
            Kind::Array => "Array",
            Kind::Object => "Object",
        }
    }
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<Arc<str>>) -> Self {
        Value::String(s.into())
    }

    /// The kind of this value.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Boolean,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }

    /// GitHub's truthiness: `null`, `false`, `0`, `-0`, `NaN` and `''` are false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// Coercion to a number: null 0, booleans 1/0, strings parsed (blank is 0, junk NaN),
    /// arrays and objects NaN.
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => parse_number_string(s),
            Value::Array(_) | Value::Object(_) => f64::NAN,
        }
    }

    /// Coercion to a string: null `''`, numbers as GitHub prints them, arrays `Array`,
    /// objects `Object`.
    pub fn to_display_string(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Value::Null => Cow::Borrowed(""),
            Value::Bool(true) => Cow::Borrowed("true"),
            Value::Bool(false) => Cow::Borrowed("false"),
            Value::Number(n) => Cow::Owned(format_number(*n)),
            Value::String(s) => Cow::Borrowed(s),
            Value::Array(_) => Cow::Borrowed("Array"),
            Value::Object(_) => Cow::Borrowed("Object"),
        }
    }

    /// Looks up an object key, exactly first, then ignoring case.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Object(map) = self else {
            return None;
        };
        map.get(key).or_else(|| {
            map.iter()
                .find(|(k, _)| eq_ignore_case(k, key))
                .map(|(_, v)| v)
        })
    }

    /// Converts from JSON (numbers become doubles; object order is kept).
    pub fn from_json(json: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Value::string(s.as_str()),
            J::Array(items) => Value::Array(Arc::new(items.iter().map(Value::from_json).collect())),
            J::Object(map) => Value::Object(Arc::new(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            )),
        }
    }

    /// Converts to JSON (NaN and infinities, which JSON cannot hold, become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => {
                let n = if *n == 0.0 { 0.0 } else { *n };
                if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                    J::from(n as i64)
                } else {
                    serde_json::Number::from_f64(n).map_or(J::Null, J::Number)
                }
            }
            Value::String(s) => J::String(s.to_string()),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Object(map) => {
                J::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// GitHub's `toJSON`: pretty-printed with two spaces.
    pub fn to_pretty_json(&self) -> String {
        let mut out = String::new();
        write_json(self, 0, &mut out);
        out
    }
}

fn write_json(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_finite() => out.push_str(&format_number(*n)),
        Value::Number(_) => out.push_str("null"),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent + 1, out);
                write_json(item, indent + 1, out);
            }
            newline(indent, out);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent + 1, out);
                write_json_string(k, out);
                out.push_str(": ");
                write_json(v, indent + 1, out);
            }
            newline(indent, out);
            out.push('}');
        }
    }
}

fn newline(indent: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..indent {
        out.push_str("  ");
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a number as GitHub does: at most 15 significant digits, then JavaScript's
/// `Number#toString` (`1e+21`, `1.5e-7`); `-0` prints as `0`.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    // Round to 15 significant digits, as GitHub does before printing.
    let rounded: f64 = format!("{n:.14e}").parse().unwrap_or(n);
    let abs = rounded.abs();
    if (1e-6..1e21).contains(&abs) {
        format!("{rounded}")
    } else {
        // Rust prints `1e21` / `1.5e-7`; JavaScript writes an explicit `+`.
        let s = format!("{rounded:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    }
}

/// JavaScript's `Number(string)`: trims whitespace; blank is 0; decimal with optional sign
/// and exponent, `0x`/`0o`/`0b` (unsigned), `Infinity`; anything else NaN.
pub fn parse_number_string(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    parse_number_literal(t).unwrap_or(f64::NAN)
}

/// Parses a number literal as JavaScript's `Number()` accepts it (no surrounding space).
pub(crate) fn parse_number_literal(t: &str) -> Option<f64> {
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            return Some(digits.chars().fold(0.0, |acc, c| {
                acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
            }));
        }
    }
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return Some(sign * f64::INFINITY);
    }
    if !is_decimal_literal(body) {
        return None;
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// `(digits[.digits?] | .digits)([eE][+-]?digits)?`
fn is_decimal_literal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Upper-cases one character the way GitHub's ordinal case-insensitive comparison does: a
/// simple one-to-one mapping, where non-ASCII letters never fold onto ASCII ones (`ı` stays
/// distinct from `I`) and multi-character expansions (`ß` → `SS`) do not happen.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if !u.is_ascii() => u,
        _ => c,
    }
}

/// Case-insensitive equality (ASCII fast path).
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().map(fold).eq(b.chars().map(fold))
}

/// Case-insensitive ordinal comparison.
pub(crate) fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a
            .bytes()
            .map(|c| c.to_ascii_uppercase())
            .cmp(b.bytes().map(|c| c.to_ascii_uppercase()));
    }
    a.chars().map(fold).cmp(b.chars().map(fold))
}

/// Upper-cased copy for case-insensitive searches.
pub(crate) fn upper(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_lowercase()) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.chars().map(fold).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_github() {
        for (n, s) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (-0.0, "0"),
            (123456.789, "123456.789"),
            (0.845_512_408_225_570_1, "0.84551240822557"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(format_number(n), s);
        }
    }

    #[test]
    fn strings_coerce_to_numbers_like_javascript() {
        assert_eq!(parse_number_string(" 0x01 "), 1.0);
        assert_eq!(parse_number_string(""), 0.0);
        assert_eq!(parse_number_string("1e3"), 1000.0);
        assert!(parse_number_string("abc").is_nan());
        assert!(parse_number_string("-0x1").is_nan());
    }
}
