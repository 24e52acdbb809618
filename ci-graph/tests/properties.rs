//! Property tests of the scheduler on random DAGs: needs are respected, every instance ends
//! in exactly one terminal state, the run terminates, capacity holds, and the same inputs
//! give the same schedule.

use ci_config::model::Workflow;
use ci_graph::{
    Conclusion, ExprConditions, Outcome, Plan, RunFacts, Scheduler, SchedulerOptions, State,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Spec {
    /// Per job: (needs among earlier jobs, condition index, fails, continue-on-error).
    jobs: Vec<(Vec<usize>, usize, bool, bool)>,
    capacity: Option<usize>,
}

const CONDITIONS: &[&str] = &[
    "",
    "always()",
    "failure()",
    "success()",
    "cancelled()",
    "needs.j0.result == 'success'",
];

fn spec() -> impl Strategy<Value = Spec> {
    (1usize..500, prop::option::of(1usize..8)).prop_flat_map(|(n, capacity)| {
        let jobs = (0..n)
            .map(|i| {
                let needs = if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    prop::collection::vec(0..i, 0..3).boxed()
                };
                (
                    needs,
                    0..CONDITIONS.len(),
                    prop::bool::weighted(0.15),
                    prop::bool::weighted(0.2),
                )
            })
            .collect::<Vec<_>>();
        (jobs, Just(capacity)).prop_map(|(jobs, capacity)| Spec { jobs, capacity })
    })
}

fn workflow(spec: &Spec) -> Workflow {
    let mut src = String::from("on: push\njobs:\n");
    for (i, (needs, cond, _, coe)) in spec.jobs.iter().enumerate() {
        src.push_str(&format!("  j{i}:\n    runs-on: x\n"));
        let mut needs: Vec<usize> = needs.clone();
        needs.sort_unstable();
        needs.dedup();
        if !needs.is_empty() {
            let list: Vec<String> = needs.iter().map(|n| format!("j{n}")).collect();
            src.push_str(&format!("    needs: [{}]\n", list.join(", ")));
        }
        // A condition naming j0 needs j0 to be an ancestor to make sense; it evaluates either way.
        if !CONDITIONS[*cond].is_empty() && i > 0 {
            src.push_str(&format!("    if: \"{}\"\n", CONDITIONS[*cond]));
        }
        if *coe {
            src.push_str("    continue-on-error: true\n");
        }
        src.push_str("    steps: [{run: x}]\n");
    }
    let parsed = ci_config::github::parse_workflow(".github/workflows/p.yml", &src);
    parsed.value.expect("generated workflows are valid")
}

/// Runs the spec; returns the start order and the final states.
fn simulate(spec: &Spec) -> Result<(Vec<usize>, Vec<Conclusion>), TestCaseError> {
    let plan = Plan::new(&workflow(spec), &RunFacts::default())
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let mut s = Scheduler::new(
        plan,
        SchedulerOptions {
            capacity: spec.capacity,
        },
    );
    let mut conditions = ExprConditions::default();
    let mut running: Vec<usize> = Vec::new();
    let mut order = Vec::new();
    let mut steps = 0;
    while !s.is_finished() {
        steps += 1;
        prop_assert!(steps < 100_000, "the run does not terminate");
        for i in s.ready(&mut conditions) {
            // No instance starts before every need finished.
            for &n in &s.plan().instances[i].needs {
                prop_assert!(
                    matches!(s.state(n), State::Done(_)),
                    "{i} started before its need {n}"
                );
            }
            s.start(i).map_err(|e| TestCaseError::fail(e.to_string()))?;
            running.push(i);
            order.push(i);
        }
        if let Some(c) = spec.capacity {
            prop_assert!(
                running.len() <= c,
                "{} running with capacity {c}",
                running.len()
            );
        }
        // Finish the most recently started one: an adversarial order.
        let Some(i) = running.pop() else {
            prop_assert!(s.is_finished(), "nothing runs, yet the run is not finished");
            break;
        };
        let outcome = if spec.jobs[i].2 {
            Outcome::failure(1)
        } else {
            Outcome::success()
        };
        s.finish(i, outcome)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    prop_assert!(running.is_empty());
    let states: Vec<State> = (0..s.plan().instances.len()).map(|i| s.state(i)).collect();
    for (i, st) in states.iter().enumerate() {
        prop_assert!(matches!(st, State::Done(_)), "instance {i} ended in {st:?}");
    }
    Ok((order, s.conclusions()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_dags_schedule_correctly_and_deterministically(spec in spec()) {
        let first = simulate(&spec)?;
        let second = simulate(&spec)?;
        prop_assert_eq!(first, second, "the same inputs gave different schedules");
    }
}
