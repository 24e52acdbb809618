//! End-to-end tests of the `gantry` binary: output shapes and exit codes of the CLI contract.

use serde_json::Value;

mod common;
use common::{gantry, stdout_in, test_dir};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create dirs");
    std::fs::write(&path, text).expect("write file");
    path
}

/// Runs `gantry lint --format json ARGS` in `cwd`, expects `code`, returns the parsed output.
fn lint_json(cwd: &std::path::Path, args: &[&std::ffi::OsStr], code: i32) -> Value {
    let out = gantry()
        .current_dir(cwd)
        .args(["lint", "--format", "json"])
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("JSON output")
}

const GOOD: &str =
    "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n";
const BAD: &str = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n";

#[test]
fn lint_of_clean_examples_exits_zero() {
    gantry()
        .args(["lint", "examples/workflows"])
        .assert()
        .success();
}

#[test]
fn lint_reports_errors_rustc_style_and_exits_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, "bad.yml", BAD);
    let out = gantry()
        .env("NO_COLOR", "1")
        .arg("lint")
        .arg(&path)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).expect("utf-8");
    assert!(
        out.contains("error[unknown-key]: Unexpected value 'stepz'"),
        "{out}"
    );
    assert!(out.contains("bad.yml:5:5"), "{out}");
    assert!(!out.contains('\u{1b}'), "no colour when piped: {out}");
}

#[test]
fn lint_json_has_the_contract_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, "bad.yml", BAD);
    let json = lint_json(dir.path(), &[path.as_os_str()], 1);
    let first = &json.as_array().expect("an array")[0];
    for field in [
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "severity",
        "code",
        "message",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(first["line"], 5);
    assert_eq!(first["column"], 5);
    assert_eq!(first["severity"], "error");
}

#[test]
fn lint_defaults_to_the_repository_workflows() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir, ".github/workflows/ci.yml", GOOD);
    write(&dir, ".github/workflows/broken.yaml", BAD);
    let json = lint_json(dir.path(), &[], 1);
    assert_eq!(json[0]["path"], ".github/workflows/broken.yaml");
}

#[test]
fn usage_and_io_errors_exit_two() {
    gantry().args(["lint", "no/such/file.yml"]).assert().code(2);
    gantry().args(["lint", "--format", "xml"]).assert().code(2);
    let empty = tempfile::tempdir().expect("tempdir");
    gantry()
        .current_dir(empty.path())
        .arg("lint")
        .assert()
        .code(2);
}

#[test]
fn version_and_help() {
    let out = gantry()
        .arg("--version")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&out).starts_with("gantry "));
    gantry().args(["lint", "--help"]).assert().success();
}

#[test]
fn lint_checks_calls_of_local_reusable_workflows() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &dir,
        ".github/workflows/deploy.yml",
        "on:\n  workflow_call:\n    inputs:\n      env:\n        type: string\n        required: true\njobs:\n  d:\n    runs-on: x\n    steps: [{run: a}]\n",
    );
    let caller = write(
        &dir,
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  call:\n    uses: ./.github/workflows/deploy.yml\n    with:\n      envv: prod\n",
    );
    let json = lint_json(dir.path(), &[caller.as_os_str()], 1);
    let codes: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(codes, ["missing-input", "unknown-input"], "{json}");
}

#[test]
fn expr_prints_kind_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = write(
        &dir,
        "ctx.json",
        r#"{"github": {"event_name": "push"}, "job": {"status": "success"}}"#,
    );
    let out = gantry()
        .args([
            "expr",
            "${{ github.EVENT_NAME == 'Push' && success() }}",
            "--context",
        ])
        .arg(&ctx)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).expect("JSON output");
    assert_eq!(json, serde_json::json!({"kind": "Boolean", "value": true}));
}

#[test]
fn expr_errors_exit_one_with_githubs_message() {
    let out = gantry()
        .args(["expr", "success()"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).expect("JSON output");
    assert_eq!(json["error"]["kind"], "parsing");
    assert_eq!(
        json["error"]["message"],
        "Unrecognized function: 'success'. Located at position 1 within expression: success()"
    );
}

#[test]
fn expr_jsonl_answers_every_line_in_order() {
    let input = [
        r#"{"expr": "format('{0}-{1}', a, 2)", "contexts": {"a": "x"}}"#,
        "not json",
        r#"{"expr": "1 <"}"#,
        r#"{"expr": "fromJSON('[1,2]')[1]"}"#,
    ]
    .join("\n");
    let out = gantry()
        .args(["expr", "--jsonl"])
        .write_stdin(input)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["value"], "x-2");
    assert_eq!(lines[1]["error"]["kind"], "input");
    assert_eq!(lines[2]["error"]["kind"], "parsing");
    assert_eq!(lines[3], serde_json::json!({"kind": "Number", "value": 2}));
}

