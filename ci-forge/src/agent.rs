//! Remote agents: machines that run jobs for a server (`gantry-server`, or `gantry run
//! --agent-listen`) with their own executor; `gantry agent` is the agent's side.
//!
//! An agent registers (`POST /agent/register`, the agent token), then long-polls for commands
//! (`GET /agent/commands`) and answers each (`POST /agent/results`), sending a step's output as
//! it arrives (`POST /agent/output`, numbered per command so a resend after a network error is
//! recognised). The commands are the job-environment operations of an executor — prepare a
//! job, run a step, read/write the job's files, cancel a step, tear down — so the engine drives
//! a job on an agent exactly as on a local executor, through [`AgentExecutor`]. Every poll is a
//! heartbeat: an agent not heard from for `agent_timeout` is lost; what it was doing fails
//! with `Lost`, and the job is run again elsewhere (the engine's retry of lost jobs).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use ci_engine::exec::{
    Capabilities, Chunk, ExecError, Executor, JobEnvironment, JobSpec, StepOutcome, StepSpec,
    Stream,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// Why an agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The HTTP client could not be made (a CA certificate that cannot be read …).
    #[error("agent client: {0}")]
    Client(String),
    /// The server refused the agent token.
    #[error("the server refused the agent token")]
    Refused,
    /// The server answered what the protocol does not allow.
    #[error("agent protocol: {0}")]
    Protocol(String),
    /// The agent's executor cannot run here.
    #[error("the agent's executor: {0}")]
    Executor(#[from] ExecError),
}

/// An agent process: what `gantry agent` and `gantry-server agent` are given.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The server's address (`http://ci.internal:8080`; `https://` is verified).
    pub server: String,
    /// The agent token.
    pub token: String,
    /// This agent's name (default: the host name).
    pub name: Option<String>,
    /// The labels it offers.
    pub labels: Vec<String>,
    /// Jobs at once.
    pub capacity: usize,
    /// Its executor, as a platform target (`host`, `bwrap`, `docker://IMAGE`, `k8s://…`).
    pub executor: String,
    /// A PEM file the server's certificate is checked against, besides the public roots.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Runs an agent until `stop` (then drains: no new jobs, the running ones finish).
pub async fn run_agent_process(
    options: AgentOptions,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    let executor = ci_engine::exec::executor_for_target(&options.executor).await?;
    let name = options.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "agent".into())
    });
    let register = Register {
        name,
        labels: options.labels,
        capacity: options.capacity.max(1),
    };
    let client = client(options.ca_cert.as_deref())?;
    run_agent_with(
        client,
        options.server,
        options.token,
        register,
        executor,
        stop,
    )
    .await
}

/// One operation for an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Prepare a job environment.
    Prepare {
        /// The job.
        spec: JobSpec,
    },
    /// Run a step (output follows as `output` posts).
    RunStep {
        /// The step.
        step: StepSpec,
    },
    /// Cancel a running step.
    Cancel {
        /// The `RunStep` command.
        command: u64,
    },
    /// Read a file.
    ReadFile {
        /// Relative to the workspace, or absolute in the job.
        path: String,
    },
    /// Unpack a tar archive at `at`.
    WriteTar {
        /// Where.
        at: String,
        /// The archive, base64.
        data: String,
    },
    /// Pack paths under `from`.
    ReadTar {
        /// From.
        from: String,
        /// Paths.
        paths: Vec<String>,
    },
    /// Tear the job down.
    Teardown,
}

/// A command: an operation on one job of the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    /// Unique per server process.
    pub id: u64,
    /// The job (an agent may run several).
    pub job: String,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
}

/// What an agent answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// Done (file operations: `data` in base64; `None`: no such file).
    Done {
        /// Data, base64.
        #[serde(default)]
        data: Option<String>,
    },
    /// A step ended.
    Step {
        /// How.
        outcome: StepOutcome,
    },
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
    /// The agent was lost before it answered (made by the server, never sent by an agent).
    Lost {
        /// Which agent.
        agent: String,
    },
}

/// `POST /agent/results`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Result_ {
    /// The agent.
    pub agent: String,
    /// The command.
    pub command: u64,
    /// The answer.
    pub answer: Answer,
}

