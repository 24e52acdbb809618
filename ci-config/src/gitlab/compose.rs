//! Composition of a GitLab configuration: `include:`, `extends:`, `!reference`, deep merges.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::span::Span;
use crate::yaml::{Node, Value};

/// Where `include:` files come from.
pub trait Includes {
    /// The text of a local file (path relative to the repository root).
    fn read(&self, path: &str) -> Result<String, String>;
    /// Local files matching a glob, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// A directory standing in for `include: project:` (a project path, `group/project`).
    fn project(&self, _project: &str) -> Option<PathBuf> {
        None
    }
    /// A variable include paths may name (predefined and pipeline variables, as GitLab
    /// allows there); `None`: not known (when checking a file without a pipeline).
    fn variable(&self, _name: &str) -> Option<String> {
        None
    }
    /// Every variable known when includes are read (for `include:rules`); `None` when
    /// checking a file without a pipeline.
    fn variables(&self) -> Option<IndexMap<String, String>> {
        None
    }
    /// The text of a file from outside the repository (the fetch layer).
    fn fetch(&self, include: &RemoteInclude<'_>) -> Result<String, Unfetched> {
        Err(Unfetched {
            message: format!("{include} needs the network, and no fetcher was given"),
            unavailable: true,
        })
    }
    /// Whether an include that cannot be had is an error (a run) rather than a warning (lint:
    /// what depends on it is then not checked).
    fn strict(&self) -> bool {
        false
    }
}

/// A file from outside the repository, named by an `include:` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteInclude<'a> {
    /// `remote: URL` (or a bare `https://` entry).
    Url(&'a str),
    /// `template: NAME` — one of GitLab's templates.
    Template(&'a str),
    /// `project:` + `ref:` + `file:` without a local directory for the project.
    Project {
        /// `group/project`.
        project: &'a str,
        /// The ref (`None`: the project's default branch).
        git_ref: Option<&'a str>,
        /// The file's path in the project.
        file: &'a str,
    },
    /// `component: host/group/project/name@version`.
    Component(&'a str),
}

impl std::fmt::Display for RemoteInclude<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteInclude::Url(u) => write!(f, "remote '{u}'"),
            RemoteInclude::Template(t) => write!(f, "template '{t}'"),
            RemoteInclude::Project {
                project,
                git_ref,
                file,
            } => match git_ref {
                Some(r) => write!(f, "'{file}' of project '{project}' at '{r}'"),
                None => write!(f, "'{file}' of project '{project}'"),
            },
            RemoteInclude::Component(c) => write!(f, "component '{c}'"),
        }
    }
}

/// Why a remote include has no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfetched {
    /// What went wrong, naming the URL and the fix.
    pub message: String,
    /// The content could not be had at all (offline, not cached, no network): what depends
    /// on it cannot be checked, which lint reports as warnings. `false`: the server refused.
    pub unavailable: bool,
}

/// No files: every `include:` is an error (for checking a file on its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIncludes;

impl Includes for NoIncludes {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!("cannot read '{path}': no repository given"))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        Err(format!("cannot expand '{pattern}': no repository given"))
    }
}

/// Files under a repository root, and local directories standing in for other projects.
#[derive(Debug, Clone, Default)]
pub struct LocalIncludes {
    root: PathBuf,
    projects: IndexMap<String, PathBuf>,
    variables: IndexMap<String, String>,
}

impl LocalIncludes {
    /// Includes relative to `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalIncludes {
            root: root.into(),
            projects: IndexMap::new(),
            variables: IndexMap::new(),
        }
    }

    /// The variables include paths may name (`local: ci/$CI_COMMIT_REF_NAME.yml`).
    pub fn variables(mut self, variables: IndexMap<String, String>) -> Self {
        self.variables = variables;
        self
    }

    /// Maps `include: project: NAME` to a local directory.
    pub fn project_dir(mut self, project: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.projects.insert(project.into(), dir.into());
        self
    }
}

fn safe(path: &str) -> Option<&str> {
    let p = path.trim_start_matches('/');
    Path::new(p)
        .components()
        .all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
        .then_some(p)
}

