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

mod gitlab_includes {
    use ci_config::gitlab::{parse_pipeline, Includes, RemoteInclude, Unfetched};
    use indexmap::IndexMap;

    /// Remote files from a table; local files none; variables as given.
    struct Table {
        files: Vec<(&'static str, &'static str)>,
        variables: Option<IndexMap<String, String>>,
        strict: bool,
    }

    impl Includes for Table {
        fn read(&self, path: &str) -> Result<String, String> {
            Err(format!("no local file {path}"))
        }
        fn glob(&self, _pattern: &str) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
        fn variables(&self) -> Option<IndexMap<String, String>> {
            self.variables.clone()
        }
        fn fetch(&self, include: &RemoteInclude<'_>) -> Result<String, Unfetched> {
            let key = match include {
                RemoteInclude::Url(u) => u.to_string(),
                RemoteInclude::Template(t) => t.to_string(),
                RemoteInclude::Project { file, .. } => file.to_string(),
                RemoteInclude::Component(c) => c.to_string(),
            };
            self.files
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .ok_or(Unfetched {
                    message: format!("{include} is not in the cache"),
                    unavailable: true,
                })
        }
        fn strict(&self) -> bool {
            self.strict
        }
    }

    const COMPONENT: &str = "spec:\n  inputs:\n    name:\n    count:\n      type: number\n      default: 1\n    mode:\n      options: [fast, slow]\n      default: fast\n---\n\"greet-$[[ inputs.name ]]\":\n  parallel: $[[ inputs.count ]]\n  script: [\"echo $[[ inputs.name | truncate(0,3) ]] $[[ inputs.mode ]]\"]\n";

    fn table(files: Vec<(&'static str, &'static str)>) -> Table {
        Table {
            files,
            variables: None,
            strict: false,
        }
    }

    fn errors(src: &str, includes: &Table) -> Vec<String> {
        parse_pipeline(".gitlab-ci.yml", src, includes)
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect()
    }

    #[test]
    fn component_inputs_are_interpolated_with_their_types() {
        let includes = table(vec![("gitlab.com/g/c/greet@1", COMPONENT)]);
        let src = "include:\n  - component: gitlab.com/g/c/greet@1\n    inputs:\n      name: world\n      count: 2\n";
        let parsed = parse_pipeline(".gitlab-ci.yml", src, &includes);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let pipeline = parsed.value.expect("read");
        let job = &pipeline.workflow.jobs["greet-world"];
        let text = format!("{job:?}");
        assert!(text.contains("echo wor fast"), "{text}");
    }

    #[test]
    fn component_inputs_are_checked() {
        let includes = table(vec![("gitlab.com/g/c/greet@1", COMPONENT)]);
        let missing = errors(
            "include:\n  - component: gitlab.com/g/c/greet@1\n",
            &includes,
        );
        assert!(
            missing
                .iter()
                .any(|e| e.contains("input 'name' is required")),
            "{missing:?}"
        );
        let wrong = errors(
            "include:\n  - component: gitlab.com/g/c/greet@1\n    inputs: {name: a, count: many, mode: medium, extra: 1}\n",
            &includes,
        );
        for want in [
            "'count' should be a number",
            "not one of its options",
            "unknown input 'extra'",
        ] {
            assert!(wrong.iter().any(|e| e.contains(want)), "{want}: {wrong:?}");
        }
    }

    /// Every remote include is the same file, which includes ten others: without GitLab's
    /// limit of 150 included files this would read 10! files.
    struct Fan;

    impl Includes for Fan {
        fn read(&self, path: &str) -> Result<String, String> {
            Err(format!("no local file {path}"))
        }
        fn glob(&self, _pattern: &str) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
        fn fetch(&self, _include: &RemoteInclude<'_>) -> Result<String, Unfetched> {
            Ok(fan_out())
        }
    }

    fn fan_out() -> String {
        let mut s = String::from("include:\n");
        for i in 0..10 {
            s.push_str(&format!("  - remote: https://x/{i}.yml\n"));
        }
        s.push_str("job: {script: [x]}\n");
        s
    }

    #[test]
    fn includes_are_limited_to_150_files() {
        let parsed = parse_pipeline(".gitlab-ci.yml", &fan_out(), &Fan);
        assert!(parsed
            .diagnostics
            .iter()
            .any(|d| d.message.contains("Maximum of 150 nested includes")));
    }

    #[test]
    fn include_rules_decide_with_the_pipelines_variables() {
        let mut includes = table(vec![
            ("https://x/a.yml", "a: {script: [a]}\n"),
            ("https://x/b.yml", "b: {script: [b]}\n"),
        ]);
        let mut vars = IndexMap::new();
        vars.insert("CI_COMMIT_BRANCH".to_owned(), "main".to_owned());
        includes.variables = Some(vars);
        let src = "include:\n  - remote: https://x/a.yml\n    rules:\n      - if: $CI_COMMIT_BRANCH == \"main\"\n  - remote: https://x/b.yml\n    rules:\n      - if: $CI_COMMIT_BRANCH == \"dev\"\nown: {script: [o]}\n";
        let parsed = parse_pipeline(".gitlab-ci.yml", src, &includes);
        let jobs: Vec<&String> = parsed
            .value
            .as_ref()
            .expect("read")
            .workflow
            .jobs
            .keys()
            .collect();
        assert_eq!(jobs, ["a", "own"]);
    }

    #[test]
    fn what_an_unavailable_include_would_define_is_a_warning_in_lint_and_an_error_in_a_run() {
        let src = "include:\n  - template: Missing.gitlab-ci.yml\njob:\n  extends: .from-template\n  needs: [template-job]\n  script: [x]\nbare:\n  extends: .from-template\n";
        let lint = table(Vec::new());
        let parsed = parse_pipeline(".gitlab-ci.yml", src, &lint);
        let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
        assert!(codes.contains(&"include-unavailable"), "{codes:?}");
        // Two unknown parents, a job without script, a need on an unknown job.
        assert_eq!(
            codes.iter().filter(|c| **c == "include-unchecked").count(),
            4,
            "{codes:?}"
        );
        let run = Table {
            strict: true,
            ..table(Vec::new())
        };
        assert!(parse_pipeline(".gitlab-ci.yml", src, &run).has_errors());
    }
}
