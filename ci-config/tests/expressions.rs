//! Tier 1: GitHub's own expression test data (`../shared/conformance/expressions`), read in
//! place. Every case must pass; errors must fail at the named stage with GitHub's message.

mod common;

use common::conformance_dir;

use std::path::PathBuf;

use ci_config::expr::{Contexts, Expression, Function, ParseOptions, Value};
use serde_json::Value as Json;

/// Runs one case; `Err` says why it failed.
fn run_case(case: &Json) -> Result<(), String> {
    let expr = case["expr"].as_str().ok_or("case without expr")?;
    let contexts = match case.get("contexts") {
        Some(Json::Object(map)) => Contexts::from_json(map),
        _ => Contexts::new(),
    };
    let names: Vec<&str> = contexts.names().collect();
    let options = ParseOptions {
        contexts: &names,
        functions: &[] as &[Function],
    };
    let outcome = Expression::parse(expr, &options).and_then(|e| e.evaluate(&contexts));
    match (outcome, case.get("result"), case.get("err")) {
        (Ok(value), Some(want), _) => {
            let kind = want["kind"].as_str().unwrap_or_default();
            if value.kind().name() != kind {
                return Err(format!(
                    "kind {} (value {}), expected {kind}",
                    value.kind().name(),
                    value.to_json()
                ));
            }
            if !same(&value, &want["value"]) {
                return Err(format!(
                    "value {}, expected {}",
                    value.to_json(),
                    want["value"]
                ));
            }
            Ok(())
        }
        (Err(e), Some(_), _) => Err(format!("error {e}")),
        (Ok(value), None, Some(want)) => Err(format!(
            "succeeded with {}, expected {want}",
            value.to_json()
        )),
        (Err(e), None, Some(want)) => {
            let stage = want["kind"].as_str().unwrap_or_default();
            if e.kind.name() != stage {
                return Err(format!(
                    "failed at {} ({e}), expected {stage}",
                    e.kind.name()
                ));
            }
            let text = want["value"].as_str().unwrap_or_default();
            if !e.to_string().contains(text) {
                return Err(format!("STAGE-OK message '{e}' lacks '{text}'"));
            }
            Ok(())
        }
        (_, None, None) => Err("case has neither result nor err".into()),
    }
}

/// Structural comparison; numbers numerically (`-0` ≡ `0`).
fn same(value: &Value, want: &Json) -> bool {
    match (value, want) {
        (Value::Null, Json::Null) => true,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Number(a), Json::Number(b)) => {
            b.as_f64() == Some(*a) || (*a == 0.0 && b.as_f64() == Some(0.0))
        }
        (Value::String(a), Json::String(b)) => **a == **b,
        (Value::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => false,
    }
}

#[test]
fn github_expression_test_data() {
    let Some(dir) = conformance_dir() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("expressions"))
        .expect("expressions directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    let (mut total, mut errors, mut failures, mut stage_only) = (0, 0, Vec::new(), 0);
    for file in files {
        let name = file
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let data: Json = serde_json::from_str(&std::fs::read_to_string(&file).expect("readable"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (group, cases) in data.as_object().expect("an object of groups") {
            for (i, case) in cases
                .as_array()
                .expect("an array of cases")
                .iter()
                .enumerate()
            {
                total += 1;
                if case.get("err").is_some() {
                    errors += 1;
                }
                if let Err(why) = run_case(case) {
                    if why.starts_with("STAGE-OK") {
                        stage_only += 1;
                    }
                    failures.push(format!(
                        "{name} / {group} #{i}: {:?}: {why}",
                        case["expr"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    let passed = total - failures.len();
    println!(
        "expressions: {passed}/{total} cases pass ({:.1} %)",
        100.0 * passed as f64 / total as f64
    );
    println!(
        "expressions: error cases: {}/{errors} at the right stage, {}/{errors} with GitHub's message",
        errors - failures.iter().filter(|f| f.contains("expected lexing") || f.contains("expected parsing") || f.contains("expected evaluation") || f.contains("succeeded with")).count(),
        errors - failures.iter().filter(|f| f.contains("expected lexing") || f.contains("expected parsing") || f.contains("expected evaluation") || f.contains("succeeded with")).count() - stage_only,
    );
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} expression cases fail",
        failures.len()
    );
}
