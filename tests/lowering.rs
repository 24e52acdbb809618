//! Snapshots of the lowered model (the one IR every dialect's frontend produces) for a set of
//! GitHub and GitLab fixtures: what the job runtime is given, step by step. Review a change
//! to these as you would a change to the runtime.

use std::fmt::Write as _;
use std::path::Path;

use ci_config::model::{Env, Job, StepAction};

fn env(e: &Env) -> String {
    match e {
        Env::Empty => "-".into(),
        Env::Map(m) => format!(
            "expr {{{}}}",
            m.iter()
                .map(|(k, t)| format!("{k}: {}", t.raw))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Env::Expr(t) => format!("expr {}", t.raw),
        Env::Vars(v) => format!(
            "vars {{{}}}",
            v.iter()
                .map(|(k, v)| format!(
                    "{k}: {}{}",
                    v.value,
                    if v.expand { "" } else { " (literal)" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn action(a: &StepAction) -> String {
    match a {
        StepAction::Run { script, shell, .. } => format!(
            "run {:?}{}",
            script.raw,
            shell
                .as_ref()
                .map(|s| format!(" shell={}", s.raw))
                .unwrap_or_default()
        ),
        StepAction::Uses { uses, with } => format!(
            "uses {uses} with [{}]",
            with.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        StepAction::Commands { commands, echo } => {
            format!(
                "commands {commands:?}{}",
                if *echo { " echoed" } else { "" }
            )
        }
        StepAction::Checkout => "checkout".into(),
        StepAction::CacheRestore { caches } => format!(
            "cache restore {:?}",
            caches.iter().map(|c| &c.key).collect::<Vec<_>>()
        ),
        StepAction::CacheSave { caches } => format!(
            "cache save {:?}",
            caches
                .iter()
                .map(|c| (&c.key, &c.paths))
                .collect::<Vec<_>>()
        ),
        StepAction::ArtifactDownload { from } => format!("artifacts download from {from:?}"),
        StepAction::ArtifactUpload(u) => format!(
            "artifacts upload {:?} exclude {:?} dotenv {:?} junit {:?}",
            u.paths, u.exclude, u.dotenv, u.junit
        ),
        other => format!("{other:?}"),
    }
}

fn job(out: &mut String, j: &Job) {
    let _ = writeln!(out, "job {}", j.id);
    if let Some(stage) = &j.stage {
        let _ = writeln!(out, "  stage: {stage}");
    }
    for n in &j.needs {
        let _ = writeln!(
            out,
            "  needs {} (artifacts: {}, optional: {}{})",
            n.job,
            n.artifacts,
            n.optional,
            if n.matrix.is_empty() {
                String::new()
            } else {
                format!(", matrix: {:?}", n.matrix)
            }
        );
    }
    let _ = writeln!(
        out,
        "  when: {:?}, allow failure: {:?}",
        j.when, j.allow_failure
    );
    if let Some(c) = &j.container {
        let _ = writeln!(
            out,
            "  container: {} (optional: {})",
            c.image.raw, c.optional
        );
    }
    for (name, s) in &j.services {
        let _ = writeln!(out, "  service {name}: {}", s.image.raw);
    }
    let _ = writeln!(out, "  env: {}", env(&j.env));
    if let Some(t) = &j.timeout_minutes {
        let _ = writeln!(
            out,
            "  timeout minutes: {}",
            t.scalar_text().unwrap_or_default()
        );
    }
    for o in &j.log_outputs {
        let _ = writeln!(out, "  log output {}: {}", o.name, o.pattern);
    }
    for (k, t) in &j.outputs {
        let _ = writeln!(out, "  output {k}: {}", t.raw);
    }
    for s in &j.steps {
        let _ = writeln!(
            out,
            "  step {}{}: {} if {}",
            s.id,
            if s.cleanup { " (cleanup)" } else { "" },
            action(&s.action),
            s.condition.effective
        );
        if !matches!(s.env, Env::Empty) {
            let _ = writeln!(out, "    env: {}", env(&s.env));
        }
    }
}

fn lowered(dialect: &str, case: &str, file: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dialect)
        .join(case);
    let text = std::fs::read_to_string(dir.join(file)).expect("the fixture's CI file");
    let includes = ci_config::gitlab::LocalIncludes::new(&dir);
    let options = ci_config::LoadOptions {
        includes: &includes,
        ..ci_config::LoadOptions::default()
    };
    let parsed = ci_config::load(file, &text, &options);
    assert!(!parsed.has_errors(), "{case}: {:?}", parsed.diagnostics);
    let loaded = parsed.value.expect("a loaded file");
    let mut out = String::new();
    for w in &loaded.workflows {
        let _ = writeln!(out, "workflow {} ({:?})", w.path, w.dialect);
        let _ = writeln!(out, "env: {}", env(&w.env));
        if !w.stages.is_empty() {
            let _ = writeln!(out, "stages: {:?}", w.stages);
        }
        for j in w.jobs.values() {
            job(&mut out, j);
        }
    }
    out
}

#[test]
fn gitlab_jobs_lower_into_neutral_steps() {
    for case in [
        "image-and-services",
        "dotenv-report",
        "cache-fallback-keys",
        "after-script-after-failure",
        "needs-parallel-matrix",
        "coverage",
        "variables-precedence",
    ] {
        insta::assert_snapshot!(
            format!("gitlab-{case}"),
            lowered("gitlab", case, ".gitlab-ci.yml")
        );
    }
}

#[test]
fn github_jobs_lower_into_the_same_model() {
    for case in [
        "needs-chain-passes-outputs",
        "failure-and-always-conditions",
        "local-composite-action",
    ] {
        insta::assert_snapshot!(
            format!("github-{case}"),
            lowered("github", case, ".github/workflows/ci.yml")
        );
    }
}
