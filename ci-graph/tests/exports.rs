//! Snapshots of the plan exports, and the critical path.

use std::collections::HashMap;

use ci_graph::export::{critical_path, to_dot, to_json, to_mermaid, to_svg, SvgStyle};
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

/// The picture: columns by dependency depth, statuses as classes, the critical path marked,
/// names escaped.
#[test]
fn svg_export() {
    let plan = plan();
    let mut style = SvgStyle::default();
    style.statuses.insert("lint".into(), "success".into());
    style.statuses.insert("test".into(), "running".into());
    style.durations.insert("build (linux)".into(), 5.0);
    style.durations.insert("lint".into(), 1.0);
    style.durations.insert("test".into(), 1.0);
    let svg = to_svg(&plan, &style);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(
        svg.contains(r#"class="job status-success" data-job="lint""#),
        "{svg}"
    );
    assert!(
        svg.contains(r#"class="job status-running critical" data-job="test""#),
        "{svg}"
    );
    assert!(
        svg.contains(r#"class="job status-pending critical" data-job="build (linux)""#),
        "{svg}"
    );
    assert!(
        svg.contains(r#"class="job status-pending" data-job="build (macos)""#),
        "{svg}"
    );
    assert!(
        svg.contains("Build &quot;release&quot;"),
        "names are escaped: {svg}"
    );
    // Three columns: lint/build → test → deploy; five nodes, four edges (two critical).
    assert_eq!(svg.matches("<g class=\"job").count(), 5);
    assert_eq!(svg.matches("<path class=\"edge").count(), 4);
    assert_eq!(svg.matches("<path class=\"edge critical").count(), 2);
    let x_of = |id: &str| -> f64 {
        let at = svg.find(&format!("data-job=\"{id}\"")).expect("node");
        let rect = &svg[at..];
        let x = &rect[rect.find("x=\"").expect("x") + 3..];
        x[..x.find('"').expect("end")].parse().expect("number")
    };
    assert_eq!(x_of("lint"), x_of("build (linux)"));
    assert!(x_of("test") > x_of("lint"));
    assert!(x_of("deploy") > x_of("test"));
    // A well-formed document: every element closed.
    assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
    assert!(svg.trim_end().ends_with("</svg>"));
}
