//! The Kubernetes executor: one pod per job, steps by `exec` into it.
//!
//! A job becomes a pod (`restartPolicy: Never`) whose `job` container is kept alive by a
//! small shell loop; its services are sidecar containers of the same pod, so they share its
//! network: the job reaches them on `localhost` and by their names (host aliases of
//! 127.0.0.1). The workspace, the engine's per-job directories and the executor's scripts
//! are `emptyDir` volumes mounted at the same paths, filled and read through the job's file
//! operations (`exec` of `tar`/`cat` with the bytes on the exec streams). Each step is one
//! `exec` whose stdout and stderr stream back as they are written; its exit code comes from
//! the exec's status.
//!
//! The job's environment (and its services') is never written into the pod spec in plain
//! text: it goes into a `Secret` of the job's, which the containers reference key by key; a
//! step's own environment reaches it in its launcher script, written through the file
//! operations. A step that runs out of time or is cancelled has its process tree killed by a
//! second `exec`; when that fails the pod is deleted. The pod's `activeDeadlineSeconds`
//! stops a job whose engine went away. Everything is labelled `gantry.dev/executor`,
//! `gantry.dev/run`, `gantry.dev/job`; teardown deletes the pod and the secret, and
//! [`KubernetesExecutor::prune`] sweeps what a crash left behind.
//!
//! Needs an image with `sh`, `tar`, `head` and `cat` (busybox, Debian, Alpine …) and, for the
//! executor's account, `create/get/list/delete` on pods and secrets and `create` on
//! `pods/exec` in its namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostAlias, LocalObjectReference, Pod,
    PodSpec, ResourceRequirements, Secret, SecretKeySelector, SecurityContext, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::executor::{Capabilities, ExecError, Executor, JobEnvironment};
use crate::spec::{Chunk, JobSpec, StepOutcome, StepSpec, Stream};

/// Label on everything the executor makes.
pub const LABEL: &str = "gantry.dev/executor";
/// Label with the run's id (made a valid label value).
pub const LABEL_RUN: &str = "gantry.dev/run";
/// Label with the job's id (made a valid label value).
pub const LABEL_JOB: &str = "gantry.dev/job";
/// The job container's name.
pub const JOB_CONTAINER: &str = "job";
/// Where step scripts are, in the job container.
const SCRIPTS: &str = "/gantry-scripts";
/// How often the pod's state is polled while it starts.
const POLL: Duration = Duration::from_millis(200);
/// What keeps the job container alive between steps.
const KEEP_ALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
/// Exit code the file scripts use for "no such file".
const MISSING: i32 = 44;
/// Kills the process tree whose root's pid is in the file `$1`: every process is stopped
/// first (so none forks away), then all are killed. Only shell built-ins in the loop.
const KILL_TREE: &str = r#"read -r root < "$1" 2>/dev/null || exit 0
[ -n "$root" ] || exit 0
kill -STOP "$root" 2>/dev/null
all=$root; todo=$root
while [ -n "$todo" ]; do
  next=
  for parent in $todo; do
    for s in /proc/[0-9]*/stat; do
      read -r line < "$s" 2>/dev/null || continue
      rest=${line##*) }
      set -- $rest
      if [ "$2" = "$parent" ]; then
        p=${s#/proc/}; p=${p%/stat}
        kill -STOP "$p" 2>/dev/null
        next="$next $p"
      fi
    done
  done
  all="$all $next"; todo=$next
done
kill -KILL $all 2>/dev/null
exit 0"#;

/// A toleration added to every job pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeToleration {
    /// The taint's key (empty: every key, with operator `Exists`).
    pub key: String,
    /// The taint's value; `None` tolerates any value (operator `Exists`).
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule`, `NoExecute`; `None`: every effect.
    pub effect: Option<String>,
}

impl KubeToleration {
    /// Parses `key[=value][:effect]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kv, effect) = match s.rsplit_once(':') {
            Some((kv, e)) => (kv, Some(e.to_owned())),
            None => (s, None),
        };
        if let Some(e) = &effect {
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&e.as_str()) {
                return Err(format!(
                    "toleration {s:?}: the effect is NoSchedule, PreferNoSchedule or NoExecute, not {e:?}"
                ));
            }
        }
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (kv.to_owned(), None),
        };
        if key.is_empty() && value.is_some() {
            return Err(format!("toleration {s:?}: a value needs a key"));
        }
        Ok(KubeToleration { key, value, effect })
    }

    fn to_k8s(&self) -> Toleration {
        Toleration {
            key: (!self.key.is_empty()).then(|| self.key.clone()),
            operator: Some(
                if self.value.is_some() {
                    "Equal"
                } else {
                    "Exists"
                }
                .into(),
            ),
            value: self.value.clone(),
            effect: self.effect.clone(),
            toleration_seconds: None,
        }
    }
}

