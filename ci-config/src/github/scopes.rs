//! Which contexts and functions an expression may use at each workflow key, from GitHub's
//! "context availability" table. An expression using anything else is refused, as on GitHub.

use crate::expr::Function;
use crate::reader::Scope;

const NONE: &[Function] = &[];
const HASH: &[Function] = &[Function::HashFiles];
const STATUS: &[Function] = &[
    Function::Success,
    Function::Failure,
    Function::Always,
    Function::Cancelled,
];
const STATUS_HASH: &[Function] = &[
    Function::Success,
    Function::Failure,
    Function::Always,
    Function::Cancelled,
    Function::HashFiles,
];

const fn scope(contexts: &'static [&'static str], functions: &'static [Function]) -> Scope {
    Scope {
        contexts,
        functions,
    }
}

/// `run-name`, workflow `concurrency`.
pub(crate) const WORKFLOW: Scope = scope(&["github", "inputs", "vars"], NONE);
/// Workflow `env`.
pub(crate) const WORKFLOW_ENV: Scope = scope(&["github", "secrets", "inputs", "vars"], NONE);
/// `on.workflow_call.outputs.<id>.value`.
pub(crate) const CALL_OUTPUT: Scope = scope(&["github", "jobs", "vars", "inputs"], NONE);
/// `jobs.<id>.if`.
pub(crate) const JOB_IF: Scope = scope(&["github", "needs", "vars", "inputs"], STATUS);
/// `jobs.<id>.strategy`.
pub(crate) const JOB_STRATEGY: Scope = scope(&["github", "needs", "vars", "inputs"], NONE);
/// `jobs.<id>.name`, `runs-on`, `environment`, `concurrency`, `timeout-minutes`,
/// `continue-on-error`, `container`, `services`, `with`.
pub(crate) const JOB: Scope = scope(
    &["github", "needs", "strategy", "matrix", "vars", "inputs"],
    NONE,
);
/// `jobs.<id>.env`, `jobs.<id>.secrets.<id>`.
pub(crate) const JOB_ENV: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "vars", "secrets", "inputs",
    ],
    NONE,
);
/// `jobs.<id>.defaults.run`.
pub(crate) const JOB_DEFAULTS: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "env", "vars", "inputs",
    ],
    NONE,
);
/// Container and service credentials and env.
pub(crate) const CONTAINER_ENV: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "job", "runner", "env", "vars", "secrets",
        "inputs",
    ],
    NONE,
);
/// `jobs.<id>.outputs.<id>`.
pub(crate) const JOB_OUTPUTS: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "job", "runner", "env", "vars", "secrets",
        "steps", "inputs",
    ],
    NONE,
);
/// `jobs.<id>.environment.url`.
pub(crate) const ENVIRONMENT_URL: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "job", "runner", "env", "vars", "steps", "inputs",
    ],
    NONE,
);
/// `jobs.<id>.steps.if`.
pub(crate) const STEP_IF: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "job", "runner", "env", "vars", "steps", "inputs",
    ],
    STATUS_HASH,
);
/// Every other step key (`run`, `with`, `env`, `name`, …).
pub(crate) const STEP: Scope = scope(
    &[
        "github", "needs", "strategy", "matrix", "job", "runner", "env", "vars", "secrets",
        "steps", "inputs",
    ],
    HASH,
);
/// Steps of a composite action (no `secrets`; the action's `inputs`).
pub(crate) const ACTION_STEP: Scope = scope(
    &[
        "github", "strategy", "matrix", "job", "runner", "env", "vars", "steps", "inputs",
    ],
    HASH,
);
/// `if:` of a composite action's step.
pub(crate) const ACTION_STEP_IF: Scope = scope(
    &[
        "github", "strategy", "matrix", "job", "runner", "env", "vars", "steps", "inputs",
    ],
    STATUS_HASH,
);
/// Action inputs' defaults, outputs and `runs` values.
pub(crate) const ACTION: Scope = scope(
    &[
        "github", "strategy", "matrix", "job", "runner", "env", "vars", "steps", "inputs",
    ],
    HASH,
);
