//! CircleCI's own linter's expectations (`circleci-validate/` of the conformance data): for
//! every case with a verdict, Gantry must agree on whether the config has errors. Cases that
//! import registry orbs need an orb source and are skipped (counted); the pass rate is
//! printed and must not fall below what it is today.

use std::io::Write as _;

use ci_config::{load, Dialect, LoadOptions};
use serde_json::Value as Json;

mod common;
use common::conformance_dir;

/// The share of verdicts Gantry agrees with (measured; raise it as checks are added).
const FLOOR: f64 = 0.93;

#[test]
fn circleci_validate_verdicts() {
    let Some(dir) = conformance_dir() else { return };
    let dir = dir.join("circleci-validate");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("circleci-validate/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    cases.sort();
    let (mut agreed, mut judged, mut skipped) = (0usize, 0usize, 0usize);
    let mut disagreements = Vec::new();
    for case in &cases {
        let expect_path = case.with_extension("expect.json");
        let Ok(expect) = std::fs::read_to_string(&expect_path) else {
            continue;
        };
        let expect: Json = serde_json::from_str(&expect).expect("expect.json is JSON");
        let Some(valid) = expect["valid"].as_bool() else {
            continue;
        };
        if expect["fixtures"]["registry_orbs"]
            .as_object()
            .is_some_and(|o| !o.is_empty())
        {
            skipped += 1;
            continue;
        }
        let src = std::fs::read_to_string(case).expect("readable case");
        let name = case.file_name().expect("a name").to_string_lossy();
        let options = LoadOptions {
            dialect: Some(Dialect::CircleCi),
            ..LoadOptions::default()
        };
        // Never panics, whatever the case.
        let parsed = load(&name, &src, &options);
        let has_errors = parsed.has_errors();
        judged += 1;
        if has_errors != valid {
            agreed += 1;
        } else {
            let first = parsed
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .map(|d| d.to_string())
                .unwrap_or_default();
            disagreements.push(format!("{name}: expected valid={valid}; {first}"));
        }
    }
    let rate = agreed as f64 / judged.max(1) as f64;
    let _ = writeln!(
        std::io::stderr(),
        "circleci-validate: {agreed}/{judged} verdicts agree ({:.1}%), {skipped} skipped (registry orbs)",
        rate * 100.0
    );
    if std::env::var_os("GANTRY_SHOW_DISAGREEMENTS").is_some() {
        for d in &disagreements {
            let _ = writeln!(std::io::stderr(), "  {d}");
        }
    }
    assert!(
        rate >= FLOOR,
        "agreement {:.1}% fell below {:.0}%:\n{}",
        rate * 100.0,
        FLOOR * 100.0,
        disagreements.join("\n")
    );
}
