//! Schedules: the server's own (`[[schedules]]`, GitLab's pipeline schedules) and GitHub's
//! `on.schedule` read from each project's default branch. A fire time becomes a queued
//! request whose id names the schedule and the minute, so that servers sharing a database
//! (or one restarting) fire each time once. Missed times while no server ran are not made up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ci_engine::store::queue::NewJob;
use ci_engine::vcs::schedule::Schedule;
use tokio_util::sync::CancellationToken;

use crate::state::{now_ms, AppState};
use crate::work::{ci_files, Requested, Trigger, Work, INTAKE};

/// One schedule to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `owner/name`.
    pub repo: String,
    /// Branch.
    pub git_ref: String,
    /// Cron.
    pub cron: String,
    /// Only this file.
    pub workflow: Option<String>,
}

/// How often `on.schedule` is read again from the projects' branches.
const SCAN_EVERY: Duration = Duration::from_secs(60);

/// The queue id of one firing.
pub fn firing_id(entry: &Entry, at: DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    let key = format!(
        "{}\n{}\n{}\n{}",
        entry.repo,
        entry.git_ref,
        entry.cron,
        entry.workflow.as_deref().unwrap_or("")
    );
    let digest = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
    format!("schedule:{digest}:{}", at.timestamp())
}

impl AppState {
    /// GitHub-dialect files on each project's default branch with `on.schedule`.
    async fn scan_schedules(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for (repo, project) in &self.config.projects {
            let Some(url) = &project.clone_url else {
                continue;
            };
            let forge = project.forge.as_deref().unwrap_or("github");
            if forge == "gitlab" {
                continue;
            }
            let branch = project
                .default_branch
                .clone()
                .unwrap_or_else(|| "main".into());
            let sha = match self
                .mirrors
                .resolve(url, &format!("refs/heads/{branch}"))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(repo, "reading schedules: {e:#}");
                    continue;
                }
            };
            let dir = self.state_dir.join("scan").join(format!("{:x}", {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                repo.hash(&mut h);
                h.finish()
            }));
            if let Err(e) = self.mirrors.checkout(url, &sha, &dir).await {
                tracing::warn!(repo, "reading schedules: {e:#}");
                continue;
            }
            for path in ci_files(forge, &dir) {
                let Ok(text) = std::fs::read_to_string(dir.join(&path)) else {
                    continue;
                };
                let parsed = ci_engine::config::load(
                    &path,
                    &text,
                    &ci_engine::config::LoadOptions::default(),
                );
                let Some(loaded) = parsed.value else { continue };
                for w in &loaded.workflows {
                    for t in w.triggers.iter().filter(|t| t.event == "schedule") {
                        for cron in &t.cron {
                            out.push(Entry {
                                repo: repo.clone(),
                                git_ref: branch.clone(),
                                cron: cron.clone(),
                                workflow: Some(path.clone()),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Queues a request for each fire time of `entries` in `(after, until]`.
    pub async fn fire(
        &self,
        entries: &[Entry],
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> usize {
        let mut fired = 0;
        for entry in entries {
            let Ok(schedule) = Schedule::parse(&entry.cron) else {
                continue;
            };
            let project = self.config.project(&entry.repo);
            let Some(url) = project.clone_url.clone() else {
                continue;
            };
            for at in schedule
                .next_after(after, 60)
                .into_iter()
                .filter(|t| *t <= until)
            {
                let request = Requested {
                    forge: project.forge.clone().unwrap_or_else(|| "github".into()),
                    repo: entry.repo.clone(),
                    clone_url: url.clone(),
                    workflow: entry.workflow.clone(),
                    trigger: Trigger::Schedule {
                        git_ref: entry.git_ref.clone(),
                        cron: entry.cron.clone(),
                    },
                };
                let Ok(payload) = serde_json::to_string(&Work::Request(request)) else {
                    continue;
                };
                let job = NewJob::new(
                    firing_id(entry, at),
                    format!("{}:schedules", entry.repo),
                    payload,
                )
                .label(INTAKE)
                .retries(self.config.retries);
                match self.queue.enqueue(&job, now_ms()).await {
                    Ok(true) => {
                        fired += 1;
                        tracing::info!(repo = %entry.repo, cron = %entry.cron, %at, "schedule fired");
                    }
                    Ok(false) => {} // another server (or an earlier life of this one) fired it
                    Err(e) => tracing::warn!("firing a schedule: {e}"),
                }
            }
        }
        if fired > 0 {
            self.wake.notify_waiters();
        }
        fired
    }
}

/// Fires schedules until `stop`.
pub async fn scheduler(state: AppState, stop: CancellationToken) {
    let configured: Vec<Entry> = state
        .config
        .schedules
        .iter()
        .map(|s| Entry {
            repo: s.repo.clone(),
            git_ref: s.git_ref.clone(),
            cron: s.cron.clone(),
            workflow: s.workflow.clone(),
        })
        .collect();
    let mut scanned: Vec<Entry> = Vec::new();
    let mut last_scan: Option<std::time::Instant> = None;
    let mut last = Utc::now();
    while !stop.is_cancelled() {
        if last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
            scanned = state.scan_schedules().await;
            last_scan = Some(std::time::Instant::now());
        }
        let now = Utc::now();
        let mut all = configured.clone();
        all.extend(scanned.iter().cloned());
        state.fire(&all, last, now).await;
        last = now;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => {}
        }
    }
}