/// How job pods are made: where they run and what they may use. Parsed from the query of a
/// `k8s://IMAGE?…` platform target by [`KubernetesSettings::parse_query`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KubernetesSettings {
    /// The namespace (else the client's default, from the kubeconfig or the service account).
    pub namespace: Option<String>,
    /// Resource requests of the job container (`cpu`, `memory`, `ephemeral-storage`).
    pub requests: BTreeMap<String, String>,
    /// Resource limits of the job container.
    pub limits: BTreeMap<String, String>,
    /// Node labels the pod must match.
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pod tolerates.
    pub tolerations: Vec<KubeToleration>,
    /// The pod's service account (its token is mounted only then).
    pub service_account: Option<String>,
    /// Secrets with registry credentials.
    pub image_pull_secrets: Vec<String>,
    /// `Always`, `IfNotPresent` or `Never` (else the cluster's default).
    pub pull_policy: Option<String>,
    /// Longest a pod may take to start (scheduling and image pulls included).
    pub ready_timeout: Duration,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSettings {
            namespace: None,
            requests: BTreeMap::new(),
            limits: BTreeMap::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            service_account: None,
            image_pull_secrets: Vec::new(),
            pull_policy: None,
            ready_timeout: Duration::from_secs(300),
        }
    }
}

impl KubernetesSettings {
    /// Parses `key=value` pairs joined by `&`: `namespace`, `cpu`, `memory`,
    /// `ephemeral-storage` (requests), `cpu-limit`, `memory-limit`, `node-selector=k=v`,
    /// `toleration=key[=value][:effect]` (both repeatable), `service-account`,
    /// `image-pull-secret` (repeatable), `pull-policy`, `ready-timeout` (seconds).
    pub fn parse_query(query: &str) -> Result<Self, String> {
        let mut s = KubernetesSettings::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
            let value = value.to_owned();
            match key {
                "namespace" => s.namespace = Some(value),
                "cpu" | "memory" | "ephemeral-storage" => {
                    s.requests.insert(key.to_owned(), value);
                }
                "cpu-limit" | "memory-limit" | "ephemeral-storage-limit" => {
                    s.limits
                        .insert(key.trim_end_matches("-limit").to_owned(), value);
                }
                "node-selector" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or_else(|| format!("node-selector={value}: expected label=value"))?;
                    s.node_selector.insert(k.to_owned(), v.to_owned());
                }
                "toleration" => s.tolerations.push(KubeToleration::parse(&value)?),
                "service-account" => s.service_account = Some(value),
                "image-pull-secret" => s.image_pull_secrets.push(value),
                "pull-policy" => {
                    if !["Always", "IfNotPresent", "Never"].contains(&value.as_str()) {
                        return Err(format!(
                            "pull-policy={value}: expected Always, IfNotPresent or Never"
                        ));
                    }
                    s.pull_policy = Some(value);
                }
                "ready-timeout" => {
                    let secs: u64 = value
                        .parse()
                        .map_err(|_| format!("ready-timeout={value}: expected seconds"))?;
                    s.ready_timeout = Duration::from_secs(secs);
                }
                other => {
                    return Err(format!(
                        "unknown Kubernetes setting {other:?} (known: namespace, cpu, memory, \
                         ephemeral-storage, cpu-limit, memory-limit, node-selector, toleration, \
                         service-account, image-pull-secret, pull-policy, ready-timeout)"
                    ))
                }
            }
        }
        Ok(s)
    }
}

/// Runs each job as a pod of a Kubernetes cluster.
#[derive(Clone)]
pub struct KubernetesExecutor {
    client: Client,
    namespace: String,
    /// Image for jobs that name none.
    pub default_image: String,
    /// How pods are made.
    pub settings: KubernetesSettings,
}

impl std::fmt::Debug for KubernetesExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesExecutor")
            .field("namespace", &self.namespace)
            .field("default_image", &self.default_image)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn unavailable(reason: String) -> ExecError {
    ExecError::Unavailable {
        executor: "kubernetes".into(),
        reason,
    }
}

