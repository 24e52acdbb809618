//! Background steps: a script that runs while the job goes on (GitHub `background: true` and
//! `parallel:`, CircleCI `background: true`). It ends at a `wait:`/`wait-all:` step, is
//! stopped by a `cancel:` step, and is stopped when the job's steps are done. Its output is
//! kept aside while it runs and written to the job's log, masked, when it is concluded; a
//! failure fails the job as any step's does, a stop does not.

use std::sync::Arc;
use std::time::Instant;

use ci_exec::{Chunk, StepOutcome, StepSpec};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{RunEvent, Status};
use crate::runner::{Background, Frame, JobRunner, Ran, StepResult};
use crate::state::now_ms;

/// At most this many background steps run at once in a job (GitHub's limit).
pub(crate) const MAX_RUNNING: usize = 10;

/// Output of one background step kept for its log; what comes after is counted, not kept.
const KEPT_OUTPUT: usize = 16 << 20;

impl JobRunner {
    /// Starts `spec` in the job environment and returns at once; the step that asked is
    /// marked as gone to the background (its record is made when it is concluded).
    pub(crate) async fn start_background(
        &mut self,
        index: usize,
        spec: StepSpec,
    ) -> Result<(), String> {
        let running = self
            .background
            .iter()
            .filter(|b| !b.task.is_finished())
            .count();
        if running >= MAX_RUNNING {
            return Err(format!(
                "step '{}': at most {MAX_RUNNING} background steps can run at once in a job",
                spec.id
            ));
        }
        let (spec, paths) = self.exec_begin(index, spec).await;
        let cancel = if self.after_cancel {
            CancellationToken::new()
        } else {
            self.cancel.child_token()
        };
        let environment = Arc::clone(&self.environment);
        let run_spec = spec.clone();
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel::<Chunk>(64);
            let run = environment.run_step(&run_spec, tx, token);
            let collect = async {
                let (mut chunks, mut kept, mut dropped) = (Vec::new(), 0usize, 0usize);
                while let Some(chunk) = rx.recv().await {
                    if kept + chunk.data.len() <= KEPT_OUTPUT {
                        kept += chunk.data.len();
                        chunks.push(chunk);
                    } else {
                        dropped += chunk.data.len();
                    }
                }
                (chunks, dropped)
            };
            let (outcome, (chunks, dropped)) = tokio::join!(run, collect);
            Ran {
                outcome,
                chunks,
                dropped,
            }
        });
        self.logs.line(index, "Running in the background.").await;
        self.background.push(Background {
            id: spec.id.clone(),
            index,
            name: spec.id.clone(),
            started: Instant::now(),
            started_at: now_ms(),
            continue_on_error: false,
            cancel,
            spec,
            paths,
            task,
        });
        self.went_to_background = true;
        Ok(())
    }

    /// Concludes background steps: those named by `ids` (every one when `None`), waiting
    /// for them to end, or stopping them first when `stop`. A name that is neither running
    /// nor a finished step of `frame` is an error. `own_group`: their output goes in a log
    /// group of its own (at the end of the job), else into the asking step's.
    pub(crate) async fn finish_background(
        &mut self,
        ids: Option<&[String]>,
        stop: bool,
        own_group: bool,
        frame: &mut Frame,
    ) -> Result<(), String> {
        if let Some(ids) = ids {
            if let Some(unknown) = ids.iter().find(|id| {
                !self.background.iter().any(|b| &b.id == *id) && !frame.steps.contains_key(*id)
            }) {
                return Err(format!(
                    "there is no background step with the id '{unknown}'"
                ));
            }
        }
        let (picked, rest): (Vec<Background>, Vec<Background>) =
            std::mem::take(&mut self.background)
                .into_iter()
                .partition(|b| ids.is_none_or(|ids| ids.contains(&b.id)));
        self.background = rest;
        if stop {
            for b in &picked {
                b.cancel.cancel();
            }
        }
        for b in picked {
            self.conclude_background(b, stop, own_group, frame).await;
        }
        Ok(())
    }

    async fn conclude_background(
        &mut self,
        b: Background,
        stopped: bool,
        own_group: bool,
        frame: &mut Frame,
    ) {
        let ran = match b.task.await {
            Ok(ran) => ran,
            Err(e) => Ran {
                outcome: StepOutcome::StartFailed(format!("the background step's task: {e}")),
                chunks: Vec::new(),
                dropped: 0,
            },
        };
        if own_group {
            self.logs
                .raw(&format!("##[group]{} (background)\n", b.name))
                .await;
        } else {
            self.logs
                .line(
                    b.index,
                    &format!("Output of the background step '{}':", b.name),
                )
                .await;
        }
        for chunk in &ran.chunks {
            let events = self.logs.pipeline.push(chunk);
            self.logs.events(b.index, events).await;
        }
        let events = self.logs.pipeline.finish();
        self.logs.events(b.index, events).await;
        if ran.dropped > 0 {
            self.logs
                .line(
                    b.index,
                    &format!(
                        "[{} more bytes of this background step's output were not kept]",
                        ran.dropped
                    ),
                )
                .await;
        }
        let done = self.exec_end(b.index, &b.spec, &b.paths, ran.outcome).await;
        let result = if stopped && done.outcome == StepOutcome::Cancelled {
            self.logs
                .line(b.index, "The background step was stopped.")
                .await;
            StepResult {
                outcome: Status::Cancelled,
                outputs: done.outputs,
            }
        } else {
            let in_cleanup = std::mem::replace(&mut self.in_cleanup, false);
            let result = self.conclude(b.index, done).await;
            self.in_cleanup = in_cleanup;
            result
        };
        if own_group {
            self.logs.raw("##[endgroup]\n").await;
        }
        let conclusion = if result.outcome == Status::Failure && b.continue_on_error {
            Status::Success
        } else {
            result.outcome
        };
        if conclusion == Status::Failure {
            frame.failed = true;
        }
        frame.steps.insert(
            b.id.clone(),
            serde_json::json!({
                "outputs": result.outputs,
                "outcome": result.outcome.as_str(),
                "conclusion": conclusion.as_str(),
            }),
        );
        self.ctx
            .emit(RunEvent::StepFinished {
                job: self.id.clone(),
                step: b.index,
                name: b.name.clone(),
                status: conclusion,
                duration_ms: b.started.elapsed().as_millis() as u64,
            })
            .await;
        if frame.action_path.is_none() {
            self.records.push(ci_store::runs::StepRecord {
                index: b.index as i64,
                name: b.name,
                status: conclusion.stored(),
                started_at: Some(b.started_at),
                finished_at: Some(now_ms()),
                log_key: Some(self.log_key.clone()),
            });
        }
    }

    /// The result of a step that only orchestrates others (wait, cancel, parallel).
    pub(crate) fn success() -> StepResult {
        StepResult {
            outcome: Status::Success,
            outputs: IndexMap::new(),
        }
    }
}