/// `POST /agent/output`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The agent.
    pub agent: String,
    /// The `RunStep` command.
    pub command: u64,
    /// 0, 1, 2… per command: a repeated number is a resend and is ignored.
    pub seq: u64,
    /// Which stream.
    pub stream: Stream,
    /// The bytes, base64.
    pub data: String,
}

/// `POST /agent/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// A name (shown in the queue).
    pub name: String,
    /// What it offers.
    pub labels: Vec<String>,
    /// Jobs at once.
    pub capacity: usize,
}

/// A registered agent, as the queue page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    /// Its id.
    pub id: String,
    /// The name it registered with.
    pub name: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Jobs it runs now.
    pub jobs: usize,
    /// Jobs it runs at once.
    pub capacity: usize,
}

struct AgentState {
    name: String,
    labels: Vec<String>,
    capacity: usize,
    jobs: usize,
    last_seen: Instant,
    commands: VecDeque<Command>,
    wake: Arc<Notify>,
    lost: bool,
}

/// A command waiting for its answer.
struct Pending {
    agent: String,
    answer: oneshot::Sender<Answer>,
    output: Option<(mpsc::Sender<Chunk>, u64)>,
}

/// The server's side: registered agents, their command queues and what waits on them.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Mutex<HubState>>,
    /// Woken when an agent registers or frees a slot.
    freed: Arc<Notify>,
}

#[derive(Default)]
struct HubState {
    agents: HashMap<String, AgentState>,
    pending: HashMap<u64, Pending>,
    next: u64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("bad base64: {e}"))
}

impl Hub {
    /// Registers an agent; returns its id.
    pub fn register(&self, r: Register) -> String {
        let mut s = self.inner.lock().expect("never poisoned");
        s.next += 1;
        let id = format!("{}-{}", r.name, s.next);
        s.agents.insert(
            id.clone(),
            AgentState {
                name: r.name,
                labels: r.labels,
                capacity: r.capacity.max(1),
                jobs: 0,
                last_seen: Instant::now(),
                commands: VecDeque::new(),
                wake: Arc::default(),
                lost: false,
            },
        );
        drop(s);
        self.freed.notify_waiters();
        id
    }

