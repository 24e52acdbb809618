//! Data-driven end-to-end tests, one harness for every dialect: each folder under
//! `tests/<dialect>/` holds a CI file (`tests/gitlab/*/.gitlab-ci.yml`,
//! `tests/github/*/.github/workflows/ci.yml`, `tests/circleci/*/.circleci/config.yml`, plus any
//! files it needs) and `expect.yml` — the
//! exit code, every job's status and outputs, key log lines, lines that must not appear,
//! attempts, ordering, annotations, or the lint errors of an invalid file. Each folder becomes
//! a real git repository and runs through the `gantry` binary (host executor; Docker for
//! folders that say `docker: true`; bubblewrap for `bwrap: true`).

use std::io::Write as _;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

mod common;
use common::{bwrap_ready, docker_ready};
use serde_json::Value;

/// What `check` answers for a fixture that needs a service that is not here.
const SKIPPED: &str = "skipped";

/// The CI file of a fixture of `dialect`.
fn ci_file(dialect: &str) -> &'static str {
    match dialect {
        "github" => ".github/workflows/ci.yml",
        "circleci" => ".circleci/config.yml",
        _ => ".gitlab-ci.yml",
    }
}

fn fixtures(dialect: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dialect);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("expect.yml").is_file())
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("readable fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "expect.yml" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Process::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

fn load_expect(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("expect.yml");
    let (docs, diags) = ci_config::yaml::load(
        &path.display().to_string(),
        &text,
        &ci_config::yaml::LoadOptions::default(),
    );
    assert!(diags.is_empty(), "{}: {diags:?}", path.display());
    docs.first().map_or(Value::Null, |d| d.to_json())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The keys an `expect.yml` may hold: any other is a mistake that would silently check
/// nothing.
const EXPECT_KEYS: &[&str] = &[
    "exit",
    "jobs",
    "absent_jobs",
    "logs",
    "absent",
    "annotations",
    "attempts",
    "order",
    "finished_before",
    "stdout",
    "stderr",
    "min_seconds",
    "docker",
    "bwrap",
    "args",
    "lint_errors",
    "outputs",
    "file",
];

/// Checks one fixture; returns what is wrong.
fn check(fixture: &Path, file: &str) -> Vec<String> {
    let expect = load_expect(&fixture.join("expect.yml"));
    // A case may name its CI file (a file not named as its dialect's usually is).
    let file = expect["file"].as_str().unwrap_or(file).to_owned();
    let file = file.as_str();
    let unknown: Vec<&String> = expect
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !EXPECT_KEYS.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if !unknown.is_empty() {
        return vec![format!(
            "expect.yml has unknown key(s) {unknown:?} (known: {EXPECT_KEYS:?})"
        )];
    }
    if expect["docker"] == Value::Bool(true) && !docker_ready() {
        // docker_ready fails when CI=true; locally the skip is counted and reported.
        // Straight to stderr, not through the test harness's capture: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {}: dockerd not available",
            fixture.display()
        );
        return vec![SKIPPED.to_owned()];
    }
    if expect["bwrap"] == Value::Bool(true) && !bwrap_ready() {
        return vec![SKIPPED.to_owned()];
    }
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(fixture, dir.path());
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(
        dir.path(),
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e.st",
            "commit",
            "-qm",
            "fixture",
        ],
    );
    let mut problems = Vec::new();
    let want_exit = expect["exit"].as_i64().unwrap_or(0) as i32;

    if let Some(errors) = expect.get("lint_errors") {
        let out = common::gantry()
            .current_dir(dir.path())
            .args(["lint", file])
            .output()
            .expect("lint runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) {
            problems.push(format!(
                "lint exit {:?}, want 1:\n{text}",
                out.status.code()
            ));
        }
        for e in strings(errors) {
            if !text.contains(&e) {
                problems.push(format!("lint output lacks '{e}':\n{text}"));
            }
        }
    }

    let started = Instant::now();
    let out = common::gantry()
        .current_dir(dir.path())
        .args(["run", file, "--format", "json", "--state-dir"])
        .arg(dir.path().join(".state"))
        .args(strings(&expect["args"]))
        .timeout(Duration::from_secs(120))
        .output()
        .expect("gantry runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let context = || format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    if out.status.code() != Some(want_exit) {
        problems.push(format!(
            "exit {:?}, want {want_exit}\n{}",
            out.status.code(),
            context()
        ));
    }
    let finished = |job: &str| {
        events
            .iter()
            .rposition(|e| e["event"] == "job_finished" && e["job"] == job)
    };
    let started_at = |job: &str| {
        events
            .iter()
            .position(|e| e["event"] == "job_started" && e["job"] == job)
    };
    if let Some(outputs) = expect["outputs"].as_object() {
        for (job, want) in outputs {
            let got = finished(job).map(|i| events[i]["outputs"].clone());
            for (k, v) in want.as_object().into_iter().flatten() {
                let have = got.as_ref().map(|o| o[k].clone());
                if have.as_ref() != Some(v) {
                    problems.push(format!("job '{job}': output {k} is {have:?}, want {v}"));
                }
            }
        }
    }
    if let Some(jobs) = expect["jobs"].as_object() {
        for (job, want) in jobs {
            let got = finished(job).map(|i| events[i]["status"].clone());
            if got.as_ref().and_then(Value::as_str) != want.as_str() {
                problems.push(format!("job '{job}': {got:?}, want {want}"));
            }
        }
    }
    for job in strings(&expect["absent_jobs"]) {
        if events.iter().any(|e| e["job"] == job.as_str()) {
            problems.push(format!("job '{job}' should not be in the pipeline"));
        }
    }
    let lines_of = |job: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "log" && e["job"] == job)
            .filter_map(|e| e["line"].as_str().map(str::to_owned))
            .collect()
    };
    if let Some(logs) = expect["logs"].as_object() {
        for (job, wants) in logs {
            let lines = lines_of(job);
            for want in strings(wants) {
                if !lines.iter().any(|l| l.contains(&want)) {
                    problems.push(format!("job '{job}': no line with '{want}' in {lines:#?}"));
                }
            }
        }
    }
    if let Some(absent) = expect["absent"].as_object() {
        for (job, wants) in absent {
            let lines = lines_of(job);
            for want in strings(wants) {
                if lines
                    .iter()
                    .any(|l| l.contains(&want) && !l.starts_with("$ "))
                {
                    problems.push(format!("job '{job}': unexpected line with '{want}'"));
                }
            }
        }
    }
    if !expect["annotations"].is_null() && !expect["annotations"].is_object() {
        problems.push("annotations: expected a map of job → messages".into());
    }
    if let Some(ann) = expect["annotations"].as_object() {
        for (job, wants) in ann {
            for want in strings(wants) {
                let found = events.iter().any(|e| {
                    e["event"] == "annotation"
                        && e["job"] == job.as_str()
                        && e["message"].as_str().is_some_and(|m| m.contains(&want))
                });
                if !found {
                    problems.push(format!("job '{job}': no annotation with '{want}'"));
                }
            }
        }
    }
    if let Some(attempts) = expect["attempts"].as_object() {
        for (job, want) in attempts {
            let got = events
                .iter()
                .filter(|e| e["event"] == "job_started" && e["job"] == job.as_str())
                .count() as i64;
            if Some(got) != want.as_i64() {
                problems.push(format!("job '{job}': {got} attempt(s), want {want}"));
            }
        }
    }
    let order = strings(&expect["order"]);
    for pair in order.windows(2) {
        match (finished(&pair[0]), started_at(&pair[1])) {
            (Some(f), Some(s)) if f < s => {}
            _ => problems.push(format!(
                "'{}' should finish before '{}' starts",
                pair[0], pair[1]
            )),
        }
    }
    if let Some(pairs) = expect["finished_before"].as_array() {
        for p in pairs {
            let p = strings(p);
            match (finished(&p[0]), finished(&p[1])) {
                (Some(a), Some(b)) if a < b => {}
                _ => problems.push(format!("'{}' should finish before '{}'", p[0], p[1])),
            }
        }
    }
    for want in strings(&expect["stderr"]) {
        if !stderr.contains(&want) {
            problems.push(format!("stderr lacks '{want}'\n{}", context()));
        }
    }
    for want in strings(&expect["stdout"]) {
        if !stdout.contains(&want) {
            problems.push(format!("stdout lacks '{want}'\n{}", context()));
        }
    }
    if let Some(min) = expect["min_seconds"].as_f64() {
        if elapsed.as_secs_f64() < min {
            problems.push(format!("took {elapsed:?}, want at least {min} s"));
        }
    }
    problems
}

