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

/// How [`to_svg`] draws a plan: each instance's status (`success`, `failure`, `running`,
/// `queued`, `skipped`, `cancelled`; missing: `pending`) and durations for the critical path.
#[derive(Debug, Clone, Default)]
pub struct SvgStyle {
    /// Instance id → status name (a CSS class `status-NAME` on the node).
    pub statuses: HashMap<String, String>,
    /// Instance id → duration (any unit); without any, every job counts 1.
    pub durations: HashMap<String, f64>,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The columns of a layered drawing: each instance's column is the length of the longest
/// chain of needs before it; within a column, instances are ordered by the mean row of what
/// they need (one sweep), so edges cross less.
fn layers(plan: &Plan) -> Vec<Vec<usize>> {
    let graph = plan.graph();
    let order: Vec<usize> = match toposort(&graph, None) {
        Ok(o) => o.into_iter().map(|n| graph[n]).collect(),
        Err(_) => (0..plan.instances.len()).collect(),
    };
    let mut column = vec![0usize; plan.instances.len()];
    for &i in &order {
        column[i] = plan.instances[i]
            .needs
            .iter()
            .map(|&n| column[n] + 1)
            .max()
            .unwrap_or(0);
    }
    let width = column.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); width];
    for (i, &c) in column.iter().enumerate() {
        layers[c].push(i);
    }
    let mut row = vec![0f64; plan.instances.len()];
    for layer in &mut layers {
        let key = |i: &usize| {
            let needs = &plan.instances[*i].needs;
            if needs.is_empty() {
                *i as f64
            } else {
                needs.iter().map(|&n| row[n]).sum::<f64>() / needs.len() as f64
            }
        };
        layer.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.cmp(b)));
        for (r, &i) in layer.iter().enumerate() {
            row[i] = r as f64;
        }
    }
    layers
}

/// The plan as a self-contained SVG picture, laid out left to right in columns of
/// dependencies: nodes coloured by status (classes `job status-…`, `data-job` = instance
/// id, so that a page can restyle them live), edges as curves, the critical path drawn
/// thicker (class `critical`).
pub fn to_svg(plan: &Plan, style: &SvgStyle) -> String {
    const W: f64 = 170.0;
    const H: f64 = 34.0;
    const GAP_X: f64 = 60.0;
    const GAP_Y: f64 = 16.0;
    const PAD: f64 = 12.0;
    let layers = layers(plan);
    let mut pos = vec![(0f64, 0f64); plan.instances.len()];
    for (c, layer) in layers.iter().enumerate() {
        for (r, &i) in layer.iter().enumerate() {
            pos[i] = (PAD + c as f64 * (W + GAP_X), PAD + r as f64 * (H + GAP_Y));
        }
    }
    let rows = layers.iter().map(Vec::len).max().unwrap_or(0);
    let width =
        PAD * 2.0 + layers.len() as f64 * (W + GAP_X) - if layers.is_empty() { 0.0 } else { GAP_X };
    let height = PAD * 2.0 + rows as f64 * (H + GAP_Y) - if rows == 0 { 0.0 } else { GAP_Y };
    // Jobs without a duration (not run yet) count a little, so that the longest chain goes
    // on through them.
    let unknown = if style.durations.is_empty() {
        1.0
    } else {
        1e-6
    };
    let durations: HashMap<String, f64> = plan
        .instances
        .iter()
        .map(|i| {
            let d = style.durations.get(&i.id).copied().unwrap_or(unknown);
            (i.id.clone(), d)
        })
        .collect();
    let (critical, _) = critical_path(plan, &durations);
    let on_path = |a: usize, b: usize| critical.windows(2).any(|w| w[0] == a && w[1] == b);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="dag" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="system-ui, sans-serif" font-size="13">"##
    );
    out.push_str(concat!(
        "<style>",
        ".edge{fill:none;stroke:#9aa4b2;stroke-width:1.5}",
        ".edge.critical{stroke:#334155;stroke-width:3}",
        ".job rect{fill:#f1f5f9;stroke:#94a3b8;stroke-width:1.5}",
        ".job.critical rect{stroke-width:3}",
        ".job text{fill:#0f172a}",
        ".status-success rect{fill:#dcfce7;stroke:#16a34a}",
        ".status-failure rect{fill:#fee2e2;stroke:#dc2626}",
        ".status-running rect{fill:#dbeafe;stroke:#2563eb}",
        ".status-queued rect{fill:#fef9c3;stroke:#ca8a04}",
        ".status-cancelled rect{fill:#e5e7eb;stroke:#4b5563}",
        ".status-skipped rect{fill:#f8fafc;stroke:#cbd5e1}",
        ".status-skipped text{fill:#64748b}",
        "</style>\n"
    ));
    for (i, inst) in plan.instances.iter().enumerate() {
        for &n in &inst.needs {
            let (x1, y1) = (pos[n].0 + W, pos[n].1 + H / 2.0);
            let (x2, y2) = (pos[i].0, pos[i].1 + H / 2.0);
            let mid = (x1 + x2) / 2.0;
            let class = if on_path(n, i) {
                "edge critical"
            } else {
                "edge"
            };
            let _ = writeln!(
                out,
                r#"<path class="{class}" d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}"/>"#
            );
        }
    }
    for (i, inst) in plan.instances.iter().enumerate() {
        let status = style
            .statuses
            .get(&inst.id)
            .map_or("pending", String::as_str);
        let status: String = status
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let crit = if critical.contains(&i) {
            " critical"
        } else {
            ""
        };
        let (x, y) = pos[i];
        let mut label: String = inst.name.chars().take(22).collect();
        if inst.name.chars().count() > 22 {
            label.push('…');
        }
        let _ = writeln!(
            out,
            r#"<g class="job status-{status}{crit}" data-job="{id}"><title>{title}: {status}</title><rect x="{x:.1}" y="{y:.1}" width="{W}" height="{H}" rx="6"/><text x="{tx:.1}" y="{ty:.1}">{label}</text></g>"#,
            id = xml_escape(&inst.id),
            title = xml_escape(&inst.name),
            label = xml_escape(&label),
            tx = x + 10.0,
            ty = y + H / 2.0 + 4.5,
        );
    }
    out.push_str("</svg>\n");
    out
}
