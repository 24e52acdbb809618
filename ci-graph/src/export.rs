//! The plan as DOT, Mermaid or JSON, and its critical path.

use std::collections::HashMap;
use std::fmt::Write as _;

use petgraph::algo::toposort;

use crate::plan::Plan;

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT: one node per instance (clustered by stage when there are stages).
pub fn to_dot(plan: &Plan) -> String {
    let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n");
    let node = |i: usize| format!("n{i}");
    if plan.stages.is_empty() {
        for (i, inst) in plan.instances.iter().enumerate() {
            let _ = writeln!(out, "  {} [label=\"{}\"];", node(i), dot_escape(&inst.name));
        }
    } else {
        for (s, stage) in plan.stages.iter().enumerate() {
            let _ = writeln!(
                out,
                "  subgraph cluster_{s} {{\n    label=\"{}\";",
                dot_escape(stage)
            );
            for (i, inst) in plan
                .instances
                .iter()
                .enumerate()
                .filter(|(_, x)| x.stage == s)
            {
                let _ = writeln!(
                    out,
                    "    {} [label=\"{}\"];",
                    node(i),
                    dot_escape(&inst.name)
                );
            }
            out.push_str("  }\n");
        }
    }
    for (i, inst) in plan.instances.iter().enumerate() {
        for &n in &inst.needs {
            let _ = writeln!(out, "  {} -> {};", node(n), node(i));
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// A Mermaid flowchart.
pub fn to_mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, inst) in plan.instances.iter().enumerate() {
        let _ = writeln!(out, "  n{i}[\"{}\"]", mermaid_escape(&inst.name));
    }
    for (i, inst) in plan.instances.iter().enumerate() {
        for &n in &inst.needs {
            let _ = writeln!(out, "  n{n} --> n{i}");
        }
    }
    out
}

/// JSON: `{"stages": [...], "jobs": [{"id", "job", "name", "stage", "needs", "matrix"}]}`.
pub fn to_json(plan: &Plan) -> serde_json::Value {
    let jobs: Vec<serde_json::Value> = plan
        .instances
        .iter()
        .map(|inst| {
            serde_json::json!({
                "id": inst.id,
                "job": inst.job,
                "name": inst.name,
                "stage": plan.stages.get(inst.stage),
                "needs": inst.needs.iter().map(|&n| plan.instances[n].id.as_str()).collect::<Vec<_>>(),
                "matrix": inst.matrix.as_ref().map(|m| {
                    ci_config::expr::Value::Object(std::sync::Arc::new(m.clone())).to_json()
                }),
                "condition": inst.condition,
                "deferred_matrix": inst.deferred_matrix.as_ref().map(|m| match m {
                    ci_config::model::Matrix::Expr(t) => t.raw.clone(),
                    _ => "a matrix that reads needs".to_owned(),
                }),
            })
        })
        .collect();
    serde_json::json!({ "stages": plan.stages, "jobs": jobs })
}

/// The longest chain of instances by duration (instance id → duration, any unit; missing
/// ones count 0): the instances in order, and the total.
pub fn critical_path(plan: &Plan, durations: &HashMap<String, f64>) -> (Vec<usize>, f64) {
    let graph = plan.graph();
    let Ok(order) = toposort(&graph, None) else {
        return (Vec::new(), 0.0);
    };
    let n = plan.instances.len();
    let mut best = vec![0.0f64; n];
    let mut prev: Vec<Option<usize>> = vec![None; n];
    for node in order {
        let i = graph[node];
        let own = durations.get(&plan.instances[i].id).copied().unwrap_or(0.0);
        let (start, from) = plan.instances[i]
            .needs
            .iter()
            .map(|&d| (best[d], Some(d)))
            .fold((0.0, None), |acc, x| if x.0 > acc.0 { x } else { acc });
        best[i] = start + own;
        prev[i] = from;
    }
    let Some(end) = (0..n).max_by(|&a, &b| best[a].total_cmp(&best[b])) else {
        return (Vec::new(), 0.0);
    };
    let mut path = vec![end];
    while let Some(p) = prev[*path.last().expect("path starts non-empty")] {
        path.push(p);
    }
    path.reverse();
    (path, best[end])
}
