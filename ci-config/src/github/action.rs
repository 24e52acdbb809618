//! `action.yml` metadata: composite, Docker and JavaScript actions.

use indexmap::IndexMap;

use crate::model::{InputDef, Step};
use crate::reader::Reader;
use crate::template::Template;
use crate::yaml::Node;

use super::{events, scopes, workflow};

/// How an action runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ActionRuns {
    /// `using: composite` with its steps.
    Composite {
        /// The steps, read like workflow steps.
        steps: Vec<Step>,
    },
    /// `using: docker`.
    Docker {
        /// `Dockerfile` or `docker://image`.
        image: String,
        /// `entrypoint:`
        entrypoint: Option<Template>,
        /// `args:`
        args: Vec<Template>,
    },
    /// `using: node20` (or another `nodeNN`).
    Node {
        /// The runtime (`node20`).
        using: String,
        /// `main:` script.
        main: String,
        /// `pre:` script.
        pre: Option<String>,
        /// `post:` script.
        post: Option<String>,
    },
}

/// The metadata of one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// `name:` (empty when missing: only the marketplace needs it).
    pub name: String,
    /// `description:`
    pub description: Option<String>,
    /// `inputs:`
    pub inputs: IndexMap<String, InputDef>,
    /// `outputs:` name → value (the value is empty for non-composite actions).
    pub outputs: IndexMap<String, Option<Template>>,
    /// `runs:`
    pub runs: ActionRuns,
}

const ACTION_KEYS: &[&str] = &[
    "name",
    "author",
    "description",
    "inputs",
    "outputs",
    "runs",
    "branding",
];

pub(super) fn action(r: &mut Reader<'_>, doc: &Node) -> Option<Action> {
    r.map(doc, "an action mapping")?;
    r.scope = scopes::ACTION;
    r.check_keys(doc, ACTION_KEYS, &["runs"]);
    // The runner needs no name; only the marketplace does.
    if doc.get("name").is_none() {
        r.warning(
            doc.span,
            "missing-key",
            "Property 'name' is missing: the marketplace needs it (runners do not)",
        );
    }
    let name = doc
        .get("name")
        .and_then(|n| r.text(n, "a string"))
        .unwrap_or_default();
    let description = doc.get("description").and_then(|n| r.text(n, "a string"));
    let mut inputs = IndexMap::new();
    if let Some(node) = doc.get("inputs") {
        for (k, v) in r.map(node, "a mapping of inputs").unwrap_or_default() {
            let Some(input) = k.scalar_text() else {
                continue;
            };
            if v.is_null() {
                inputs.insert(input, events::input_def(r, v, false));
                continue;
            }
            if r.map(v, "an input definition").is_some() {
                r.check_keys(
                    v,
                    &["description", "required", "default", "deprecationMessage"],
                    &[],
                );
                inputs.insert(input, events::input_def(r, v, false));
            }
        }
    }
    let runs_node = doc.get("runs");
    let composite = runs_node
        .and_then(|n| n.get("using"))
        .and_then(Node::as_str)
        .is_some_and(|u| u == "composite");
    let mut outputs = IndexMap::new();
    if let Some(node) = doc.get("outputs") {
        for (k, v) in r.map(node, "a mapping of outputs").unwrap_or_default() {
            let Some(output) = k.scalar_text() else {
                continue;
            };
            if v.is_null() {
                outputs.insert(output, None);
                continue;
            }
            if r.map(v, "an output definition").is_none() {
                continue;
            }
            let required: &[&str] = if composite { &["value"] } else { &[] };
            r.check_keys(v, &["description", "value"], required);
            let value = v.get("value").and_then(|n| r.template(n, "an expression"));
            outputs.insert(output, value);
        }
    }
    if let Some(b) = doc.get("branding") {
        if r.map(b, "a branding mapping").is_some() {
            r.check_keys(b, &["icon", "color"], &[]);
        }
    }
    let runs = runs(r, runs_node?)?;
    Some(Action {
        name,
        description,
        inputs,
        outputs,
        runs,
    })
}

fn runs(r: &mut Reader<'_>, node: &Node) -> Option<ActionRuns> {
    r.map(node, "a runs mapping")?;
    let Some(using_node) = node.get("using") else {
        r.error(
            node.span,
            "missing-key",
            "Required property is missing: using",
        );
        return None;
    };
    let using = r.literal(using_node, "composite, docker or nodeNN")?;
    match using.as_str() {
        "composite" => {
            r.check_keys(node, &["using", "steps"], &["steps"]);
            let steps = node
                .get("steps")
                .map(|s| composite_steps(r, s))
                .unwrap_or_default();
            Some(ActionRuns::Composite { steps })
        }
        "docker" => {
            r.check_keys(
                node,
                &[
                    "using",
                    "image",
                    "env",
                    "entrypoint",
                    "args",
                    "pre-entrypoint",
                    "post-entrypoint",
                    "pre-if",
                    "post-if",
                ],
                &["image"],
            );
            let image = node.get("image").and_then(|n| r.literal(n, "an image"))?;
            Some(ActionRuns::Docker {
                image,
                entrypoint: node
                    .get("entrypoint")
                    .and_then(|n| r.template(n, "an entrypoint")),
                args: node
                    .get("args")
                    .map(|n| r.template_list(n, "a list of arguments"))
                    .unwrap_or_default(),
            })
        }
        u if u.starts_with("node") && u[4..].parse::<u32>().is_ok() => {
            r.check_keys(
                node,
                &["using", "main", "pre", "post", "pre-if", "post-if"],
                &["main"],
            );
            let main = node
                .get("main")
                .and_then(|n| r.literal(n, "a script path"))?;
            Some(ActionRuns::Node {
                using: using.clone(),
                main,
                pre: node.get("pre").and_then(|n| r.literal(n, "a script path")),
                post: node.get("post").and_then(|n| r.literal(n, "a script path")),
            })
        }
        _ => {
            r.error_with_help(
                using_node.span,
                "unknown-runtime",
                format!("Unexpected value '{using}'"),
                "expected composite, docker, node20 or node24",
            );
            None
        }
    }
}

/// Composite steps: workflow steps where `run` needs an explicit `shell`.
fn composite_steps(r: &mut Reader<'_>, node: &Node) -> Vec<Step> {
    for item in node.as_seq().unwrap_or_default() {
        if item.get("run").is_some() && item.get("shell").is_none() {
            r.error(
                item.span,
                "missing-key",
                "Required property is missing: shell",
            );
        }
    }
    workflow::steps(r, node, &workflow::StepRules::COMPOSITE)
}
