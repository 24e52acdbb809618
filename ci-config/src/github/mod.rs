//! The GitHub Actions frontend: workflow files and `action.yml` metadata.
//!
//! Reads YAML as GitHub does: the 1.2 core schema, duplicate keys refused, explicit tags
//! refused. Unlike github.com before 2025, anchors and aliases are accepted (GitHub accepts
//! them now; one conformance fixture still expects the old refusal — a documented deviation).

mod action;
mod calls;
mod cron;
mod events;
mod ids;
mod scopes;
mod workflow;

pub use action::{Action, ActionRuns};
pub use calls::{DefaultPermissions, WorkflowResolver};

pub use crate::diagnostic::Parsed;
use crate::model::Workflow;
use crate::reader::Reader;
use crate::yaml::{self, DuplicateKeys, LoadOptions, Node, TagPolicy};

/// Reads a workflow file (`.github/workflows/*.yml`).
pub fn parse_workflow(path: &str, src: &str) -> Parsed<Workflow> {
    read(path, src, workflow::workflow)
}

/// Reads a workflow file and checks its reusable-workflow calls against the called workflows
/// that `resolver` supplies (inputs, their types, secrets).
pub fn parse_workflow_with(
    path: &str,
    src: &str,
    resolver: &dyn WorkflowResolver,
) -> Parsed<Workflow> {
    let mut parsed = parse_workflow(path, src);
    if let Some(workflow) = &parsed.value {
        calls::check(workflow, resolver, &mut parsed.diagnostics);
        parsed
            .diagnostics
            .sort_by_key(|d| (d.span.start, d.span.end));
    }
    parsed
}

/// Reads an action's `action.yml`.
pub fn parse_action(path: &str, src: &str) -> Parsed<Action> {
    read(path, src, action::action)
}

fn read<T>(path: &str, src: &str, frontend: fn(&mut Reader<'_>, &Node) -> Option<T>) -> Parsed<T> {
    let options = LoadOptions {
        duplicate_keys: DuplicateKeys::Error,
        tags: TagPolicy::CoreOnly,
        ..LoadOptions::default()
    };
    let (docs, mut diagnostics) = yaml::load(path, src, &options);
    let mut r = Reader::new(path, src);
    let value = match docs.as_slice() {
        [] if diagnostics.is_empty() => {
            r.error(r.source.span(0, 0), "empty-file", "The file is empty");
            None
        }
        [] => None,
        [doc, rest @ ..] => {
            if let Some(extra) = rest.first() {
                r.error(
                    extra.span,
                    "multiple-documents",
                    "Only one YAML document is allowed in this file",
                );
            }
            frontend(&mut r, doc)
        }
    };
    diagnostics.append(&mut r.diagnostics);
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    Parsed { value, diagnostics }
}
