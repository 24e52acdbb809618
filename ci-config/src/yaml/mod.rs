//! YAML → a spanned tree ([`Node`]) with anchors, aliases and `<<` merge keys expanded.
//!
//! Scalars are resolved with the YAML 1.2 core schema (so `on:` is the string key `on`).
//! Duplicate keys are handled as the dialect wants ([`DuplicateKeys`]). Aliases are expanded
//! into copies, and the total number of nodes produced by aliases is capped
//! ([`LoadOptions::max_alias_nodes`]), which refuses "billion laughs" inputs with a clear error.

mod loader;
mod node;

pub use loader::{load, DuplicateKeys, LoadOptions, TagPolicy};
pub use node::{format_float, Node, ScalarStyle, Value};