impl Includes for LocalIncludes {
    fn read(&self, path: &str) -> Result<String, String> {
        let rel = safe(path).ok_or_else(|| format!("'{path}' leaves the repository"))?;
        std::fs::read_to_string(self.root.join(rel)).map_err(|e| format!("'{path}': {e}"))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        let rel = safe(pattern).ok_or_else(|| format!("'{pattern}' leaves the repository"))?;
        let glob = globset::GlobBuilder::new(rel)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("'{pattern}': {e}"))?
            .compile_matcher();
        let mut out = Vec::new();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if name == ".git" {
                    continue;
                }
                let Ok(t) = entry.file_type() else { continue };
                if t.is_dir() {
                    pending.push(path);
                } else if let Ok(r) = path.strip_prefix(&self.root) {
                    let r = r.to_string_lossy().into_owned();
                    if glob.is_match(&r) {
                        out.push(r);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn project(&self, project: &str) -> Option<PathBuf> {
        self.projects.get(project).cloned()
    }

    fn variable(&self, name: &str) -> Option<String> {
        self.variables.get(name).cloned()
    }

    fn variables(&self) -> Option<IndexMap<String, String>> {
        (!self.variables.is_empty()).then(|| self.variables.clone())
    }
}

/// Deep merge as GitLab's `extends` and `include` do: mappings merge key by key (recursively),
/// everything else (sequences included) is replaced by `over`.
pub(super) fn deep_merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(b), Value::Map(o)) => {
            let mut entries: Vec<(Node, Node)> = b.clone();
            for (k, v) in o {
                let key = k.scalar_text();
                match entries.iter_mut().find(|(bk, _)| bk.scalar_text() == key) {
                    Some((_, bv)) => *bv = deep_merge(bv, v),
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Node {
                value: Value::Map(entries),
                span: over.span,
                tag: over.tag.clone(),
                style: None,
            }
        }
        _ => over.clone(),
    }
}

/// Gives every node of `node` the span `span` (content from another file points at the
/// `include:` that brought it).
pub(super) fn respan(node: &mut Node, span: Span) {
    node.span = span;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|i| respan(i, span)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            respan(k, span);
            respan(v, span);
        }),
        _ => {}
    }
}

/// Resolves `extends:` of every job-like entry of the top-level map.
/// Resolves `extends`. `lenient`: some includes could not be read, so a parent that is not
/// found is left out and reported in `missing` instead of failing.
pub(super) fn resolve_extends(
    root: &mut Node,
    lenient: bool,
    missing: &mut Vec<(Span, String)>,
) -> Result<(), (Span, String)> {
    let Value::Map(entries) = &root.value else {
        return Ok(());
    };
    let originals: IndexMap<String, Node> = entries
        .iter()
        .filter_map(|(k, v)| Some((k.scalar_text()?, v.clone())))
        .collect();
    let mut resolved: IndexMap<String, Node> = IndexMap::new();
    for name in originals.keys() {
        let mut chain = Vec::new();
        let node = extended(
            name,
            &originals,
            &mut resolved,
            &mut chain,
            lenient,
            missing,
        )?;
        resolved.insert(name.clone(), node);
    }
    if let Value::Map(entries) = &mut root.value {
        for (k, v) in entries.iter_mut() {
            if let Some(n) = k.scalar_text().and_then(|k| resolved.get(&k)) {
                *v = n.clone();
            }
        }
    }
    Ok(())
}

fn extended(
    name: &str,
    originals: &IndexMap<String, Node>,
    resolved: &mut IndexMap<String, Node>,
    chain: &mut Vec<String>,
    lenient: bool,
    missing: &mut Vec<(Span, String)>,
) -> Result<Node, (Span, String)> {
    if let Some(done) = resolved.get(name) {
        return Ok(done.clone());
    }
    let node = originals
        .get(name)
        .ok_or_else(|| (Span::default(), format!("unknown job '{name}'")))?;
    let Some(ext) = node.get("extends") else {
        return Ok(node.clone());
    };
    if chain.iter().any(|c| c == name) {
        chain.push(name.to_owned());
        return Err((
            ext.span,
            format!(
                "circular dependency detected in `extends`: {}",
                chain.join(" → ")
            ),
        ));
    }
    if chain.len() >= 11 {
        return Err((ext.span, "`extends` nests more than 11 levels".into()));
    }
    let parents: Vec<(String, Span)> = match &ext.value {
        Value::String(s) => vec![(s.clone(), ext.span)],
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| (s.to_owned(), i.span))
                    .ok_or((i.span, "`extends` entries must be job names".to_owned()))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err((
                ext.span,
                "`extends` must be a job name or a list of them".into(),
            ))
        }
    };
    chain.push(name.to_owned());
    let mut base: Option<Node> = None;
    for (parent, span) in parents {
        if !originals.contains_key(&parent) {
            let message = format!("`extends` names unknown job '{parent}'");
            if lenient {
                if !missing.iter().any(|(s, _)| *s == span) {
                    missing.push((span, message));
                }
                continue;
            }
            return Err((span, message));
        }
        let p = extended(&parent, originals, resolved, chain, lenient, missing)?;
        base = Some(match base {
            Some(b) => deep_merge(&b, &p),
            None => p,
        });
    }
    chain.pop();
    let mut own = node.clone();
    if let Value::Map(entries) = &mut own.value {
        entries.retain(|(k, _)| k.as_str() != Some("extends"));
    }
    let mut merged = match base {
        Some(b) => deep_merge(&b, &own),
        None => own,
    };
    merged.span = node.span;
    Ok(merged)
}

