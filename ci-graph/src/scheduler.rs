//! The scheduling state machine: pure (no I/O, no clock) and deterministic — ties are broken
//! by definition order.
//!
//! The caller loops: [`Scheduler::ready`] → start what it returns ([`Scheduler::start`]) →
//! report results ([`Scheduler::finish`]) → cancel what [`Scheduler::take_cancellations`]
//! names — until [`Scheduler::is_finished`].

use std::collections::{BTreeSet, HashMap};

use ci_config::expr::{self, Contexts, EvalContext, Expression, Function, ParseOptions, Value};
use ci_config::model::{Job, When};
use indexmap::IndexMap;

use crate::matrix::Combination;
use crate::plan::{JobInstance, Plan};

/// How an attempt ended, as the executor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutcomeStatus {
    /// It succeeded.
    Success,
    /// It failed.
    Failure,
    /// It was cancelled.
    Cancelled,
}

/// The failure reason of a job whose machine was lost (a remote agent stopped answering).
pub const RUNNER_LOST: &str = "runner_lost";

/// What the caller reports when an attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Success, failure or cancelled.
    pub status: OutcomeStatus,
    /// The exit code, when a process exited.
    pub exit_code: Option<i32>,
    /// Why it failed (`script_failure`, `stuck_or_timeout_failure`, `runner_system_failure`…),
    /// for retry rules.
    pub reason: Option<String>,
    /// Job outputs.
    pub outputs: IndexMap<String, String>,
}

impl Outcome {
    /// A success without outputs.
    pub fn success() -> Self {
        Outcome {
            status: OutcomeStatus::Success,
            exit_code: Some(0),
            reason: None,
            outputs: IndexMap::new(),
        }
    }

    /// A failure with an exit code.
    pub fn failure(exit_code: i32) -> Self {
        Outcome {
            status: OutcomeStatus::Failure,
            exit_code: Some(exit_code),
            reason: Some("script_failure".to_owned()),
            outputs: IndexMap::new(),
        }
    }

    /// A cancellation.
    pub fn cancelled() -> Self {
        Outcome {
            status: OutcomeStatus::Cancelled,
            exit_code: None,
            reason: None,
            outputs: IndexMap::new(),
        }
    }
}

/// The final state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conclusion {
    /// It succeeded.
    Success,
    /// It failed.
    Failure,
    /// It failed, but `continue-on-error` / `allow_failure` lets the run go on as if it had
    /// succeeded.
    AllowedFailure,
    /// It was cancelled (or never started because the run was cancelled).
    Cancelled,
    /// Its condition was false.
    Skipped,
    /// A manual job nobody started.
    Manual,
    /// A placeholder replaced by its expanded matrix.
    Expanded,
}

impl Conclusion {
    /// The `needs.<job>.result` value GitHub gives.
    pub fn result(self) -> &'static str {
        match self {
            Conclusion::Success | Conclusion::AllowedFailure | Conclusion::Expanded => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
            Conclusion::Skipped | Conclusion::Manual => "skipped",
        }
    }
}

/// Where an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Waiting for its needs.
    Waiting,
    /// Needs done, condition true: may start when capacity allows.
    Queued,
    /// Running its `attempt`-th attempt (1-based).
    Running {
        /// 1-based attempt number.
        attempt: u32,
    },
    /// A manual job waiting for [`Scheduler::play`].
    Blocked,
    /// Finished.
    Done(Conclusion),
}

/// What a condition evaluator is told about an instance's ancestors.
#[derive(Debug, Clone)]
pub struct StatusSnapshot {
    /// `success()`: no ancestor failed, was cancelled or skipped, and the run goes on.
    pub success: bool,
    /// `failure()`: some ancestor failed.
    pub failure: bool,
    /// `cancelled()`: the run was cancelled.
    pub cancelled: bool,
    /// The `needs` context: job id → `{result, outputs}`.
    pub needs: Value,
}

/// Decides an instance's condition (`if:`). The default is [`ExprConditions`].
pub trait ConditionEvaluator {
    /// Whether `instance` runs; an error fails the instance.
    fn evaluate(&mut self, instance: &JobInstance, status: &StatusSnapshot)
        -> Result<bool, String>;
}

/// Evaluates conditions with the expression engine: the run's contexts plus `needs`,
/// `matrix`, `strategy` and the status functions.
#[derive(Debug, Clone, Default)]
pub struct ExprConditions {
    /// Plan-time contexts (`github`, `inputs`, `vars` …).
    pub contexts: Contexts,
    cache: HashMap<String, Result<Expression, String>>,
}

