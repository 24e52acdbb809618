//! Snapshots of the plan exports, and the critical path.

use std::collections::HashMap;

use ci_graph::export::{critical_path, to_dot, to_json, to_mermaid};
use ci_graph::{Plan, RunFacts};

const WORKFLOW: &str = r#"on: push
jobs:
  lint:
    runs-on: x
    steps: [{run: make lint}]
  build:
    name: "Build \"release\""
    runs-on: x
    strategy:
      matrix:
        os: [linux, macos]
    steps: [{run: make}]
  test:
    needs: [lint, build]
    runs-on: x
    steps: [{run: make test}]
  deploy:
    needs: test
    runs-on: x
    steps: [{run: make deploy}]
"#;

fn plan() -> Plan {
    let workflow = ci_config::github::parse_workflow("ci.yml", WORKFLOW)
        .value
        .expect("valid");
    Plan::new(&workflow, &RunFacts::default()).expect("plans")
}

#[test]
fn dot_export() {
    insta::assert_snapshot!(to_dot(&plan()));
}

#[test]
fn mermaid_export() {
    insta::assert_snapshot!(to_mermaid(&plan()));
}

#[test]
fn json_export() {
    insta::assert_snapshot!(serde_json::to_string_pretty(&to_json(&plan())).expect("serialises"));
}

#[test]
fn dot_export_clusters_stages() {
    let mut workflow = ci_config::github::parse_workflow("ci.yml", WORKFLOW)
        .value
        .expect("valid");
    workflow.stages = vec!["check".into(), "build".into()];
    workflow.jobs["lint"].stage = Some("check".into());
    for id in ["build", "test", "deploy"] {
        workflow.jobs[id].stage = Some("build".into());
    }
    let plan = Plan::new(&workflow, &RunFacts::default()).expect("plans");
    insta::assert_snapshot!(to_dot(&plan));
}

#[test]
fn critical_path_follows_the_longest_chain() {
    let plan = plan();
    let durations: HashMap<String, f64> = [
        ("lint", 1.0),
        ("build (linux)", 5.0),
        ("build (macos)", 9.0),
        ("test", 3.0),
        ("deploy", 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (path, total) = critical_path(&plan, &durations);
    let ids: Vec<&str> = path
        .iter()
        .map(|&i| plan.instances[i].id.as_str())
        .collect();
    assert_eq!(ids, ["build (macos)", "test", "deploy"]);
    assert_eq!(total, 14.0);
}