/// An API error in words: what was refused and, for the usual causes, what to change.
fn api_error(what: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.is_forbidden() => format!(
            "{what}: forbidden ({}); the executor's account needs create/get/list/delete on pods \
             and secrets and create on pods/exec",
            s.message
        ),
        kube::Error::Api(s) => format!("{what}: {} ({}, {})", s.message, s.reason, s.code),
        other => format!("{what}: {other}"),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

impl KubernetesExecutor {
    /// Connects with the usual configuration: `KUBECONFIG` (or `~/.kube/config`), else the
    /// in-cluster service account.
    pub async fn connect(
        default_image: &str,
        settings: KubernetesSettings,
    ) -> Result<Self, ExecError> {
        let client = Client::try_default()
            .await
            .map_err(|e| unavailable(format!("no Kubernetes configuration: {e}")))?;
        Ok(Self::with_client(client, default_image, settings))
    }

    /// Connects for a platform target's text after `k8s://`: `IMAGE[?settings]`.
    pub async fn from_target(target: &str) -> Result<Self, ExecError> {
        let (image, query) = target.split_once('?').unwrap_or((target, ""));
        let settings = KubernetesSettings::parse_query(query).map_err(unavailable)?;
        Self::connect(image, settings).await
    }

    /// Uses `client` (a test's mock, a client of the embedder's own configuration).
    pub fn with_client(client: Client, default_image: &str, settings: KubernetesSettings) -> Self {
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        KubernetesExecutor {
            client,
            namespace,
            default_image: default_image.to_owned(),
            settings,
        }
    }

    /// The namespace jobs run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Deletes every pod and secret this executor labelled (all runs), or those of
    /// `run_id`. Returns how many were deleted.
    pub async fn prune(&self, run_id: Option<&str>) -> Result<usize, ExecError> {
        let mut selector = format!("{LABEL}=kubernetes");
        if let Some(run) = run_id {
            selector.push_str(&format!(",{LABEL_RUN}={}", label_value(run)));
        }
        let params = ListParams::default().labels(&selector);
        let teardown = |what: &str, e: kube::Error| ExecError::Teardown(api_error(what, &e));
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut removed = 0;
        for pod in pods
            .list(&params)
            .await
            .map_err(|e| teardown("listing pods", e))?
        {
            if let Some(name) = pod.metadata.name {
                match pods.delete(&name, &delete_now()).await {
                    Ok(_) => removed += 1,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(teardown(&format!("deleting pod {name}"), e)),
                }
            }
        }
        for secret in secrets
            .list(&params)
            .await
            .map_err(|e| teardown("listing secrets", e))?
        {
            if let Some(name) = secret.metadata.name {
                match secrets.delete(&name, &delete_now()).await {
                    Ok(_) => removed += 1,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(teardown(&format!("deleting secret {name}"), e)),
                }
            }
        }
        Ok(removed)
    }

    /// The pod and the secret holding its environment, for `job`, named `name`.
    pub fn manifests(&self, job: &JobSpec, name: &str) -> Result<(Pod, Secret), ExecError> {
        let labels = BTreeMap::from([
            (LABEL.to_owned(), "kubernetes".to_owned()),
            (LABEL_RUN.to_owned(), label_value(&job.run_id)),
            (LABEL_JOB.to_owned(), label_value(&job.job_id)),
        ]);
        let annotations = BTreeMap::from([
            ("gantry.dev/run-id".to_owned(), job.run_id.clone()),
            ("gantry.dev/job-id".to_owned(), job.job_id.clone()),
        ]);
        let meta = |name: String| ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..ObjectMeta::default()
        };
        let secret_name = format!("{name}-env");
        let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
        let mut env_refs = |prefix: &str, vars: Vec<(&String, &String)>| -> Vec<EnvVar> {
            vars.into_iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    let key = format!("{prefix}{i}");
                    data.insert(key.clone(), ByteString(v.clone().into_bytes()));
                    EnvVar {
                        name: k.clone(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                key,
                                name: secret_name.clone(),
                                optional: None,
                            }),
                            ..EnvVarSource::default()
                        }),
                    }
                })
                .collect()
        };
        // The job's environment over its container's.
        let mut job_env: indexmap::IndexMap<&String, &String> = indexmap::IndexMap::new();
        if let Some(c) = &job.container {
            job_env.extend(c.env.iter());
        }
        job_env.extend(job.env.iter());
        let job_env = env_refs("job-", job_env.into_iter().collect());

        let mut dirs: Vec<PathBuf> = vec![job.workspace.clone(), PathBuf::from(SCRIPTS)];
        for m in &job.mounts {
            if !dirs.contains(m) {
                dirs.push(m.clone());
            }
        }
        let volumes: Vec<Volume> = (0..dirs.len())
            .map(|i| Volume {
                name: format!("dir-{i}"),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            })
            .collect();
        let mounts: Vec<VolumeMount> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| VolumeMount {
                name: format!("dir-{i}"),
                mount_path: d.to_string_lossy().into_owned(),
                ..VolumeMount::default()
            })
            .collect();
        let quantities = |m: &BTreeMap<String, String>| {
            (!m.is_empty()).then(|| {
                m.iter()
                    .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        let resources = (!self.settings.requests.is_empty() || !self.settings.limits.is_empty())
            .then(|| ResourceRequirements {
                requests: quantities(&self.settings.requests),
                limits: quantities(&self.settings.limits),
                ..ResourceRequirements::default()
            });
        let security_context = match job.container.as_ref().and_then(|c| c.user.as_deref()) {
            None => None,
            Some(user) => Some(run_as(user)?),
        };
        let image = job
            .container
            .as_ref()
            .map_or_else(|| self.default_image.clone(), |c| c.image.clone());
        let mut containers = vec![Container {
            name: JOB_CONTAINER.into(),
            image: Some(image),
            image_pull_policy: self.settings.pull_policy.clone(),
            command: Some(vec!["sh".into(), "-c".into(), KEEP_ALIVE.into()]),
            env: Some(job_env),
            working_dir: Some(job.workspace.to_string_lossy().into_owned()),
            volume_mounts: Some(mounts),
            resources,
            security_context,
            ..Container::default()
        }];
        let mut aliases = Vec::new();
        for (i, service) in job.services.iter().enumerate() {
            aliases.push(service.name.clone());
            let env = env_refs(&format!("svc{i}-"), service.env.iter().collect());
            containers.push(Container {
                name: service_container(i, &service.name),
                image: Some(service.image.clone()),
                image_pull_policy: self.settings.pull_policy.clone(),
                args: service.command.clone(),
                env: Some(env),
                ..Container::default()
            });
        }
        let mounts_token = self.settings.service_account.is_some();
        let pod = Pod {
            metadata: meta(name.to_owned()),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                // A job whose engine went away stops on its own.
                active_deadline_seconds: job
                    .timeout
                    .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX / 2) + 120),
                termination_grace_period_seconds: Some(5),
                enable_service_links: Some(false),
                automount_service_account_token: Some(mounts_token),
                service_account_name: self.settings.service_account.clone(),
                host_aliases: (!aliases.is_empty()).then(|| {
                    vec![HostAlias {
                        ip: "127.0.0.1".into(),
                        hostnames: Some(aliases),
                    }]
                }),
                node_selector: (!self.settings.node_selector.is_empty())
                    .then(|| self.settings.node_selector.clone()),
                tolerations: (!self.settings.tolerations.is_empty()).then(|| {
                    self.settings
                        .tolerations
                        .iter()
                        .map(KubeToleration::to_k8s)
                        .collect()
                }),
                image_pull_secrets: (!self.settings.image_pull_secrets.is_empty()).then(|| {
                    self.settings
                        .image_pull_secrets
                        .iter()
                        .map(|n| LocalObjectReference { name: n.clone() })
                        .collect()
                }),
                volumes: Some(volumes),
                containers,
                ..PodSpec::default()
            }),
            status: None,
        };
        let secret = Secret {
            metadata: meta(secret_name),
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Secret::default()
        };
        Ok((pod, secret))
    }
}

