//! The compiled configuration as `circleci config process` prints it: version 2 jobs with
//! every parameter, command, executor, orb element and matrix resolved, and the workflows
//! that run for the pipeline.

use crate::model::{Env, Parallel, StepAction, When, Workflow};
use crate::span::Span;
use crate::yaml::{Node, Value};

fn s(text: &str) -> Node {
    Node::new(Value::String(text.to_owned()), Span::default())
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::new(
        Value::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect()),
        Span::default(),
    )
}

fn seq(items: Vec<Node>) -> Node {
    Node::new(Value::Seq(items), Span::default())
}

fn env(e: &Env) -> Option<Node> {
    match e {
        Env::Vars(vars) if !vars.is_empty() => Some(map(vars
            .iter()
            .map(|(k, v)| (k.as_str(), s(&v.value)))
            .collect())),
        _ => None,
    }
}

/// The YAML of compiled workflows (their jobs under `jobs:`, once each).
pub fn to_yaml(workflows: &[Workflow]) -> String {
    let mut jobs: Vec<(String, Node)> = Vec::new();
    let mut flows: Vec<(String, Node)> = Vec::new();
    for w in workflows {
        let mut invocations = Vec::new();
        for (id, job) in &w.jobs {
            let mut options = Vec::new();
            if !job.needs.is_empty() {
                options.push((
                    "requires",
                    seq(job.needs.iter().map(|n| s(&n.job)).collect()),
                ));
            }
            if job.when == When::Manual && job.steps.is_empty() {
                options.push(("type", s("approval")));
            }
            invocations.push(if options.is_empty() {
                s(id)
            } else {
                map(vec![(id.as_str(), map(options))])
            });
            if job.when == When::Manual && job.steps.is_empty() {
                continue;
            }
            let mut body = Vec::new();
            match &job.container {
                Some(c) => {
                    let mut images = vec![map(vec![("image", s(&c.image.raw))])];
                    for (name, svc) in &job.services {
                        let mut entry = vec![("image", s(&svc.image.raw)), ("name", s(name))];
                        if let Some(cmd) = &svc.command {
                            entry.push(("command", s(&cmd.raw)));
                        }
                        images.push(map(entry));
                    }
                    body.push(("docker", seq(images)));
                }
                None => body.push(("machine", Node::new(Value::Bool(true), Span::default()))),
            }
            if let Some(Parallel::Count(n)) = job.parallel {
                body.push((
                    "parallelism",
                    Node::new(Value::Int(i64::from(n)), Span::default()),
                ));
            }
            if let Some(e) = env(&job.env) {
                body.push(("environment", e));
            }
            let steps: Vec<Node> = job.steps.iter().map(step).collect();
            body.push(("steps", seq(steps)));
            if !jobs.iter().any(|(k, _)| k == id) {
                jobs.push((id.clone(), map(body)));
            }
        }
        let name = w.name.clone().unwrap_or_else(|| "workflow".into());
        flows.push((name, map(vec![("jobs", seq(invocations))])));
    }
    let root = map(vec![
        ("version", Node::new(Value::Int(2), Span::default())),
        (
            "jobs",
            map(jobs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()),
        ),
        (
            "workflows",
            map(flows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()),
        ),
    ]);
    crate::gitlab::to_yaml(&root)
}

fn step(st: &crate::model::Step) -> Node {
    let when = match st.condition.effective.as_str() {
        "always()" => Some("always"),
        "failure()" => Some("on_fail"),
        _ => None,
    };
    let name = st.name.as_ref().map(|n| n.raw.clone()).unwrap_or_default();
    match &st.action {
        StepAction::Checkout => s("checkout"),
        StepAction::Commands { commands, .. } => {
            let mut run = vec![("name", s(&name)), ("command", s(&commands.join("\n")))];
            if let Some(w) = when {
                run.push(("when", s(w)));
            }
            if st.background {
                run.push(("background", Node::new(Value::Bool(true), Span::default())));
            }
            if let Some(e) = env(&st.env) {
                run.push(("environment", e));
            }
            map(vec![("run", map(run))])
        }
        StepAction::Run { script, shell, .. } => {
            let mut run = vec![("name", s(&name)), ("command", s(&script.raw))];
            if let Some(sh) = shell {
                run.push(("shell", s(sh.raw.trim_end_matches(" {0}"))));
            }
            map(vec![("run", map(run))])
        }
        StepAction::CacheSave { caches } => {
            let c = &caches[0];
            map(vec![(
                "save_cache",
                map(vec![
                    ("key", s(&cache_key(c))),
                    ("paths", seq(c.paths.iter().map(|p| s(p)).collect())),
                ]),
            )])
        }
        StepAction::CacheRestore { caches } => {
            let c = &caches[0];
            let mut keys = vec![s(&cache_key(c))];
            keys.extend(c.fallback_keys.iter().map(|k| s(k)));
            map(vec![("restore_cache", map(vec![("keys", seq(keys))]))])
        }
        StepAction::WorkspacePersist { root, paths } => map(vec![(
            "persist_to_workspace",
            map(vec![
                ("root", s(root)),
                ("paths", seq(paths.iter().map(|p| s(p)).collect())),
            ]),
        )]),
        StepAction::WorkspaceAttach { at } => {
            map(vec![("attach_workspace", map(vec![("at", s(at))]))])
        }
        StepAction::ArtifactUpload(a) if !a.junit.is_empty() => map(vec![(
            "store_test_results",
            map(vec![("path", s(a.junit[0].trim_end_matches("/**/*.xml")))]),
        )]),
        StepAction::ArtifactUpload(a) => map(vec![(
            "store_artifacts",
            map(vec![(
                "path",
                s(a.paths.first().map_or("", String::as_str)),
            )]),
        )]),
        other => s(&format!("# {other:?}")),
    }
}

fn cache_key(c: &crate::model::Cache) -> String {
    match &c.key_prefix {
        Some(prefix) => {
            let files: Vec<String> = c
                .key_files
                .iter()
                .map(|f| format!("{{{{ checksum \"{f}\" }}}}"))
                .collect();
            format!("{prefix}{}", files.join("-"))
        }
        None => c.key.clone(),
    }
}