/// Replaces `!reference [job, key, …]` nodes by what they point at (recursively, at most 10
/// levels deep).
/// `lenient`: some includes could not be read, so a reference that is not found becomes an
/// empty value and is reported in `missing` instead of failing.
pub(super) fn resolve_references(
    root: &mut Node,
    lenient: bool,
    missing: &mut Vec<(Span, String)>,
) -> Result<(), (Span, String)> {
    let snapshot = root.clone();
    let mut refs = References {
        root: &snapshot,
        lenient,
        missing,
    };
    refs.replace(root, 0)
}

struct References<'a> {
    root: &'a Node,
    lenient: bool,
    missing: &'a mut Vec<(Span, String)>,
}

impl References<'_> {
    fn replace(&mut self, node: &mut Node, depth: usize) -> Result<(), (Span, String)> {
        let root = self.root;
        if node.tag.as_deref() == Some("!reference") {
            if depth >= 10 {
                return Err((node.span, "`!reference` nests more than 10 levels".into()));
            }
            let path: Vec<String> = node
                .as_seq()
                .ok_or((
                    node.span,
                    "`!reference` takes a list: [job, key, …]".to_owned(),
                ))?
                .iter()
                .map(|p| p.scalar_text().unwrap_or_default())
                .collect();
            if path.is_empty() {
                return Err((node.span, "`!reference` needs at least a job name".into()));
            }
            let mut target = root;
            for (i, part) in path.iter().enumerate() {
                let Some(next) = target.get(part) else {
                    let message = format!(
                        "`!reference [{}]`: '{}' not found",
                        path.join(", "),
                        path[..=i].join(".")
                    );
                    if self.lenient {
                        self.missing.push((node.span, message));
                        *node = Node::new(Value::Null, node.span);
                        return Ok(());
                    }
                    return Err((node.span, message));
                };
                target = next;
            }
            let mut replacement = target.clone();
            self.replace(&mut replacement, depth + 1)?;
            replacement.span = node.span;
            *node = replacement;
            return Ok(());
        }
        match &mut node.value {
            Value::Seq(items) => {
                for i in items {
                    self.replace(i, depth)?;
                }
            }
            Value::Map(entries) => {
                for (_, v) in entries {
                    self.replace(v, depth)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Emits a node as block-style YAML (strings double-quoted where needed).
pub fn to_yaml(node: &Node) -> String {
    let mut out = String::new();
    emit(node, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn scalar(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => crate::yaml::format_float(*f),
        Value::String(s) => quote(s),
        _ => String::new(),
    }
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./$@".contains(c))
        && !s.starts_with(['-', '.', '@'])
        && s.parse::<f64>().is_err()
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn emit(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(&quote(&k.scalar_text().unwrap_or_default()));
                out.push(':');
                emit_value(v, indent, out);
            }
        }
        Value::Seq(items) if !items.is_empty() => {
            for i in items {
                out.push_str(&pad);
                out.push('-');
                emit_value(i, indent, out);
            }
        }
        Value::Map(_) => out.push_str(&format!("{pad}{{}}\n")),
        Value::Seq(_) => out.push_str(&format!("{pad}[]\n")),
        _ => {
            out.push_str(&pad);
            out.push_str(&scalar(node));
            out.push('\n');
        }
    }
}

fn emit_value(v: &Node, indent: usize, out: &mut String) {
    match &v.value {
        Value::Map(e) if !e.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        Value::Seq(i) if !i.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        Value::Map(_) => out.push_str(" {}\n"),
        Value::Seq(_) => out.push_str(" []\n"),
        _ => {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}
