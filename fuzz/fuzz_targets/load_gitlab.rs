#![no_main]

use ci_config::gitlab::{parse_pipeline, resolve, Facts, Includes, RemoteInclude, Unfetched};
use libfuzzer_sys::fuzz_target;

/// Every include — local, remote, template, project, component — is the fuzzed text itself
/// (a cycle after one level), so `spec:inputs`, `include:inputs` and `$[[ ]]` are fuzzed too.
struct Echo<'a>(&'a str);

impl Includes for Echo<'_> {
    fn read(&self, _path: &str) -> Result<String, String> {
        Ok(self.0.to_owned())
    }
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        Ok(vec![pattern.to_owned()])
    }
    fn fetch(&self, _include: &RemoteInclude<'_>) -> Result<String, Unfetched> {
        Ok(self.0.to_owned())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = parse_pipeline(".gitlab-ci.yml", text, &Echo(text));
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
