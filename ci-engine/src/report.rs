//! Commit statuses for a run and its jobs, taken from the run's own events and posted by one
//! task per run (in order, off the scheduling path) through a [`StatusReporter`].

use std::sync::Arc;

use ci_vcs::status::{CommitState, CommitStatus, StatusReporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::{RunEvent, Status};

/// Statuses a run may queue before its events wait for the forge.
const BUFFER: usize = 256;

/// The statuses of one run.
pub(crate) struct Reporting {
    /// `None` ends the task.
    tx: mpsc::Sender<Option<CommitStatus>>,
    task: std::sync::Mutex<Option<JoinHandle<Vec<String>>>>,
    sha: String,
    context: String,
}

impl Reporting {
    /// Starts posting for the commit `sha`; `None` for a run without a commit.
    pub fn start(
        reporter: Arc<dyn StatusReporter>,
        sha: &str,
        context: String,
    ) -> Option<Reporting> {
        if sha.is_empty() || sha == ci_vcs::event::ZERO_SHA {
            return None;
        }
        let (tx, mut rx) = mpsc::channel::<Option<CommitStatus>>(BUFFER);
        let task = tokio::spawn(async move {
            let mut errors = Vec::new();
            while let Some(Some(status)) = rx.recv().await {
                if let Err(e) = reporter.report(&status).await {
                    errors.push(format!("commit status '{}': {e}", status.context));
                }
            }
            errors
        });
        Some(Reporting {
            tx,
            task: std::sync::Mutex::new(Some(task)),
            sha: sha.to_owned(),
            context,
        })
    }

    /// Queues the status an event stands for, if any.
    pub async fn event(&self, event: &RunEvent) {
        let (context, state, description) = match event {
            RunEvent::RunStarted { .. } => (
                self.context.clone(),
                CommitState::Running,
                "The run started".to_owned(),
            ),
            RunEvent::RunFinished { status, .. } => (
                self.context.clone(),
                state(*status),
                format!("The run ended: {status}"),
            ),
            RunEvent::JobStarted { job, .. } => (
                format!("{} / {job}", self.context),
                CommitState::Running,
                "The job started".to_owned(),
            ),
            RunEvent::JobFinished { status, .. } if *status == Status::Skipped => return,
            RunEvent::JobFinished { job, status, .. } => (
                format!("{} / {job}", self.context),
                state(*status),
                format!("The job ended: {status}"),
            ),
            _ => return,
        };
        let _ = self
            .tx
            .send(Some(CommitStatus {
                sha: self.sha.clone(),
                state,
                context,
                description: Some(description),
                target_url: None,
            }))
            .await;
    }

    /// Waits until every queued status was posted; the errors of those that failed.
    pub async fn finish(&self) -> Vec<String> {
        let _ = self.tx.send(None).await;
        let task = self.task.lock().expect("never poisoned").take();
        match task {
            Some(task) => task
                .await
                .unwrap_or_else(|e| vec![format!("the status reporter stopped: {e}")]),
            None => Vec::new(),
        }
    }
}

fn state(status: Status) -> CommitState {
    match status {
        Status::Success | Status::Skipped => CommitState::Success,
        Status::Failure => CommitState::Failure,
        Status::Cancelled => CommitState::Cancelled,
    }
}
