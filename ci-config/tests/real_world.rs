//! Shapes real workflow files have that a strict reader would refuse, but GitHub and GitLab
//! accept: each is read without errors (or with the error GitHub gives, plus what helps).

use ci_config::github::parse_workflow;
use ci_config::Diagnostic;

fn errors(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn a_flow_sequence_may_close_left_of_its_items_after_blank_lines() {
    let src = "on:\n  push:\n    branches: [\n      main,\n\n      release # the next one\n  ]\n    tags: [v1,\n      v2\n   ]\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n";
    let parsed = parse_workflow("ci.yml", src);
    assert_eq!(errors(&parsed.diagnostics), Vec::<String>::new());
    let workflow = parsed.value.expect("read");
    assert_eq!(workflow.triggers[0].branches, ["main", "release"]);
    assert_eq!(workflow.triggers[0].tags, ["v1", "v2"]);
    // Everything after the moved bracket keeps its place.
    let job = &workflow.jobs["a"];
    assert_eq!(job.span.start_pos.line, 12);
}

#[test]
fn other_indentation_errors_stay_errors() {
    let src = "on: push\njobs:\n  a:\n    runs-on: x\n   steps: [{run: echo}]\n";
    let parsed = parse_workflow("ci.yml", src);
    assert!(parsed.has_errors());
}

#[test]
fn a_reusable_workflow_may_live_in_an_org_dot_github_repository() {
    let src = "on: push\njobs:\n  call:\n    uses: org/.github/.github/workflows/x.yml@main\n";
    let parsed = parse_workflow("ci.yml", src);
    assert_eq!(errors(&parsed.diagnostics), Vec::<String>::new());
    let src = "on: push\njobs:\n  call:\n    uses: org/../.github/workflows/x.yml@main\n";
    assert!(parse_workflow("ci.yml", src).has_errors());
}

#[test]
fn ref_filters_under_events_without_refs_are_warnings() {
    let src = "on:\n  issues:\n    types: [opened]\n    branches: [main]\n  release:\n    paths: [src]\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n";
    let parsed = parse_workflow("ci.yml", src);
    assert_eq!(errors(&parsed.diagnostics), Vec::<String>::new());
    let warnings: Vec<_> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.code == "ignored-filter")
        .collect();
    assert_eq!(warnings.len(), 2);
    // Keys that are no filter at all stay errors, as GitHub has them.
    let src =
        "on:\n  push:\n    inputs: {}\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n";
    assert!(parse_workflow("ci.yml", src).has_errors());
}

#[test]
fn a_workflow_whose_jobs_all_wait_names_the_cycle() {
    let src = "on: push\njobs:\n  a:\n    needs: b\n    runs-on: x\n    steps: [{run: a}]\n  b:\n    needs: a\n    runs-on: x\n    steps: [{run: a}]\n";
    let parsed = parse_workflow("ci.yml", src);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"no-start-job"), "{codes:?}");
    let cycle = parsed
        .diagnostics
        .iter()
        .find(|d| d.code == "needs-cycle")
        .expect("the cycle is named");
    assert!(cycle.message.contains("a → b → a"), "{}", cycle.message);
    let help = cycle.help.as_deref().unwrap_or_default();
    assert!(
        help.contains("'a' needs 'b' (line 4)") && help.contains("'b' needs 'a' (line 8)"),
        "{help}"
    );
}
