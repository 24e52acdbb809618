//! Builds [`Node`] trees from `saphyr-parser` events.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle as SaphyrStyle, Tag};

use super::node::{Node, ScalarStyle, Value};
use crate::diagnostic::Diagnostic;
use crate::span::{to_u32, Position, Span};

/// What to do when a mapping repeats a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DuplicateKeys {
    /// Refuse with a located error (GitHub Actions).
    Error,
    /// Keep the last value and warn (GitLab CI).
    LastWins,
}

/// Which explicit tags a dialect accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagPolicy {
    /// Keep every tag on its node for the frontend (GitLab's `!reference`).
    Keep,
    /// Accept the YAML 1.2 core schema tags (`!!str`, `!!int` …) and refuse others (GitHub).
    CoreOnly,
}

/// Options of [`load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Duplicate-key policy.
    pub duplicate_keys: DuplicateKeys,
    /// Most nodes aliases may produce in total; beyond it the file is refused.
    pub max_alias_nodes: usize,
    /// Deepest nesting of collections accepted.
    pub max_depth: usize,
    /// Which explicit tags are accepted.
    pub tags: TagPolicy,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            duplicate_keys: DuplicateKeys::Error,
            max_alias_nodes: 200_000,
            max_depth: 256,
            tags: TagPolicy::Keep,
        }
    }
}

/// Parses every document of `src`. On a syntax error or a refused input, no documents are
/// returned and the diagnostics say why; duplicate keys and bad merge keys are reported while
/// the tree is still built.
pub fn load(path: &str, src: &str, options: &LoadOptions) -> (Vec<Node>, Vec<Diagnostic>) {
    if u32::try_from(src.len()).is_err() {
        let message = "Files of 4 GiB or more are not supported";
        return (
            Vec::new(),
            vec![Diagnostic::error(
                path,
                Span::default(),
                "file-too-large",
                message,
            )],
        );
    }
    let mut text = std::borrow::Cow::Borrowed(src);
    let mut first_error = None;
    for _ in 0..MAX_REFLOWS {
        let mut builder = Builder {
            path,
            options,
            offsets: CharOffsets::new(&text),
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            documents: Vec::new(),
            diagnostics: Vec::new(),
        };
        match builder.run(&text) {
            Ok(()) => return (builder.documents, builder.diagnostics),
            Err(fatal) => {
                let fixed = reflow_closing_bracket(&text, fatal.span.start as usize);
                let first = first_error.get_or_insert_with(|| {
                    builder.diagnostics.push(*fatal);
                    builder.diagnostics
                });
                match fixed {
                    Some(fixed) => text = std::borrow::Cow::Owned(fixed),
                    None => return (Vec::new(), std::mem::take(first)),
                }
            }
        }
    }
    (Vec::new(), first_error.unwrap_or_default())
}

/// How many closing brackets [`reflow_closing_bracket`] moves in one file at most.
const MAX_REFLOWS: usize = 32;

/// A flow collection's closing bracket that stands on a line of its own, indented less than
/// its items, is an indentation error to a YAML 1.2 parser; GitHub's and GitLab's readers
/// accept it. Moves the bracket to the end of the previous line holding content (before a
/// comment there) — the text keeps its length, and everything outside the blank lines in
/// between keeps its offset — or `None` when the error at `at` is something else.
fn reflow_closing_bracket(text: &str, at: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let bracket = *bytes.get(at)?;
    if !matches!(bracket, b']' | b'}') {
        return None;
    }
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..at]
        .bytes()
        .all(|b| b == b' ' || b == b'\t')
    {
        return None;
    }
    // The previous line with content (not blank, not only a comment).
    let mut end = line_start.checked_sub(1)?;
    let (prev_start, prev) = loop {
        let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[start..end];
        let content = line.trim_start();
        if !content.is_empty() && !content.starts_with('#') {
            break (start, line);
        }
        end = start.checked_sub(1)?;
    };
    let content_end = match prev.find(" #") {
        Some(i) => prev[..i].trim_end().len(),
        None => prev.trim_end().len(),
    };
    let insert = prev_start + content_end;
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..insert]);
    out.push(bracket as char);
    out.push_str(&text[insert..at]);
    out.push_str(&text[at + 1..]);
    Some(out)
}

/// Converts the parser's character indices into byte offsets.
struct CharOffsets {
    /// Byte offset of each character; empty when the text is ASCII (identity).
    bytes: Vec<usize>,
    len: usize,
}

