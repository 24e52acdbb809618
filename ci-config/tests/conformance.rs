//! Tier 1: the shared conformance data, read in place (never copied into the project).
//!
//! `GANTRY_CONFORMANCE_DIR` overrides the default `../shared/conformance` beside the workspace.
//! Without the data the tests skip loudly, and fail when `CI=true`.

mod common;

use common::conformance_dir;

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use ci_config::github::{
    parse_action, parse_workflow, parse_workflow_with, DefaultPermissions, WorkflowResolver,
};
use ci_config::model::{Matrix, Strategy};
use ci_config::yaml::{Node, Value};
use ci_config::{Job, Template};
use serde_json::{json, Value as Json};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned()
}

/// Runs the schema test files of one schema: positives must have no error, negatives at least one.
/// Files listed in `known-mismatches.txt` disagree with the bundled schema version: their
/// expectation is the opposite one.
fn schema_set(schema: &str, lint: fn(&str, &str) -> bool) -> usize {
    let Some(dir) = conformance_dir() else {
        return 0;
    };
    let known =
        std::fs::read_to_string(dir.join("schema-tests/known-mismatches.txt")).unwrap_or_default();
    let known: Vec<&str> = known
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut failures = Vec::new();
    let mut total = 0;
    for (polarity, want_errors) in [("positive", false), ("negative", true)] {
        for path in files(&dir.join("schema-tests").join(polarity).join(schema)) {
            total += 1;
            let src = std::fs::read_to_string(&path).expect("readable test file");
            let name = format!("{polarity}/{schema}/{}", file_name(&path));
            let want_errors = want_errors != known.contains(&name.as_str());
            let has_errors = lint(&name, &src);
            if has_errors != want_errors {
                failures.push(format!(
                    "{name}: expected {}",
                    if want_errors { "errors" } else { "no errors" }
                ));
            }
        }
    }
    report(&format!("schema-tests/{schema}"), total, &failures);
    failures.len()
}

fn report(set: &str, total: usize, failures: &[String]) {
    let passed = total - failures.len();
    println!(
        "{set}: {passed}/{total} passed ({:.1} %)",
        100.0 * passed as f64 / total.max(1) as f64
    );
    for f in failures {
        println!("  FAIL {f}");
    }
}

#[test]
fn schema_tests_github_workflow() {
    let failures = schema_set("github-workflow", |name, src| {
        let parsed = parse_workflow(name, src);
        for d in &parsed.diagnostics {
            println!("    {d}");
        }
        parsed.has_errors()
    });
    assert_eq!(failures, 0, "github-workflow schema tests regressed");
}

#[test]
fn schema_tests_github_action() {
    let failures = schema_set("github-action", |name, src| {
        let parsed = parse_action(name, src);
        for d in &parsed.diagnostics {
            println!("    {d}");
        }
        parsed.has_errors()
    });
    assert_eq!(failures, 0, "github-action schema tests regressed");
}

/// Files whose expectation is a documented deviation: GitHub accepts anchors since 2025.
const DEVIATIONS: &[&str] = &["errors-anchor-tag.yml"];

/// Reader options we do not implement (limits of GitHub's service, not of the syntax).
fn unsupported_option(options: &Node) -> Option<&'static str> {
    let opts = [
        ("max-depth", "max-depth option"),
        ("max-file-size", "max-file-size option"),
        ("max-result-size", "max-result-size option"),
        ("max-job-limit", "max-job-limit option"),
    ];
    opts.into_iter()
        .find(|(k, _)| options.get(k).is_some())
        .map(|(_, why)| why)
}