/// A container's user: numeric `uid[:gid]` (Kubernetes has no user names).
fn run_as(user: &str) -> Result<SecurityContext, ExecError> {
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let number = |s: &str| {
        s.parse::<i64>().map_err(|_| {
            ExecError::Prepare(format!(
                "container user {user:?}: Kubernetes runs containers as a numeric uid[:gid], \
                 not a user name"
            ))
        })
    };
    Ok(SecurityContext {
        run_as_user: Some(number(uid)?),
        run_as_group: gid.map(number).transpose()?,
        ..SecurityContext::default()
    })
}

fn delete_now() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::background()
    }
}

/// `s` as a DNS label part: lowercase letters, digits and `-`, at most `max` characters.
fn dns_part(s: &str, max: usize) -> String {
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
    out.truncate(max);
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// `s` as a label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(63);
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn service_container(index: usize, name: &str) -> String {
    format!("svc-{index}-{}", dns_part(name, 40))
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A name unique across machines and processes: the process, a counter and the clock.
fn unique_name(job_id: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mix = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17);
    format!(
        "gantry-{}-{:012x}",
        dns_part(job_id, 30),
        mix & 0xffff_ffff_ffff
    )
}

#[async_trait::async_trait]
impl Executor for KubernetesExecutor {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::remote(true)
    }

    async fn available(&self) -> Result<(), ExecError> {
        self.client
            .apiserver_version()
            .await
            .map(|_| ())
            .map_err(|e| unavailable(api_error("asking the API server for its version", &e)))
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        let name = unique_name(&job.job_id);
        let (pod, secret) = self.manifests(job, &name)?;
        let env = KubeJob {
            pods: Api::namespaced(self.client.clone(), &self.namespace),
            secrets: Api::namespaced(self.client.clone(), &self.namespace),
            name: name.clone(),
            secret: secret.metadata.name.clone().unwrap_or_default(),
            job: job.clone(),
            deadline: job.timeout.map(|t| Instant::now() + t),
            torn_down: AtomicBool::new(false),
            pod_gone: AtomicBool::new(false),
            next: AtomicU64::new(0),
        };
        let fail = |what: &str, e: kube::Error| ExecError::Prepare(api_error(what, &e));
        env.secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|e| fail("creating the job's secret", e))?;
        let created = match env.pods.create(&PostParams::default(), &pod).await {
            Ok(p) => p,
            Err(e) => {
                let _ = env.teardown().await;
                return Err(fail("creating the job's pod", e));
            }
        };
        // The secret goes with its pod, however the pod is deleted (the garbage collector
        // follows the owner reference); teardown deletes it too.
        if let Some(uid) = created.metadata.uid {
            let owner = serde_json::json!({"metadata": {"ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid,
            }]}});
            if let Err(e) = env
                .secrets
                .patch(&env.secret, &PatchParams::default(), &Patch::Merge(&owner))
                .await
            {
                let _ = env.teardown().await;
                return Err(fail("making the pod the owner of its secret", e));
            }
        }
        if let Err(e) = env.wait_running(self.settings.ready_timeout).await {
            let _ = env.teardown().await;
            return Err(ExecError::Prepare(e));
        }
        for (i, service) in job.services.iter().enumerate() {
            let Some(check) = &service.health_cmd else {
                continue;
            };
            let limit = service.health_timeout.unwrap_or(Duration::from_secs(60));
            if let Err(e) = env
                .wait_healthy(&service_container(i, &service.name), check, limit)
                .await
            {
                let _ = env.teardown().await;
                return Err(ExecError::Prepare(format!(
                    "service '{}' never became healthy: {e}",
                    service.name
                )));
            }
        }
        Ok(Box::new(env))
    }
}

