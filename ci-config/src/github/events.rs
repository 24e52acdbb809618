//! `on:` — the events that start a GitHub Actions workflow, with their filters and inputs.

use indexmap::IndexMap;

use crate::model::{InputDef, InputType, Trigger};
use crate::reader::Reader;
use crate::yaml::{Node, Value};

use super::{cron, scopes};

/// Events GitHub documents, with the activity types each accepts (`None`: no `types:` key;
/// `Some(&[])`: any type).
const EVENTS: &[(&str, Option<&[&str]>)] = &[
    (
        "branch_protection_rule",
        Some(&["created", "edited", "deleted"]),
    ),
    (
        "check_run",
        Some(&["created", "rerequested", "completed", "requested_action"]),
    ),
    (
        "check_suite",
        Some(&["completed", "requested", "rerequested"]),
    ),
    ("create", None),
    ("delete", None),
    ("deployment", None),
    ("deployment_status", None),
    (
        "discussion",
        Some(&[
            "created",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "category_changed",
            "answered",
            "unanswered",
        ]),
    ),
    (
        "discussion_comment",
        Some(&["created", "edited", "deleted"]),
    ),
    ("fork", None),
    ("gollum", None),
    ("image_version", Some(&[])),
    ("issue_comment", Some(&["created", "edited", "deleted"])),
    (
        "issues",
        Some(&[
            "opened",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "closed",
            "reopened",
            "assigned",
            "unassigned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "milestoned",
            "demilestoned",
            "typed",
            "untyped",
            "field_added",
            "field_removed",
        ]),
    ),
    ("label", Some(&["created", "edited", "deleted"])),
    ("merge_group", Some(&["checks_requested"])),
    (
        "milestone",
        Some(&["created", "closed", "opened", "edited", "deleted"]),
    ),
    ("page_build", None),
    (
        "project",
        Some(&["created", "closed", "reopened", "edited", "deleted"]),
    ),
    (
        "project_card",
        Some(&["created", "moved", "converted", "edited", "deleted"]),
    ),
    (
        "project_column",
        Some(&["created", "updated", "moved", "deleted"]),
    ),
    ("public", None),
    ("pull_request", Some(PULL_REQUEST_TYPES)),
    ("pull_request_comment", Some(&[])),
    (
        "pull_request_review",
        Some(&["submitted", "edited", "dismissed"]),
    ),
    (
        "pull_request_review_comment",
        Some(&["created", "edited", "deleted"]),
    ),
    ("pull_request_target", Some(PULL_REQUEST_TYPES)),
    ("push", None),
    ("registry_package", Some(&["published", "updated"])),
    (
        "release",
        Some(&[
            "published",
            "unpublished",
            "created",
            "edited",
            "deleted",
            "prereleased",
            "released",
        ]),
    ),
    ("repository_dispatch", Some(&[])),
    ("schedule", None),
    ("status", None),
    ("watch", Some(&["started"])),
    ("workflow_call", None),
    ("workflow_dispatch", None),
    (
        "workflow_run",
        Some(&["completed", "requested", "in_progress"]),
    ),
];

const PULL_REQUEST_TYPES: &[&str] = &[
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "opened",
    "edited",
    "closed",
    "reopened",
    "synchronize",
    "converted_to_draft",
    "ready_for_review",
    "locked",
    "unlocked",
    "review_requested",
    "review_request_removed",
    "auto_merge_enabled",
    "auto_merge_disabled",
    "milestoned",
    "demilestoned",
    "enqueued",
    "dequeued",
    "stacked",
];

/// Filter keys each event accepts besides `types`.
fn filter_keys(event: &str) -> &'static [&'static str] {
    match event {
        "push" => IGNORED_FILTERS,
        "pull_request" | "pull_request_target" => {
            &["branches", "branches-ignore", "paths", "paths-ignore"]
        }
        "merge_group" => &["branches", "branches-ignore"],
        "workflow_run" => &["workflows", "branches", "branches-ignore"],
        "workflow_dispatch" => &["inputs"],
        "workflow_call" => &["inputs", "outputs", "secrets"],
        "image_version" => &["names", "versions"],
        _ => &[],
    }
}

/// Filter keys GitHub accepts under every event, ignored where the event does not use them.
const IGNORED_FILTERS: &[&str] = &[
    "branches",
    "branches-ignore",
    "tags",
    "tags-ignore",
    "paths",
    "paths-ignore",
];

/// Reads `on:`.
pub(super) fn triggers(r: &mut Reader<'_>, on: &Node) -> Vec<Trigger> {
    match &on.value {
        Value::String(_) => r
            .literal(on, "an event name")
            .and_then(|name| event_name(r, on, &name))
            .map(|event| {
                vec![Trigger {
                    event,
                    span: on.span,
                    ..Trigger::default()
                }]
            })
            .unwrap_or_default(),
        Value::Seq(items) => items
            .iter()
            .filter_map(|item| {
                let name = r.literal(item, "an event name")?;
                let event = event_name(r, item, &name)?;
                Some(Trigger {
                    event,
                    span: item.span,
                    ..Trigger::default()
                })
            })
            .collect(),
        Value::Map(_) => {
            let entries = r.map(on, "a mapping of events").unwrap_or_default();
            entries
                .iter()
                .filter_map(|(k, v)| {
                    let event = event_name(r, k, k.as_str()?)?;
                    Some(trigger(r, event, k, v))
                })
                .collect()
        }
        _ => {
            r.unexpected(on, "an event name, a list of events or a mapping of events");
            Vec::new()
        }
    }
}