#[test]
fn workflow_reader_fixtures() {
    let Some(dir) = conformance_dir() else { return };
    let mut failures = Vec::new();
    let mut total = 0;
    let mut deviations = 0;
    for path in files(&dir.join("workflow-reader")) {
        let name = file_name(&path);
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let docs: Vec<&str> = split_documents(&text);
        assert!(docs.len() >= 3, "{name}: fewer than 3 documents");
        let (options, _) = ci_config::yaml::load("options", docs[0], &Default::default());
        let options = options
            .into_iter()
            .next()
            .unwrap_or_else(|| Node::new(Value::Null, Default::default()));
        let expected: Json = serde_json::from_str(docs[docs.len() - 1].trim())
            .unwrap_or_else(|e| panic!("{name}: expected JSON: {e}"));
        let workflow_path = format!(".github/workflows/{name}");
        let called: HashMap<String, String> = docs[2..docs.len() - 1]
            .chunks(2)
            .filter_map(|pair| Some((pair[0].trim().to_owned(), pair.get(1)?.to_string())))
            .collect();
        let parsed = if options
            .get("skip-reusable-workflows")
            .and_then(Node::as_bool)
            == Some(true)
        {
            parse_workflow(&workflow_path, docs[1])
        } else {
            let policy = match options.get("permissions-policy").and_then(Node::as_str) {
                Some("LimitedRead") => DefaultPermissions::LimitedRead,
                _ => DefaultPermissions::Write,
            };
            parse_workflow_with(&workflow_path, docs[1], &Called(called, policy))
        };
        total += 1;
        if DEVIATIONS.contains(&name.as_str()) {
            deviations += 1;
            assert!(
                !parsed.has_errors(),
                "{name}: the documented deviation must accept the file"
            );
            continue;
        }
        let outcome = match expected.get("errors") {
            Some(errors) => check_errors(&workflow_path, errors, &parsed.diagnostics),
            None if parsed.has_errors() => Err(format!(
                "unexpected errors: {}",
                parsed
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
            None => compare_jobs(&expected["jobs"], parsed.value.as_ref().map(|w| &w.jobs)),
        };
        if let Err(reason) = outcome {
            let why = unsupported_option(&options)
                .map(|o| format!(" [uses the {o}]"))
                .unwrap_or_default();
            failures.push(format!("{name}: {reason}{why}"));
        }
    }
    println!("workflow-reader: {deviations} documented deviation(s) (anchors are accepted)");
    report("workflow-reader", total - deviations, &failures);
    let passed = total - deviations - failures.len();
    // Ratchet: the pass count may only go up. Raise it when you fix a fixture.
    assert!(
        passed >= MIN_READER_PASSES,
        "workflow-reader passes fell to {passed} (< {MIN_READER_PASSES})"
    );
}

const MIN_READER_PASSES: usize = 147;

/// The called workflows a fixture provides, by the reference written in `uses:`.
struct Called(HashMap<String, String>, DefaultPermissions);

impl WorkflowResolver for Called {
    fn resolve(&self, uses: &str) -> Option<String> {
        self.0.get(uses).cloned()
    }

    fn default_permissions(&self) -> DefaultPermissions {
        self.1
    }
}

fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut rest = text;
    loop {
        let found = ["\n---\n", "\r\n---\r\n"]
            .iter()
            .filter_map(|sep| rest.find(sep).map(|i| (i, sep.len())))
            .min();
        match found {
            Some((i, len)) => {
                docs.push(&rest[..i]);
                rest = &rest[i + len..];
            }
            None => {
                docs.push(rest);
                return docs;
            }
        }
    }
}

/// Every expected error must be matched by at least one of ours; where the fixture names a
/// line and column in the workflow file, one of our errors must start there.
fn check_errors(path: &str, expected: &Json, ours: &[ci_config::Diagnostic]) -> Result<(), String> {
    let errors: Vec<_> = ours.iter().filter(|d| d.is_error()).collect();
    if errors.is_empty() {
        return Err("expected errors, found none".into());
    }
    let prefix = format!("{path} (Line: ");
    for message in expected
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["Message"].as_str())
    {
        let Some(rest) = message.strip_prefix(&prefix) else {
            continue;
        };
        let Some((line, rest)) = rest.split_once(", Col: ") else {
            continue;
        };
        let Some((col, _)) = rest.split_once("): ") else {
            continue;
        };
        let (line, col): (usize, usize) = (line.parse().unwrap_or(0), col.parse().unwrap_or(0));
        // Expression errors are located at the offending token, where GitHub names the start
        // of the value; for those the message itself must match.
        let text = message.split_once("): ").map_or(message, |(_, t)| t);
        let same_message =
            |d: &&&ci_config::Diagnostic| d.code.starts_with("expression") && d.message == text;
        if !errors
            .iter()
            .any(|d| (d.line() == line && d.column() == col) || same_message(&d))
        {
            return Err(format!(
                "no error at {line}:{col} (expected \"{message}\"); ours: {}",
                errors
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    }
    Ok(())
}

fn compare_jobs(
    expected: &Json,
    ours: Option<&indexmap::IndexMap<String, Job>>,
) -> Result<(), String> {
    let ours = ours.ok_or("no workflow read")?;
    let expected = expected.as_array().ok_or("expected jobs array")?;
    if expected.len() != ours.len() {
        return Err(format!(
            "expected {} jobs, read {}",
            expected.len(),
            ours.len()
        ));
    }
    for (want, job) in expected.iter().zip(ours.values()) {
        let id = &job.id;
        let checks: [(&str, Json, Json); 6] = [
            ("id", normalize(&want["id"]), json!(job.id)),
            ("name", normalize(&want["name"]), template_token(&job.name)),
            (
                "needs",
                want.get("needs").map_or(json!([]), normalize),
                json!(job.needs.iter().map(|n| &n.job).collect::<Vec<_>>()),
            ),
            (
                "if",
                want["if"]["expr"].clone(),
                json!(job.condition.effective),
            ),
            ("runs-on", labels(&want["runs-on"]), runs_on(job)),
            (
                "strategy",
                normalize(want.get("strategy").unwrap_or(&Json::Null)),
                job.strategy.as_deref().map_or(Json::Null, strategy_token),
            ),
        ];
        for (what, want, got) in checks {
            if want != got {
                return Err(format!("job {id}: {what}: expected {want}, read {got}"));
            }
        }
        let want_steps: Vec<&Json> = want["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| &s["id"])
            .collect();
        let got_steps: Vec<Json> = job.steps.iter().map(|s| json!(s.id)).collect();
        if want_steps.into_iter().cloned().collect::<Vec<_>>() != got_steps {
            return Err(format!(
                "job {id}: step ids: expected {}, read {got_steps:?}",
                want["steps"]
            ));
        }
        // Steps without `if` in the expectation (wait, cancel) are not compared.
        let pairs = want["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(&job.steps);
        let (want_step_ifs, got_step_ifs): (Vec<Json>, Vec<Json>) = pairs
            .filter(|(w, _)| !w["if"].is_null())
            .map(|(w, s)| (w["if"]["expr"].clone(), json!(s.condition.effective)))
            .unzip();
        if want_step_ifs != got_step_ifs {
            return Err(format!(
                "job {id}: step ifs: expected {want_step_ifs:?}, read {got_step_ifs:?}"
            ));
        }
    }
    Ok(())
}

/// Template tokens with mappings as objects (key order is not compared) and positions dropped.
fn normalize(token: &Json) -> Json {
    match token {
        Json::Object(o) => match o.get("type").and_then(Json::as_u64) {
            Some(0) => o["lit"].clone(),
            Some(1) => Json::Array(
                o["seq"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(normalize)
                    .collect(),
            ),
            Some(2) => Json::Object(
                o["map"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        (
                            normalize(&e["Key"]).as_str().unwrap_or_default().to_owned(),
                            normalize(&e["Value"]),
                        )
                    })
                    .collect(),
            ),
            Some(3) => json!({"expr": o["expr"]}),
            Some(5) => o["bool"].clone(),
            Some(6) => normalize(&o["num"]),
            Some(7) => Json::Null,
            _ => token.clone(),
        },
        Json::Number(n) => json!(n.as_f64().map(|f| if f == 0.0 { 0.0 } else { f })),
        Json::Array(items) => Json::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn template_token(t: &Template) -> Json {
    match t.to_expression() {
        Some(expr) => json!({ "expr": expr }),
        None => json!(t.raw),
    }
}

fn node_token(node: &Node) -> Json {
    match &node.value {
        Value::String(s) => {
            match Template::parse(s, node.span, &ci_config::span::Source::new("")) {
                Ok(t) => template_token(&t),
                Err(_) => json!(s),
            }
        }
        Value::Int(i) => json!(*i as f64),
        // The reader writes non-finite numbers as strings and does not keep the sign of zero.
        Value::Float(f) if !f.is_finite() => json!(ci_config::yaml::format_float(*f)),
        Value::Float(f) => json!(if *f == 0.0 { 0.0 } else { *f }),
        Value::Seq(items) => Json::Array(items.iter().map(node_token).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), node_token(v)))
                .collect(),
        ),
        _ => node.to_json(),
    }
}

fn strategy_token(s: &Strategy) -> Json {
    let mut out = serde_json::Map::new();
    match &s.matrix {
        Some(Matrix::Static {
            vectors,
            include,
            exclude,
        }) => {
            let mut m: serde_json::Map<String, Json> = vectors
                .iter()
                .map(|(k, v)| (k.clone(), node_token(v)))
                .collect();
            if let Some(i) = include {
                m.insert("include".into(), node_token(i));
            }
            if let Some(e) = exclude {
                m.insert("exclude".into(), node_token(e));
            }
            out.insert("matrix".into(), Json::Object(m));
        }
        Some(Matrix::Expr(t)) => {
            out.insert("matrix".into(), template_token(t));
        }
        None => {}
    }
    if let Some(f) = &s.fail_fast {
        out.insert("fail-fast".into(), node_token(f));
    }
    if let Some(m) = &s.max_parallel {
        out.insert("max-parallel".into(), node_token(m));
    }
    Json::Object(out)
}

/// The labels (and group) of an expected runs-on token, flattened.
fn labels(token: &Json) -> Json {
    let mut out = Vec::new();
    fn walk(t: &Json, out: &mut Vec<Json>) {
        match normalize(t) {
            Json::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Json::Object(o) if !o.contains_key("expr") => {
                for key in ["group", "labels"] {
                    if let Some(v) = o.get(key) {
                        walk(v, out);
                    }
                }
            }
            Json::Null => {}
            other => out.push(other),
        }
    }
    walk(token, &mut out);
    Json::Array(out)
}

fn runs_on(job: &Job) -> Json {
    let group = job.runs_on.group.iter();
    Json::Array(
        group
            .chain(&job.runs_on.labels)
            .map(template_token)
            .collect(),
    )
}

#[test]
fn schema_tests_gitlab_ci() {
    let failures = schema_set("gitlab-ci", |name, src| {
        let parsed = ci_config::gitlab::parse_pipeline(name, src, &ci_config::gitlab::NoIncludes);
        for d in &parsed.diagnostics {
            println!("    {d}");
        }
        parsed.has_errors()
    });
    assert_eq!(failures, 0, "gitlab-ci schema tests regressed");
}