    /// The commands for `agent`, waiting up to `wait` for one; `None`: unknown (or lost)
    /// agent, which must register again.
    pub async fn poll(&self, agent: &str, wait: Duration) -> Option<Vec<Command>> {
        let until = Instant::now() + wait;
        loop {
            let wake = {
                let mut s = self.inner.lock().expect("never poisoned");
                let a = s.agents.get_mut(agent).filter(|a| !a.lost)?;
                a.last_seen = Instant::now();
                if !a.commands.is_empty() {
                    return Some(a.commands.drain(..).collect());
                }
                Arc::clone(&a.wake)
            };
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(Vec::new());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), wake.notified()).await;
        }
    }

    /// An answer arrived.
    pub fn answer(&self, r: Result_) -> bool {
        let mut s = self.inner.lock().expect("never poisoned");
        if let Some(a) = s.agents.get_mut(&r.agent) {
            a.last_seen = Instant::now();
        }
        match s.pending.remove(&r.command) {
            Some(p) if p.agent == r.agent => {
                let _ = p.answer.send(r.answer);
                true
            }
            Some(p) => {
                s.pending.insert(r.command, p);
                false
            }
            None => false,
        }
    }

    /// Output of a running step arrived; resends (a `seq` seen before) are dropped.
    pub async fn output(&self, o: Output) -> Result<(), String> {
        let data = unb64(&o.data)?;
        let target = {
            let mut s = self.inner.lock().expect("never poisoned");
            if let Some(a) = s.agents.get_mut(&o.agent) {
                a.last_seen = Instant::now();
            }
            match s.pending.get_mut(&o.command) {
                Some(Pending {
                    output: Some((tx, next)),
                    agent,
                    ..
                }) if *agent == o.agent => {
                    if o.seq < *next {
                        return Ok(());
                    }
                    *next = o.seq + 1;
                    Some(tx.clone())
                }
                _ => None,
            }
        };
        if let Some(tx) = target {
            let _ = tx
                .send(Chunk {
                    stream: o.stream,
                    data: Bytes::from(data),
                })
                .await;
        }
        Ok(())
    }

    /// Marks agents lost every half second until `stop`: those not heard from for `timeout`
    /// (what they ran fails with `Lost`, and runs again elsewhere).
    pub async fn reap_until(&self, timeout: Duration, stop: CancellationToken) {
        while !stop.is_cancelled() {
            for lost in self.reap(timeout) {
                tracing::warn!(agent = %lost, "agent lost: its jobs run again elsewhere");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Agents not heard from within `timeout` are lost: their waiting commands fail.
    pub fn reap(&self, timeout: Duration) -> Vec<String> {
        let mut s = self.inner.lock().expect("never poisoned");
        let lost: Vec<String> = s
            .agents
            .iter()
            .filter(|(_, a)| !a.lost && a.last_seen.elapsed() > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &lost {
            if let Some(a) = s.agents.get_mut(id) {
                a.lost = true;
                a.commands.clear();
            }
            let gone: Vec<u64> = s
                .pending
                .iter()
                .filter(|(_, p)| p.agent == *id)
                .map(|(c, _)| *c)
                .collect();
            for c in gone {
                if let Some(p) = s.pending.remove(&c) {
                    let _ = p.answer.send(Answer::Lost { agent: id.clone() });
                }
            }
        }
        s.agents.retain(|_, a| !a.lost || a.jobs > 0);
        lost
    }

    /// The registered agents.
    pub fn agents(&self) -> Vec<AgentInfo> {
        let s = self.inner.lock().expect("never poisoned");
        let mut out: Vec<AgentInfo> = s
            .agents
            .iter()
            .filter(|(_, a)| !a.lost)
            .map(|(id, a)| AgentInfo {
                id: id.clone(),
                name: a.name.clone(),
                labels: a.labels.clone(),
                jobs: a.jobs,
                capacity: a.capacity,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The agent takes no new jobs (it is shutting down); `false` for an unknown agent.
    pub fn drain(&self, agent: &str) -> bool {
        let mut s = self.inner.lock().expect("never poisoned");
        match s.agents.get_mut(agent) {
            Some(a) => {
                a.capacity = 0;
                true
            }
            None => false,
        }
    }

    /// Takes a slot on an agent with `label`, waiting for one.
    async fn acquire(
        &self,
        label: &str,
        cancel: Option<&CancellationToken>,
    ) -> Result<String, ExecError> {
        loop {
            let freed = self.freed.notified();
            {
                let mut s = self.inner.lock().expect("never poisoned");
                let best = s
                    .agents
                    .iter_mut()
                    .filter(|(_, a)| {
                        !a.lost && a.jobs < a.capacity && a.labels.iter().any(|l| l == label)
                    })
                    .min_by_key(|(_, a)| a.jobs)
                    .map(|(id, a)| {
                        a.jobs += 1;
                        id.clone()
                    });
                if let Some(id) = best {
                    return Ok(id);
                }
            }
            tracing::debug!(label, "waiting for a free agent");
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = async { match cancel { Some(c) => c.cancelled().await, None => std::future::pending().await } } => {
                    return Err(ExecError::Prepare("cancelled while waiting for an agent".into()));
                }
            }
        }
    }

    fn release(&self, agent: &str) {
        let mut s = self.inner.lock().expect("never poisoned");
        if let Some(a) = s.agents.get_mut(agent) {
            a.jobs = a.jobs.saturating_sub(1);
        }
        s.agents.retain(|_, a| !a.lost || a.jobs > 0);
        drop(s);
        self.freed.notify_waiters();
    }

    /// Sends a command and waits for its answer (and, for steps, streams output into `output`).
    async fn call(
        &self,
        agent: &str,
        job: &str,
        op: Op,
        output: Option<mpsc::Sender<Chunk>>,
    ) -> (u64, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        let mut s = self.inner.lock().expect("never poisoned");
        s.next += 1;
        let id = s.next;
        let wake = match s.agents.get_mut(agent).filter(|a| !a.lost) {
            Some(a) => {
                a.commands.push_back(Command {
                    id,
                    job: job.to_owned(),
                    op,
                });
                Some(Arc::clone(&a.wake))
            }
            None => None,
        };
        match wake {
            Some(w) => {
                s.pending.insert(
                    id,
                    Pending {
                        agent: agent.to_owned(),
                        answer: tx,
                        output: output.map(|o| (o, 0)),
                    },
                );
                drop(s);
                w.notify_waiters();
            }
            None => {
                let _ = tx.send(Answer::Lost {
                    agent: agent.to_owned(),
                });
            }
        }
        (id, rx)
    }

    async fn call_wait(&self, agent: &str, job: &str, op: Op) -> Answer {
        let (_, rx) = self.call(agent, job, op, None).await;
        rx.await.unwrap_or(Answer::Lost {
            agent: agent.to_owned(),
        })
    }
}

/// Runs jobs on agents that offer `label`, as an [`Executor`] of the engine.
#[derive(Debug, Clone)]
pub struct AgentExecutor {
    hub: Hub,
    label: String,
}

impl AgentExecutor {
    /// Jobs go to agents with `label`.
    pub fn new(hub: Hub, label: impl Into<String>) -> Self {
        AgentExecutor {
            hub,
            label: label.into(),
        }
    }
}

fn files_error(e: String) -> ExecError {
    ExecError::Files(e)
}

#[async_trait::async_trait]
impl Executor for AgentExecutor {
    fn name(&self) -> &str {
        "agent"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::remote(false)
    }

    async fn available(&self) -> Result<(), ExecError> {
        if self
            .hub
            .agents()
            .iter()
            .any(|a| a.labels.contains(&self.label))
        {
            Ok(())
        } else {
            Err(ExecError::Unavailable {
                executor: "agent".into(),
                reason: format!("no agent with the label '{}' is registered", self.label),
            })
        }
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        // An agent lost while it prepares: the job goes to another.
        for _ in 0..3 {
            match self.prepare_on_one(job).await {
                Err(PrepareError::Lost(agent)) => {
                    tracing::warn!(agent, job = %job.job_id, "agent lost while preparing; trying another");
                }
                Err(PrepareError::Failed(e)) => return Err(e),
                Ok(env) => return Ok(env),
            }
        }
        Err(ExecError::Prepare(
            "agents were lost while preparing the job".into(),
        ))
    }
}

enum PrepareError {
    Lost(String),
    Failed(ExecError),
}

impl AgentExecutor {
    async fn prepare_on_one(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, PrepareError> {
        let agent = self
            .hub
            .acquire(&self.label, None)
            .await
            .map_err(PrepareError::Failed)?;
        let key = {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            format!(
                "{}/{}/{}",
                job.run_id,
                job.job_id,
                N.fetch_add(1, Ordering::Relaxed)
            )
        };
        match self
            .hub
            .call_wait(&agent, &key, Op::Prepare { spec: job.clone() })
            .await
        {
            Answer::Done { .. } => Ok(Box::new(AgentJob {
                hub: self.hub.clone(),
                agent,
                key,
                released: Mutex::new(false),
            })),
            Answer::Failed { error } => {
                self.hub.release(&agent);
                Err(PrepareError::Failed(ExecError::Prepare(format!(
                    "on agent '{agent}': {error}"
                ))))
            }
            Answer::Lost { agent } => {
                self.hub.release(&agent);
                Err(PrepareError::Lost(agent))
            }
            Answer::Step { .. } => {
                self.hub.release(&agent);
                Err(PrepareError::Failed(ExecError::Prepare(
                    "the agent answered a prepare with a step".into(),
                )))
            }
        }
    }
}

struct AgentJob {
    hub: Hub,
    agent: String,
    key: String,
    released: Mutex<bool>,
}

impl AgentJob {
    async fn file_op(&self, op: Op) -> Result<Option<Vec<u8>>, ExecError> {
        match self.hub.call_wait(&self.agent, &self.key, op).await {
            Answer::Done { data: Some(d) } => unb64(&d).map(Some).map_err(files_error),
            Answer::Done { data: None } => Ok(None),
            Answer::Failed { error } => Err(ExecError::Files(error)),
            Answer::Lost { agent } => Err(ExecError::Files(format!("agent '{agent}' was lost"))),
            Answer::Step { .. } => Err(ExecError::Files("unexpected answer".into())),
        }
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[async_trait::async_trait]
impl JobEnvironment for AgentJob {
    async fn run_step(
        &self,
        step: &StepSpec,
        output: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> StepOutcome {
        let (id, mut rx) = self
            .hub
            .call(
                &self.agent,
                &self.key,
                Op::RunStep { step: step.clone() },
                Some(output),
            )
            .await;
        let answer = tokio::select! {
            a = &mut rx => a,
            _ = cancel.cancelled() => {
                let _ = self.hub.call(&self.agent, &self.key, Op::Cancel { command: id }, None).await;
                rx.await
            }
        };
        match answer {
            Ok(Answer::Step { outcome }) => outcome,
            Ok(Answer::Failed { error }) => StepOutcome::StartFailed(error),
            Ok(Answer::Lost { agent }) => {
                StepOutcome::Lost(format!("agent '{agent}' stopped answering"))
            }
            Ok(Answer::Done { .. }) => StepOutcome::StartFailed("unexpected answer".into()),
            Err(_) => StepOutcome::Lost(format!("agent '{}' stopped answering", self.agent)),
        }
    }

    async fn read_file(&self, path: &Path) -> Result<Option<Bytes>, ExecError> {
        Ok(self
            .file_op(Op::ReadFile {
                path: path_text(path),
            })
            .await?
            .map(Bytes::from))
    }

    async fn write_tar(&self, at: &Path, archive: Bytes) -> Result<(), ExecError> {
        self.file_op(Op::WriteTar {
            at: path_text(at),
            data: b64(&archive),
        })
        .await
        .map(|_| ())
    }

    async fn read_tar(&self, from: &Path, paths: &[String]) -> Result<Bytes, ExecError> {
        self.file_op(Op::ReadTar {
            from: path_text(from),
            paths: paths.to_vec(),
        })
        .await?
        .map(Bytes::from)
        .ok_or_else(|| ExecError::Files("no archive came back".into()))
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        {
            let mut done = self.released.lock().expect("never poisoned");
            if *done {
                return Ok(());
            }
            *done = true;
        }
        let answer = self
            .hub
            .call_wait(&self.agent, &self.key, Op::Teardown)
            .await;
        self.hub.release(&self.agent);
        match answer {
            Answer::Failed { error } if !error.contains("was lost") => {
                Err(ExecError::Teardown(error))
            }
            _ => Ok(()),
        }
    }
}

/// The HTTP client of an agent: `https://` servers are verified against the built-in roots,
/// and also against `ca_cert` (a PEM file) for a server with a certificate of its own.
pub fn client(ca_cert: Option<&std::path::Path>) -> Result<reqwest::Client, AgentError> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            AgentError::Client(format!(
                "reading the CA certificate {}: {e}",
                path.display()
            ))
        })?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            AgentError::Client(format!("{}: not a PEM certificate: {e}", path.display()))
        })? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| AgentError::Client(e.to_string()))
}

/// The agent's side: registers, polls, and runs what it is told with `executor`, until `stop`.
pub async fn run_agent(
    server: String,
    token: String,
    register: Register,
    executor: Arc<dyn Executor>,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    run_agent_with(client(None)?, server, token, register, executor, stop).await
}

/// [`run_agent`] with its own HTTP client (see [`client`]).
pub async fn run_agent_with(
    client: reqwest::Client,
    server: String,
    token: String,
    register: Register,
    executor: Arc<dyn Executor>,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    let server = server.trim_end_matches('/').to_owned();
    let jobs: Arc<Mutex<HashMap<String, Arc<dyn JobEnvironment>>>> = Arc::default();
    let steps: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let mut agent: Option<String> = None;
    let mut backoff = Duration::from_millis(200);
    let mut draining = false;
    loop {
        if stop.is_cancelled() && !draining {
            // SIGTERM: no new jobs; the running ones finish (the server still drives them).
            draining = true;
            if let Some(id) = &agent {
                let ctx = Ctx {
                    client: client.clone(),
                    server: server.clone(),
                    token: token.clone(),
                    agent: id.clone(),
                };
                ctx.post("/agent/drain", &serde_json::json!({ "agent": id }))
                    .await;
                tracing::info!(
                    jobs = jobs.lock().expect("never poisoned").len(),
                    "draining"
                );
            }
        }
        if draining && (agent.is_none() || jobs.lock().expect("never poisoned").is_empty()) {
            break;
        }
        let id = match &agent {
            Some(id) => id.clone(),
            None => {
                let r = client
                    .post(format!("{server}/agent/register"))
                    .bearer_auth(&token)
                    .json(&register)
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let v: serde_json::Value = resp
                            .json()
                            .await
                            .map_err(|e| AgentError::Protocol(e.to_string()))?;
                        let id = v["id"].as_str().unwrap_or_default().to_owned();
                        tracing::info!(agent = %id, "registered");
                        agent = Some(id.clone());
                        backoff = Duration::from_millis(200);
                        id
                    }
                    Ok(resp) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
                        return Err(AgentError::Refused);
                    }
                    other => {
                        tracing::warn!("registering: {:?}", other.map(|r| r.status()));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
        };
        let polled = tokio::select! {
            r = client
                .get(format!("{server}/agent/commands"))
                // Draining: short polls, so that the agent leaves soon after its last job.
                .query(&[("agent", id.as_str()), ("wait", if draining { "1" } else { "20" })])
                .bearer_auth(&token)
                .send() => r,
            _ = stop.cancelled(), if !draining => continue,
        };
        let commands: Vec<Command> = match polled {
            Ok(resp) if resp.status() == reqwest::StatusCode::GONE => {
                // The server forgot us (it restarted, or thought us lost): register again.
                agent = None;
                continue;
            }
            Ok(resp) if resp.status().is_success() => resp.json().await.unwrap_or_default(),
            other => {
                tracing::warn!("polling: {:?}", other.map(|r| r.status()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        for command in commands {
            let ctx = Ctx {
                client: client.clone(),
                server: server.clone(),
                token: token.clone(),
                agent: id.clone(),
            };
            if let Op::Cancel { command: target } = &command.op {
                if let Some(t) = steps.lock().expect("never poisoned").get(target) {
                    t.cancel();
                }
                continue;
            }
            let (executor, jobs, steps) =
                (Arc::clone(&executor), Arc::clone(&jobs), Arc::clone(&steps));
            tokio::spawn(async move {
                let answer = perform(&ctx, &command, executor, jobs, steps).await;
                ctx.post_result(command.id, answer).await;
            });
        }
    }
    Ok(())
}

#[derive(Clone)]
struct Ctx {
    client: reqwest::Client,
    server: String,
    token: String,
    agent: String,
}

impl Ctx {
    /// Posts until the server takes it (a network error is retried; the server ignores a
    /// repeat).
    async fn post<T: Serialize>(&self, path: &str, body: &T) {
        for attempt in 0..20u32 {
            let r = self
                .client
                .post(format!("{}{path}", self.server))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() || resp.status().is_client_error() => return,
                _ => tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await,
            }
        }
    }

    async fn post_result(&self, command: u64, answer: Answer) {
        let body = Result_ {
            agent: self.agent.clone(),
            command,
            answer,
        };
        self.post("/agent/results", &body).await;
    }
}

async fn perform(
    ctx: &Ctx,
    command: &Command,
    executor: Arc<dyn Executor>,
    jobs: Arc<Mutex<HashMap<String, Arc<dyn JobEnvironment>>>>,
    steps: Arc<Mutex<HashMap<u64, CancellationToken>>>,
) -> Answer {
    let fail = |e: String| Answer::Failed { error: e };
    let env = || {
        jobs.lock()
            .expect("never poisoned")
            .get(&command.job)
            .cloned()
    };
    match &command.op {
        Op::Prepare { spec } => match executor.prepare(spec).await {
            Ok(env) => {
                jobs.lock()
                    .expect("never poisoned")
                    .insert(command.job.clone(), Arc::from(env));
                Answer::Done { data: None }
            }
            Err(e) => fail(e.to_string()),
        },
        Op::RunStep { step } => {
            let Some(env) = env() else {
                return fail(format!("no job {}", command.job));
            };
            let cancel = CancellationToken::new();
            steps
                .lock()
                .expect("never poisoned")
                .insert(command.id, cancel.clone());
            let (tx, mut rx) = mpsc::channel::<Chunk>(64);
            let sender = {
                let ctx = ctx.clone();
                let id = command.id;
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while let Some(chunk) = rx.recv().await {
                        let out = Output {
                            agent: ctx.agent.clone(),
                            command: id,
                            seq,
                            stream: chunk.stream,
                            data: b64(&chunk.data),
                        };
                        ctx.post("/agent/output", &out).await;
                        seq += 1;
                    }
                })
            };
            // Steps can tell which agent ran them.
            let mut step = step.clone();
            step.env.insert("GANTRY_AGENT".into(), ctx.agent.clone());
            let outcome = env.run_step(&step, tx, cancel).await;
            let _ = sender.await;
            steps.lock().expect("never poisoned").remove(&command.id);
            Answer::Step { outcome }
        }
        Op::Cancel { .. } => Answer::Done { data: None },
        Op::ReadFile { path } => {
            let Some(env) = env() else {
                return fail(format!("no job {}", command.job));
            };
            match env.read_file(Path::new(path)).await {
                Ok(data) => Answer::Done {
                    data: data.map(|d| b64(&d)),
                },
                Err(e) => fail(e.to_string()),
            }
        }
        Op::WriteTar { at, data } => {
            let Some(env) = env() else {
                return fail(format!("no job {}", command.job));
            };
            let bytes = match unb64(data) {
                Ok(b) => b,
                Err(e) => return fail(e),
            };
            match env.write_tar(Path::new(at), Bytes::from(bytes)).await {
                Ok(()) => Answer::Done { data: None },
                Err(e) => fail(e.to_string()),
            }
        }
        Op::ReadTar { from, paths } => {
            let Some(env) = env() else {
                return fail(format!("no job {}", command.job));
            };
            match env.read_tar(Path::new(from), paths).await {
                Ok(data) => Answer::Done {
                    data: Some(b64(&data)),
                },
                Err(e) => fail(e.to_string()),
            }
        }
        Op::Teardown => {
            let env = jobs.lock().expect("never poisoned").remove(&command.job);
            match env {
                Some(env) => match env.teardown().await {
                    Ok(()) => Answer::Done { data: None },
                    Err(e) => fail(e.to_string()),
                },
                None => Answer::Done { data: None },
            }
        }
    }
}

/// The hub's HTTP routes (`/agent/*`), for agents with the agent token.
pub fn routes(hub: Hub, token: Option<String>) -> axum::Router {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use axum::Json;

    #[derive(Clone)]
    struct S {
        hub: Hub,
        token: Option<String>,
    }
    fn authorized(s: &S, headers: &HeaderMap) -> bool {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (&s.token, given) {
            (Some(t), Some(g)) => {
                t.len() == g.len()
                    && t.bytes().zip(g.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
            }
            _ => false,
        }
    }
    #[derive(Deserialize)]
    struct Poll {
        agent: String,
        /// Longest wait, seconds (at most 20).
        wait: Option<u64>,
    }
    axum::Router::new()
        .route(
            "/agent/register",
            post(
                |State(s): State<S>, headers: HeaderMap, Json(r): Json<Register>| async move {
                    if !authorized(&s, &headers) {
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(serde_json::json!({"error": "the agent token is needed"})),
                        );
                    }
                    let id = s.hub.register(r);
                    (StatusCode::OK, Json(serde_json::json!({ "id": id })))
                },
            ),
        )
        .route(
            "/agent/commands",
            get(
                |State(s): State<S>, headers: HeaderMap, Query(p): Query<Poll>| async move {
                    if !authorized(&s, &headers) {
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(serde_json::json!({"error": "the agent token is needed"})),
                        );
                    }
                    let wait = Duration::from_secs(p.wait.unwrap_or(20).min(20));
                match s.hub.poll(&p.agent, wait).await {
                        Some(commands) => (
                            StatusCode::OK,
                            Json(serde_json::to_value(commands).unwrap_or_default()),
                        ),
                        None => (
                            StatusCode::GONE,
                            Json(serde_json::json!({"error": "unknown agent: register again"})),
                        ),
                    }
                },
            ),
        )
        .route(
            "/agent/results",
            post(
                |State(s): State<S>, headers: HeaderMap, Json(r): Json<Result_>| async move {
                    if !authorized(&s, &headers) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    s.hub.answer(r);
                    StatusCode::OK
                },
            ),
        )
        .route(
            "/agent/drain",
            post(|State(s): State<S>, headers: HeaderMap, Json(d): Json<serde_json::Value>| async move {
                if !authorized(&s, &headers) {
                    return StatusCode::UNAUTHORIZED;
                }
                if s.hub.drain(d["agent"].as_str().unwrap_or_default()) {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                }
            }),
        )
        .route(
            "/agent/output",
            post(
                |State(s): State<S>, headers: HeaderMap, Json(o): Json<Output>| async move {
                    if !authorized(&s, &headers) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    match s.hub.output(o).await {
                        Ok(()) => StatusCode::OK,
                        Err(_) => StatusCode::BAD_REQUEST,
                    }
                },
            ),
        )
        .with_state(S { hub, token })
}
