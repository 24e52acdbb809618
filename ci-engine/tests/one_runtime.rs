//! The engine has one job runtime for every dialect: no module named after a dialect, and
//! none of the runner environment tables (those live in `ci-vcs`, chosen by dialect).

use std::path::Path;

/// Variables only the per-dialect tables of `ci_vcs::jobenv` and `Event::gitlab_variables`
/// may define.
const TABLE_VARIABLES: &[&str] = &[
    "\"GITHUB_REPOSITORY\"",
    "\"GITHUB_SHA\"",
    "\"GITHUB_WORKSPACE\"",
    "\"RUNNER_OS\"",
    "\"RUNNER_TEMP\"",
    "\"CI_PROJECT_DIR\"",
    "\"CI_COMMIT_SHA\"",
    "\"CI_JOB_NAME\"",
    "\"CI_NODE_INDEX\"",
    "\"CI_PIPELINE_ID\"",
];

#[test]
fn no_dialect_module_and_no_dialect_variable_table_in_the_engine() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut todo = vec![src];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 5, "found the sources: {files:?}");
    for file in &files {
        let name = file
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .to_lowercase();
        for dialect in ["github", "gitlab", "circleci"] {
            assert!(
                !name.contains(dialect),
                "{}: the engine has no dialect module",
                file.display()
            );
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        for var in TABLE_VARIABLES {
            assert!(
                !text.contains(var),
                "{} defines {var}: runner tables live in ci-vcs",
                file.display()
            );
        }
    }
}

/// Top-level modules of a crate's `src` and the modules each one names (`crate::x`,
/// `crate::{x, …}`, `super::x` in a nested file), test modules left out.
fn module_graph(src: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut graph: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut todo = vec![src.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let top = rel
                .components()
                .next()
                .expect("a component")
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let nested = rel.components().count() > 1;
            let mut names = Vec::new();
            for (prefix, allowed) in [("crate::", true), ("super::", nested)] {
                if !allowed {
                    continue;
                }
                for part in text.split(prefix).skip(1) {
                    let list = part
                        .strip_prefix('{')
                        .map_or(part, |p| p.split('}').next().unwrap_or(""));
                    for item in list.split(',') {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                            .collect();
                        if !name.is_empty() && name != top {
                            names.push(name);
                        }
                        if !part.starts_with('{') {
                            break;
                        }
                    }
                }
            }
            graph.entry(top).or_default().extend(names);
        }
    }
    let modules: Vec<String> = graph.keys().cloned().collect();
    for names in graph.values_mut() {
        names.retain(|n| modules.contains(n));
        names.sort();
        names.dedup();
    }
    graph
}

/// A cycle of the graph, if there is one.
fn find_cycle(graph: &std::collections::BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = Default::default();
    graph
        .keys()
        .find_map(|k| visit(k, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_another_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in [root.to_path_buf(), root.join("../ci-config")] {
        let graph = module_graph(&krate.join("src"));
        assert!(graph.len() > 5, "read the modules of {}", krate.display());
        assert_eq!(
            find_cycle(&graph),
            None,
            "{}: modules import each other in a circle: {graph:#?}",
            krate.display()
        );
    }
}