/// A job's pod.
struct KubeJob {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    name: String,
    secret: String,
    job: JobSpec,
    deadline: Option<Instant>,
    torn_down: AtomicBool,
    /// The pod was deleted to stop a step that could not be killed.
    pod_gone: AtomicBool,
    next: AtomicU64,
}

/// How an `exec` ended.
#[derive(Debug)]
enum ExecEnd {
    Code(i32),
    /// The API server or the kubelet refused or lost it.
    Failed(String),
}

/// What an `exec` printed, whole.
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    end: ExecEnd,
}

fn exec_end(status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> ExecEnd {
    let Some(status) = status else {
        return ExecEnd::Failed("the exec stream ended without a status".into());
    };
    if status.status.as_deref() == Some("Success") {
        return ExecEnd::Code(0);
    }
    let reason = status.reason.unwrap_or_default();
    if reason == "NonZeroExitCode" {
        if let Some(code) = status
            .details
            .and_then(|d| d.causes)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message)
            .and_then(|m| m.parse().ok())
        {
            return ExecEnd::Code(code);
        }
    }
    ExecEnd::Failed(match status.message {
        Some(m) if !m.is_empty() => m,
        _ => reason,
    })
}

/// Reads `reader` into `output` as chunks of `stream` until it ends.
async fn pump(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    output: mpsc::Sender<Chunk>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = Chunk {
                    stream,
                    data: Bytes::copy_from_slice(&buf[..n]),
                };
                if output.send(chunk).await.is_err() {
                    break;
                }
            }
        }
    }
}

