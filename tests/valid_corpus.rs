//! No false errors: realistic workflows and actions (under `tests/valid/`) must lint clean.
//! Users drop a linter the first time it rejects a file GitHub accepts.

use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/valid")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

fn assert_clean(files: &[PathBuf], parse: impl Fn(&str, &str) -> Vec<ci_config::Diagnostic>) {
    let mut dirty = Vec::new();
    for path in files {
        let src = std::fs::read_to_string(path).expect("readable file");
        let name = path.file_name().expect("a file name").to_string_lossy();
        for d in parse(&name, &src) {
            dirty.push(format!("{d}"));
        }
    }
    assert!(
        dirty.is_empty(),
        "valid files produced diagnostics:\n{}",
        dirty.join("\n")
    );
}

#[test]
fn realistic_workflows_lint_clean() {
    let files = files("workflows");
    assert!(files.len() >= 25, "the corpus shrank");
    assert_clean(&files, |name, src| {
        let parsed = ci_config::github::parse_workflow(&format!(".github/workflows/{name}"), src);
        assert!(parsed.value.is_some(), "{name}: no model");
        parsed.diagnostics
    });
}

#[test]
fn realistic_actions_lint_clean() {
    let files = files("actions");
    assert!(files.len() >= 4, "the corpus shrank");
    assert_clean(&files, |name, src| {
        ci_config::github::parse_action(name, src).diagnostics
    });
}

#[test]
fn realistic_circleci_configs_lint_clean() {
    let files = files("circleci");
    assert!(files.len() >= 12, "the corpus shrank");
    assert_clean(&files, |name, src| {
        let options = ci_config::LoadOptions {
            dialect: Some(ci_config::Dialect::CircleCi),
            ..ci_config::LoadOptions::default()
        };
        let parsed = ci_config::load(name, src, &options);
        assert!(parsed.value.is_some(), "{name}: no model");
        // Notes on what runs differently here (macOS on the host, no remote Docker) are not
        // mistakes in the file.
        parsed
            .diagnostics
            .into_iter()
            .filter(|d| d.code != "unsupported")
            .collect()
    });
}
