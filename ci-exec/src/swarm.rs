//! The Docker Swarm executor: every step is a one-shot swarm service (replicated-job mode,
//! restart policy `none`) in the job's image.
//!
//! A job gets a per-job attachable overlay network (its services join it with their names as
//! aliases), one Docker volume per job directory (the workspace, the engine's per-job
//! directories, the step scripts) mounted at the same paths in every step, and its steps are
//! pinned to the node the executor runs on, where those volumes live. Output comes from the
//! service's log stream (stdout and stderr apart), the exit code from the task's status. The
//! job's files are reached only through its file operations (here: the volumes' directories on
//! this node). Everything is labelled `gantry.swarm`, `gantry.run`, `gantry.job` and removed at
//! teardown; [`SwarmExecutor::prune`] sweeps what a crash left behind.
//!
//! Needs a swarm manager on this machine (`docker swarm init`) and read access to Docker's
//! volume directory (root, as Docker itself).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Mount, MountType, NetworkAttachmentConfig,
    NetworkCreateRequest, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecModeReplicatedJob, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ListNetworksOptions, ListServicesOptions, ListTasksOptions, ListVolumesOptions, LogsOptions,
    RemoveVolumeOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::{Capabilities, ExecError, Executor, JobEnvironment};
use crate::spec::{Chunk, JobSpec, StepOutcome, StepSpec, Stream};

const LABEL: &str = "gantry.swarm";
const LABEL_RUN: &str = "gantry.run";
const LABEL_JOB: &str = "gantry.job";
/// Where step scripts are, in every step.
const SCRIPTS: &str = "/gantry-scripts";
/// How often task states are polled.
const POLL: Duration = Duration::from_millis(100);

/// Runs jobs as swarm services.
#[derive(Debug, Clone)]
pub struct SwarmExecutor {
    docker: Docker,
    /// Image for jobs that name none.
    pub default_image: String,
    node_id: String,
    /// Placement constraints added to every step (`node.labels.ci==true`); the executor's own
    /// node is always one, as the job's volumes live there.
    pub constraints: Vec<String>,
}

