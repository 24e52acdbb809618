//! The Docker executor, over the Docker Engine API (no docker CLI).
//!
//! A job gets a container from its image (kept alive by a sleeping PID 1) with the workspace
//! and the step scripts bind-mounted at the same paths; steps run through `exec` with their
//! output streamed. Without services the job has no network (`none`) unless it asks for one;
//! with services, a per-job bridge network gives every service its name as an alias. All
//! resources carry `gantry.run` / `gantry.job` labels, so [`DockerExecutor::prune`] can sweep
//! what a crash left behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, JobEnvironment};
use crate::spec::{Chunk, JobSpec, StepOutcome, StepSpec, Stream};

const LABEL_RUN: &str = "gantry.run";
const LABEL_JOB: &str = "gantry.job";
/// Keeps a job container alive without depending on more than a POSIX shell.
const KEEP_ALIVE: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done",
];

/// Runs jobs in containers of a local Docker daemon.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    docker: Docker,
    /// Image for jobs that name none.
    pub default_image: String,
    /// Time between SIGTERM and SIGKILL when a step times out or is cancelled.
    pub grace: Duration,
    /// Put services and the job in one network namespace (services answer on `localhost`)
    /// instead of a per-job network with aliases. Chosen automatically when the daemon
    /// cannot create user-defined networks.
    pub shared_namespace: bool,
}

fn api(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl DockerExecutor {
    /// Connects to the local daemon (`DOCKER_HOST` or the default socket), agreeing on the
    /// API version the daemon speaks (Debian's 20.10 speaks 1.41).
    pub async fn connect(default_image: &str) -> Result<Self, ExecError> {
        let unavailable = |reason: String| ExecError::Unavailable {
            executor: "docker".into(),
            reason,
        };
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| unavailable(api(e)))?
            .negotiate_version()
            .await
            .map_err(|e| unavailable(api(e)))?;
        Ok(DockerExecutor {
            docker,
            default_image: default_image.to_owned(),
            grace: Duration::from_secs(5),
            shared_namespace: false,
        })
    }

    /// Removes every container and network labelled with `run_id` (leftovers of a crash).
    pub async fn prune(&self, run_id: &str) -> Result<usize, ExecError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_RUN}={run_id}")])]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| ExecError::Teardown(api(e)))?;
        let mut removed = 0;
        for c in containers {
            if let Some(id) = c.id {
                remove_container(&self.docker, &id).await?;
                removed += 1;
            }
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| ExecError::Teardown(api(e)))?;
        for n in networks {
            if let Some(id) = n.id {
                remove_network(&self.docker, &id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

async fn remove_container(docker: &Docker, id: &str) -> Result<(), ExecError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(ExecError::Teardown(api(e))),
    }
}

async fn remove_network(docker: &Docker, id: &str) -> Result<(), ExecError> {
    match docker.remove_network(id).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(ExecError::Teardown(api(e))),
    }
}

