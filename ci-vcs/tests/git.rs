//! Tests on real repositories made with the git CLI in temporary directories.

use std::path::Path;
use std::process::Command;

use ci_vcs::event::ZERO_SHA;
use ci_vcs::Repository;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// main: c1 (README, "docs/a file.md", "ünïcødé/ß.txt") → c2 (rename + edit) → merge of
/// `feature` (c3 adds src/lib.rs); tags `v1` (light, at c1) and `v2` (annotated, at merge).
fn repo() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.name", "Mona Lisa"]);
    git(d, &["config", "user.email", "mona@example.com"]);
    git(d, &["config", "commit.gpgsign", "false"]);
    write(d, "README", "hello\n");
    write(d, "docs/a file.md", "doc\n");
    write(d, "ünïcødé/ß.txt", "unicode\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "First commit\n\nWith a body"]);
    let c1 = git(d, &["rev-parse", "HEAD"]);
    git(d, &["tag", "v1"]);
    git(d, &["mv", "docs/a file.md", "docs/renamed file.md"]);
    write(d, "README", "hello again\n");
    git(d, &["commit", "-q", "-am", "Rename and edit"]);
    let c2 = git(d, &["rev-parse", "HEAD"]);
    git(d, &["checkout", "-q", "-b", "feature", &c1]);
    write(d, "src/lib.rs", "fn main() {}\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "Add lib"]);
    let c3 = git(d, &["rev-parse", "HEAD"]);
    git(d, &["checkout", "-q", "main"]);
    git(
        d,
        &["merge", "-q", "--no-ff", "-m", "Merge feature", "feature"],
    );
    let merge = git(d, &["rev-parse", "HEAD"]);
    git(d, &["tag", "-a", "v2", "-m", "Release 2"]);
    (dir, vec![c1, c2, c3, merge])
}

#[test]
fn head_branch_tags_and_refs() {
    let (dir, shas) = repo();
    let repo = Repository::open(dir.path().join("src")).expect("opens from a subdirectory");
    assert_eq!(repo.head().unwrap(), shas[3]);
    assert_eq!(repo.current_branch().unwrap().as_deref(), Some("main"));
    assert_eq!(repo.tags_at(&shas[3]).unwrap(), ["v2"]);
    assert_eq!(repo.tags_at(&shas[0]).unwrap(), ["v1"]);
    let refs = repo.refs().unwrap();
    assert_eq!(refs["refs/heads/feature"], shas[2]);
    assert_eq!(
        refs["refs/tags/v2"], shas[3],
        "annotated tags peel to their commit"
    );
    assert_eq!(repo.resolve("v1").unwrap(), shas[0]);
    assert!(Repository::open(std::env::temp_dir().join("definitely-not-a-repo-gantry")).is_err());
}

#[test]
fn commit_metadata() {
    let (dir, shas) = repo();
    let repo = Repository::open(dir.path()).unwrap();
    let c = repo.commit(&shas[0]).unwrap();
    assert_eq!(c.author_name, "Mona Lisa");
    assert_eq!(c.author_email, "mona@example.com");
    assert_eq!(c.message, "First commit\n\nWith a body");
    assert!(c.parents.is_empty());
    assert_eq!(
        repo.commit("HEAD").unwrap().parents,
        [shas[1].clone(), shas[2].clone()]
    );
}

#[test]
fn changed_paths_include_renames_spaces_and_unicode() {
    let (dir, shas) = repo();
    let repo = Repository::open(dir.path()).unwrap();
    assert_eq!(
        repo.changed_paths(&shas[0], &shas[1]).unwrap(),
        ["README", "docs/a file.md", "docs/renamed file.md"]
    );
    assert_eq!(
        repo.changed_paths(&shas[1], &shas[3]).unwrap(),
        ["src/lib.rs"]
    );
    assert_eq!(
        repo.changed_paths(ZERO_SHA, &shas[0]).unwrap(),
        ["README", "docs/a file.md", "ünïcødé/ß.txt"]
    );
    assert!(repo
        .files("HEAD")
        .unwrap()
        .contains(&"ünïcødé/ß.txt".to_owned()));
}

#[test]
fn checkout_into_a_workspace_and_remove_it() {
    let (dir, shas) = repo();
    let repo = Repository::open(dir.path()).unwrap();
    let ws = tempfile::tempdir().unwrap();
    let dest = ws.path().join("job");
    repo.checkout(&shas[2], &dest).unwrap();
    assert!(dest.join("src/lib.rs").is_file());
    assert!(!dest.join("docs/renamed file.md").exists());
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), shas[2]);
    repo.remove_checkout(&dest).unwrap();
    assert!(!dest.exists());
    repo.remove_checkout(&dest).unwrap();
}

#[test]
fn shallow_clone_at_a_commit() {
    let (dir, shas) = repo();
    let repo = Repository::open(dir.path()).unwrap();
    let ws = tempfile::tempdir().unwrap();
    let dest = ws.path().join("clone");
    repo.clone_at(&shas[1], &dest, 1).unwrap();
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), shas[1]);
    assert_eq!(git(&dest, &["rev-list", "--count", "HEAD"]), "1");
    let full = ws.path().join("full");
    repo.clone_at("HEAD", &full, 0).unwrap();
    assert_eq!(git(&full, &["rev-list", "--count", "HEAD"]), "4");
}

#[test]
fn local_push_event_from_head() {
    let (dir, shas) = repo();
    git(
        dir.path(),
        &["remote", "add", "origin", "git@github.com:octo/app.git"],
    );
    let repo = Repository::open(dir.path()).unwrap();
    let event = repo.local_push().unwrap();
    assert_eq!(event.git_ref, "refs/heads/main");
    assert_eq!(event.sha, shas[3]);
    assert_eq!(event.before.as_deref(), Some(shas[1].as_str()));
    assert_eq!(event.actor, "Mona Lisa");
    assert_eq!(event.repository.full_name, "octo/app");
    let ctx = event.github_context(&ci_vcs::RunInfo::default());
    assert_eq!(ctx["event"]["head_commit"]["message"], "Merge feature");
    // Detached at a tag: the tag is the ref.
    git(dir.path(), &["checkout", "-q", "v1"]);
    assert_eq!(repo.local_push().unwrap().git_ref, "refs/tags/v1");
}

#[test]
fn local_dispatch_and_schedule_events() {
    let (dir, _) = repo();
    let repo = Repository::open(dir.path()).unwrap();
    let mut inputs = indexmap::IndexMap::new();
    inputs.insert("version".to_owned(), serde_json::json!("1.2"));
    let dispatch = repo.local_dispatch(inputs).unwrap();
    assert_eq!(dispatch.name(), "workflow_dispatch");
    let ctx = dispatch.github_context(&ci_vcs::RunInfo::default());
    assert_eq!(ctx["event"]["inputs"]["version"], "1.2");
    assert_eq!(ctx["ref"], "refs/heads/main");
    let schedule = repo.local_schedule("0 3 * * *").unwrap();
    assert_eq!(
        schedule.gitlab_variables(&Default::default())["CI_PIPELINE_SOURCE"],
        "schedule"
    );
    assert_eq!(
        schedule.github_context(&Default::default())["event"]["schedule"],
        "0 3 * * *"
    );
}
