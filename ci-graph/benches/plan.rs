//! Planning and scheduling throughput.
//!
//! - plan a generated 10,000-job workflow (layers of 100, each job needing 2 jobs of the
//!   layer before): target < 100 ms (reported with and without reading the YAML);
//! - scheduler transitions (start + finish): target ≥ 1,000,000/s.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use ci_graph::{ExprConditions, Outcome, Plan, RunFacts, Scheduler, SchedulerOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn layered(jobs: usize) -> String {
    let mut src = String::from("on: push\njobs:\n");
    for i in 0..jobs {
        src.push_str(&format!("  j{i}:\n    runs-on: x\n"));
        if i >= 100 {
            let layer_start = (i / 100 - 1) * 100;
            src.push_str(&format!(
                "    needs: [j{}, j{}]\n",
                layer_start + i % 100,
                layer_start + (i + 1) % 100
            ));
        }
        src.push_str("    steps: [{run: make}]\n");
    }
    src
}

fn run_all(plan: Plan) -> usize {
    let mut s = Scheduler::new(plan, SchedulerOptions::default());
    let mut conditions = ExprConditions::default();
    let mut transitions = 0;
    while !s.is_finished() {
        for i in s.ready(&mut conditions) {
            s.start(i).expect("starts");
            s.finish(i, Outcome::success()).expect("finishes");
            transitions += 2;
        }
    }
    transitions
}

fn bench(c: &mut Criterion) {
    let src = layered(10_000);
    let workflow = ci_config::github::parse_workflow("big.yml", &src)
        .value
        .expect("valid");
    let facts = RunFacts::default();
    let plan = Plan::new(&workflow, &facts).expect("plans");
    assert_eq!(plan.instances.len(), 10_000);
    assert_eq!(run_all(plan.clone()), 20_000);

    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    group.bench_function("plan_10k_jobs", |b| {
        b.iter(|| Plan::new(std::hint::black_box(&workflow), &facts))
    });
    group.bench_function("read_and_plan_10k_jobs", |b| {
        b.iter(|| {
            let w = ci_config::github::parse_workflow("big.yml", std::hint::black_box(&src))
                .value
                .expect("valid");
            Plan::new(&w, &facts)
        })
    });
    group.throughput(Throughput::Elements(20_000));
    group.bench_function("schedule_10k_jobs_transitions", |b| {
        b.iter_batched(|| plan.clone(), run_all, BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
