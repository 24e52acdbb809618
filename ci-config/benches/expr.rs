//! Expression evaluation throughput (target: ≥ 1,000,000 simple evaluations/s): parse once,
//! evaluate many times against a realistic `github` context.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use ci_config::expr::{Contexts, Expression, ParseOptions, Value};

fn github_context() -> Value {
    Value::from_json(&serde_json::json!({
        "event_name": "push",
        "ref": "refs/heads/main",
        "ref_name": "main",
        "ref_type": "branch",
        "sha": "ffac537e6cbbf934b08745a378932722df287a53",
        "repository": "octo-org/octo-repo",
        "repository_owner": "octo-org",
        "actor": "octocat",
        "run_id": "1658821493",
        "run_number": "42",
        "run_attempt": "1",
        "workflow": "CI",
        "job": "build",
        "server_url": "https://github.com",
        "api_url": "https://api.github.com",
        "workspace": "/home/runner/work/octo-repo/octo-repo",
        "event": {
            "after": "ffac537e6cbbf934b08745a378932722df287a53",
            "before": "0000000000000000000000000000000000000000",
            "commits": [{"id": "ffac537e", "message": "Update README.md", "author": {"name": "Octocat"}}],
            "head_commit": {"id": "ffac537e", "message": "Update README.md"},
            "pusher": {"name": "octocat"},
            "repository": {"full_name": "octo-org/octo-repo", "default_branch": "main", "private": false}
        }
    }))
}

fn bench(c: &mut Criterion) {
    let mut contexts = Contexts::new();
    contexts.insert("github", github_context());
    let options = ParseOptions {
        contexts: &["github"],
        ..Default::default()
    };
    let expr = Expression::parse(
        "github.event_name == 'push' && contains(github.ref, 'main')",
        &options,
    )
    .expect("the benchmark expression parses");
    assert!(expr.evaluate(&contexts).expect("evaluates").is_truthy());
    let mut group = c.benchmark_group("expr");
    group.throughput(Throughput::Elements(1));
    group.bench_function("evaluate_event_and_ref", |b| {
        b.iter(|| expr.evaluate(std::hint::black_box(&contexts)))
    });
    group.bench_function("parse_event_and_ref", |b| {
        b.iter(|| {
            Expression::parse(
                std::hint::black_box("github.event_name == 'push' && contains(github.ref, 'main')"),
                &options,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