/// Runs every fixture of a dialect (`GANTRY_FIXTURE` narrows them by name).
fn run_fixtures(dialect: &str, at_least: usize) {
    let all = fixtures(dialect);
    assert!(
        all.len() >= at_least,
        "at least {at_least} {dialect} fixtures, found {}",
        all.len()
    );
    let only = std::env::var("GANTRY_FIXTURE").ok();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    let mut ran = 0;
    for fixture in &all {
        let name = fixture
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        ran += 1;
        let problems = check(fixture, ci_file(dialect));
        if problems == [SKIPPED] {
            skipped.push(name);
            continue;
        }
        if !problems.is_empty() {
            failed.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    println!(
        "{dialect} fixtures: {}/{ran} passed, {} skipped {skipped:?}",
        ran - failed.len() - skipped.len(),
        skipped.len()
    );
    assert!(
        failed.is_empty(),
        "{} fixture(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn gitlab_fixtures() {
    run_fixtures("gitlab", 60);
}

#[test]
fn github_fixtures() {
    run_fixtures("github", 4);
}

#[test]
fn circleci_fixtures() {
    run_fixtures("circleci", 55);
}

#[test]
fn show_merged_prints_the_full_configuration() {
    let text = common::stdout_in(
        &common::test_dir("tests/gitlab/extends-several-parents"),
        &["lint", "--show-merged", ".gitlab-ci.yml"],
    );
    // The job got its parents' keys, the later parent winning.
    let job = text.split("\njob:\n").nth(1).expect("the job is shown");
    assert!(
        job.contains("X: x") && job.contains("SHARED: from-script"),
        "{text}"
    );
    assert!(!job.contains("extends"), "{text}");
}

#[test]
fn list_shows_stages() {
    let text = common::stdout_in(
        &common::test_dir("tests/gitlab/stages-default"),
        &["list", ".gitlab-ci.yml"],
    );
    assert!(
        text.contains("stage: build") && text.contains("stage: deploy"),
        "{text}"
    );
}
