//! `gantry list` and `gantry graph`: the planned jobs of a workflow.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use ci_config::expr::{Contexts, Value};
use ci_graph::{export, Plan, RunFacts};
use indexmap::IndexMap;

/// Facts given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `--event NAME`
    pub event: Option<String>,
    /// `--var K=V`
    pub vars: Vec<(String, String)>,
    /// `--input K=V`
    pub inputs: Vec<(String, String)>,
}

impl Facts {
    fn contexts(&self) -> Contexts {
        let object = |pairs: &[(String, String)]| {
            let map: IndexMap<String, Value> = pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::string(v.as_str())))
                .collect();
            Value::Object(std::sync::Arc::new(map))
        };
        let mut github: IndexMap<String, Value> = IndexMap::new();
        github.insert(
            "event_name".into(),
            Value::string(self.event.as_deref().unwrap_or("push")),
        );
        let mut contexts = Contexts::new();
        contexts
            .insert("github", Value::Object(std::sync::Arc::new(github)))
            .insert("vars", object(&self.vars))
            .insert("inputs", object(&self.inputs));
        contexts
    }
}

/// Parses `K=V`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

/// Reads and plans every workflow named (or the repository's defaults).
fn plans(
    paths: &[PathBuf],
    facts: &Facts,
    dialect: Option<ci_config::Dialect>,
) -> Result<Vec<(String, Plan)>> {
    let files = crate::lint::files(paths)?;
    let run_facts = RunFacts {
        contexts: facts.contexts(),
    };
    let mut out = Vec::new();
    for file in files {
        let display = file.display().to_string();
        let src =
            std::fs::read_to_string(&file).with_context(|| format!("cannot read {display}"))?;
        let includes = crate::fetch::includes(&crate::lint::repository_root(&file));
        let options = ci_config::LoadOptions {
            dialect,
            includes: &includes,
            ..ci_config::LoadOptions::default()
        };
        let parsed = ci_config::load(&display, &src, &options);
        if parsed.has_errors() {
            for d in parsed.diagnostics.iter().filter(|d| d.is_error()) {
                anstream::eprintln!("{}", d.render(&src, true));
            }
            bail!("{display} has errors; run `gantry lint {display}`");
        }
        // Rules are not decided here: every job of the file is shown.
        let loaded = parsed.value.context("no workflow")?;
        let several = loaded.workflows.len() > 1;
        for workflow in &loaded.workflows {
            // A file with several workflows (CircleCI) shows each under its name.
            let shown = match (&workflow.name, several) {
                (Some(name), true) => format!("{display} ({name})"),
                _ => display.clone(),
            };
            match Plan::new(workflow, &run_facts) {
                Ok(plan) => out.push((shown, plan)),
                Err(diagnostics) => {
                    for d in &diagnostics {
                        anstream::eprintln!("{}", d.render(&src, true));
                    }
                    bail!("{display} cannot be planned");
                }
            }
        }
    }
    Ok(out)
}

/// `gantry list`.
pub fn list(
    paths: &[PathBuf],
    facts: &Facts,
    dialect: Option<ci_config::Dialect>,
) -> Result<ExitCode> {
    for (path, plan) in plans(paths, facts, dialect)? {
        println!("{path}");
        let width = plan
            .instances
            .iter()
            .map(|i| i.id.chars().count())
            .max()
            .unwrap_or(0);
        for inst in &plan.instances {
            let mut needs: Vec<&str> = inst
                .needs
                .iter()
                .map(|&n| plan.instances[n].job.as_str())
                .collect();
            needs.dedup();
            let stage = plan
                .stages
                .get(inst.stage)
                .map(|s| format!("  stage: {s}"))
                .unwrap_or_default();
            let deferred = if inst.deferred_matrix.is_some() {
                "  (matrix from needs: expanded at run time)"
            } else {
                ""
            };
            let needs = if needs.is_empty() {
                "-".to_owned()
            } else {
                needs.join(", ")
            };
            println!("  {:width$}  needs: {needs}{stage}{deferred}", inst.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Output formats of `gantry graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// JSON.
    Json,
    /// An SVG picture (columns of dependencies, the critical path drawn thicker).
    Svg,
}

/// `gantry graph`.
pub fn graph(
    paths: &[PathBuf],
    facts: &Facts,
    format: GraphFormat,
    dialect: Option<ci_config::Dialect>,
) -> Result<ExitCode> {
    let plans = plans(paths, facts, dialect)?;
    if plans.len() > 1 && format != GraphFormat::Json {
        bail!("{} workflows found; name one", plans.len());
    }
    if format == GraphFormat::Json {
        let all: Vec<serde_json::Value> = plans
            .iter()
            .map(|(path, plan)| {
                let mut json = export::to_json(plan);
                json["path"] = serde_json::Value::from(path.as_str());
                json
            })
            .collect();
        let out = if all.len() == 1 {
            all[0].clone()
        } else {
            serde_json::Value::Array(all)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (_, plan) = &plans[0];
    print!(
        "{}",
        match format {
            GraphFormat::Dot => export::to_dot(plan),
            GraphFormat::Svg => export::to_svg(plan, &export::SvgStyle::default()),
            _ => export::to_mermaid(plan),
        }
    );
    Ok(ExitCode::SUCCESS)
}