impl KubeJob {
    /// Waits until every container of the pod runs; says why it cannot.
    async fn wait_running(&self, limit: Duration) -> Result<(), String> {
        let until = Instant::now() + limit;
        let mut why = String::from("not scheduled yet");
        while Instant::now() < until {
            let pod = self
                .pods
                .get(&self.name)
                .await
                .map_err(|e| api_error("reading the job's pod", &e))?;
            let status = pod.status.unwrap_or_default();
            let phase = status.phase.unwrap_or_default();
            if phase == "Failed" || phase == "Succeeded" {
                return Err(format!(
                    "the pod ended before its steps ran ({phase}): {}",
                    status
                        .message
                        .or(status.reason)
                        .unwrap_or_else(|| "no reason given".into())
                ));
            }
            let statuses = status.container_statuses.unwrap_or_default();
            let spec_containers = pod.spec.map_or(0, |s| s.containers.len());
            let mut running = 0;
            for c in &statuses {
                let state = c.state.clone().unwrap_or_default();
                if state.running.is_some() {
                    running += 1;
                }
                if let Some(w) = state.waiting {
                    let reason = w.reason.unwrap_or_default();
                    let message = w.message.unwrap_or_default();
                    match reason.as_str() {
                        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName"
                        | "ErrImageNeverPull" => {
                            return Err(format!(
                                "the image '{}' of container '{}' could not be pulled ({reason}): {message}",
                                c.image, c.name
                            ))
                        }
                        "CreateContainerConfigError" | "CreateContainerError"
                        | "RunContainerError" | "CrashLoopBackOff" => {
                            return Err(format!(
                                "container '{}' could not start ({reason}): {message}",
                                c.name
                            ))
                        }
                        _ => why = format!("container '{}' is waiting: {reason} {message}", c.name),
                    }
                }
                if let Some(t) = state.terminated {
                    let log = self.log_tail(&c.name).await;
                    return Err(format!(
                        "container '{}' exited with code {} ({}){}",
                        c.name,
                        t.exit_code,
                        t.reason.unwrap_or_default(),
                        if log.is_empty() {
                            String::new()
                        } else {
                            format!("; its last output:\n{log}")
                        }
                    ));
                }
            }
            if phase == "Running" && running == spec_containers && running > 0 {
                return Ok(());
            }
            if let Some(c) = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            {
                why = format!(
                    "not scheduled: {} {}",
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!(
            "the pod was not running after {}s: {why}",
            limit.as_secs()
        ))
    }

    /// The last lines a container printed (for messages; empty when they cannot be had).
    async fn log_tail(&self, container: &str) -> String {
        let params = LogParams {
            container: Some(container.to_owned()),
            tail_lines: Some(20),
            ..LogParams::default()
        };
        self.pods
            .logs(&self.name, &params)
            .await
            .unwrap_or_default()
    }

    async fn wait_healthy(
        &self,
        container: &str,
        check: &str,
        limit: Duration,
    ) -> Result<(), String> {
        let until = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < until {
            let argv = vec!["sh".into(), "-c".into(), check.to_owned()];
            match self.exec_collect(container, argv, None).await {
                Ok(c) => match c.end {
                    ExecEnd::Code(0) => return Ok(()),
                    ExecEnd::Code(n) => {
                        last = format!(
                            "exit code {n}: {}",
                            String::from_utf8_lossy(&c.stderr).trim()
                        )
                    }
                    ExecEnd::Failed(why) => last = why,
                },
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!("after {}s, last check: {last}", limit.as_secs()))
    }

    fn attach(stdin: bool, container: &str) -> AttachParams {
        AttachParams {
            container: Some(container.to_owned()),
            stdin,
            stdout: true,
            stderr: true,
            tty: false,
            ..AttachParams::default()
        }
    }

    /// Runs `argv` in `container`, with `stdin` written to it, and collects what it printed.
    async fn exec_collect(
        &self,
        container: &str,
        argv: Vec<String>,
        stdin: Option<Bytes>,
    ) -> Result<Collected, String> {
        if self.pod_gone.load(Ordering::SeqCst) {
            return Err("the job's pod was deleted".into());
        }
        let mut process = self
            .pods
            .exec(&self.name, argv, &Self::attach(stdin.is_some(), container))
            .await
            .map_err(|e| api_error("exec into the job's pod", &e))?;
        let status = process.take_status();
        let out = process.stdout();
        let err = process.stderr();
        let writer = process.stdin();
        let read_all = |r: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf).await;
            }
            buf
        };
        // The writer stays open until the process ends: on the v4 protocol, closing stdin
        // closes the whole stream (the scripts read exactly as many bytes as they are sent).
        let write = async move {
            let mut w = writer;
            if let (Some(w), Some(data)) = (w.as_mut(), stdin) {
                let _ = w.write_all(&data).await;
                let _ = w.flush().await;
            }
            w
        };
        let (stdout, stderr, _writer, status) =
            tokio::join!(read_all(out), read_all(err), write, async {
                match status {
                    Some(s) => s.await,
                    None => None,
                }
            });
        Ok(Collected {
            stdout,
            stderr,
            end: exec_end(status),
        })
    }

    /// Runs a file script (`sh -c SCRIPT sh ARGS…`) in the job container.
    async fn file_script(
        &self,
        script: &str,
        args: &[&str],
        stdin: Option<Bytes>,
    ) -> Result<Collected, ExecError> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            "sh".to_owned(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        self.exec_collect(JOB_CONTAINER, argv, stdin)
            .await
            .map_err(ExecError::Files)
    }

    fn resolve(&self, path: &Path) -> Result<String, ExecError> {
        let full = crate::files::resolve(&self.job.workspace, path)?;
        Ok(full.to_string_lossy().into_owned())
    }

    /// Unpacks `archive` into the container directory `dir`.
    async fn untar(&self, dir: &str, archive: Bytes) -> Result<(), ExecError> {
        let len = archive.len().to_string();
        let c = self
            .file_script(
                r#"mkdir -p -- "$1" && head -c "$2" | tar -x -o -f - -C "$1""#,
                &[dir, &len],
                Some(archive),
            )
            .await?;
        match c.end {
            ExecEnd::Code(0) => Ok(()),
            ExecEnd::Code(n) => Err(ExecError::Files(format!(
                "{dir}: tar exited with {n}: {}",
                String::from_utf8_lossy(&c.stderr).trim()
            ))),
            ExecEnd::Failed(why) => Err(ExecError::Files(format!("{dir}: {why}"))),
        }
    }

