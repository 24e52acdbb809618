//! `gantry expr`: evaluate one expression, or a stream of them (`--jsonl`).

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use ci_config::expr::{self, Contexts, EvalContext, Expression, Function, ParseOptions, Value};
use serde_json::{json, Map, Value as Json};

/// Contexts plus the status functions, answered from `job.status` when the contexts hold it
/// (`success`, `failure` or `cancelled`), as a runner would.
struct CliContext {
    contexts: Contexts,
    status: Option<String>,
}

impl CliContext {
    fn new(json: &Map<String, Json>) -> Self {
        let status = json
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("job"))
            .and_then(|(_, job)| job.get("status"))
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase);
        CliContext {
            contexts: Contexts::from_json(json),
            status,
        }
    }
}

impl EvalContext for CliContext {
    fn context(&self, name: &str) -> Option<Value> {
        self.contexts.context(name)
    }

    fn status(&self, function: Function) -> Option<bool> {
        let status = self.status.as_deref()?;
        Some(match function {
            Function::Always => true,
            Function::Success => status == "success",
            Function::Failure => status == "failure",
            Function::Cancelled => status == "cancelled",
            _ => return None,
        })
    }
}

/// Evaluates one expression against a contexts object; the JSON line of the CLI contract.
fn evaluate(source: &str, contexts: &Map<String, Json>) -> (Json, bool) {
    let ctx = CliContext::new(contexts);
    let names: Vec<&str> = contexts.keys().map(String::as_str).collect();
    let functions: &[Function] = if ctx.status.is_some() {
        Function::STATUS
    } else {
        &[]
    };
    let options = ParseOptions {
        contexts: &names,
        functions,
    };
    let source = expr::strip_delimiters(source);
    match Expression::parse(source, &options).and_then(|e| e.evaluate(&ctx)) {
        Ok(value) => (
            json!({"kind": value.kind().name(), "value": value.to_json()}),
            true,
        ),
        Err(e) => (
            json!({"error": {"kind": e.kind.name(), "message": e.to_string()}}),
            false,
        ),
    }
}

/// `gantry expr EXPR [--context FILE]`.
pub fn run(source: &str, context_file: Option<&Path>) -> Result<ExitCode> {
    let contexts = match context_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str::<Json>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
            {
                Json::Object(map) => map,
                _ => anyhow::bail!("{} must hold one JSON object of contexts", path.display()),
            }
        }
        None => Map::new(),
    };
    let (line, ok) = evaluate(source, &contexts);
    println!("{line}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `gantry expr --jsonl`: one `{"expr", "contexts"}` line in, one result line out, in order.
pub fn run_jsonl() -> Result<ExitCode> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<Json>(&line) {
            Ok(Json::Object(input)) => match input.get("expr").and_then(Json::as_str) {
                Some(source) => {
                    let contexts = match input.get("contexts") {
                        Some(Json::Object(map)) => map.clone(),
                        _ => Map::new(),
                    };
                    evaluate(source, &contexts).0
                }
                None => {
                    json!({"error": {"kind": "input", "message": "the line has no string `expr`"}})
                }
            },
            Ok(_) => {
                json!({"error": {"kind": "input", "message": "each line must be a JSON object"}})
            }
            Err(e) => json!({"error": {"kind": "input", "message": format!("invalid JSON: {e}")}}),
        };
        serde_json::to_writer(&mut out, &result).context("writing standard output")?;
        out.write_all(b"\n").context("writing standard output")?;
    }
    out.flush().context("writing standard output")?;
    Ok(ExitCode::SUCCESS)
}