fn env_list<'a>(
    maps: impl IntoIterator<Item = &'a indexmap::IndexMap<String, String>>,
) -> Vec<String> {
    let mut merged: indexmap::IndexMap<&str, &str> = indexmap::IndexMap::new();
    for map in maps {
        for (k, v) in map {
            merged.insert(k, v);
        }
    }
    merged
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl Executor for DockerExecutor {
    fn name(&self) -> &str {
        "docker"
    }

    async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    async fn build_image(
        &self,
        context: &Path,
        tag: &str,
    ) -> Result<(Vec<String>, Vec<String>), ExecError> {
        let failed = |e: String| ExecError::Prepare(format!("building {tag}: {e}"));
        let dir = context.to_path_buf();
        let archive = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut builder = tar::Builder::new(Vec::new());
            builder.follow_symlinks(false);
            builder.append_dir_all(".", &dir)?;
            builder.into_inner()
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut stream = self.docker.build_image(
            options,
            None,
            Some(bollard::body_full(Bytes::from(archive))),
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| failed(api(e)))?;
            if let Some(detail) = info.error_detail {
                return Err(failed(detail.message.unwrap_or_default()));
            }
        }
        let image = self
            .docker
            .inspect_image(tag)
            .await
            .map_err(|e| failed(api(e)))?;
        let config = image.config.unwrap_or_default();
        Ok((
            config.entrypoint.unwrap_or_default(),
            config.cmd.unwrap_or_default(),
        ))
    }

    fn capabilities(&self) -> crate::executor::Capabilities {
        crate::executor::Capabilities::local_containers()
    }

    async fn available(&self) -> Result<(), ExecError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| ExecError::Unavailable {
                executor: "docker".into(),
                reason: api(e),
            })
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        let scripts = std::env::temp_dir().join(format!(
            "gantry-docker-{}-{}-{}",
            name_part(&job.run_id),
            name_part(&job.job_id),
            crate::spec::unique_suffix()
        ));
        for dir in [&job.workspace, &scripts] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ExecError::Prepare(format!("{}: {e}", dir.display())))?;
        }
        let workspace =
            std::fs::canonicalize(&job.workspace).map_err(|e| ExecError::Prepare(e.to_string()))?;
        let labels = HashMap::from([
            (LABEL_RUN.to_owned(), job.run_id.clone()),
            (LABEL_JOB.to_owned(), job.job_id.clone()),
        ]);
        let mut env = DockerJob {
            docker: self.docker.clone(),
            container: String::new(),
            services: Vec::new(),
            network: None,
            workspace: workspace.clone(),
            scripts: scripts.clone(),
            deadline: job.timeout.map(|t| Instant::now() + t),
            grace: self.grace,
            torn_down: Mutex::new(false),
        };
        // From here on, a failure tears down what was made.
        match self.start(job, &labels, &mut env).await {
            Ok(()) => Ok(Box::new(env)),
            Err(e) => {
                let _ = env.teardown().await;
                Err(e)
            }
        }
    }
}

impl DockerExecutor {
    async fn start(
        &self,
        job: &JobSpec,
        labels: &HashMap<String, String>,
        env: &mut DockerJob,
    ) -> Result<(), ExecError> {
        let base = format!(
            "gantry-{}-{}",
            name_part(&job.run_id),
            name_part(&job.job_id)
        );
        let isolated = if job.network { "bridge" } else { "none" };
        let network = if job.services.is_empty() || self.shared_namespace {
            None
        } else {
            // Where user-defined networks are not available, fall back to a shared namespace.
            self.docker
                .create_network(NetworkCreateRequest {
                    name: format!("{base}-{}", crate::spec::unique_suffix()),
                    driver: Some("bridge".into()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .ok()
        };
        if !job.services.is_empty() && network.is_none() {
            return self.start_shared(job, labels, env, isolated).await;
        }
        let network_mode = if let Some(network) = network {
            env.network = Some(network.id.clone());
            network.id
        } else if job.network {
            "bridge".to_owned()
        } else {
            "none".to_owned()
        };
        for service in &job.services {
            let endpoints = HashMap::from([(
                network_mode.clone(),
                EndpointSettings {
                    aliases: Some(vec![service.name.clone()]),
                    ..Default::default()
                },
            )]);
            let id = self
                .start_service(service, labels, &network_mode, Some(endpoints))
                .await?;
            env.services.push(id);
        }
        env.container = self
            .start_job_container(job, labels, env, network_mode)
            .await?;
        Ok(())
    }

    /// Services and the job share the first service's network namespace: services answer on
    /// `localhost`.
    async fn start_shared(
        &self,
        job: &JobSpec,
        labels: &HashMap<String, String>,
        env: &mut DockerJob,
        isolated: &str,
    ) -> Result<(), ExecError> {
        let mut mode = isolated.to_owned();
        for service in &job.services {
            let id = self.start_service(service, labels, &mode, None).await?;
            if env.services.is_empty() {
                mode = format!("container:{id}");
            }
            env.services.push(id);
        }
        env.container = self.start_job_container(job, labels, env, mode).await?;
        Ok(())
    }

    /// Starts one service container and waits until its health command passes.
    async fn start_service(
        &self,
        service: &crate::spec::ServiceSpec,
        labels: &HashMap<String, String>,
        network_mode: &str,
        endpoints: Option<HashMap<String, EndpointSettings>>,
    ) -> Result<String, ExecError> {
        let body = ContainerCreateBody {
            image: Some(service.image.clone()),
            env: Some(env_list([&service.env])),
            cmd: service.command.clone(),
            labels: Some(labels.clone()),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode.to_owned()),
                ..Default::default()
            }),
            networking_config: endpoints.map(|e| NetworkingConfig {
                endpoints_config: Some(e),
            }),
            ..Default::default()
        };
        let id = self.create_and_start(body).await?;
        if let Some(check) = &service.health_cmd {
            let timeout = service.health_timeout.unwrap_or(Duration::from_secs(60));
            wait_healthy(&self.docker, &id, check, timeout)
                .await
                .map_err(|e| {
                    ExecError::Prepare(format!(
                        "service '{}' never became healthy: {e}",
                        service.name
                    ))
                })?;
        }
        Ok(id)
    }