impl CharOffsets {
    fn new(src: &str) -> Self {
        let bytes = if src.is_ascii() {
            Vec::new()
        } else {
            src.char_indices().map(|(i, _)| i).collect()
        };
        CharOffsets {
            bytes,
            len: src.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.bytes.is_empty() {
            char_index.min(self.len)
        } else {
            self.bytes.get(char_index).copied().unwrap_or(self.len)
        }
    }

    fn position(&self, m: &Marker) -> (usize, Position) {
        (
            self.byte(m.index()),
            Position {
                line: to_u32(m.line()),
                column: to_u32(m.col() + 1),
            },
        )
    }

    fn span(&self, start: &Marker, end: &Marker) -> Span {
        let (start, start_pos) = self.position(start);
        let (end, end_pos) = self.position(end);
        Span {
            start: to_u32(start),
            end: to_u32(end.max(start)),
            start_pos,
            end_pos,
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
        tag: Option<Box<str>>,
    },
    Map(MapFrame),
}

/// A mapping being built. Pairs are checked for duplicates as they arrive; `<<` sources wait
/// until the mapping ends, when every explicit key is known.
struct MapFrame {
    pairs: Vec<(Node, Node)>,
    /// (position in `pairs` where the `<<` stood, its sources in priority order).
    merges: Vec<(usize, Vec<Node>)>,
    /// Key text → position; built only once the mapping has [`LINEAR_KEYS`] pairs.
    index: HashMap<String, usize>,
    key: Option<Node>,
    span: Span,
    anchor: usize,
    tag: Option<Box<str>>,
}

struct Builder<'a> {
    path: &'a str,
    options: &'a LoadOptions,
    offsets: CharOffsets,
    stack: Vec<Frame>,
    /// Anchor id → (node, its node count).
    anchors: HashMap<usize, (Node, usize)>,
    alias_nodes: usize,
    documents: Vec<Node>,
    diagnostics: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn run(&mut self, src: &str) -> Result<(), Box<Diagnostic>> {
        let mut parser = Parser::new_from_str(src).keep_tags(true);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                let span = self.offsets.span(e.marker(), e.marker());
                fatal(self.path, span, "yaml-syntax", capitalize(e.info()))
            })?;
            let span = self.offsets.span(&span.start, &span.end);
            match event {
                Event::Scalar(text, style, anchor, tag) => {
                    let node = self.scalar(text, style, tag.as_deref(), span)?;
                    self.complete(node, anchor)?;
                }
                Event::SequenceStart(anchor, tag) => {
                    if let Some(t) = tag.as_deref().map(tag_text) {
                        self.check_tag(&t, span);
                    }
                    self.open(Frame::Seq {
                        items: Vec::new(),
                        span,
                        anchor,
                        tag: tag.as_deref().map(tag_text),
                    })?;
                }
                Event::MappingStart(anchor, tag) => {
                    if let Some(t) = tag.as_deref().map(tag_text) {
                        self.check_tag(&t, span);
                    }
                    self.open(Frame::Map(MapFrame {
                        pairs: Vec::new(),
                        merges: Vec::new(),
                        index: HashMap::new(),
                        key: None,
                        span,
                        anchor,
                        tag: tag.as_deref().map(tag_text),
                    }))?;
                }
                Event::SequenceEnd | Event::MappingEnd => self.close(span)?,
                Event::Alias(id) => {
                    let Some((node, count)) = self.anchors.get(&id) else {
                        return Err(fatal(self.path, span, "yaml-syntax", "Unknown anchor"));
                    };
                    self.alias_nodes += count;
                    if self.alias_nodes > self.options.max_alias_nodes {
                        return Err(fatal(
                            self.path,
                            span,
                            "yaml-alias-limit",
                            format!(
                                "Aliases expand to more than {} nodes; refusing a possible alias bomb (\"billion laughs\")",
                                self.options.max_alias_nodes
                            ),
                        ));
                    }
                    let mut node = node.clone();
                    node.span = span;
                    self.complete(node, 0)?;
                }
                Event::DocumentStart(_) => self.anchors.clear(),
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= self.options.max_depth {
            let span = match &frame {
                Frame::Seq { span, .. } => *span,
                Frame::Map(map) => map.span,
            };
            return Err(fatal(
                self.path,
                span,
                "yaml-depth-limit",
                format!(
                    "Nesting deeper than {} levels is not supported",
                    self.options.max_depth
                ),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self, end: Span) -> Result<(), Box<Diagnostic>> {
        let frame = self
            .stack
            .pop()
            .expect("the parser balances collection start and end events");
        let (node, anchor) = match frame {
            Frame::Seq {
                items,
                span,
                anchor,
                tag,
            } => {
                let mut node = Node::new(Value::Seq(items), span.to(end));
                node.tag = tag;
                (node, anchor)
            }
            Frame::Map(map) => {
                let MapFrame {
                    pairs,
                    merges,
                    span,
                    anchor,
                    tag,
                    ..
                } = map;
                let entries = expand_merges(pairs, merges);
                let mut node = Node::new(Value::Map(entries), span.to(end));
                node.tag = tag;
                (node, anchor)
            }
        };
        self.complete(node, anchor)
    }

    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), Box<Diagnostic>> {
        if anchor != 0 {
            let count = node.node_count();
            self.anchors.insert(anchor, (node.clone(), count));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map(map)) => match map.key.take() {
                None => map.key = Some(node),
                Some(k) => {
                    let is_merge = k.style == Some(ScalarStyle::Plain)
                        && k.tag.is_none()
                        && k.as_str() == Some("<<");
                    if !is_merge {
                        insert_pair(
                            map,
                            k,
                            node,
                            self.options.duplicate_keys,
                            self.path,
                            &mut self.diagnostics,
                        );
                        return Ok(());
                    }
                    let sources = match node.value {
                        Value::Map(_) => vec![node],
                        Value::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => items,
                        _ => {
                            self.diagnostics.push(Diagnostic::error(
                                self.path,
                                node.span,
                                "yaml-merge",
                                "The value of a merge key `<<` must be a mapping or a list of mappings",
                            ));
                            return Ok(());
                        }
                    };
                    map.merges.push((map.pairs.len(), sources));
                }
            },
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        style: SaphyrStyle,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<Node, Box<Diagnostic>> {
        let style = match style {
            SaphyrStyle::Plain => ScalarStyle::Plain,
            SaphyrStyle::SingleQuoted => ScalarStyle::SingleQuoted,
            SaphyrStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
            SaphyrStyle::Literal => ScalarStyle::Literal,
            SaphyrStyle::Folded => ScalarStyle::Folded,
        };
        let tag_string = tag.map(tag_text);
        if let Some(t) = &tag_string {
            self.check_tag(t, span);
            let typed = matches!(&**t, "!!int" | "!!float" | "!!bool" | "!!null");
            if typed && style != ScalarStyle::Plain && self.options.tags == TagPolicy::CoreOnly {
                self.diagnostics.push(Diagnostic::error(
                    self.path,
                    span,
                    "yaml-tag",
                    format!("The scalar style '{style:?}' is not valid with the tag '{t}'"),
                ));
            }
        }
        let resolved = match tag_string.as_deref() {
            None if style == ScalarStyle::Plain => resolve_plain(&text),
            Some("!!null") => Some(Value::Null),
            Some("!!bool") => match resolve_plain(&text) {
                v @ Some(Value::Bool(_)) => v,
                _ => return Err(self.bad_tagged(span, &text, "!!bool")),
            },
            Some("!!int") => match resolve_plain(&text) {
                v @ Some(Value::Int(_)) => v,
                _ => return Err(self.bad_tagged(span, &text, "!!int")),
            },
            Some("!!float") => match resolve_plain(&text) {
                Some(Value::Int(i)) => Some(Value::Float(i as f64)),
                v @ Some(Value::Float(_)) => v,
                _ => return Err(self.bad_tagged(span, &text, "!!float")),
            },
            _ => None,
        };
        // Strings take the parser's buffer when it already owns one.
        let value = resolved.unwrap_or_else(|| Value::String(text.into_owned()));
        Ok(Node {
            value,
            span,
            tag: tag_string,
            style: Some(style),
        })
    }

    fn check_tag(&mut self, tag: &str, span: Span) {
        const CORE: &[&str] = &[
            "!!str", "!!int", "!!float", "!!bool", "!!null", "!!seq", "!!map",
        ];
        if self.options.tags == TagPolicy::CoreOnly && !CORE.contains(&tag) {
            self.diagnostics.push(Diagnostic::error(
                self.path,
                span,
                "yaml-tag",
                format!("Unexpected tag '{tag}'"),
            ));
        }
    }

    fn bad_tagged(&self, span: Span, text: &str, tag: &str) -> Box<Diagnostic> {
        fatal(
            self.path,
            span,
            "yaml-tag",
            format!("'{text}' is not a valid {tag} value"),
        )
    }
}

/// An error that stops loading (boxed: it travels up through every builder call).
fn fatal(
    path: &str,
    span: Span,
    code: &'static str,
    message: impl Into<String>,
) -> Box<Diagnostic> {
    Box::new(Diagnostic::error(path, span, code, message))
}

/// Adds one explicit pair, applying the duplicate-key policy.
fn insert_pair(
    map: &mut MapFrame,
    key: Node,
    value: Node,
    policy: DuplicateKeys,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some(text) = key_text(&key) else {
        map.pairs.push((key, value));
        return;
    };
    let previous = if map.pairs.len() < LINEAR_KEYS {
        map.pairs
            .iter()
            .position(|(k, _)| key_text(k).as_deref() == Some(&*text))
    } else {
        if map.index.is_empty() {
            for (i, (k, _)) in map.pairs.iter().enumerate() {
                if let Some(t) = key_text(k) {
                    map.index.entry(t.into_owned()).or_insert(i);
                }
            }
        }
        map.index.get(&*text).copied()
    };
    let Some(previous) = previous else {
        if !map.index.is_empty() {
            map.index.insert(text.into_owned(), map.pairs.len());
        }
        map.pairs.push((key, value));
        return;
    };
    match policy {
        DuplicateKeys::Error => diagnostics.push(Diagnostic::error(
            path,
            key.span,
            "duplicate-key",
            format!("'{text}' is already defined"),
        )),
        DuplicateKeys::LastWins => {
            diagnostics.push(
                Diagnostic::warning(
                    path,
                    key.span,
                    "duplicate-key",
                    format!("'{text}' is already defined; the last value wins"),
                )
                .with_help("remove one of the two definitions"),
            );
            map.pairs[previous].1 = value;
        }
    }
}

/// Expands `<<` merge keys: explicit keys win over merged ones, earlier sources over later
/// ones; merged entries take the place of their `<<`.
fn expand_merges(pairs: Vec<(Node, Node)>, merges: Vec<(usize, Vec<Node>)>) -> Vec<(Node, Node)> {
    if merges.is_empty() {
        return pairs;
    }
    let explicit: HashSet<String> = pairs
        .iter()
        .filter_map(|(k, _)| key_text(k).map(Cow::into_owned))
        .collect();
    let mut merged_keys: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(pairs.len());
    let mut merges = merges.into_iter().peekable();
    for (position, pair) in pairs.into_iter().enumerate() {
        while let Some((_, sources)) = merges.next_if(|(at, _)| *at == position) {
            merge_into(&mut out, sources, &explicit, &mut merged_keys);
        }
        out.push(pair);
    }
    for (_, sources) in merges {
        merge_into(&mut out, sources, &explicit, &mut merged_keys);
    }
    out
}

/// Mappings with fewer entries than this are checked for duplicates without hashing.
const LINEAR_KEYS: usize = 16;

/// The text a scalar key is compared by (`1` and `"1"` are the same key to the CI systems).
fn key_text(key: &Node) -> Option<Cow<'_, str>> {
    match &key.value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Seq(_) | Value::Map(_) => None,
        _ => key.scalar_text().map(Cow::Owned),
    }
}

fn merge_into(
    out: &mut Vec<(Node, Node)>,
    sources: Vec<Node>,
    explicit: &HashSet<String>,
    merged: &mut HashSet<String>,
) {
    for source in sources {
        let Value::Map(entries) = source.value else {
            continue;
        };
        for (k, v) in entries {
            let text = k.scalar_text().unwrap_or_default();
            if !explicit.contains(&text) && merged.insert(text) {
                out.push((k, v));
            }
        }
    }
}

fn tag_text(tag: &Tag) -> Box<str> {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix).into()
    } else if let Some(core) = tag.suffix.strip_prefix("tag:yaml.org,2002:") {
        // Verbatim form `!<tag:yaml.org,2002:str>`.
        format!("!!{core}").into()
    } else if tag.handle == "!" {
        format!("!{}", tag.suffix).into()
    } else {
        format!("{}{}", tag.handle, tag.suffix).into()
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// YAML 1.2 core schema resolution of a plain scalar; `None` means it is a string.
fn resolve_plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return i64::from_str_radix(hex, 16).ok().map(Value::Int);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return i64::from_str_radix(oct, 8).ok().map(Value::Int);
        }
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => Some(Value::Int(i)),
            Err(_) => text.parse::<f64>().ok().map(Value::Float),
        };
    }
    if is_core_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Some(Value::Float(f));
        }
    }
    None
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already stripped).
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_one(src: &str) -> (Node, Vec<Diagnostic>) {
        let (mut docs, diags) = load("t.yml", src, &LoadOptions::default());
        assert_eq!(docs.len(), 1, "{diags:?}");
        (docs.remove(0), diags)
    }

    fn keys(node: &Node) -> Vec<String> {
        node.as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.scalar_text().unwrap())
            .collect()
    }

    #[test]
    fn core_schema_keeps_on_and_yes_as_strings() {
        let (doc, _) =
            load_one("on: push\nyes: no\nn: 012\nf: 1.5\nt: true\nz: ~\nh: 0x1f\ns: '1'\n");
        assert_eq!(doc.get("on").unwrap().as_str(), Some("push"));
        assert_eq!(doc.get("yes").unwrap().as_str(), Some("no"));
        assert_eq!(doc.get("n").unwrap().value, Value::Int(12));
        assert_eq!(doc.get("f").unwrap().value, Value::Float(1.5));
        assert_eq!(doc.get("t").unwrap().value, Value::Bool(true));
        assert!(doc.get("z").unwrap().is_null());
        assert_eq!(doc.get("h").unwrap().value, Value::Int(31));
        assert_eq!(doc.get("s").unwrap().as_str(), Some("1"));
    }

    #[test]
    fn spans_point_at_the_node() {
        let src = "jobs:\n  build:\n    runs-on: ubuntu\n";
        let (doc, _) = load_one(src);
        let runs_on = doc
            .get("jobs")
            .unwrap()
            .get("build")
            .unwrap()
            .get("runs-on")
            .unwrap();
        assert_eq!(&src[runs_on.span.range()], "ubuntu");
        assert_eq!(
            runs_on.span.start_pos,
            Position {
                line: 3,
                column: 14
            }
        );
    }

    #[test]
    fn non_ascii_spans_are_byte_offsets() {
        let src = "name: héllo\nx: y\n";
        let (doc, _) = load_one(src);
        let y = doc.get("x").unwrap();
        assert_eq!(&src[y.span.range()], "y");
    }

    #[test]
    fn merge_keys_expand_with_explicit_keys_winning() {
        let src = "base: &b {a: 1, b: 2}\nother: &o {b: 3, c: 4}\nx:\n  <<: [*b, *o]\n  a: 10\n";
        let (doc, _) = load_one(src);
        let x = doc.get("x").unwrap();
        assert_eq!(
            keys(x),
            ["b", "c", "a"],
            "merged entries take the place of `<<`"
        );
        assert_eq!(x.get("a").unwrap().value, Value::Int(10));
        assert_eq!(
            x.get("b").unwrap().value,
            Value::Int(2),
            "earlier source wins"
        );
        assert_eq!(x.get("c").unwrap().value, Value::Int(4));
        assert_eq!(x.as_map().unwrap().len(), 3);
    }

    #[test]
    fn duplicate_keys_error_or_last_wins() {
        let src = "a: 1\nb: 2\na: 3\n";
        let (_, diags) = load("t.yml", src, &LoadOptions::default());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].is_error());
        assert_eq!(diags[0].span.start_pos, Position { line: 3, column: 1 });
        let options = LoadOptions {
            duplicate_keys: DuplicateKeys::LastWins,
            ..LoadOptions::default()
        };
        let (docs, diags) = load("t.yml", src, &options);
        assert!(!diags[0].is_error());
        assert_eq!(docs[0].get("a").unwrap().value, Value::Int(3));
        assert_eq!(keys(&docs[0]), ["a", "b"]);
    }

    #[test]
    fn anchors_may_be_redefined() {
        let (doc, diags) = load_one("a: &x 1\nb: *x\nc: &x 2\nd: *x\n");
        assert!(diags.is_empty());
        assert_eq!(doc.get("b").unwrap().value, Value::Int(1));
        assert_eq!(doc.get("d").unwrap().value, Value::Int(2));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in "bcdefghij".chars() {
            src.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
            prev = name;
        }
        let (docs, diags) = load("t.yml", &src, &LoadOptions::default());
        assert!(docs.is_empty());
        assert_eq!(diags[0].code, "yaml-alias-limit");
    }

    #[test]
    fn syntax_errors_are_located() {
        let (docs, diags) = load("t.yml", "a: [1, 2\nb: c\n", &LoadOptions::default());
        assert!(docs.is_empty());
        assert_eq!(diags[0].code, "yaml-syntax");
        assert!(diags[0].line() >= 1);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(10_000);
        let (docs, diags) = load("t.yml", &src, &LoadOptions::default());
        assert!(docs.is_empty());
        assert!(!diags.is_empty());
    }
}
