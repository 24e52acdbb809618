//! Job and step identifiers: validation, and the ids GitHub generates for steps without one.

use std::collections::HashSet;

const MAX_ID_LENGTH: usize = 100;

/// Why an identifier is refused, in GitHub's words; `None` when it is valid.
pub(crate) fn invalid_id(id: &str) -> Option<String> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !first_ok || !rest_ok || id.len() >= MAX_ID_LENGTH {
        return Some(format!(
            "The identifier '{id}' is invalid. IDs may only contain alphanumeric characters, '_', and '-'. IDs must start with a letter or '_' and and must be less than 100 characters."
        ));
    }
    if id.starts_with("__") {
        return Some(format!(
            "The identifier '{id}' is invalid. IDs starting with '__' are reserved."
        ));
    }
    None
}

/// Generates step ids the way GitHub does: `__run`, `__actions_checkout`, `__alpine_latest`,
/// then `_2`, `_3` … on collisions (case-insensitive, also against explicit ids).
#[derive(Debug, Default)]
pub(crate) struct StepIds {
    used: HashSet<String>,
}

impl StepIds {
    /// Records an explicit id; returns false when it was already used (case-insensitive).
    pub fn explicit(&mut self, id: &str) -> bool {
        self.used.insert(id.to_ascii_lowercase())
    }

    /// The generated id for a step of the given kind (`run`, `wait`, or [`uses_segment`]),
    /// at most 100 characters before a collision suffix.
    pub fn generate(&mut self, kind: &str) -> String {
        let base: String = format!("__{kind}").chars().take(MAX_ID_LENGTH).collect();
        let mut candidate = base.clone();
        let mut n = 2;
        while !self.used.insert(candidate.to_ascii_lowercase()) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        candidate
    }
}

/// The id segment of an action reference: the reference without `@ref` or `docker://`, with
/// every character other than letters, digits, `-` and `_` replaced by `_`.
pub(crate) fn uses_segment(uses: &str) -> String {
    let name = match uses.strip_prefix("docker://") {
        Some(image) => image,
        None => uses.split_once('@').map_or(uses, |(name, _)| name),
    };
    let name = name.trim_start_matches("./");
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "self".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_follow_github() {
        let mut ids = StepIds::default();
        assert_eq!(
            ids.generate(&uses_segment("actions/checkout@v4")),
            "__actions_checkout"
        );
        assert_eq!(
            ids.generate(&uses_segment("docker://alpine:latest")),
            "__alpine_latest"
        );
        assert_eq!(ids.generate("run"), "__run");
        assert_eq!(ids.generate("run"), "__run_2");
        assert_eq!(
            ids.generate(&uses_segment("actions/checkout@v3")),
            "__actions_checkout_2"
        );
    }

    #[test]
    fn ids_are_validated() {
        assert!(invalid_id("build-1_x").is_none());
        assert!(invalid_id("_x").is_none());
        assert!(invalid_id("1x").is_some());
        assert!(invalid_id("a.b").is_some());
        assert!(invalid_id("__a").unwrap().contains("reserved"));
    }
}
