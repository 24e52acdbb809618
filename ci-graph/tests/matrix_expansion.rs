//! Data-driven matrix expansion tests (`tests/data/matrix.yml`): each case's combinations and
//! instance names, through the whole pipeline (YAML → workflow → plan).

use ci_config::yaml::{self, Node};
use ci_graph::{Plan, RunFacts};

fn workflow_with_matrix(matrix: &str) -> String {
    let body: String = if matrix.trim_start().starts_with("${{") {
        format!("      matrix: '{}'\n", matrix.trim().replace('\'', "''"))
    } else {
        let indented: String = matrix.lines().map(|l| format!("        {l}\n")).collect();
        format!("      matrix:\n{indented}")
    };
    format!("on: push\njobs:\n  build:\n    runs-on: x\n    strategy:\n{body}    steps: [{{run: make}}]\n")
}

fn text(node: &Node, key: &str) -> String {
    node.get(key)
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn matrix_cases_expand_as_github_documents() {
    let data = include_str!("data/matrix.yml");
    let (docs, diags) = yaml::load("matrix.yml", data, &yaml::LoadOptions::default());
    assert!(diags.is_empty(), "{diags:?}");
    let cases = docs[0].as_seq().expect("a list of cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = text(case, "name");
        let src = workflow_with_matrix(&text(case, "matrix"));
        let parsed = ci_config::github::parse_workflow(".github/workflows/m.yml", &src);
        assert!(
            !parsed.has_errors(),
            "{name}: {:?}\n{src}",
            parsed.diagnostics
        );
        let workflow = parsed.value.expect("a workflow");
        let plan = match Plan::new(&workflow, &RunFacts::default()) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e:?}"));
                continue;
            }
        };
        let got: Vec<serde_json::Value> = plan
            .instances
            .iter()
            .map(|i| {
                let m = i.matrix.clone().unwrap_or_default();
                ci_config::expr::Value::Object(std::sync::Arc::new(m)).to_json()
            })
            .collect();
        let want = case.get("expect").expect("expect").to_json();
        if serde_json::Value::Array(got.clone()) != want {
            failures.push(format!(
                "{name}:\n  expected {want}\n  got      {}",
                serde_json::Value::Array(got)
            ));
        }
        if let Some(names) = case.get("names") {
            let got: Vec<&str> = plan.instances.iter().map(|i| i.name.as_str()).collect();
            let want: Vec<String> = names
                .as_seq()
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n.scalar_text())
                .collect();
            if got != want {
                failures.push(format!("{name}: names {got:?}, expected {want:?}"));
            }
        }
    }
    println!(
        "matrix cases: {}/{} pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
