//! GitHub's filter patterns for branches, tags and paths, the rules of `on.<event>` filters,
//! and GitLab's `rules:changes` / `rules:exists` globs.
//!
//! GitHub syntax: `*` matches anything but `/`; `**` matches anything; `?` makes the preceding
//! character optional and `+` repeats it; `[…]` is a character class; `\` escapes; a leading
//! `!` negates. Patterns apply in order and the last one that matches decides.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;

/// Why filters could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A pattern that cannot be compiled.
    #[error("invalid filter pattern '{pattern}': {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// `paths` filters were given but the changed files are not known.
    #[error("`paths` filters need the list of changed files")]
    NeedsChangedPaths,
}

#[derive(Debug, Clone)]
struct Pattern {
    negated: bool,
    regex: Regex,
}

/// An ordered list of GitHub filter patterns.
#[derive(Debug, Clone)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

impl Patterns {
    /// Compiles the patterns.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, FilterError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                let (negated, body) = match p.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, p),
                };
                let regex =
                    Regex::new(&translate(body)).map_err(|e| FilterError::InvalidPattern {
                        pattern: p.to_owned(),
                        reason: e.to_string(),
                    })?;
                Ok(Pattern { negated, regex })
            })
            .collect::<Result<_, _>>()?;
        Ok(Patterns { patterns })
    }

    /// Whether `name` is selected: the last matching pattern decides; none matching is no.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .rev()
            .find(|p| p.regex.is_match(name))
            .is_some_and(|p| !p.negated)
    }
}

/// GitHub pattern → anchored regex.
fn translate(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` also matches no directory at all (`**/README.md` matches `README.md`).
                if chars.peek() == Some(&'/') {
                    chars.next();
                    out.push_str("(?:.*/)?");
                } else {
                    out.push_str(".*");
                }
            }
            '*' => out.push_str("[^/]*"),
            '?' | '+' => out.push(c),
            '[' => {
                out.push('[');
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    if d == '\\' || d == '[' {
                        out.push('\\');
                    }
                    out.push(d);
                }
                out.push(']');
            }
            '\\' => {
                if let Some(d) = chars.next() {
                    out.push_str(&regex::escape(&d.to_string()));
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// The ref an event concerns, for branch/tag filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitRef<'a> {
    /// A branch (`main`, not `refs/heads/main`).
    Branch(&'a str),
    /// A tag (`v1.0`).
    Tag(&'a str),
    /// Neither (schedule, manual).
    None,
}

impl<'a> GitRef<'a> {
    /// Classifies a full ref (`refs/heads/x`, `refs/tags/y`).
    pub fn from_full(full: &'a str) -> Self {
        if let Some(b) = full.strip_prefix("refs/heads/") {
            GitRef::Branch(b)
        } else if let Some(t) = full.strip_prefix("refs/tags/") {
            GitRef::Tag(t)
        } else {
            GitRef::None
        }
    }
}

/// The filters of one `on.<event>` entry (absent lists are `None`).
#[derive(Debug, Clone, Default)]
pub struct EventFilters {
    /// `branches:`
    pub branches: Option<Vec<String>>,
    /// `branches-ignore:`
    pub branches_ignore: Option<Vec<String>>,
    /// `tags:`
    pub tags: Option<Vec<String>>,
    /// `tags-ignore:`
    pub tags_ignore: Option<Vec<String>>,
    /// `paths:`
    pub paths: Option<Vec<String>>,
    /// `paths-ignore:`
    pub paths_ignore: Option<Vec<String>>,
}

impl EventFilters {
    /// Whether an event on `git_ref` (with `changed` files, when known) runs the workflow, as
    /// GitHub decides: ref filters and path filters must both pass; with only tag filters a
    /// branch push does not run (and the other way round); `paths-ignore` skips only when
    /// every changed file is ignored.
    pub fn allows(
        &self,
        git_ref: GitRef<'_>,
        changed: Option<&[String]>,
    ) -> Result<bool, FilterError> {
        let has_branch_filters = self.branches.is_some() || self.branches_ignore.is_some();
        let has_tag_filters = self.tags.is_some() || self.tags_ignore.is_some();
        let ref_ok = match git_ref {
            GitRef::Branch(b) if has_branch_filters => {
                include_exclude(&self.branches, &self.branches_ignore, b)?
            }
            GitRef::Branch(_) => !has_tag_filters,
            GitRef::Tag(t) if has_tag_filters => include_exclude(&self.tags, &self.tags_ignore, t)?,
            GitRef::Tag(_) => !has_branch_filters,
            GitRef::None => true,
        };
        if !ref_ok {
            return Ok(false);
        }
        if self.paths.is_none() && self.paths_ignore.is_none() {
            return Ok(true);
        }
        let changed = changed.ok_or(FilterError::NeedsChangedPaths)?;
        if let Some(paths) = &self.paths {
            let p = Patterns::new(paths)?;
            return Ok(changed.iter().any(|f| p.matches(f)));
        }
        let ignore = Patterns::new(self.paths_ignore.as_deref().unwrap_or_default())?;
        Ok(changed.iter().any(|f| !ignore.matches(f)))
    }
}

fn include_exclude(
    include: &Option<Vec<String>>,
    exclude: &Option<Vec<String>>,
    name: &str,
) -> Result<bool, FilterError> {
    if let Some(include) = include {
        return Ok(Patterns::new(include)?.matches(name));
    }
    if let Some(exclude) = exclude {
        return Ok(!Patterns::new(exclude)?.matches(name));
    }
    Ok(true)
}

/// GitLab `rules:changes` / `rules:exists` globs (`*` within a directory, `**` across them,
/// `{a,b}` alternatives).
#[derive(Debug, Clone)]
pub struct Globs {
    set: GlobSet,
}

impl Globs {
    /// Compiles the globs.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, FilterError> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let p = p.as_ref();
            let glob = GlobBuilder::new(p.trim_start_matches("./"))
                .literal_separator(true)
                .build()
                .map_err(|e| FilterError::InvalidPattern {
                    pattern: p.to_owned(),
                    reason: e.to_string(),
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| FilterError::InvalidPattern {
            pattern: patterns
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            reason: e.to_string(),
        })?;
        Ok(Globs { set })
    }

    /// Whether any of `paths` matches (`rules:changes` with the changed files, `rules:exists`
    /// with the repository's files).
    pub fn any_match<S: AsRef<str>>(&self, paths: &[S]) -> bool {
        paths.iter().any(|p| self.set.is_match(p.as_ref()))
    }
}
