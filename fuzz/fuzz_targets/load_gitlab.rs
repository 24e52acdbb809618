#![no_main]

use ci_config::gitlab::{parse_pipeline, resolve, Facts, NoIncludes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = parse_pipeline(".gitlab-ci.yml", text, &NoIncludes);
    // Deciding the jobs evaluates every rule against a push's facts.
    if let Some(mut pipeline) = parsed.value {
        let mut variables = indexmap::IndexMap::new();
        variables.insert("CI_COMMIT_BRANCH".to_owned(), "main".to_owned());
        variables.insert("CI_PIPELINE_SOURCE".to_owned(), "push".to_owned());
        let changed = vec!["src/main.rs".to_owned()];
        let facts = Facts { variables: &variables, changed: Some(&changed), exists: &|_| true };
        let _ = resolve(&mut pipeline, &facts);
    }
});
