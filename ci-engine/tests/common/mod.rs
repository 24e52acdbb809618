//! Helpers shared by the engine's tests.

use std::path::Path;
use std::process::Command;

/// A temporary git repository holding `files`, committed.
pub fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("written");
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "first"]);
    dir
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@e.st"])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

/// Follows a run to its end: its summary and its log lines as `job: line`.
#[allow(dead_code)] // not every test binary follows a run
pub async fn lines_of(mut handle: ci_engine::RunHandle) -> (ci_engine::RunSummary, Vec<String>) {
    let mut lines = Vec::new();
    while let Some(e) = handle.next_event().await {
        if let ci_engine::RunEvent::Log { job, line, .. } = e {
            lines.push(format!("{job}: {line}"));
        }
    }
    (handle.wait().await, lines)
}
