//! Inputs the fuzz targets (`bench/fuzz.sh`) found trouble with, kept so it stays fixed.

use ci_config::circleci::{parse_config, Pipeline};

/// `load_circleci` timed out: a command calling itself twice expanded 2^50 times.
#[test]
fn a_command_calling_itself_is_an_error_not_a_hang() {
    let src = "version: 2.1\ncommands:\n  greet:\n    parameters:\n    : true\n    steps:\n      - greet\n      - greet:\n          who: gantry\njobs:\n  build:\n    machine: true\n    steps: [greet]\nworkflows:\n  main:\n    jobs: [build]\n";
    let parsed = parse_config(".circleci/config.yml", src, &Pipeline::default());
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| d.code == "command-cycle" && d.message.contains("calls itself")),
        "{:?}",
        parsed.diagnostics
    );
}

/// Without a cycle, commands that call the next one twice at every level still multiply:
/// expansion stops at a budget, with an error.
#[test]
fn commands_multiplying_at_every_level_stop_at_a_budget() {
    let mut src = String::from("version: 2.1\ncommands:\n");
    for i in 0..40 {
        src.push_str(&format!("  c{i}:\n    steps: [c{}, c{}]\n", i + 1, i + 1));
    }
    src.push_str("  c40:\n    steps: [{run: echo leaf}]\njobs:\n  build:\n    machine: true\n    steps: [c0]\nworkflows:\n  main:\n    jobs: [build]\n");
    let parsed = parse_config(".circleci/config.yml", &src, &Pipeline::default());
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| d.message.contains("expands more than 10000 commands")),
        "{:?}",
        parsed.diagnostics.first()
    );
}

/// A matrix whose product is huge is refused before it is made.
#[test]
fn a_huge_matrix_is_refused() {
    let values: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let list = format!("[{}]", values.join(", "));
    let src = format!("version: 2.1\njobs:\n  b:\n    machine: true\n    parameters: {{a: {{type: string}}, b: {{type: string}}, c: {{type: string}}}}\n    steps: [{{run: echo}}]\nworkflows:\n  main:\n    jobs:\n      - b:\n          matrix:\n            parameters: {{a: {list}, b: {list}, c: {list}}}\n");
    let parsed = parse_config(".circleci/config.yml", &src, &Pipeline::default());
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| d.message.contains("matrix makes 8000 jobs")),
        "{:?}",
        parsed.diagnostics
    );
}
