//! Checks a reusable-workflow call (`jobs.<id>.uses`) against the called workflow's
//! `workflow_call` definition — unknown and missing inputs, input types, unknown and missing
//! secrets — and the token permissions its jobs request against what the caller grants,
//! through nested calls.

use crate::diagnostic::Diagnostic;
use crate::model::{Access, InputType, Job, Permissions, Trigger, Workflow, WorkflowCall};
use crate::span::Span;
use crate::yaml::Value;

/// How deep reusable workflows may call each other (GitHub's limit).
const MAX_NESTING: usize = 10;

/// The repository's default `GITHUB_TOKEN` permissions, used when neither the calling job
/// nor its workflow sets `permissions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DefaultPermissions {
    /// "Read and write permissions" for every scope (GitHub's permissive setting). The
    /// default here, so lint never refuses what such a repository accepts.
    #[default]
    Write,
    /// "Read repository contents and packages permissions" (the restricted setting).
    LimitedRead,
}

impl DefaultPermissions {
    fn access(self, scope: &str) -> Access {
        match self {
            DefaultPermissions::Write => Access::Write,
            DefaultPermissions::LimitedRead if matches!(scope, "contents" | "packages") => {
                Access::Read
            }
            DefaultPermissions::LimitedRead => Access::None,
        }
    }
}

/// Supplies the text of called reusable workflows. `ci-config` does no I/O: the CLI resolves
/// local paths from the repository; an embedder may serve remote ones from a cache.
pub trait WorkflowResolver {
    /// The text of the workflow that `uses` names, or `None` when it is not available.
    fn resolve(&self, uses: &str) -> Option<String>;

    /// The repository's default token permissions.
    fn default_permissions(&self) -> DefaultPermissions {
        DefaultPermissions::default()
    }
}

/// What the caller's token allows, scope by scope.
#[derive(Clone, Copy)]
enum Grant<'a> {
    Set(&'a Permissions),
    Default(DefaultPermissions),
}

impl Grant<'_> {
    fn access(&self, scope: &str) -> Access {
        match self {
            Grant::Set(p) => p.access(scope),
            Grant::Default(d) => d.access(scope),
        }
    }
}

/// The permission problems of calling `called` with `grant`, nested calls included: one
/// message per offending job.
fn permission_errors(
    uses: &str,
    called: &Workflow,
    grant: Grant<'_>,
    resolver: &dyn WorkflowResolver,
    depth: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for job in called.jobs.values() {
        let requested = job.permissions.as_ref().or(called.permissions.as_ref());
        if let Some(requested) = requested {
            if let Some(scope) = Permissions::SCOPES
                .iter()
                .find(|s| requested.access(s) > grant.access(s))
            {
                out.push(format!(
                    "Error calling workflow '{uses}'. The nested job '{}' is requesting '{scope}: {}', but is only allowed '{scope}: {}'.",
                    job.name.raw,
                    requested.access(scope).name(),
                    grant.access(scope).name()
                ));
                continue;
            }
        }
        let Some(call) = &job.call else { continue };
        if depth >= MAX_NESTING {
            continue;
        }
        let Some(nested) = resolver
            .resolve(&call.uses)
            .and_then(|text| super::parse_workflow(&call.uses, &text).value)
        else {
            continue;
        };
        // What this job requests is what its nested call may use (a request above the
        // grant is reported on its own above); without a request it passes its grant on.
        let inner = requested.map_or(grant, Grant::Set);
        for message in permission_errors(&call.uses, &nested, inner, resolver, depth + 1) {
            out.push(format!("Error calling workflow '{uses}'. {message}"));
        }
    }
    out
}

fn job_grant<'a>(
    job: &'a Job,
    workflow: &'a Workflow,
    resolver: &dyn WorkflowResolver,
) -> Grant<'a> {
    match job.permissions.as_ref().or(workflow.permissions.as_ref()) {
        Some(p) => Grant::Set(p),
        None => Grant::Default(resolver.default_permissions()),
    }
}

fn permissions_error(path: &str, span: Span, message: String) -> Diagnostic {
    Diagnostic::error(path, span, "permissions", message)
        .with_help("grant the permission on the calling job (`permissions:`), or request less in the called workflow")
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
        let grant = job_grant(job, workflow, resolver);
        for message in permission_errors(&call.uses, &called, grant, resolver, 1) {
            out.push(permissions_error(path, job.span, message));
        }
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
