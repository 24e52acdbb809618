//! Property tests: no input panics the loader or the GitHub frontends.

use ci_config::github::{parse_action, parse_workflow};
use proptest::prelude::*;

/// YAML-ish text built from the tokens that matter to the frontends, so generated inputs reach
/// deep into the readers instead of failing at the first byte.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("on: push\n".to_owned()),
        Just("jobs:\n".to_owned()),
        Just("  build:\n".to_owned()),
        Just("    runs-on: ubuntu-latest\n".to_owned()),
        Just("    needs: [a, build]\n".to_owned()),
        Just("    strategy:\n      matrix:\n        os: [a, b]\n".to_owned()),
        Just("    steps:\n".to_owned()),
        Just("      - run: echo ${{ x }}\n".to_owned()),
        Just("      - uses: a/b@v1\n        with: {x: 1}\n".to_owned()),
        Just("      - id: s\n".to_owned()),
        Just("    if: ${{ ".to_owned()),
        Just("<<: *a\n".to_owned()),
        Just("x: &a {k: v}\n".to_owned()),
        Just("- ".to_owned()),
        Just("? ".to_owned()),
        Just("!!str ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(": ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        "[a-z\\-_ ]{0,8}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(src in any::<String>()) {
        let _ = parse_workflow(".github/workflows/p.yml", &src);
        let _ = parse_action("action.yml", &src);
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(src in yamlish()) {
        let parsed = parse_workflow(".github/workflows/p.yml", &src);
        for d in &parsed.diagnostics {
            // Every diagnostic must render, and its span must lie inside the text.
            prop_assert!(d.span.range().end <= src.len());
            let _ = d.render(&src, false);
        }
        let _ = parse_action("action.yml", &src);
    }
}

/// GitLab-shaped text: the keywords the GitLab frontend composes and reads.
fn gitlabish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("stages: [build, test]\n".to_owned()),
        Just("variables:\n  A: \"$B\"\n".to_owned()),
        Just(".base:\n  script: [echo]\n".to_owned()),
        Just("job:\n".to_owned()),
        Just("  extends: [.base, job]\n".to_owned()),
        Just("  script:\n    - !reference [.base, script]\n".to_owned()),
        Just("  rules:\n    - if: $A =~ /x(/ && ($B == \"1\"\n".to_owned()),
        Just("  rules:\n    - if: $CI == null || $X !~ /a/i\n      when: manual\n".to_owned()),
        Just("  needs: [{job: x, optional: true}]\n".to_owned()),
        Just("  parallel:\n    matrix:\n      - A: [1, 2]\n".to_owned()),
        Just("  retry: {max: 3, when: [nope]}\n".to_owned()),
        Just("  cache: {key: {files: [a]}, paths: [b]}\n".to_owned()),
        Just("  artifacts: {reports: {dotenv: x}}\n".to_owned()),
        Just("  timeout: 1h 30m\n".to_owned()),
        Just("include: x.yml\n".to_owned()),
        Just("default:\n  before_script: [a]\n".to_owned()),
        Just("<<: *a\n".to_owned()),
        Just("x: &a {k: v}\n".to_owned()),
        Just("- ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(": ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        "[a-z$\\-_ ]{0,8}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gitlab_pipelines_never_panic(src in gitlabish()) {
        let parsed = ci_config::gitlab::parse_pipeline(
            ".gitlab-ci.yml",
            &src,
            &ci_config::gitlab::NoIncludes,
        );
        for d in &parsed.diagnostics {
            prop_assert!(d.span.range().end <= src.len());
            let _ = d.render(&src, false);
        }
        let _ = ci_config::gitlab::merged_yaml(".gitlab-ci.yml", &src, &ci_config::gitlab::NoIncludes);
    }

    #[test]
    fn gitlab_conditions_never_panic(src in "[$a-zA-Z0-9=!~/()&|\"' .*]{0,40}") {
        if let Ok(expr) = ci_config::gitlab::rules::compile(&src) {
            let ctx = ci_config::expr::Contexts::new();
            let _ = ci_config::expr::evaluate(&expr, &src, &ctx);
        }
    }
}
