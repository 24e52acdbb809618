//! Load + validate a generated 10,000-job workflow (target: < 50 ms).
//!
//! Two shapes: `lean` jobs (runs-on, needs, one step — the shape of the target) and `rich`
//! jobs (an `if`, env, a matrix and three steps: 3.7× the bytes), to show how cost scales.

use criterion::{criterion_group, criterion_main, Criterion};

// The `gantry` binary uses mimalloc too; the tree is allocation-heavy.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `jobs` lean jobs in layers of 100; each needs one job of the previous layer.
fn generate_lean(jobs: usize) -> String {
    let mut src = String::from("name: big\non: push\njobs:\n");
    for i in 0..jobs {
        src.push_str(&format!("  job-{i}:\n    runs-on: ubuntu-latest\n"));
        if i >= 100 {
            src.push_str(&format!("    needs: job-{}\n", i - 100));
        }
        src.push_str(&format!("    steps:\n      - run: make part-{i}\n"));
    }
    src
}

/// A workflow of `jobs` jobs in layers of 100; each job needs one job of the previous layer,
/// has a matrix, env, an `if`, and three steps.
fn generate_rich(jobs: usize) -> String {
    let mut src =
        String::from("name: big\non:\n  push:\n    branches: [main]\nenv:\n  CI: true\njobs:\n");
    for i in 0..jobs {
        src.push_str(&format!("  job-{i}:\n    runs-on: ubuntu-latest\n"));
        if i >= 100 {
            src.push_str(&format!("    needs: job-{}\n", i - 100));
        }
        src.push_str(&format!(
            "    if: github.ref == 'refs/heads/main'\n    env:\n      N: {i}\n    strategy:\n      matrix:\n        os: [a, b]\n    steps:\n      - uses: actions/checkout@v4\n      - id: build\n        run: make build-${{{{ matrix.os }}}}\n      - run: make test N=$N\n"
        ));
    }
    src
}

fn check(src: &str) {
    let parsed = ci_config::github::parse_workflow(".github/workflows/big.yml", src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics.first());
    assert_eq!(parsed.value.as_ref().map(|w| w.jobs.len()), Some(10_000));
}

fn bench(c: &mut Criterion) {
    let lean = generate_lean(10_000);
    let src = generate_rich(10_000);
    check(&lean);
    check(&src);
    let parse = |src: &str| ci_config::github::parse_workflow(".github/workflows/big.yml", src);
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("github_workflow_10k_lean_jobs", |b| {
        b.iter(|| parse(std::hint::black_box(&lean)))
    });
    group.bench_function("github_workflow_10k_jobs", |b| {
        b.iter(|| parse(std::hint::black_box(&src)))
    });
    group.bench_function("saphyr_events_only_10k_lean_jobs", |b| {
        b.iter(|| saphyr_parser::Parser::new_from_str(std::hint::black_box(&lean)).count())
    });
    group.bench_function("yaml_only_10k_jobs", |b| {
        b.iter(|| ci_config::yaml::load("big.yml", std::hint::black_box(&src), &Default::default()))
    });
    group.bench_function("saphyr_events_only_10k_jobs", |b| {
        b.iter(|| saphyr_parser::Parser::new_from_str(std::hint::black_box(&src)).count())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
