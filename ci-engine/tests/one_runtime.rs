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