fn event_name(r: &mut Reader<'_>, node: &Node, name: &str) -> Option<String> {
    if EVENTS.iter().any(|(e, _)| *e == name) {
        Some(name.to_owned())
    } else {
        r.error_with_help(
            node.span,
            "unknown-event",
            format!("Unexpected value '{name}'"),
            "see https://docs.github.com/actions/using-workflows/events-that-trigger-workflows",
        );
        None
    }
}

fn trigger(r: &mut Reader<'_>, event: String, key: &Node, config: &Node) -> Trigger {
    let mut t = Trigger {
        span: key.span,
        ..Trigger::default()
    };
    if event == "schedule" {
        t.cron = schedule(r, config);
        t.event = event;
        return t;
    }
    if config.is_null() {
        t.event = event;
        return t;
    }
    if r.map(config, "a mapping of event filters").is_none() {
        t.event = event;
        return t;
    }
    let types = EVENTS
        .iter()
        .find(|(e, _)| *e == event)
        .and_then(|(_, t)| *t);
    let mut allowed: Vec<&str> = filter_keys(&event).to_vec();
    if types.is_some() {
        allowed.push("types");
    }
    if event != "workflow_dispatch" {
        // GitHub accepts ref and path filters under any event and ignores them where the
        // event has no ref or paths to filter; real workflows hold such filters.
        let mut accepted = allowed.clone();
        for (k, _) in config.as_map().unwrap_or_default() {
            let Some(name) = k.as_str() else { continue };
            if IGNORED_FILTERS.contains(&name) && !allowed.contains(&name) {
                r.warning(
                    k.span,
                    "ignored-filter",
                    format!("GitHub ignores '{name}' under '{event}': it filters nothing there"),
                );
                accepted.push(name);
            }
        }
        r.check_keys(config, &accepted, &[]);
    }
    for (k, v) in config.as_map().unwrap_or_default() {
        let Some(name) = k.as_str() else { continue };
        if !allowed.contains(&name) {
            continue;
        }
        match name {
            "types" => {
                t.types = r.string_list(v, "an activity type or a list of them");
                let known = types.unwrap_or_default();
                if !known.is_empty() {
                    check_types(r, v, &t.types, known);
                }
            }
            "branches" => t.branches = r.string_list(v, "a list of branch patterns"),
            "branches-ignore" => t.branches_ignore = r.string_list(v, "a list of branch patterns"),
            "tags" => t.tags = r.string_list(v, "a list of tag patterns"),
            "tags-ignore" => t.tags_ignore = r.string_list(v, "a list of tag patterns"),
            "paths" => t.paths = r.string_list(v, "a list of path patterns"),
            "paths-ignore" => t.paths_ignore = r.string_list(v, "a list of path patterns"),
            "workflows" => t.workflows = r.string_list(v, "a list of workflow names"),
            "names" | "versions" => {
                r.string_list(v, "a list of names");
            }
            "inputs" => t.inputs = inputs(r, v, &event),
            "outputs" => t.outputs = r.scoped(scopes::CALL_OUTPUT, |r| call_outputs(r, v)),
            "secrets" => t.secrets = call_secrets(r, v),
            _ => {}
        }
    }
    for (a, b) in [
        ("branches", "branches-ignore"),
        ("tags", "tags-ignore"),
        ("paths", "paths-ignore"),
    ] {
        if let (Some((ka, _)), Some(_)) = (config.entry(a), config.get(b)) {
            r.warning(
                ka.span,
                "conflicting-filters",
                format!("'{a}' and '{b}' cannot be used together for the same event; GitHub will not run this workflow"),
            );
        }
    }
    t.event = event;
    t
}

fn check_types(r: &mut Reader<'_>, node: &Node, types: &[String], known: &[&str]) {
    let items: Vec<&Node> = match node.as_seq() {
        Some(items) => items.iter().collect(),
        None => vec![node],
    };
    for (item, name) in items.iter().zip(types) {
        if !known.contains(&name.as_str()) {
            r.error_with_help(
                item.span,
                "unknown-activity-type",
                format!("Unexpected value '{name}'"),
                format!("expected one of: {}", known.join(", ")),
            );
        }
    }
}

