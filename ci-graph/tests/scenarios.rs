//! Scenario tests of the scheduler, from the readable table in `tests/data/scenarios.yml`.

use std::collections::{HashMap, VecDeque};

use ci_config::model::{AllowFailure, Retry, When};
use ci_config::yaml::{self, Node};
use ci_graph::{
    evaluate_deferred_matrix, Conclusion, ExprConditions, Outcome, Plan, RunFacts, Scheduler,
    SchedulerOptions,
};

fn parse_outcome(node: &Node) -> Outcome {
    if let Some(status) = node.get("status") {
        let mut o = parse_outcome(status);
        if let Some(outputs) = node.get("outputs").and_then(Node::as_map) {
            for (k, v) in outputs {
                o.outputs.insert(
                    k.scalar_text().unwrap_or_default(),
                    v.scalar_text().unwrap_or_default(),
                );
            }
        }
        return o;
    }
    let text = node.scalar_text().unwrap_or_default();
    let mut words = text.split_whitespace();
    match words.next() {
        Some("failure") => Outcome::failure(words.next().and_then(|c| c.parse().ok()).unwrap_or(1)),
        Some("cancelled") => Outcome::cancelled(),
        _ => Outcome::success(),
    }
}

fn conclusion_name(c: Conclusion) -> &'static str {
    match c {
        Conclusion::Success => "success",
        Conclusion::Failure => "failure",
        Conclusion::AllowedFailure => "allowed_failure",
        Conclusion::Cancelled => "cancelled",
        Conclusion::Skipped => "skipped",
        Conclusion::Manual => "manual",
        Conclusion::Expanded => "expanded",
        _ => "other",
    }
}

fn apply_gitlab(workflow: &mut ci_config::Workflow, case: &Node) {
    if let Some(stages) = case.get("stages").and_then(Node::as_seq) {
        workflow.stages = stages.iter().filter_map(Node::scalar_text).collect();
    }
    let Some(settings) = case.get("gitlab").and_then(Node::as_map) else {
        return;
    };
    for (job_id, s) in settings {
        let job = workflow
            .jobs
            .get_mut(job_id.as_str().expect("job id"))
            .expect("job exists");
        job.stage = s.get("stage").and_then(Node::scalar_text);
        if let Some(w) = s.get("when").and_then(Node::as_str) {
            job.when = match w {
                "on_failure" => When::OnFailure,
                "always" => When::Always,
                "manual" => When::Manual,
                "never" => When::Never,
                _ => When::OnSuccess,
            };
        }
        if s.get("allow_failure").and_then(Node::as_bool) == Some(true) {
            job.allow_failure = AllowFailure {
                any: true,
                exit_codes: Vec::new(),
            };
        }
        if let Some(max) = s.get("retry").and_then(Node::as_f64) {
            job.retry = Retry {
                max: max as u32,
                when: Vec::new(),
                exit_codes: s
                    .get("retry_exit_codes")
                    .and_then(Node::as_seq)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|c| c.as_f64().map(|c| c as i32))
                    .collect(),
            };
        }
    }
}

