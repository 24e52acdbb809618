//! Checks a reusable-workflow call (`jobs.<id>.uses`) against the called workflow's
//! `workflow_call` definition: unknown and missing inputs, input types, unknown and missing
//! secrets.

use crate::diagnostic::Diagnostic;
use crate::model::{InputType, Trigger, Workflow, WorkflowCall};
use crate::yaml::Value;

/// Supplies the text of called reusable workflows. `ci-config` does no I/O: the CLI resolves
/// local paths from the repository; an embedder may serve remote ones from a cache.
pub trait WorkflowResolver {
    /// The text of the workflow that `uses` names, or `None` when it is not available.
    fn resolve(&self, uses: &str) -> Option<String>;
}

/// Checks every call of `workflow` whose target `resolver` can supply.
pub(super) fn check(
    workflow: &Workflow,
    resolver: &dyn WorkflowResolver,
    out: &mut Vec<Diagnostic>,
) {
    let path = workflow.path.as_str();
    for job in workflow.jobs.values() {
        let Some(call) = &job.call else { continue };
        let Some(text) = resolver.resolve(&call.uses) else {
            if call.uses.starts_with("./") {
                out.push(Diagnostic::error(
                    path,
                    call.span,
                    "unknown-workflow",
                    format!("Cannot find the reusable workflow '{}'", call.uses),
                ));
            }
            continue;
        };
        let called = super::parse_workflow(&call.uses, &text);
        if let Some(first) = called.diagnostics.iter().find(|d| d.is_error()) {
            out.push(Diagnostic::error(
                path,
                call.span,
                "called-workflow",
                format!("Error from called workflow {}: {first}", call.uses),
            ));
            continue;
        }
        let Some(called) = called.value else { continue };
        let Some(trigger) = called.triggers.iter().find(|t| t.event == "workflow_call") else {
            out.push(Diagnostic::error(
                path,
                call.span,
                "not-reusable",
                format!(
                    "'{}' is not a reusable workflow: it has no `on: workflow_call`",
                    call.uses
                ),
            ));
            continue;
        };
        check_inputs(path, call, trigger, out);
        check_secrets(path, call, trigger, out);
    }
}

fn check_inputs(path: &str, call: &WorkflowCall, trigger: &Trigger, out: &mut Vec<Diagnostic>) {
    for (name, value) in &call.with {
        let Some(def) = trigger
            .inputs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, d)| d)
        else {
            out.push(Diagnostic::error(
                path,
                value.span,
                "unknown-input",
                format!("Invalid input, {name} is not defined in the referenced workflow."),
            ));
            continue;
        };
        let is_expr = value.as_str().is_some_and(|s| s.contains("${{"));
        let ok = is_expr
            || match def.kind {
                InputType::Boolean => matches!(value.value, Value::Bool(_)),
                InputType::Number => matches!(value.value, Value::Int(_) | Value::Float(_)),
                _ => value.is_scalar(),
            };
        if !ok {
            out.push(
                Diagnostic::error(
                    path,
                    value.span,
                    "type",
                    format!(
                        "Unexpected value '{}'",
                        value.scalar_text().unwrap_or_default()
                    ),
                )
                .with_help(
                    format!("input '{name}' is declared with type {:?}", def.kind).to_lowercase(),
                ),
            );
        }
    }
    for (name, def) in &trigger.inputs {
        let given = call.with.keys().any(|k| k.eq_ignore_ascii_case(name));
        if def.required && def.default.is_none() && !given {
            out.push(Diagnostic::error(
                path,
                call.span,
                "missing-input",
                format!("Input {name} is required, but not provided while calling."),
            ));
        }
    }
}

fn check_secrets(path: &str, call: &WorkflowCall, trigger: &Trigger, out: &mut Vec<Diagnostic>) {
    for (name, value) in &call.secrets {
        if !trigger.secrets.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            out.push(Diagnostic::error(
                path,
                value.span,
                "unknown-secret",
                format!("Invalid secret, {name} is not defined in the referenced workflow."),
            ));
        }
    }
    if call.inherit_secrets {
        return;
    }
    for (name, required) in &trigger.secrets {
        if *required && !call.secrets.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            out.push(Diagnostic::error(
                path,
                call.span,
                "missing-secret",
                format!("Secret {name} is required, but not provided while calling."),
            ));
        }
    }
}