fn schedule(r: &mut Reader<'_>, node: &Node) -> Vec<String> {
    let Some(items) = node.as_seq() else {
        r.unexpected(node, "a list of `- cron: '…'` entries");
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        if r.map(item, "a `cron:` mapping").is_none() {
            continue;
        }
        r.check_keys(item, &["cron", "timezone"], &["cron"]);
        let Some(cron_node) = item.get("cron") else {
            continue;
        };
        let Some(expr) = r.literal(cron_node, "a cron expression") else {
            continue;
        };
        if let Err(message) = cron::validate(&expr) {
            r.error(
                cron_node.span,
                "invalid-cron",
                format!("Invalid cron expression '{expr}': {message}"),
            );
        }
        out.push(expr);
    }
    out
}

fn inputs(r: &mut Reader<'_>, node: &Node, event: &str) -> IndexMap<String, InputDef> {
    let mut out = IndexMap::new();
    if node.is_null() {
        return out;
    }
    let Some(entries) = r.map(node, "a mapping of inputs") else {
        return out;
    };
    let call = event == "workflow_call";
    for (k, v) in entries {
        let Some(name) = k.as_str() else { continue };
        if v.is_null() && !call {
            out.insert(name.to_owned(), input_def(r, v, call));
            continue;
        }
        if r.map(v, "an input definition").is_none() {
            continue;
        }
        if call {
            r.check_keys(
                v,
                &["description", "required", "type", "default"],
                &["type"],
            );
        }
        out.insert(name.to_owned(), input_def(r, v, call));
    }
    out
}

/// Reads one input definition (also used for action inputs, which have no `type`).
pub(super) fn input_def(r: &mut Reader<'_>, v: &Node, call: bool) -> InputDef {
    let description = v.get("description").and_then(|d| r.text(d, "a string"));
    let required = v
        .get("required")
        .and_then(|n| match n.as_bool() {
            Some(b) => Some(b),
            None if n.as_str().is_some_and(|s| s.starts_with("${{")) => Some(false),
            None => {
                r.unexpected(n, "a boolean");
                None
            }
        })
        .unwrap_or(false);
    let allowed: &[&str] = if call {
        &["string", "boolean", "number"]
    } else {
        &["string", "boolean", "number", "choice", "environment"]
    };
    let kind = match v.get("type") {
        None => InputType::String,
        Some(t) => match r.literal(t, "an input type").as_deref() {
            Some("string") => InputType::String,
            Some("boolean") if allowed.contains(&"boolean") => InputType::Boolean,
            Some("number") => InputType::Number,
            Some("choice") if allowed.contains(&"choice") => InputType::Choice,
            Some("environment") if allowed.contains(&"environment") => InputType::Environment,
            Some(other) => {
                r.error_with_help(
                    t.span,
                    "type",
                    format!("Unexpected value '{other}'"),
                    format!("expected one of: {}", allowed.join(", ")),
                );
                InputType::String
            }
            None => InputType::String,
        },
    };
    let options = match v.get("options") {
        Some(o) => r.string_list(o, "a list of options"),
        None => Vec::new(),
    };
    if kind == InputType::Choice && options.is_empty() {
        r.error(
            v.span,
            "missing-key",
            "Required property is missing: options",
        );
    }
    let default = v.get("default").cloned();
    if let Some(d) = &default {
        let is_expr = d.as_str().is_some_and(|s| s.contains("${{"));
        let ok = is_expr
            || match kind {
                InputType::Boolean => d.as_bool().is_some(),
                InputType::Number => d.as_f64().is_some(),
                InputType::Choice => d
                    .scalar_text()
                    .is_some_and(|s| options.is_empty() || options.contains(&s)),
                InputType::String | InputType::Environment => d.is_scalar(),
            };
        if !ok {
            let expected = match kind {
                InputType::Boolean => "a boolean (true or false, unquoted)",
                InputType::Number => "a number",
                InputType::Choice => "one of the options",
                _ => "a string",
            };
            r.unexpected(d, expected);
        }
    }
    InputDef {
        description,
        required,
        kind,
        default,
        options,
    }
}

fn call_outputs(r: &mut Reader<'_>, node: &Node) -> IndexMap<String, crate::template::Template> {
    let mut out = IndexMap::new();
    let Some(entries) = r.map(node, "a mapping of outputs") else {
        return out;
    };
    for (k, v) in entries {
        let Some(name) = k.as_str() else { continue };
        if r.map(v, "an output definition").is_none() {
            continue;
        }
        r.check_keys(v, &["description", "value"], &["value"]);
        if let Some(value) = v.get("value").and_then(|n| r.template(n, "an expression")) {
            out.insert(name.to_owned(), value);
        }
    }
    out
}

fn call_secrets(r: &mut Reader<'_>, node: &Node) -> IndexMap<String, bool> {
    let mut out = IndexMap::new();
    if node.is_null() {
        return out;
    }
    let Some(entries) = r.map(node, "a mapping of secrets") else {
        return out;
    };
    for (k, v) in entries {
        let Some(name) = k.as_str() else { continue };
        let mut required = false;
        if !v.is_null() && r.map(v, "a secret definition").is_some() {
            r.check_keys(v, &["description", "required"], &[]);
            required = v.get("required").and_then(Node::as_bool).unwrap_or(false);
        }
        out.insert(name.to_owned(), required);
    }
    out
}