    /// Kills what a step left running (its launcher wrote its pid); deletes the pod when
    /// that cannot be done, so nothing of the step survives.
    async fn kill_step(&self, pid_file: &str) {
        let argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            KILL_TREE.to_owned(),
            "sh".to_owned(),
            pid_file.to_owned(),
        ];
        let killed = tokio::time::timeout(
            Duration::from_secs(20),
            self.exec_collect(JOB_CONTAINER, argv, None),
        )
        .await;
        if !matches!(
            killed,
            Ok(Ok(Collected {
                end: ExecEnd::Code(0),
                ..
            }))
        ) {
            self.pod_gone.store(true, Ordering::SeqCst);
            let _ = self.pods.delete(&self.name, &delete_now()).await;
        }
    }

    /// The launcher of a step: notes its pid, enters the working directory, sets the step's
    /// environment and becomes the step's shell.
    fn launcher(&self, step: &StepSpec, script: &str, pid_file: &str) -> String {
        let workdir = match &step.workdir {
            Some(d) => self.job.workspace.join(d),
            None => self.job.workspace.clone(),
        };
        let workdir = sh_quote(&workdir.to_string_lossy());
        let mut out = format!(
            "echo $$ > {}\nmkdir -p {workdir} 2>/dev/null\ncd {workdir} || exit 1\nexec",
            sh_quote(pid_file)
        );
        if !step.env.is_empty() {
            out.push_str(" env");
            for (k, v) in &step.env {
                out.push(' ');
                out.push_str(&sh_quote(&format!("{k}={v}")));
            }
        }
        for word in step.shell.argv(script) {
            out.push(' ');
            out.push_str(&sh_quote(&word));
        }
        out.push('\n');
        out
    }
}

/// A tar archive of files (name, mode, bytes).
fn archive(files: &[(&str, u32, &[u8])]) -> Result<Bytes, ExecError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, mode, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder
            .append_data(&mut header, name, *data)
            .map_err(|e| ExecError::Files(e.to_string()))?;
    }
    builder
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| ExecError::Files(e.to_string()))
}