    async fn start_job_container(
        &self,
        job: &JobSpec,
        labels: &HashMap<String, String>,
        env: &DockerJob,
        network_mode: String,
    ) -> Result<String, ExecError> {
        let container = job.container.clone().unwrap_or_default();
        let image = if container.image.is_empty() {
            self.default_image.clone()
        } else {
            container.image
        };
        let ws = env.workspace.to_string_lossy().into_owned();
        let scripts = env.scripts.to_string_lossy().into_owned();
        let body = ContainerCreateBody {
            image: Some(image),
            entrypoint: Some(KEEP_ALIVE.iter().map(|s| s.to_string()).collect()),
            cmd: Some(Vec::new()),
            env: Some(env_list([&container.env, &job.env])),
            user: container.user,
            working_dir: Some(ws.clone()),
            labels: Some(labels.clone()),
            host_config: Some(HostConfig {
                binds: Some(
                    [ws.clone(), scripts]
                        .into_iter()
                        .chain(job.mounts.iter().map(|m| m.to_string_lossy().into_owned()))
                        .map(|d| format!("{d}:{d}"))
                        .collect(),
                ),
                network_mode: Some(network_mode),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create_and_start(body).await
    }

    async fn create_and_start(&self, body: ContainerCreateBody) -> Result<String, ExecError> {
        let id = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|e| ExecError::Prepare(api(e)))?
            .id;
        self.docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|e| ExecError::Prepare(api(e)))?;
        Ok(id)
    }
}

/// Runs `check` in the container until it exits 0.
async fn wait_healthy(
    docker: &Docker,
    container: &str,
    check: &str,
    timeout: Duration,
) -> Result<(), String> {
    let until = Instant::now() + timeout;
    loop {
        let argv = vec!["sh".to_owned(), "-c".to_owned(), check.to_owned()];
        let (_, code) = exec_collect(docker, container, argv).await?;
        if code == Some(0) {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(format!("'{check}' still fails after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn exec_collect(
    docker: &Docker,
    container: &str,
    argv: Vec<String>,
) -> Result<(Vec<u8>, Option<i64>), String> {
    let exec = docker
        .create_exec(
            container,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(argv),
                ..Default::default()
            },
        )
        .await
        .map_err(api)?
        .id;
    let mut out = Vec::new();
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&exec, None::<StartExecOptions>)
        .await
        .map_err(api)?
    {
        while let Some(Ok(msg)) = output.next().await {
            out.extend_from_slice(&msg.into_bytes());
        }
    }
    let code = docker.inspect_exec(&exec).await.map_err(api)?.exit_code;
    Ok((out, code))
}

struct DockerJob {
    docker: Docker,
    container: String,
    services: Vec<String>,
    network: Option<String>,
    workspace: PathBuf,
    scripts: PathBuf,
    deadline: Option<Instant>,
    grace: Duration,
    torn_down: Mutex<bool>,
}

/// The process tree under `root` (host pids), from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_owned()) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

fn signal_tree(root: i32, signal: nix::sys::signal::Signal) {
    for pid in descendants(root) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

#[async_trait::async_trait]
impl JobEnvironment for DockerJob {
    async fn run_step(
        &self,
        step: &StepSpec,
        output: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> StepOutcome {
        let limit = crate::spec::time_left(step, self.deadline);
        if limit == Some(Duration::ZERO) {
            return StepOutcome::TimedOut;
        }
        let script = self.scripts.join(format!(
            "{}.{}",
            name_part(&step.id),
            step.shell.extension()
        ));
        if let Err(e) = tokio::fs::write(&script, &step.script).await {
            return StepOutcome::StartFailed(format!("writing {}: {e}", script.display()));
        }
        let workdir = match &step.workdir {
            Some(d) => self.workspace.join(d),
            None => self.workspace.clone(),
        };
        let exec = match self
            .docker
            .create_exec(
                &self.container,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(step.shell.argv(&script.to_string_lossy())),
                    env: Some(env_list([&step.env])),
                    working_dir: Some(workdir.to_string_lossy().into_owned()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(e) => e.id,
            Err(e) => return StepOutcome::StartFailed(api(e)),
        };
        let mut stream = match self
            .docker
            .start_exec(&exec, None::<StartExecOptions>)
            .await
        {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => {
                return StepOutcome::StartFailed("the exec did not attach".into())
            }
            Err(e) => return StepOutcome::StartFailed(api(e)),
        };
        let pump = async {
            while let Some(item) = stream.next().await {
                let (stream, data) = match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        (Stream::Stderr, message)
                    }
                    Ok(
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message },
                    ) => (Stream::Stdout, message),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if output
                    .send(Chunk {
                        stream,
                        data: Bytes::from(data.to_vec()),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        };
        let stopped = tokio::select! {
            _ = pump => None,
            _ = crate::spec::expire(limit) => Some(StepOutcome::TimedOut),
            _ = cancel.cancelled() => Some(StepOutcome::Cancelled),
        };
        if let Some(outcome) = stopped {
            // Stop the exec's whole process tree from the host: SIGTERM, then SIGKILL.
            if let Ok(Some(pid)) = self.docker.inspect_exec(&exec).await.map(|i| i.pid) {
                let pid = i32::try_from(pid).unwrap_or(0);
                if pid > 0 {
                    signal_tree(pid, nix::sys::signal::Signal::SIGTERM);
                    let until = Instant::now() + self.grace;
                    while Instant::now() < until
                        && std::path::Path::new(&format!("/proc/{pid}")).exists()
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    signal_tree(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            return outcome;
        }
        let code = match self.docker.inspect_exec(&exec).await {
            Ok(info) => info.exit_code.unwrap_or(-1),
            Err(e) => return StepOutcome::StartFailed(api(e)),
        };
        if code == 137 {
            let oom = self
                .docker
                .inspect_container(
                    &self.container,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false);
            if oom {
                return StepOutcome::OomKilled;
            }
        }
        StepOutcome::Exited(i32::try_from(code).unwrap_or(-1))
    }

    fn local_workspace(&self) -> Option<&std::path::Path> {
        Some(&self.workspace)
    }

    async fn read_file(&self, path: &std::path::Path) -> Result<Option<bytes::Bytes>, ExecError> {
        crate::files::read_file(&self.workspace, path).await
    }

    async fn write_tar(
        &self,
        at: &std::path::Path,
        archive: bytes::Bytes,
    ) -> Result<(), ExecError> {
        crate::files::write_tar(&self.workspace, at, archive).await
    }

    async fn read_tar(
        &self,
        from: &std::path::Path,
        paths: &[String],
    ) -> Result<bytes::Bytes, ExecError> {
        crate::files::read_tar(&self.workspace, from, paths).await
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        {
            let mut done = self.torn_down.lock().expect("never poisoned");
            if *done {
                return Ok(());
            }
            *done = true;
        }
        let mut first_error = None;
        for id in std::iter::once(&self.container)
            .chain(&self.services)
            .filter(|id| !id.is_empty())
        {
            if let Err(e) = remove_container(&self.docker, id).await {
                first_error.get_or_insert(e);
            }
        }
        if let Some(network) = &self.network {
            if let Err(e) = remove_network(&self.docker, network).await {
                first_error.get_or_insert(e);
            }
        }
        let _ = tokio::fs::remove_dir_all(&self.scripts).await;
        first_error.map_or(Ok(()), Err)
    }
}