fn api(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn unavailable(reason: String) -> ExecError {
    ExecError::Unavailable {
        executor: "swarm".into(),
        reason,
    }
}

impl SwarmExecutor {
    /// Connects to the local daemon, which must be a swarm manager.
    pub async fn connect(default_image: &str) -> Result<Self, ExecError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| unavailable(api(e)))?
            .negotiate_version()
            .await
            .map_err(|e| unavailable(api(e)))?;
        let info = docker.info().await.map_err(|e| unavailable(api(e)))?;
        let swarm = info.swarm.unwrap_or_default();
        let node_id = swarm.node_id.unwrap_or_default();
        let manager = swarm.control_available.unwrap_or(false);
        if node_id.is_empty() || !manager {
            return Err(unavailable(
                "this Docker daemon is not a swarm manager (run `docker swarm init`, or on this \
                 machine `docker swarm init --advertise-addr 127.0.0.1`)"
                    .into(),
            ));
        }
        Ok(SwarmExecutor {
            docker,
            default_image: default_image.to_owned(),
            node_id,
            constraints: Vec::new(),
        })
    }

    /// Removes every service, network and volume this executor labelled (all runs), or those
    /// of `run_id`. Returns how many were removed.
    pub async fn prune(&self, run_id: Option<&str>) -> Result<usize, ExecError> {
        let label = match run_id {
            Some(r) => format!("{LABEL_RUN}={r}"),
            None => LABEL.to_owned(),
        };
        let filters = HashMap::from([("label".to_owned(), vec![label])]);
        let mut removed = 0;
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| ExecError::Teardown(api(e)))?;
        for s in services {
            if let Some(id) = s.id {
                let _ = self.docker.delete_service(&id).await;
                removed += 1;
            }
        }
        // Task containers the swarm has not removed yet hold the networks and volumes.
        let containers = self
            .docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| ExecError::Teardown(api(e)))?;
        for c in containers {
            if let Some(id) = c.id {
                let _ = self
                    .docker
                    .remove_container(
                        &id,
                        Some(bollard::query_parameters::RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            }
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .map_err(|e| ExecError::Teardown(api(e)))?;
        for n in networks {
            if let Some(id) = n.id {
                if self.docker.remove_network(&id).await.is_ok() {
                    removed += 1;
                }
            }
        }
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| ExecError::Teardown(api(e)))?;
        for v in volumes.volumes.unwrap_or_default() {
            if remove_volume(&self.docker, &v.name).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Removes a volume, waiting for the containers of removed services to let go of it.
async fn remove_volume(docker: &Docker, name: &str) -> Result<(), ExecError> {
    let mut last = String::new();
    for _ in 0..100 {
        match docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => return Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(()),
            Err(e) => last = api(e),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(ExecError::Teardown(format!("volume {name}: {last}")))
}

fn name_part(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(24);
    out.trim_matches('-').to_owned()
}

#[async_trait::async_trait]
impl Executor for SwarmExecutor {
    fn name(&self) -> &str {
        "swarm"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::remote(true)
    }

    async fn available(&self) -> Result<(), ExecError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| unavailable(api(e)))
    }

    async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        let suffix = crate::spec::unique_suffix();
        let base = format!("gantry-{}-{}", name_part(&job.job_id), suffix);
        let labels = HashMap::from([
            (LABEL.to_owned(), "1".to_owned()),
            (LABEL_RUN.to_owned(), job.run_id.clone()),
            (LABEL_JOB.to_owned(), job.job_id.clone()),
        ]);
        let fail =
            |what: &str, e: bollard::errors::Error| ExecError::Prepare(format!("{what}: {e}"));
        let mut env = SwarmJob {
            docker: self.docker.clone(),
            job: job.clone(),
            image: job
                .container
                .as_ref()
                .map_or_else(|| self.default_image.clone(), |c| c.image.clone()),
            labels: labels.clone(),
            network: String::new(),
            volumes: Vec::new(),
            services: Mutex::new(Vec::new()),
            constraints: self
                .constraints
                .iter()
                .cloned()
                .chain([format!("node.id=={}", self.node_id)])
                .collect(),
            deadline: job.timeout.map(|t| Instant::now() + t),
            base: base.clone(),
            torn_down: Mutex::new(false),
            containers: Mutex::new(Vec::new()),
        };
        let network = self
            .docker
            .create_network(NetworkCreateRequest {
                name: base.clone(),
                driver: Some("overlay".into()),
                attachable: Some(true),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| fail("creating the job's network", e))?;
        env.network = network.id;
        let mut dirs: Vec<PathBuf> = vec![job.workspace.clone(), PathBuf::from(SCRIPTS)];
        dirs.extend(job.mounts.iter().cloned());
        for (i, dir) in dirs.into_iter().enumerate() {
            let name = format!("{base}-{i}");
            let created = self.docker.create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            });
            let volume = match created.await {
                Ok(v) => v,
                Err(e) => {
                    let _ = env.teardown().await;
                    return Err(fail("creating a volume", e));
                }
            };
            env.volumes
                .push((dir, PathBuf::from(volume.mountpoint), name));
        }
        for service in &job.services {
            let spec = ServiceSpec {
                name: Some(format!("{base}-svc-{}", name_part(&service.name))),
                labels: Some(labels.clone()),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        image: Some(service.image.clone()),
                        command: service.command.clone(),
                        env: Some(
                            service
                                .env
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect(),
                        ),
                        labels: Some(labels.clone()),
                        ..Default::default()
                    }),
                    placement: Some(TaskSpecPlacement {
                        constraints: Some(env.constraints.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                    ..Default::default()
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(env.network.clone()),
                    aliases: Some(vec![service.name.clone()]),
                    ..Default::default()
                }]),
                // The name resolves to the task itself: a virtual IP needs the daemon's
                // iptables/IPVS, which not every host gives it.
                endpoint_spec: Some(EndpointSpec {
                    mode: Some(EndpointSpecModeEnum::DNSRR),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match self.docker.create_service(spec, None).await {
                Ok(created) => {
                    let id = created.id.unwrap_or_default();
                    env.services
                        .lock()
                        .expect("never poisoned")
                        .push(id.clone());
                    if let Err(e) = env.wait_running(&id, Duration::from_secs(120)).await {
                        let _ = env.teardown().await;
                        return Err(ExecError::Prepare(format!(
                            "service '{}': {e}",
                            service.name
                        )));
                    }
                }
                Err(e) => {
                    let _ = env.teardown().await;
                    return Err(fail(&format!("service '{}'", service.name), e));
                }
            }
        }
        Ok(Box::new(env))
    }
}

struct SwarmJob {
    docker: Docker,
    job: JobSpec,
    image: String,
    labels: HashMap<String, String>,
    network: String,
    /// (path in the job, directory on this node, volume name).
    volumes: Vec<(PathBuf, PathBuf, String)>,
    /// The job's own services (not step services).
    services: Mutex<Vec<String>>,
    constraints: Vec<String>,
    deadline: Option<Instant>,
    base: String,
    torn_down: Mutex<bool>,
    /// Task containers seen (removed with the job: swarm removes them lazily, and they hold
    /// the job's volumes).
    containers: Mutex<Vec<String>>,
}

/// How a step's task ended.
enum TaskEnd {
    Exited(i64),
    Failed(String),
}

impl SwarmJob {
    /// The state of the service's (only) task.
    async fn task(
        &self,
        service: &str,
    ) -> Result<Option<(TaskState, Option<i64>, String)>, String> {
        let found = self.task_full(service).await?;
        Ok(found.map(|(state, code, why, container)| {
            if let Some(c) = container {
                self.containers.lock().expect("never poisoned").push(c);
            }
            (state, code, why)
        }))
    }

    /// The state, exit code, message and container of the service's (only) task.
    #[allow(clippy::type_complexity)]
    async fn task_full(
        &self,
        service: &str,
    ) -> Result<Option<(TaskState, Option<i64>, String, Option<String>)>, String> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(api)?;
        Ok(tasks.into_iter().next().and_then(|t| {
            let status = t.status?;
            let state = status.state?;
            let container = status
                .container_status
                .as_ref()
                .and_then(|c| c.container_id.clone());
            let code = status.container_status.and_then(|c| c.exit_code);
            let message = status.err.or(status.message).unwrap_or_default();
            Some((state, code, message, container))
        }))
    }

    async fn wait_running(&self, service: &str, limit: Duration) -> Result<(), String> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            match self.task(service).await? {
                Some((TaskState::RUNNING, _, _)) => return Ok(()),
                Some((TaskState::FAILED | TaskState::REJECTED, _, why)) => return Err(why),
                _ => tokio::time::sleep(POLL).await,
            }
        }
        Err(format!("not running after {}s", limit.as_secs()))
    }

    /// A path of the job (relative: to the workspace) as a directory of this node.
    fn local(&self, path: &Path) -> Result<(PathBuf, PathBuf), ExecError> {
        let full = crate::files::resolve(&self.job.workspace, path)?;
        let best = self
            .volumes
            .iter()
            .filter(|(inside, _, _)| full.starts_with(inside))
            .max_by_key(|(inside, _, _)| inside.as_os_str().len())
            .ok_or_else(|| {
                ExecError::Files(format!(
                    "{}: not in one of the job's directories",
                    full.display()
                ))
            })?;
        let rest = full.strip_prefix(&best.0).unwrap_or(Path::new(""));
        Ok((best.1.clone(), rest.to_path_buf()))
    }

    fn step_spec(&self, step: &StepSpec, name: &str, script: &str) -> ServiceSpec {
        let mut env: Vec<String> = Vec::new();
        let mut merged: indexmap::IndexMap<&String, &String> = indexmap::IndexMap::new();
        if let Some(c) = &self.job.container {
            merged.extend(c.env.iter());
        }
        merged.extend(self.job.env.iter());
        merged.extend(step.env.iter());
        env.extend(merged.into_iter().map(|(k, v)| format!("{k}={v}")));
        let workdir = match &step.workdir {
            Some(d) => self.job.workspace.join(d),
            None => self.job.workspace.clone(),
        };
        let mounts = self
            .volumes
            .iter()
            .map(|(inside, _, volume)| Mount {
                target: Some(inside.to_string_lossy().into_owned()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            })
            .collect();
        ServiceSpec {
            name: Some(name.to_owned()),
            labels: Some(self.labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(self.image.clone()),
                    command: Some(step.shell.argv(script)),
                    env: Some(env),
                    dir: Some(workdir.to_string_lossy().into_owned()),
                    user: self.job.container.as_ref().and_then(|c| c.user.clone()),
                    labels: Some(self.labels.clone()),
                    mounts: Some(mounts),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: Some(self.constraints.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated_job: Some(ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(1),
                    total_completions: Some(1),
                }),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(self.network.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    /// Sends a service's log into `output`, skipping the first `skip` bytes of each stream
    /// (what an earlier read sent); with `follow`, until `stop`. Returns the bytes of each
    /// stream seen in all.
    async fn logs(
        docker: Docker,
        service: String,
        output: mpsc::Sender<Chunk>,
        follow: Option<CancellationToken>,
        skip: (usize, usize),
    ) -> (usize, usize) {
        let mut stream = docker.service_logs(
            &service,
            Some(LogsOptions {
                follow: follow.is_some(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let stop = follow.unwrap_or_default();
        let (mut out, mut err) = (0usize, 0usize);
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = stop.cancelled() => None,
            };
            let Some(Ok(item)) = item else { break };
            let (which, data, seen, skip) = match item {
                bollard::container::LogOutput::StdOut { message } => {
                    (Stream::Stdout, message, &mut out, skip.0)
                }
                bollard::container::LogOutput::StdErr { message } => {
                    (Stream::Stderr, message, &mut err, skip.1)
                }
                _ => continue,
            };
            let start = *seen;
            *seen += data.len();
            if *seen <= skip {
                continue;
            }
            let chunk = Chunk {
                stream: which,
                data: data.slice(skip.saturating_sub(start)..),
            };
            if output.send(chunk).await.is_err() {
                break;
            }
        }
        (out, err)
    }
}

#[async_trait::async_trait]
impl JobEnvironment for SwarmJob {
    async fn run_step(
        &self,
        step: &StepSpec,
        output: mpsc::Sender<Chunk>,
        cancel: CancellationToken,
    ) -> StepOutcome {
        let time_left = crate::spec::time_left(step, self.deadline);
        if time_left == Some(Duration::ZERO) {
            return StepOutcome::TimedOut;
        }
        let file = format!("{}.{}", name_part(&step.id), step.shell.extension());
        let script_path = format!("{SCRIPTS}/{file}");
        let script_local = match self.local(Path::new(&script_path)) {
            Ok((dir, rest)) => dir.join(rest),
            Err(e) => return StepOutcome::StartFailed(e.to_string()),
        };
        if let Err(e) = tokio::fs::write(&script_local, &step.script).await {
            return StepOutcome::StartFailed(format!("writing the step script: {e}"));
        }
        let name = format!("{}-s-{}", self.base, crate::spec::unique_suffix());
        let created = self
            .docker
            .create_service(self.step_spec(step, &name, &script_path), None)
            .await;
        let service = match created {
            Ok(c) => c.id.unwrap_or_else(|| name.clone()),
            Err(e) => return StepOutcome::StartFailed(format!("creating the step's service: {e}")),
        };
        let stop_following = CancellationToken::new();
        let follower = tokio::spawn(Self::logs(
            self.docker.clone(),
            service.clone(),
            output.clone(),
            Some(stop_following.clone()),
            (0, 0),
        ));
        let ended = async {
            loop {
                match self.task(&service).await {
                    Ok(Some((TaskState::COMPLETE, code, _))) => {
                        return TaskEnd::Exited(code.unwrap_or(0))
                    }
                    Ok(Some((TaskState::FAILED, Some(code), _))) if code != 0 => {
                        return TaskEnd::Exited(code)
                    }
                    Ok(Some((
                        TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED,
                        _,
                        why,
                    ))) => return TaskEnd::Failed(why),
                    Err(e) => return TaskEnd::Failed(e),
                    _ => tokio::time::sleep(POLL).await,
                }
            }
        };
        let outcome = tokio::select! {
            end = ended => match end {
                TaskEnd::Exited(code) => StepOutcome::Exited(i32::try_from(code).unwrap_or(-1)),
                TaskEnd::Failed(why) => StepOutcome::StartFailed(format!("the step's task failed: {why}")),
            },
            _ = crate::spec::expire(time_left) => StepOutcome::TimedOut,
            _ = cancel.cancelled() => StepOutcome::Cancelled,
        };
        if !matches!(outcome, StepOutcome::Exited(_)) {
            // Timed out or cancelled: removing the service stops its task (its container is
            // noted first, for teardown). A task still being set up gets its container first,
            // else the node would create it after the service is gone.
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until {
                match self.task(&service).await {
                    Ok(Some((
                        TaskState::NEW
                        | TaskState::ALLOCATED
                        | TaskState::PENDING
                        | TaskState::ASSIGNED
                        | TaskState::ACCEPTED
                        | TaskState::PREPARING
                        | TaskState::READY
                        | TaskState::STARTING,
                        _,
                        _,
                    ))) => tokio::time::sleep(POLL).await,
                    _ => break,
                }
            }
            let _ = self.docker.delete_service(&service).await;
        }
        // The follow stream does not end on its own: stop it, then send what it had not
        // delivered yet from the finished task's whole log.
        tokio::time::sleep(POLL).await;
        stop_following.cancel();
        let sent = follower.await.unwrap_or((0, 0));
        Self::logs(self.docker.clone(), service.clone(), output, None, sent).await;
        let _ = self.docker.delete_service(&service).await;
        outcome
    }

    async fn read_file(&self, path: &Path) -> Result<Option<bytes::Bytes>, ExecError> {
        let (dir, rest) = self.local(path)?;
        crate::files::read_file(&dir, &rest).await
    }

    async fn write_tar(&self, at: &Path, archive: bytes::Bytes) -> Result<(), ExecError> {
        let (dir, rest) = self.local(at)?;
        crate::files::write_tar(&dir, &rest, archive).await
    }

    async fn read_tar(&self, from: &Path, paths: &[String]) -> Result<bytes::Bytes, ExecError> {
        let (dir, rest) = self.local(from)?;
        crate::files::read_tar(&dir, &rest, paths).await
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        {
            let mut done = self.torn_down.lock().expect("never poisoned");
            if *done {
                return Ok(());
            }
            *done = true;
        }
        let services = std::mem::take(&mut *self.services.lock().expect("never poisoned"));
        for s in services {
            // Its task's container is removed below with the steps' (it holds the network).
            let _ = self.task(&s).await;
            let _ = self.docker.delete_service(&s).await;
        }
        let mut unique = std::mem::take(&mut *self.containers.lock().expect("never poisoned"));
        // Task containers whose ids were never seen (a step stopped early) carry the job's
        // name prefix.
        let filters = HashMap::from([
            ("label".to_owned(), vec![LABEL.to_owned()]),
            ("name".to_owned(), vec![self.base.clone()]),
        ]);
        if let Ok(found) = self
            .docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        {
            unique.extend(found.into_iter().filter_map(|c| c.id));
        }
        unique.sort();
        unique.dedup();
        for c in unique {
            let _ = self
                .docker
                .remove_container(
                    &c,
                    Some(bollard::query_parameters::RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
        let mut problems = Vec::new();
        for (_, _, volume) in &self.volumes {
            if let Err(e) = remove_volume(&self.docker, volume).await {
                problems.push(e.to_string());
            }
        }
        if !self.network.is_empty() {
            for _ in 0..50 {
                match self.docker.remove_network(&self.network).await {
                    Ok(()) => break,
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => break,
                    Err(_) => tokio::time::sleep(POLL).await,
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ExecError::Teardown(problems.join("; ")))
        }
    }
}