#[async_trait::async_trait]
impl JobEnvironment for KubeJob {
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
        if self.pod_gone.load(Ordering::SeqCst) {
            return StepOutcome::StartFailed("the job's pod was deleted".into());
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let base = format!("{}-{n}", dns_part(&step.id, 40));
        let script_name = format!("{base}.{}", step.shell.extension());
        let script = format!("{SCRIPTS}/{script_name}");
        let pid_file = format!("{SCRIPTS}/{base}.pid");
        let launcher = self.launcher(step, &script, &pid_file);
        let files = archive(&[
            (&script_name, 0o755, step.script.as_bytes()),
            (&format!("{base}.run"), 0o644, launcher.as_bytes()),
        ]);
        let written = match files {
            Ok(tar) => self.untar(SCRIPTS, tar).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            return StepOutcome::StartFailed(format!("writing the step's script: {e}"));
        }
        let argv = vec!["sh".to_owned(), format!("{SCRIPTS}/{base}.run")];
        let mut process = match self
            .pods
            .exec(&self.name, argv, &KubeJob::attach(false, JOB_CONTAINER))
            .await
        {
            Ok(p) => p,
            Err(e) => return StepOutcome::StartFailed(api_error("exec of the step", &e)),
        };
        let status = process.take_status();
        let readers = [
            process.stdout().map(|r| (r, Stream::Stdout)),
            process.stderr().map(|r| (r, Stream::Stderr)),
        ];
        let pumps: Vec<_> = readers
            .into_iter()
            .flatten()
            .map(|(r, s)| tokio::spawn(pump(r, s, output.clone())))
            .collect();
        drop(output);
        let ended = async {
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            exec_end(status)
        };
        tokio::pin!(ended);
        let outcome = tokio::select! {
            end = &mut ended => match end {
                ExecEnd::Code(code) => StepOutcome::Exited(code),
                ExecEnd::Failed(why) => StepOutcome::Lost(format!("the step's exec: {why}")),
            },
            _ = crate::spec::expire(time_left) => StepOutcome::TimedOut,
            _ = cancel.cancelled() => StepOutcome::Cancelled,
        };
        if !matches!(outcome, StepOutcome::Exited(_)) {
            self.kill_step(&pid_file).await;
            // The exec ends once its process is gone; its status is no longer needed, but
            // the stream must end for the output to be complete.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut ended).await;
        }
        // What is still in flight arrives before the stream closes.
        let aborts: Vec<_> = pumps.iter().map(|p| p.abort_handle()).collect();
        let drain = async {
            for p in pumps {
                let _ = p.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            process.abort();
        }
        // Nothing holds the output channel after the step.
        for a in aborts {
            a.abort();
        }
        outcome
    }

    async fn read_file(&self, path: &Path) -> Result<Option<Bytes>, ExecError> {
        let full = self.resolve(path)?;
        let c = self
            .file_script(
                r#"[ -e "$1" ] || exit 44; [ -d "$1" ] && { echo "is a directory" >&2; exit 1; }; exec cat -- "$1""#,
                &[&full],
                None,
            )
            .await?;
        match c.end {
            ExecEnd::Code(0) => Ok(Some(Bytes::from(c.stdout))),
            ExecEnd::Code(MISSING) => Ok(None),
            ExecEnd::Code(n) => Err(ExecError::Files(format!(
                "{full}: exit code {n}: {}",
                String::from_utf8_lossy(&c.stderr).trim()
            ))),
            ExecEnd::Failed(why) => Err(ExecError::Files(format!("{full}: {why}"))),
        }
    }

    async fn write_tar(&self, at: &Path, archive: Bytes) -> Result<(), ExecError> {
        let dir = self.resolve(at)?;
        self.untar(&dir, archive).await
    }

    async fn read_tar(&self, from: &Path, paths: &[String]) -> Result<Bytes, ExecError> {
        let dir = self.resolve(from)?;
        for p in paths {
            crate::files::resolve(Path::new("/"), Path::new(p)).and_then(|_| {
                if Path::new(p).is_absolute() {
                    Err(ExecError::Files(format!("{p}: not a relative path")))
                } else {
                    Ok(())
                }
            })?;
        }
        let mut args: Vec<&str> = vec![&dir];
        args.extend(paths.iter().map(String::as_str));
        let c = self
            .file_script(
                r#"cd -- "$1" 2>/dev/null || exit 44
shift
n=$#; i=0
while [ "$i" -lt "$n" ]; do
  p=$1; shift
  if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "$p"; fi
  i=$((i + 1))
done
[ "$#" -gt 0 ] || exit 44
exec tar -c -f - -- "$@""#,
                &args,
                None,
            )
            .await?;
        match c.end {
            ExecEnd::Code(0) => Ok(Bytes::from(c.stdout)),
            ExecEnd::Code(MISSING) => archive(&[]),
            ExecEnd::Code(n) => Err(ExecError::Files(format!(
                "{dir}: tar exited with {n}: {}",
                String::from_utf8_lossy(&c.stderr).trim()
            ))),
            ExecEnd::Failed(why) => Err(ExecError::Files(format!("{dir}: {why}"))),
        }
    }

    async fn teardown(&self) -> Result<(), ExecError> {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut problems = Vec::new();
        match self.pods.delete(&self.name, &delete_now()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => problems.push(api_error("deleting the job's pod", &e)),
        }
        match self.secrets.delete(&self.secret, &delete_now()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => problems.push(api_error("deleting the job's secret", &e)),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ExecError::Teardown(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_from_a_query() {
        let s = KubernetesSettings::parse_query(
            "namespace=ci&cpu=500m&memory=1Gi&memory-limit=2Gi&node-selector=pool=ci\
             &toleration=dedicated=ci:NoSchedule&toleration=spot&service-account=runner\
             &image-pull-secret=regcred&pull-policy=IfNotPresent&ready-timeout=60",
        )
        .expect("parses");
        assert_eq!(s.namespace.as_deref(), Some("ci"));
        assert_eq!(s.requests.get("cpu").map(String::as_str), Some("500m"));
        assert_eq!(s.limits.get("memory").map(String::as_str), Some("2Gi"));
        assert_eq!(s.node_selector.get("pool").map(String::as_str), Some("ci"));
        assert_eq!(
            s.tolerations,
            [
                KubeToleration {
                    key: "dedicated".into(),
                    value: Some("ci".into()),
                    effect: Some("NoSchedule".into())
                },
                KubeToleration {
                    key: "spot".into(),
                    value: None,
                    effect: None
                }
            ]
        );
        assert_eq!(s.ready_timeout, Duration::from_secs(60));
        for bad in [
            "cpu",
            "colour=blue",
            "pull-policy=Sometimes",
            "toleration=a=b:Never",
            "ready-timeout=soon",
        ] {
            assert!(KubernetesSettings::parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_labels_are_what_kubernetes_accepts() {
        assert_eq!(label_value("build (ubuntu, 18)"), "build__ubuntu__18");
        assert_eq!(label_value(&"x".repeat(100)).len(), 63);
        assert_eq!(dns_part("Build_Job", 30), "build-job");
        let name = unique_name("Test (a, b)");
        assert!(name.len() <= 63, "{name}");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(unique_name("x"), unique_name("x"));
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn users_are_numeric() {
        let sc = run_as("1000:2000").expect("numeric");
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(1000), Some(2000)));
        assert!(run_as("postgres").is_err());
    }
}