#[test]
fn list_shows_instances_and_needs() {
    let out = gantry()
        .args(["list", "examples/workflows/matrix.yml"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).expect("utf-8");
    assert!(out.contains("test (ubuntu-latest, 22, true)"), "{out}");
    assert!(
        !out.contains("test (macos-latest, 18)"),
        "excluded combination listed: {out}"
    );
}

#[test]
fn graph_formats_and_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "wf.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix:\n        target: ${{ fromJSON(vars.TARGETS) }}\n    steps: [{run: x}]\n  b:\n    needs: a\n    runs-on: x\n    steps: [{run: x}]\n",
    );
    let out = gantry()
        .args([
            "graph",
            "--format",
            "json",
            "--var",
            r#"TARGETS=["x86","arm"]"#,
        ])
        .arg(&path)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).expect("JSON output");
    let ids: Vec<&str> = json["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, ["a (x86)", "a (arm)", "b"]);
    let dot = gantry()
        .args(["graph", "--format", "dot"])
        .arg(&path)
        .arg("--var")
        .arg(r#"TARGETS=["x"]"#)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&dot).starts_with("digraph plan {"));
    let svg = gantry()
        .args([
            "graph",
            "--format",
            "svg",
            "--var",
            r#"TARGETS=["x86","arm"]"#,
        ])
        .arg(&path)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let svg = String::from_utf8_lossy(&svg);
    assert!(svg.starts_with("<svg "), "{svg}");
    for id in ["a (x86)", "a (arm)", "b"] {
        assert!(svg.contains(&format!("data-job=\"{id}\"")), "{svg}");
    }
    gantry()
        .args(["graph", "--var", "nonsense"])
        .arg(&path)
        .assert()
        .code(2);
}

#[test]
fn help_describes_each_command_with_its_own_text() {
    let out = gantry()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let line = |command: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("no line for {command} in\n{text}"))
            .to_owned()
    };
    assert!(line("lint").contains("Check CI files"), "{text}");
    assert!(line("expr").contains("Evaluate"), "{text}");
    for command in ["run", "runs", "logs", "list", "graph"] {
        assert!(line(command).split_whitespace().count() > 2, "{text}");
    }
}

#[test]
fn circleci_files_are_read_and_their_mistakes_located() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A 2.0-style file without workflows runs its `build` job; a typo in a step is located.
    let path = write(
        &dir,
        ".circleci/config.yml",
        "version: 2.1\njobs:\n  build:\n    docker: [{image: x}]\n    steps: [checkout, chekout]\n",
    );
    let out = gantry()
        .current_dir(dir.path())
        .arg("lint")
        .arg(&path)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("'chekout' is not a step or a defined command") && text.contains(":5:"),
        "{text}"
    );
}

#[test]
fn show_compiled_prints_circleci_config_that_compiles_to_the_same_jobs() {
    let text = stdout_in(
        &test_dir("tests/circleci/matrix-names-exclude-and-alias"),
        &["lint", "--show-compiled", ".circleci/config.yml"],
    );
    assert!(text.starts_with("version: 2\n"), "{text}");
    assert!(!text.contains("<<"), "parameters resolved:\n{text}");
    // The processed file is itself a configuration with the same jobs and requirements.
    let pipeline = ci_config::circleci::Pipeline::default();
    let again = ci_config::circleci::parse_config("processed.yml", &text, &pipeline);
    assert!(!again.has_errors(), "{:?}\n{text}", again.diagnostics);
    let workflows = again.value.expect("compiled");
    let jobs: Vec<&String> = workflows[0].jobs.keys().collect();
    assert_eq!(
        jobs,
        ["build-linux-1", "build-linux-2", "build-mac-1", "report"]
    );
    assert_eq!(workflows[0].jobs["report"].needs.len(), 3);
}

#[test]
fn list_names_each_circleci_workflow() {
    let text = stdout_in(
        &test_dir("tests/circleci/several-workflows"),
        &["list", ".circleci/config.yml"],
    );
    assert!(
        text.contains(".circleci/config.yml (ci)\n  build")
            && text.contains(".circleci/config.yml (checks)\n  lint"),
        "{text}"
    );
    // A workflow that does not run for this pipeline is not listed.
    assert!(!text.contains("nightly-only"), "{text}");
}