/// Runs one scenario; returns what went wrong.
fn run(case: &Node) -> Vec<String> {
    let src = case
        .get("workflow")
        .and_then(Node::as_str)
        .expect("workflow text");
    let parsed = ci_config::github::parse_workflow(".github/workflows/s.yml", src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let mut workflow = parsed.value.expect("a workflow");
    apply_gitlab(&mut workflow, case);
    let mut contexts = ci_config::expr::Contexts::new();
    contexts.insert(
        "github",
        ci_config::expr::Value::from_json(&serde_json::json!({"event_name": "push"})),
    );
    let plan = Plan::new(
        &workflow,
        &RunFacts {
            contexts: contexts.clone(),
        },
    )
    .expect("a plan");
    let capacity = case
        .get("capacity")
        .and_then(Node::as_f64)
        .map(|c| c as usize);
    let mut s = Scheduler::new(plan, SchedulerOptions { capacity });
    let mut conditions = ExprConditions::new(contexts.clone());
    let scripted: HashMap<String, Vec<Outcome>> = case
        .get("outcomes")
        .and_then(Node::as_map)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| {
            let list = match v.as_seq() {
                Some(items) => items.iter().map(parse_outcome).collect(),
                None => vec![parse_outcome(v)],
            };
            (k.scalar_text().unwrap_or_default(), list)
        })
        .collect();
    let mut to_play: VecDeque<String> = case
        .get("play")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Node::scalar_text)
        .collect();
    let cancel_after = case
        .get("cancel_after")
        .and_then(Node::as_f64)
        .map(|n| n as usize);
    let mut running: VecDeque<usize> = VecDeque::new();
    let mut cancel_requested: Vec<usize> = Vec::new();
    let mut max_running: HashMap<String, usize> = HashMap::new();
    let mut finishes = 0;
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 10_000, "the scenario does not terminate");
        for i in s.ready(&mut conditions) {
            if s.plan().instances[i].deferred_matrix.is_some() {
                let job = workflow.jobs[&s.plan().instances[i].job].clone();
                let combos =
                    evaluate_deferred_matrix(&s, i, &contexts).expect("the matrix evaluates");
                s.expand(i, &job, combos).expect("expands");
                continue;
            }
            s.start(i).expect("starts");
            running.push_back(i);
        }
        let mut per_job: HashMap<String, usize> = HashMap::new();
        for &i in &running {
            *per_job
                .entry(s.plan().instances[i].job.clone())
                .or_default() += 1;
        }
        for (job, n) in per_job {
            let m = max_running.entry(job).or_default();
            *m = (*m).max(n);
        }
        let Some(i) = running.pop_front() else {
            if s.is_finished() {
                match to_play.pop_front() {
                    Some(id) => {
                        let i = s.plan().find(&id).expect("a manual instance");
                        s.play(i).expect("plays");
                        continue;
                    }
                    None => break,
                }
            }
            continue;
        };
        let id = s.plan().instances[i].id.clone();
        let attempt = s.attempts(i) as usize;
        let outcome = if cancel_requested.contains(&i) {
            Outcome::cancelled()
        } else {
            scripted
                .get(&id)
                .and_then(|list| list.get(attempt - 1).or(list.last()))
                .cloned()
                .unwrap_or_else(Outcome::success)
        };
        s.finish(i, outcome).expect("finishes");
        finishes += 1;
        if cancel_after == Some(finishes) {
            s.cancel();
        }
        cancel_requested.extend(s.take_cancellations());
    }
    let mut problems = Vec::new();
    let conclusions = s.conclusions();
    let expect = case.get("expect").and_then(Node::as_map).expect("expect");
    if expect.len() != s.plan().instances.len() {
        problems.push(format!(
            "expected {} instances, planned {:?}",
            expect.len(),
            s.plan().instances.iter().map(|i| &i.id).collect::<Vec<_>>()
        ));
    }
    for (id, want) in expect {
        let id = id.scalar_text().unwrap_or_default();
        let want = want.scalar_text().unwrap_or_default();
        match s.plan().find(&id) {
            Some(i) if conclusion_name(conclusions[i]) == want => {}
            Some(i) => problems.push(format!(
                "{id}: {}, expected {want}",
                conclusion_name(conclusions[i])
            )),
            None => problems.push(format!("{id}: not planned")),
        }
    }
    for (id, want) in case
        .get("attempts")
        .and_then(Node::as_map)
        .unwrap_or_default()
    {
        let id = id.scalar_text().unwrap_or_default();
        let i = s.plan().find(&id).expect("instance");
        let want = want.as_f64().unwrap_or_default() as u32;
        if s.attempts(i) != want {
            problems.push(format!("{id}: {} attempts, expected {want}", s.attempts(i)));
        }
    }
    for (job, want) in case
        .get("max_running")
        .and_then(Node::as_map)
        .unwrap_or_default()
    {
        let job = job.scalar_text().unwrap_or_default();
        let want = want.as_f64().unwrap_or_default() as usize;
        let got = max_running.get(&job).copied().unwrap_or_default();
        if got > want {
            problems.push(format!(
                "{job}: {got} instances ran at once, at most {want} allowed"
            ));
        }
    }
    problems
}

#[test]
fn scheduler_scenarios() {
    let data = include_str!("data/scenarios.yml");
    let (docs, diags) = yaml::load("scenarios.yml", data, &yaml::LoadOptions::default());
    assert!(diags.is_empty(), "{diags:?}");
    let cases = docs[0].as_seq().expect("a list of scenarios");
    let mut failures = Vec::new();
    for case in cases {
        let name = case.get("name").and_then(Node::as_str).unwrap_or_default();
        let problems = run(case);
        if !problems.is_empty() {
            failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }
    println!(
        "scenarios: {}/{} pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
