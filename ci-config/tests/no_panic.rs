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