impl ExprConditions {
    /// Conditions over these contexts.
    pub fn new(contexts: Contexts) -> Self {
        ExprConditions {
            contexts,
            cache: HashMap::new(),
        }
    }
}

struct ConditionContext<'a> {
    base: &'a Contexts,
    status: &'a StatusSnapshot,
    matrix: Value,
}

impl EvalContext for ConditionContext<'_> {
    fn context(&self, name: &str) -> Option<Value> {
        if name.eq_ignore_ascii_case("needs") {
            Some(self.status.needs.clone())
        } else if name.eq_ignore_ascii_case("matrix") {
            Some(self.matrix.clone())
        } else {
            self.base.context(name)
        }
    }

    fn status(&self, function: Function) -> Option<bool> {
        Some(match function {
            Function::Success => self.status.success,
            Function::Failure => self.status.failure,
            Function::Cancelled => self.status.cancelled,
            Function::Always => true,
            _ => return None,
        })
    }
}

impl ConditionEvaluator for ExprConditions {
    fn evaluate(
        &mut self,
        instance: &JobInstance,
        status: &StatusSnapshot,
    ) -> Result<bool, String> {
        let mut names: Vec<&str> = self.contexts.names().collect();
        names.extend(["needs", "matrix", "strategy"]);
        let expression = self
            .cache
            .entry(instance.condition.clone())
            .or_insert_with(|| {
                let options = ParseOptions {
                    contexts: &names,
                    functions: Function::STATUS,
                };
                Expression::parse(expr::strip_delimiters(&instance.condition), &options)
                    .map_err(|e| e.to_string())
            })
            .clone()?;
        let ctx = ConditionContext {
            base: &self.contexts,
            status,
            matrix: instance.matrix.as_ref().map_or(Value::Null, |m| {
                Value::Object(std::sync::Arc::new(m.clone()))
            }),
        };
        expression
            .evaluate(&ctx)
            .map(|v| v.is_truthy())
            .map_err(|e| e.to_string())
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// No such instance.
    #[error("no job instance {0}")]
    Unknown(usize),
    /// `start` of an instance that is not queued.
    #[error("job '{0}' is not ready to start")]
    NotReady(String),
    /// `finish` of an instance that is not running.
    #[error("job '{0}' is not running")]
    NotRunning(String),
    /// `play` of an instance that is not a blocked manual job.
    #[error("job '{0}' is not a manual job waiting to be started")]
    NotManual(String),
    /// `expand` of an instance without a deferred matrix.
    #[error("job '{0}' has no deferred matrix")]
    NotDeferred(String),
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedulerOptions {
    /// Most instances running at once across the run (`None`: unlimited).
    pub capacity: Option<usize>,
}

/// Per-instance bookkeeping that only finished instances need.
#[derive(Debug, Clone, Copy, Default)]
struct Lineage {
    /// This instance or an ancestor failed (a tolerated failure does not count).
    failed: bool,
    /// This instance or an ancestor did not succeed (failed, cancelled, skipped).
    unsuccessful: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct GroupSlots {
    running: Option<usize>,
    pending: Option<usize>,
}

/// The state machine over one [`Plan`].
#[derive(Debug, Clone)]
pub struct Scheduler {
    plan: Plan,
    options: SchedulerOptions,
    states: Vec<State>,
    attempts: Vec<u32>,
    lineage: Vec<Lineage>,
    outputs: Vec<IndexMap<String, String>>,
    /// Unfinished needs per instance.
    remaining: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    /// Instances whose needs just finished: their condition is due.
    due: Vec<usize>,
    queued: BTreeSet<usize>,
    running: usize,
    running_per_job: Vec<usize>,
    groups: HashMap<String, GroupSlots>,
    cancellations: Vec<usize>,
    cancel_requested: Vec<bool>,
    run_cancelled: bool,
}

impl Scheduler {
    /// A scheduler at the start of the run.
    pub fn new(plan: Plan, options: SchedulerOptions) -> Self {
        let n = plan.instances.len();
        let jobs = plan
            .instances
            .iter()
            .map(|i| i.job_index)
            .max()
            .map_or(0, |m| m + 1);
        let mut s = Scheduler {
            states: vec![State::Waiting; n],
            attempts: vec![0; n],
            lineage: vec![Lineage::default(); n],
            outputs: vec![IndexMap::new(); n],
            remaining: vec![0; n],
            dependents: vec![Vec::new(); n],
            due: Vec::new(),
            queued: BTreeSet::new(),
            running: 0,
            running_per_job: vec![0; jobs],
            groups: HashMap::new(),
            cancellations: Vec::new(),
            cancel_requested: vec![false; n],
            run_cancelled: false,
            plan,
            options,
        };
        s.wire(0);
        s
    }

    /// Computes `remaining`/`dependents` for instances from `from` on.
    fn wire(&mut self, from: usize) {
        let n = self.plan.instances.len();
        self.states.resize(n, State::Waiting);
        self.attempts.resize(n, 0);
        self.lineage.resize(n, Lineage::default());
        self.outputs.resize(n, IndexMap::new());
        self.remaining.resize(n, 0);
        self.dependents.resize(n, Vec::new());
        self.cancel_requested.resize(n, false);
        for i in from..n {
            let needs = self.plan.instances[i].needs.clone();
            self.remaining[i] = needs
                .iter()
                .filter(|&&d| !matches!(self.states[d], State::Done(_)))
                .count();
            for d in needs {
                self.dependents[d].push(i);
            }
            if self.remaining[i] == 0 {
                self.due.push(i);
            }
        }
        self.due.sort_unstable();
    }

    /// The plan (instances may have been added by [`Scheduler::expand`]).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The state of an instance.
    pub fn state(&self, index: usize) -> State {
        self.states[index]
    }

    /// Attempts started so far for an instance.
    pub fn attempts(&self, index: usize) -> u32 {
        self.attempts[index]
    }

    /// Instances the caller should start now, in definition order. Instances with a
    /// deferred matrix are returned too: expand them ([`Scheduler::expand`]) instead of
    /// starting them.
    pub fn ready(&mut self, conditions: &mut dyn ConditionEvaluator) -> Vec<usize> {
        self.settle(conditions);
        let startable_in_group = self.resolve_groups();
        let mut out = Vec::new();
        let mut started_per_job: HashMap<usize, usize> = HashMap::new();
        let mut running = self.running;
        let queued: Vec<usize> = self.queued.iter().copied().collect();
        for i in queued {
            let inst = &self.plan.instances[i];
            let job_index = inst.job_index;
            if inst.deferred_matrix.is_some() {
                out.push(i);
                continue;
            }
            if self.options.capacity.is_some_and(|c| running >= c) {
                break;
            }
            if let Some(max) = inst.max_parallel {
                let job_running = self.running_per_job[inst.job_index]
                    + started_per_job.get(&inst.job_index).copied().unwrap_or(0);
                if job_running >= max {
                    continue;
                }
            }
            if inst.concurrency.is_some() && !startable_in_group.contains(&i) {
                continue;
            }
            running += 1;
            *started_per_job.entry(job_index).or_default() += 1;
            out.push(i);
        }
        out
    }

    /// Applies concurrency groups to the queued instances, as GitHub documents: at most one
    /// running and one pending per group, the newest pending wins (older pending ones are
    /// cancelled), and with `cancel-in-progress` the newest cancels the running one.
    /// Returns the grouped instances that may start now.
    fn resolve_groups(&mut self) -> std::collections::HashSet<usize> {
        let mut by_group: IndexMap<String, Vec<usize>> = IndexMap::new();
        for &i in &self.queued {
            if let Some(g) = &self.plan.instances[i].concurrency {
                by_group.entry(g.group.clone()).or_default().push(i);
            }
        }
        let mut allowed = std::collections::HashSet::new();
        for (group, members) in by_group {
            let newest = *members.last().expect("groups are built from members");
            let cancel_in_progress = self.plan.instances[newest]
                .concurrency
                .as_ref()
                .is_some_and(|c| c.cancel_in_progress);
            let running = self.groups.get(&group).and_then(|s| s.running);
            let (start, pending) = match running {
                None if cancel_in_progress => (Some(newest), None),
                None => (Some(members[0]), (members.len() > 1).then_some(newest)),
                Some(r) => {
                    if cancel_in_progress && !self.cancel_requested[r] {
                        self.cancel_requested[r] = true;
                        self.cancellations.push(r);
                    }
                    (None, Some(newest))
                }
            };
            for &m in &members {
                if Some(m) != start && Some(m) != pending {
                    self.queued.remove(&m);
                    self.conclude(m, Conclusion::Cancelled);
                }
            }
            self.groups.entry(group).or_default().pending = pending;
            allowed.extend(start);
        }
        allowed
    }

    /// Evaluates the conditions of every instance whose needs are done, until nothing changes.
    fn settle(&mut self, conditions: &mut dyn ConditionEvaluator) {
        while !self.due.is_empty() {
            let mut due = std::mem::take(&mut self.due);
            due.sort_unstable();
            for i in due {
                if self.states[i] != State::Waiting {
                    continue;
                }
                let status = self.snapshot(i);
                let inst = &self.plan.instances[i];
                let decision = match inst.when {
                    When::Never => Ok(false),
                    When::Always => Ok(true),
                    When::OnFailure => Ok(status.failure),
                    // `on_success`, `manual` and whatever a later dialect adds: the condition.
                    _ => conditions.evaluate(inst, &status),
                };
                match decision {
                    Ok(true) if inst.when == When::Manual && !self.run_cancelled => {
                        self.states[i] = State::Blocked;
                    }
                    Ok(true) => {
                        self.states[i] = State::Queued;
                        self.queued.insert(i);
                    }
                    Ok(false) if self.run_cancelled => self.conclude(i, Conclusion::Cancelled),
                    Ok(false) => self.conclude(i, Conclusion::Skipped),
                    Err(_) => self.conclude(i, Conclusion::Failure),
                }
            }
        }
    }

    fn snapshot(&self, i: usize) -> StatusSnapshot {
        let inst = &self.plan.instances[i];
        let mut failure = false;
        let mut unsuccessful = false;
        let mut needs: IndexMap<String, serde_json::Value> = IndexMap::new();
        for &n in &inst.needs {
            let l = self.lineage[n];
            failure |= l.failed;
            unsuccessful |= l.unsuccessful;
            let need = &self.plan.instances[n];
            let result = match self.states[n] {
                State::Done(c) => c.result(),
                _ => "skipped",
            };
            // A matrix job's result is its worst instance's; outputs merge (last wins).
            let entry = needs
                .entry(need.job.clone())
                .or_insert_with(|| serde_json::json!({"result": result, "outputs": {}}));
            let rank = |r: &str| match r {
                "failure" => 3,
                "cancelled" => 2,
                "skipped" => 1,
                _ => 0,
            };
            if rank(result) > rank(entry["result"].as_str().unwrap_or("success")) {
                entry["result"] = serde_json::Value::from(result);
            }
            for (k, v) in &self.outputs[n] {
                entry["outputs"][k] = serde_json::Value::from(v.as_str());
            }
        }
        StatusSnapshot {
            success: !unsuccessful && !self.run_cancelled,
            failure,
            cancelled: self.run_cancelled,
            needs: Value::from_json(&serde_json::Value::Object(needs.into_iter().collect())),
        }
    }

    /// Marks `i` finished and makes its dependents due when they have nothing else to wait for.
    fn conclude(&mut self, i: usize, conclusion: Conclusion) {
        self.states[i] = State::Done(conclusion);
        let inst = &self.plan.instances[i];
        let mut lineage = Lineage {
            failed: conclusion == Conclusion::Failure,
            unsuccessful: !matches!(
                conclusion,
                Conclusion::Success | Conclusion::AllowedFailure | Conclusion::Expanded
            ),
        };
        for &n in &inst.needs {
            lineage.failed |= self.lineage[n].failed;
            lineage.unsuccessful |= self.lineage[n].unsuccessful;
        }
        self.lineage[i] = lineage;
        if let Some(group) = &inst.concurrency {
            if let Some(slots) = self.groups.get_mut(&group.group) {
                if slots.running == Some(i) {
                    slots.running = None;
                }
                if slots.pending == Some(i) {
                    slots.pending = None;
                }
            }
        }
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            self.remaining[d] -= 1;
            if self.remaining[d] == 0 {
                self.due.push(d);
            }
        }
    }

    /// Marks a queued instance as running.
    pub fn start(&mut self, index: usize) -> Result<u32, ScheduleError> {
        let inst = self
            .plan
            .instances
            .get(index)
            .ok_or(ScheduleError::Unknown(index))?;
        if self.states[index] != State::Queued || inst.deferred_matrix.is_some() {
            return Err(ScheduleError::NotReady(inst.id.clone()));
        }
        if let Some(group) = &inst.concurrency {
            let slots = self.groups.entry(group.group.clone()).or_default();
            if slots.running.is_some_and(|r| r != index) {
                return Err(ScheduleError::NotReady(inst.id.clone()));
            }
            slots.running = Some(index);
            if slots.pending == Some(index) {
                slots.pending = None;
            }
        }
        self.queued.remove(&index);
        self.attempts[index] += 1;
        self.states[index] = State::Running {
            attempt: self.attempts[index],
        };
        self.running += 1;
        self.running_per_job[inst.job_index] += 1;
        Ok(self.attempts[index])
    }

    /// Records the end of an attempt. A failure may be retried (the instance is queued
    /// again), may be tolerated (`continue-on-error`, `allow_failure`), and with `fail-fast`
    /// cancels its matrix siblings.
    pub fn finish(&mut self, index: usize, outcome: Outcome) -> Result<Conclusion, ScheduleError> {
        let inst = self
            .plan
            .instances
            .get(index)
            .ok_or(ScheduleError::Unknown(index))?;
        if !matches!(self.states[index], State::Running { .. }) {
            return Err(ScheduleError::NotRunning(inst.id.clone()));
        }
        self.running -= 1;
        self.running_per_job[inst.job_index] -= 1;
        if let Some(group) = &inst.concurrency {
            if let Some(slots) = self.groups.get_mut(&group.group) {
                if slots.running == Some(index) {
                    slots.running = None;
                }
            }
        }
        let cancelled_here = self.cancel_requested[index] || self.run_cancelled;
        if outcome.status == OutcomeStatus::Failure
            && !cancelled_here
            && self.should_retry(index, &outcome)
        {
            self.states[index] = State::Queued;
            self.queued.insert(index);
            return Ok(Conclusion::Failure);
        }
        let inst = &self.plan.instances[index];
        let tolerated = inst.continue_on_error
            || inst.allow_failure.any
            || outcome
                .exit_code
                .is_some_and(|c| inst.allow_failure.exit_codes.contains(&c));
        let conclusion = match outcome.status {
            OutcomeStatus::Success => Conclusion::Success,
            OutcomeStatus::Cancelled => Conclusion::Cancelled,
            OutcomeStatus::Failure if tolerated => Conclusion::AllowedFailure,
            OutcomeStatus::Failure => Conclusion::Failure,
        };
        if conclusion == Conclusion::Failure && inst.fail_fast && inst.matrix.is_some() {
            let job_index = inst.job_index;
            self.cancel_siblings(index, job_index);
        }
        self.outputs[index] = outcome.outputs;
        self.conclude(index, conclusion);
        Ok(conclusion)
    }

    fn should_retry(&self, index: usize, outcome: &Outcome) -> bool {
        let retry = &self.plan.instances[index].retry;
        if self.attempts[index] > retry.max {
            return false;
        }
        let reason = outcome.reason.as_deref();
        let reason_ok = retry.when.is_empty()
            || retry.when.iter().any(|w| {
                w == "always"
                    || reason == Some(w.as_str())
                    // A lost runner is a runner system failure too.
                    || (w == "runner_system_failure" && reason == Some(RUNNER_LOST))
            });
        let code_ok = retry.exit_codes.is_empty()
            || outcome
                .exit_code
                .is_some_and(|c| retry.exit_codes.contains(&c));
        reason_ok && code_ok
    }

    /// `fail-fast`: every other instance of the same matrix job is cancelled.
    fn cancel_siblings(&mut self, failed: usize, job_index: usize) {
        let siblings: Vec<usize> = (0..self.plan.instances.len())
            .filter(|&s| s != failed && self.plan.instances[s].job_index == job_index)
            .collect();
        for s in siblings {
            match self.states[s] {
                State::Waiting | State::Queued | State::Blocked => {
                    self.queued.remove(&s);
                    self.conclude(s, Conclusion::Cancelled);
                }
                State::Running { .. } if !self.cancel_requested[s] => {
                    self.cancel_requested[s] = true;
                    self.cancellations.push(s);
                }
                _ => {}
            }
        }
    }

    /// Cancels the run: running instances are to be cancelled; the others are decided with
    /// `cancelled()` true (so only `always()`/`cancelled()` conditions still run).
    pub fn cancel(&mut self) {
        self.run_cancelled = true;
        for i in 0..self.states.len() {
            match self.states[i] {
                State::Running { .. } if !self.cancel_requested[i] => {
                    self.cancel_requested[i] = true;
                    self.cancellations.push(i);
                }
                State::Queued => {
                    // Re-decide with the run cancelled.
                    self.queued.remove(&i);
                    self.states[i] = State::Waiting;
                    self.due.push(i);
                }
                State::Blocked => self.conclude(i, Conclusion::Cancelled),
                _ => {}
            }
        }
    }

    /// Running instances the caller must cancel (fail-fast, concurrency, run cancel); each
    /// is returned once. Report them with [`Outcome::cancelled`] when they stopped.
    pub fn take_cancellations(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.cancellations)
    }

    /// Starts a blocked manual job (GitLab `when: manual`).
    pub fn play(&mut self, index: usize) -> Result<(), ScheduleError> {
        let inst = self
            .plan
            .instances
            .get(index)
            .ok_or(ScheduleError::Unknown(index))?;
        if self.states[index] != State::Blocked {
            return Err(ScheduleError::NotManual(inst.id.clone()));
        }
        self.states[index] = State::Queued;
        self.queued.insert(index);
        Ok(())
    }

    /// Replaces a deferred-matrix placeholder by its combinations, once the caller evaluated
    /// the matrix expression with the needs' outputs. Returns the new instances.
    pub fn expand(
        &mut self,
        index: usize,
        job: &Job,
        combos: Vec<Combination>,
    ) -> Result<Vec<usize>, ScheduleError> {
        let inst = self
            .plan
            .instances
            .get(index)
            .ok_or(ScheduleError::Unknown(index))?;
        if inst.deferred_matrix.is_none() || self.states[index] != State::Queued {
            return Err(ScheduleError::NotDeferred(inst.id.clone()));
        }
        let from = self.plan.instances.len();
        let dependents = std::mem::take(&mut self.dependents[index]);
        let new = self.plan.expand_deferred(index, job, combos);
        self.queued.remove(&index);
        self.states[index] = State::Done(Conclusion::Expanded);
        self.running_per_job.resize(
            self.running_per_job.len().max(job_index_bound(&self.plan)),
            0,
        );
        self.wire(from);
        // Dependents of the placeholder now wait for the new instances instead.
        for d in dependents {
            if self.states[d] == State::Waiting {
                self.remaining[d] = self.remaining[d] - 1 + new.len();
                for &n in &new {
                    self.dependents[n].push(d);
                }
                if self.remaining[d] == 0 {
                    self.due.push(d);
                }
            }
        }
        Ok(new)
    }

    /// Whether nothing more can happen: nothing running or queued, and every other instance
    /// finished (manual jobs nobody started and what waits on them count as finished).
    pub fn is_finished(&self) -> bool {
        self.running == 0 && self.queued.is_empty() && self.due.is_empty()
    }

    /// The final conclusion of every instance (waiting or blocked ones count as manual).
    pub fn conclusions(&self) -> Vec<Conclusion> {
        self.states
            .iter()
            .map(|s| match s {
                State::Done(c) => *c,
                _ => Conclusion::Manual,
            })
            .collect()
    }

    /// Whether the run succeeded: no instance failed without being tolerated, none was
    /// cancelled.
    pub fn succeeded(&self) -> bool {
        self.conclusions()
            .iter()
            .all(|c| !matches!(c, Conclusion::Failure | Conclusion::Cancelled))
    }

    /// The `needs` context of an instance: each needed job's `result` and `outputs` (what
    /// its steps may read once it runs).
    pub fn needs_context(&self, index: usize) -> Value {
        self.snapshot(index).needs
    }

    /// The outputs an instance reported.
    pub fn outputs(&self, index: usize) -> &IndexMap<String, String> {
        &self.outputs[index]
    }
}

fn job_index_bound(plan: &Plan) -> usize {
    plan.instances
        .iter()
        .map(|i| i.job_index)
        .max()
        .map_or(0, |m| m + 1)
}

/// Evaluates a deferred matrix with the `needs` of its placeholder (what the caller does
/// before [`Scheduler::expand`]).
pub fn evaluate_deferred_matrix(
    scheduler: &Scheduler,
    index: usize,
    contexts: &Contexts,
) -> Result<Vec<Combination>, String> {
    let inst = &scheduler.plan.instances[index];
    let matrix = inst
        .deferred_matrix
        .as_ref()
        .ok_or_else(|| format!("job '{}' has no deferred matrix", inst.id))?;
    // The needs it waited for are known now.
    let mut with_needs = contexts.clone();
    with_needs.insert("needs", scheduler.snapshot(index).needs);
    let names: Vec<&str> = with_needs.names().collect();
    crate::plan::matrix_spec(matrix, &with_needs, &names)?
        .expand()
        .map_err(|e| e.to_string())
}
