//! Snapshots of rendered diagnostics for representative mistakes. Review every change to a
//! snapshot as you would review code: this is what users read.

use ci_config::github::{parse_action, parse_workflow};

fn render(path: &str, src: &str, action: bool) -> String {
    let diagnostics = if action {
        parse_action(path, src).diagnostics
    } else {
        parse_workflow(path, src).diagnostics
    };
    assert!(!diagnostics.is_empty(), "expected a diagnostic for {path}");
    diagnostics
        .iter()
        .map(|d| d.render(src, false))
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! mistake {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(render(".github/workflows/ci.yml", $src, false));
        }
    };
}

mistake!(
    unknown_job_key,
    "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    step:\n      - run: make\n"
);
mistake!(unknown_need, "on: push\njobs:\n  lint:\n    runs-on: x\n    steps: [{run: a}]\n  test:\n    needs: [lint, biuld]\n    runs-on: x\n    steps: [{run: a}]\n");
mistake!(needs_cycle, "on: push\njobs:\n  start:\n    runs-on: x\n    steps: [{run: a}]\n  a:\n    needs: c\n    runs-on: x\n    steps: [{run: a}]\n  b:\n    needs: a\n    runs-on: x\n    steps: [{run: a}]\n  c:\n    needs: b\n    runs-on: x\n    steps: [{run: a}]\n");
mistake!(duplicate_key, "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    runs-on: windows-latest\n    steps: [{run: a}]\n");
mistake!(duplicate_step_id, "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - id: setup\n        run: a\n      - id: setup\n        run: b\n");
mistake!(run_and_uses, "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: make\n        uses: actions/checkout@v4\n");
mistake!(invalid_cron, "on:\n  schedule:\n    - cron: '0 25 * * *'\njobs:\n  a:\n    runs-on: x\n    steps: [{run: a}]\n");
mistake!(
    missing_runs_on,
    "on: push\njobs:\n  build:\n    steps:\n      - run: make\n"
);
mistake!(
    unclosed_expression,
    "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: echo ${{ github.sha\n"
);
mistake!(
    wrong_type,
    "on: push\njobs:\n  build:\n    runs-on: x\n    timeout-minutes: soon\n    steps: [{run: a}]\n"
);
mistake!(bad_permission, "on: push\npermissions:\n  contents: admin\njobs:\n  a:\n    runs-on: x\n    steps: [{run: a}]\n");
mistake!(
    yaml_syntax_error,
    "on: push\njobs:\n  build:\n    runs-on: [ubuntu-latest\n    steps: []\n"
);
mistake!(
    bad_action_reference,
    "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - uses: actions-checkout\n"
);
mistake!(
    unknown_event,
    "on: [push, pul_request]\njobs:\n  a:\n    runs-on: x\n    steps: [{run: a}]\n"
);

mistake!(expression_syntax_error_in_run, "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: echo ${{ github.sha == }}\n");
mistake!(steps_context_in_job_if, "on: push\njobs:\n  build:\n    if: steps.x.outputs.ok == 'true'\n    runs-on: x\n    steps: [{run: a}]\n");
mistake!(
    secrets_in_runs_on,
    "on: push\njobs:\n  build:\n    runs-on: ${{ secrets.RUNNER }}\n    steps: [{run: a}]\n"
);
mistake!(unknown_function_in_step_if, "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - if: startswith(github.ref, 'refs/tags/') && isTag()\n        run: a\n");
mistake!(condition_mixing_text_and_expression, "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - if: github.ref == ${{ 'x' }}\n        run: a\n");

#[test]
fn composite_run_step_without_shell() {
    let src = "name: a\ndescription: b\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n";
    insta::assert_snapshot!(render("action.yml", src, true));
}
