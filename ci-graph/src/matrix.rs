//! Matrix expansion with GitHub's rules, and GitLab's `parallel`.
//!
//! GitHub: the cartesian product of the vectors in key order; `exclude` removes every
//! combination that matches all keys an entry lists (values compared deeply); each `include`
//! entry is merged into every product combination it can extend without overwriting one of
//! the *original* values (values added by an earlier include may be overwritten), and becomes
//! a combination of its own when it extends none. More than 256 combinations is an error.

use ci_config::expr::Value;
use indexmap::IndexMap;

/// One combination: key → value, in matrix key order then include order.
pub type Combination = IndexMap<String, Value>;

/// The most combinations GitHub allows.
pub const MAX_COMBINATIONS: usize = 256;

/// A matrix with every value known.
#[derive(Debug, Clone, Default)]
pub struct MatrixSpec {
    /// Key → values, in definition order.
    pub vectors: IndexMap<String, Vec<Value>>,
    /// `include:` entries.
    pub include: Vec<Combination>,
    /// `exclude:` entries.
    pub exclude: Vec<Combination>,
}

/// Why a matrix cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MatrixError {
    /// More than [`MAX_COMBINATIONS`].
    #[error("The matrix would create {0} jobs, more than the maximum of 256")]
    TooMany(usize),
    /// A vector without values.
    #[error("Matrix vector '{0}' does not contain any values")]
    EmptyVector(String),
    /// A value of the wrong shape (from an expression-valued matrix).
    #[error("Invalid matrix: {0}")]
    Invalid(String),
}

impl MatrixSpec {
    /// Reads a matrix from a value (what `${{ fromJSON(…) }}` produced): an object whose
    /// `include`/`exclude` keys are lists of objects and whose other keys are lists.
    pub fn from_value(value: &Value) -> Result<Self, MatrixError> {
        let Value::Object(map) = value else {
            return Err(MatrixError::Invalid(format!(
                "expected an object, found {}",
                value.kind().name()
            )));
        };
        let mut spec = MatrixSpec::default();
        for (key, v) in map.iter() {
            match key.as_str() {
                "include" | "exclude" => {
                    let entries = objects(v).ok_or_else(|| {
                        MatrixError::Invalid(format!("'{key}' must be a list of objects"))
                    })?;
                    if key == "include" {
                        spec.include = entries;
                    } else {
                        spec.exclude = entries;
                    }
                }
                _ => match v {
                    Value::Array(items) => {
                        spec.vectors.insert(key.clone(), items.as_ref().clone());
                    }
                    _ => {
                        return Err(MatrixError::Invalid(format!(
                            "vector '{key}' must be a list"
                        )))
                    }
                },
            }
        }
        Ok(spec)
    }

    /// Expands into combinations (an empty matrix gives none).
    pub fn expand(&self) -> Result<Vec<Combination>, MatrixError> {
        if let Some((key, _)) = self.vectors.iter().find(|(_, v)| v.is_empty()) {
            return Err(MatrixError::EmptyVector(key.clone()));
        }
        let product_size = self
            .vectors
            .values()
            .try_fold(1usize, |acc, v| acc.checked_mul(v.len()))
            .unwrap_or(usize::MAX);
        let mut product: Vec<Combination> = Vec::new();
        if !self.vectors.is_empty() {
            if product_size > MAX_COMBINATIONS * 16 && self.exclude.is_empty() {
                return Err(MatrixError::TooMany(product_size));
            }
            product.push(Combination::new());
            for (key, values) in &self.vectors {
                product = product
                    .into_iter()
                    .flat_map(|combo| {
                        values.iter().map(move |v| {
                            let mut c = combo.clone();
                            c.insert(key.clone(), v.clone());
                            c
                        })
                    })
                    .collect();
                if product.len() > MAX_COMBINATIONS * 64 {
                    return Err(MatrixError::TooMany(product_size));
                }
            }
            product.retain(|combo| !self.exclude.iter().any(|ex| matches_all(combo, ex)));
        }
        let original_keys: Vec<&String> = self.vectors.keys().collect();
        let mut extra: Vec<Combination> = Vec::new();
        for entry in &self.include {
            let mut extended = false;
            for combo in product.iter_mut() {
                let compatible = entry.iter().all(|(k, v)| {
                    !original_keys.contains(&k) || combo.get(k).is_some_and(|c| deep_eq(c, v))
                });
                if compatible {
                    extended = true;
                    for (k, v) in entry {
                        combo.insert(k.clone(), v.clone());
                    }
                }
            }
            if !extended {
                extra.push(entry.clone());
            }
        }
        product.extend(extra);
        if product.len() > MAX_COMBINATIONS {
            return Err(MatrixError::TooMany(product.len()));
        }
        Ok(product)
    }
}

fn objects(v: &Value) -> Option<Vec<Combination>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(map) => Some(map.as_ref().clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Whether `combo` has every key of `entry` with a deeply equal value.
fn matches_all(combo: &Combination, entry: &Combination) -> bool {
    entry
        .iter()
        .all(|(k, v)| combo.get(k).is_some_and(|c| deep_eq(c, v)))
}

/// Structural equality (unlike the expression language's `==`, which compares arrays and
/// objects by identity).
pub fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        _ => false,
    }
}

/// How GitHub shows a combination after the job name: `(ubuntu-latest, 18)`.
pub fn display_values(combo: &Combination) -> String {
    let parts: Vec<String> = combo.values().map(display_value).collect();
    format!("({})", parts.join(", "))
}

fn display_value(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => v.to_json().to_string(),
        other => other.to_display_string().into_owned(),
    }
}

/// GitLab `parallel: matrix:` — each entry's variables expanded as a product, entries
/// concatenated in order.
pub fn expand_parallel_matrix(
    entries: &[IndexMap<String, Vec<String>>],
) -> Result<Vec<Combination>, MatrixError> {
    let mut out = Vec::new();
    for entry in entries {
        let spec = MatrixSpec {
            vectors: entry
                .iter()
                .map(|(k, vs)| {
                    (
                        k.clone(),
                        vs.iter().map(|v| Value::string(v.as_str())).collect(),
                    )
                })
                .collect(),
            ..MatrixSpec::default()
        };
        out.extend(spec.expand()?);
        if out.len() > MAX_COMBINATIONS {
            return Err(MatrixError::TooMany(out.len()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    fn spec(j: serde_json::Value) -> MatrixSpec {
        MatrixSpec::from_value(&v(j)).unwrap()
    }

    fn combos(j: serde_json::Value) -> Vec<serde_json::Value> {
        spec(j)
            .expand()
            .unwrap()
            .iter()
            .map(|c| Value::Object(std::sync::Arc::new(c.clone())).to_json())
            .collect()
    }

    #[test]
    fn too_many_combinations_is_an_error() {
        let s = spec(
            serde_json::json!({"a": (0..20).collect::<Vec<_>>(), "b": (0..20).collect::<Vec<_>>()}),
        );
        assert_eq!(s.expand().err(), Some(MatrixError::TooMany(400)));
    }

    #[test]
    fn include_only_matrix() {
        let got = combos(serde_json::json!({"include": [{"a": 1}, {"b": 2}]}));
        assert_eq!(
            got,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]
        );
    }

    #[test]
    fn display_names_follow_github() {
        let c = &spec(serde_json::json!({"os": ["ubuntu-latest"], "node": [18]}))
            .expand()
            .unwrap()[0];
        assert_eq!(display_values(c), "(ubuntu-latest, 18)");
    }
}
