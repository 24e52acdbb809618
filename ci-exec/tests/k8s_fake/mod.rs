//! A fake Kubernetes API server for the executor's tests, on `tower-test`'s mock service:
//! the `kube::Client` under test talks to it in process, and every request it makes is
//! recorded (method, path, query, body) for the tests to check. What it serves is real
//! enough for the executor's whole life cycle: secrets and pods are created, read, listed
//! by label and deleted; a pod's containers are started as processes in `bwrap` sandboxes
//! that see the pod's `emptyDir` volumes at their mount paths (host directories of the
//! fake's own, never the test's workspace), `/etc/hosts` made from the host aliases, and the
//! container's environment with `secretKeyRef`s looked up in the stored secrets; `exec`
//! upgrades to the `v5.channel.k8s.io` (or `v4`) websocket protocol — served by a real hyper
//! connection over an in-memory pipe, as a mock cannot hand out upgraded connections — and
//! runs the command in the container's sandbox, streaming its output and ending with the
//! status the kubelet sends. Faults (an image that cannot be pulled, a forbidden create,
//! a refused exec, the v4 protocol) are switched on per test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{protocol::Role, Message};

pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One request the client made.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Recorded {
    /// `METHOD path` with the resource's generated name replaced by `*`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn params(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What goes wrong on purpose.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Containers with this image never start: `ErrImagePull`.
    pub unpullable_image: Option<String>,
    /// Creating pods is forbidden (RBAC).
    pub forbid_pods: bool,
    /// Exec requests are refused by the kubelet (500).
    pub refuse_exec: bool,
    /// Speak `v4.channel.k8s.io` (no stdin close) instead of v5.
    pub protocol_v4: bool,
}

/// What a container printed.
type Output = Arc<Mutex<Vec<u8>>>;

struct FakePod {
    pod: Pod,
    gets: u32,
    /// Volume name → host directory.
    volumes: BTreeMap<String, PathBuf>,
    hosts: PathBuf,
    dir: PathBuf,
    /// Process groups of everything started in the pod.
    groups: Vec<i32>,
    /// Container name → (exit code once ended, output).
    containers: BTreeMap<String, (Option<i32>, Output)>,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    unexpected: Vec<String>,
    pods: BTreeMap<String, FakePod>,
    secrets: BTreeMap<String, Secret>,
    created_pods: Vec<Pod>,
    created_secrets: Vec<Secret>,
    next: u64,
}

struct Inner {
    root: tempfile::TempDir,
    state: Mutex<State>,
    faults: Mutex<Faults>,
}

/// The fake cluster; dropping it kills what its pods still run.
#[derive(Clone)]
pub struct FakeCluster {
    inner: Arc<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for pod in state.pods.values() {
            for g in &pod.groups {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(*g),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Whether `bwrap` can run the fake's containers here.
pub fn bwrap_works() -> Result<(), String> {
    let out = std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "true"])
        .output()
        .map_err(|e| format!("bwrap: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "bwrap: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .expect("a valid response")
}

fn ok_json(code: u16, value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(full(serde_json::to_vec(value).expect("serialisable")))
        .expect("a valid response")
}

fn matches_selector(labels: Option<&BTreeMap<String, String>>, selector: Option<&str>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        labels.and_then(|l| l.get(k)).map(String::as_str) == Some(v)
    })
}

impl FakeCluster {
    /// A fake cluster and a client of it (default namespace `gantry-test`).
    pub fn start(faults: Faults) -> (FakeCluster, kube::Client) {
        let cluster = FakeCluster {
            inner: Arc::new(Inner {
                root: tempfile::tempdir().expect("tempdir"),
                state: Mutex::new(State::default()),
                faults: Mutex::new(faults),
            }),
        };
        let (service, mut handle) =
            tower_test::mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let served = cluster.clone();
        tokio::spawn(async move {
            while let Some((request, reply)) = handle.next_request().await {
                let cluster = served.clone();
                tokio::spawn(async move {
                    let response = cluster.handle(request).await;
                    reply.send_response(response);
                });
            }
        });
        (cluster, kube::Client::new(service, "gantry-test"))
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().expect("not poisoned") = faults;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("not poisoned")
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Requests no route of a Kubernetes API server answers.
    pub fn unexpected(&self) -> Vec<String> {
        self.state().unexpected.clone()
    }

    pub fn created_pods(&self) -> Vec<Pod> {
        self.state().created_pods.clone()
    }

    pub fn created_secrets(&self) -> Vec<Secret> {
        self.state().created_secrets.clone()
    }

    /// Names of the pods and secrets that exist now.
    pub fn live(&self) -> (Vec<String>, Vec<String>) {
        let s = self.state();
        (
            s.pods.keys().cloned().collect(),
            s.secrets.keys().cloned().collect(),
        )
    }

    /// Deletes a pod as someone else would (`kubectl delete pod`).
    pub fn delete_pod_out_of_band(&self, name: &str) {
        let _ = self.delete_pod(name);
    }

    /// The host directory behind `mount_path` of pod `pod`'s job container.
    pub fn volume_dir(&self, pod: &str, mount_path: &str) -> Option<PathBuf> {
        let s = self.state();
        let p = s.pods.get(pod)?;
        let c = p.pod.spec.as_ref()?.containers.first()?;
        let m = c
            .volume_mounts
            .as_ref()?
            .iter()
            .find(|m| m.mount_path == mount_path)?;
        p.volumes.get(&m.name).cloned()
    }

    async fn handle(&self, request: Request<kube::client::Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let method = parts.method.to_string();
        let is_exec = path.ends_with("/exec");
        let (bytes, body_json) = if is_exec {
            (Bytes::new(), None)
        } else {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let parsed = serde_json::from_slice::<Value>(&bytes).ok();
            (bytes, parsed)
        };
        let recorded = Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body_json,
        };
        self.state().requests.push(recorded.clone());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let selector = recorded.param("labelSelector").map(str::to_owned);
        let response = match (method.as_str(), segments.as_slice()) {
            ("GET", ["version"]) => ok_json(
                200,
                &json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0-fake",
                    "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-12-01T00:00:00Z",
                    "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            ("POST", ["api", "v1", "namespaces", _ns, "secrets"]) => self.create_secret(&bytes),
            ("GET", ["api", "v1", "namespaces", _ns, "secrets"]) => {
                let s = self.state();
                let items: Vec<&Secret> = s
                    .secrets
                    .values()
                    .filter(|x| matches_selector(x.metadata.labels.as_ref(), selector.as_deref()))
                    .collect();
                ok_json(
                    200,
                    &json!({"kind": "SecretList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("DELETE", ["api", "v1", "namespaces", _ns, "secrets", name]) => {
                match self.state().secrets.remove(*name) {
                    Some(s) => ok_json(200, &s),
                    None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
                }
            }
            ("PATCH", ["api", "v1", "namespaces", _ns, "secrets", name]) => {
                self.patch_secret(name, recorded.body.as_ref())
            }
            ("POST", ["api", "v1", "namespaces", ns, "pods"]) => self.create_pod(ns, &bytes),
            ("GET", ["api", "v1", "namespaces", _ns, "pods"]) => {
                let s = self.state();
                let items: Vec<&Pod> = s
                    .pods
                    .values()
                    .map(|p| &p.pod)
                    .filter(|x| matches_selector(x.metadata.labels.as_ref(), selector.as_deref()))
                    .collect();
                ok_json(
                    200,
                    &json!({"kind": "PodList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("GET", ["api", "v1", "namespaces", _ns, "pods", name]) => self.get_pod(name),
            ("DELETE", ["api", "v1", "namespaces", _ns, "pods", name]) => self.delete_pod(name),
            ("GET", ["api", "v1", "namespaces", _ns, "pods", name, "log"]) => {
                let container = recorded.param("container").unwrap_or("");
                let s = self.state();
                match s.pods.get(*name).and_then(|p| p.containers.get(container)) {
                    Some((_, out)) => {
                        let text = out.lock().expect("not poisoned").clone();
                        Response::builder()
                            .status(200)
                            .body(full(text))
                            .expect("a valid response")
                    }
                    None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
                }
            }
            ("GET" | "POST", ["api", "v1", "namespaces", _ns, "pods", name, "exec"]) => {
                let name = (*name).to_owned();
                return self.exec(&name, &recorded, parts).await;
            }
            _ => {
                self.state().unexpected.push(format!(
                    "{method} {path}?{}",
                    parts.uri.query().unwrap_or("")
                ));
                status(404, "NotFound", "the fake API server has no such route")
            }
        };
        response
    }

    fn create_secret(&self, body: &[u8]) -> Response<Body> {
        let Ok(mut secret) = serde_json::from_slice::<Secret>(body) else {
            return status(400, "BadRequest", "not a Secret");
        };
        let mut s = self.state();
        let Some(name) = secret.metadata.name.clone() else {
            return status(422, "Invalid", "a secret needs a name");
        };
        if s.secrets.contains_key(&name) {
            return status(
                409,
                "AlreadyExists",
                &format!("secrets \"{name}\" already exists"),
            );
        }
        s.next += 1;
        secret.metadata.uid = Some(format!("uid-{}", s.next));
        s.created_secrets.push(secret.clone());
        s.secrets.insert(name, secret.clone());
        ok_json(201, &secret)
    }

    /// A merge patch of a secret's owner references (all the executor patches).
    fn patch_secret(&self, name: &str, patch: Option<&Value>) -> Response<Body> {
        let Some(owners) = patch.and_then(|p| p.pointer("/metadata/ownerReferences")) else {
            return status(
                422,
                "Invalid",
                "the fake patches metadata.ownerReferences only",
            );
        };
        let Ok(owners) = serde_json::from_value(owners.clone()) else {
            return status(422, "Invalid", "not owner references");
        };
        let mut s = self.state();
        match s.secrets.get_mut(name) {
            Some(secret) => {
                secret.metadata.owner_references = Some(owners);
                let patched = secret.clone();
                ok_json(200, &patched)
            }
            None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
        }
    }

    fn create_pod(&self, ns: &str, body: &[u8]) -> Response<Body> {
        if self.inner.faults.lock().expect("not poisoned").forbid_pods {
            return status(
                403,
                "Forbidden",
                &format!("pods is forbidden: User \"ci\" cannot create resource \"pods\" in API group \"\" in the namespace \"{ns}\""),
            );
        }
        let Ok(mut pod) = serde_json::from_slice::<Pod>(body) else {
            return status(400, "BadRequest", "not a Pod");
        };
        let Some(name) = pod.metadata.name.clone() else {
            return status(422, "Invalid", "a pod needs a name");
        };
        let Some(spec) = pod.spec.clone() else {
            return status(422, "Invalid", "a pod needs a spec");
        };
        let mut s = self.state();
        if s.pods.contains_key(&name) {
            return status(
                409,
                "AlreadyExists",
                &format!("pods \"{name}\" already exists"),
            );
        }
        s.next += 1;
        pod.metadata.uid = Some(format!("uid-{}", s.next));
        s.created_pods.push(pod.clone());
        let dir = self.inner.root.path().join(&name);
        let mut volumes = BTreeMap::new();
        for v in spec.volumes.iter().flatten() {
            if v.empty_dir.is_none() {
                return status(422, "Invalid", "the fake serves emptyDir volumes only");
            }
            let d = dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&d).expect("a volume directory");
            volumes.insert(v.name.clone(), d);
        }
        let mut hosts = String::from("127.0.0.1\tlocalhost\n");
        for a in spec.host_aliases.iter().flatten() {
            hosts.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join(" ")
            ));
        }
        let hosts_file = dir.join("hosts");
        std::fs::write(&hosts_file, hosts).expect("hosts");
        let mut fake = FakePod {
            pod,
            gets: 0,
            volumes,
            hosts: hosts_file,
            dir,
            groups: Vec::new(),
            containers: BTreeMap::new(),
        };
        let unpullable = self
            .inner
            .faults
            .lock()
            .expect("not poisoned")
            .unpullable_image
            .clone();
        for c in &spec.containers {
            let output = Arc::new(Mutex::new(Vec::new()));
            if unpullable.is_some() && c.image == unpullable {
                continue;
            }
            let env = match container_env(c, &s.secrets) {
                Ok(env) => env,
                Err(_) => continue,
            };
            let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
            argv.extend(c.args.clone().unwrap_or_default());
            if argv.is_empty() {
                argv = vec!["sh".into()];
            }
            let mut cmd = sandbox(&fake, c, &env, &argv, c.working_dir.as_deref());
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let Ok(mut child) = cmd.spawn() else {
                continue;
            };
            if let Some(pid) = child.id() {
                fake.groups.push(pid as i32);
            }
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ]
            .into_iter()
            .flatten()
            {
                let out = output.clone();
                tokio::spawn(async move {
                    let mut pipe = pipe;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = pipe.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        out.lock()
                            .expect("not poisoned")
                            .extend_from_slice(&buf[..n]);
                    }
                });
            }
            let cluster = self.clone();
            let (pod_name, container) = (name.clone(), c.name.clone());
            tokio::spawn(async move {
                let code = child
                    .wait()
                    .await
                    .ok()
                    .and_then(|s| s.code())
                    .unwrap_or(137);
                if let Some(p) = cluster.state().pods.get_mut(&pod_name) {
                    if let Some(entry) = p.containers.get_mut(&container) {
                        entry.0 = Some(code);
                    }
                }
            });
            fake.containers.insert(c.name.clone(), (None, output));
        }
        let created = fake.pod.clone();
        s.pods.insert(name, fake);
        ok_json(201, &created)
    }

    fn get_pod(&self, name: &str) -> Response<Body> {
        let mut s = self.state();
        let secrets = s.secrets.clone();
        let unpullable = self
            .inner
            .faults
            .lock()
            .expect("not poisoned")
            .unpullable_image
            .clone();
        let Some(p) = s.pods.get_mut(name) else {
            return status(404, "NotFound", &format!("pods \"{name}\" not found"));
        };
        p.gets += 1;
        let spec = p.pod.spec.clone().unwrap_or_default();
        let statuses: Vec<Value> = spec
            .containers
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                let state = if p.gets == 1 {
                    json!({"waiting": {"reason": "ContainerCreating"}})
                } else if unpullable.as_ref() == Some(&image) {
                    json!({"waiting": {"reason": "ErrImagePull",
                        "message": format!("failed to pull and unpack image \"{image}\": not found")}})
                } else if let Err(e) = container_env(c, &secrets) {
                    json!({"waiting": {"reason": "CreateContainerConfigError", "message": e}})
                } else {
                    match p.containers.get(&c.name).and_then(|x| x.0) {
                        Some(code) => json!({"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"}}}),
                        None => json!({"running": {"startedAt": "2026-12-07T00:00:00Z"}}),
                    }
                };
                json!({"name": c.name, "image": image, "imageID": "", "ready": state.get("running").is_some(),
                    "restartCount": 0, "state": state})
            })
            .collect();
        let phase = if p.gets == 1 { "Pending" } else { "Running" };
        let mut pod = serde_json::to_value(&p.pod).expect("serialisable");
        pod["status"] = json!({"phase": phase, "containerStatuses": statuses,
            "conditions": [{"type": "PodScheduled", "status": "True"}]});
        ok_json(200, &pod)
    }

    fn delete_pod(&self, name: &str) -> Response<Body> {
        let removed = {
            let mut s = self.state();
            let removed = s.pods.remove(name);
            // The garbage collector: what the pod owns goes with it.
            if let Some(uid) = removed.as_ref().and_then(|p| p.pod.metadata.uid.clone()) {
                s.secrets.retain(|_, secret| {
                    !secret
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == uid)
                });
            }
            removed
        };
        match removed {
            Some(p) => {
                for g in &p.groups {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(*g),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                ok_json(200, &p.pod)
            }
            None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
        }
    }

    /// The upgrade: the request goes through a real hyper client connection to an
    /// in-process hyper server over a pipe, so the response carries a real upgrade.
    async fn exec(
        &self,
        name: &str,
        recorded: &Recorded,
        parts: http::request::Parts,
    ) -> Response<Body> {
        if self.inner.faults.lock().expect("not poisoned").refuse_exec {
            return status(
                500,
                "InternalError",
                "error dialing backend: the kubelet refused",
            );
        }
        let container_name = recorded.param("container").unwrap_or("").to_owned();
        let argv: Vec<String> = recorded
            .params("command")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let prepared: Cell = {
            let s = self.state();
            let Some(p) = s.pods.get(name) else {
                return status(404, "NotFound", &format!("pods \"{name}\" not found"));
            };
            let spec = p.pod.spec.clone().unwrap_or_default();
            let Some(c) = spec.containers.iter().find(|c| c.name == container_name) else {
                return status(
                    400,
                    "BadRequest",
                    &format!("container {container_name} is not valid for pod {name}"),
                );
            };
            if p.containers.get(&c.name).is_none_or(|x| x.0.is_some()) {
                return status(
                    400,
                    "BadRequest",
                    &format!("container {container_name} is not running"),
                );
            }
            let env = match container_env(c, &s.secrets) {
                Ok(e) => e,
                Err(e) => return status(400, "BadRequest", &e),
            };
            let cmd = sandbox(p, c, &env, &argv, c.working_dir.as_deref());
            Arc::new(Mutex::new(Some(cmd)))
        };
        if argv.is_empty() {
            return status(400, "BadRequest", "you must specify at least 1 command");
        }
        let stdin = recorded.param("stdin") == Some("true");
        let v4 = self.inner.faults.lock().expect("not poisoned").protocol_v4;
        let groups = self.clone();
        let pod_name = name.to_owned();
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| k.as_bytes().to_vec())
                .unwrap_or_default();
            let offered = req
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let protocol = if v4 {
                "v4.channel.k8s.io"
            } else {
                "v5.channel.k8s.io"
            };
            let cmd = prepared_take(&prepared);
            let groups = groups.clone();
            let pod_name = pod_name.clone();
            async move {
                if !offered.contains(protocol) {
                    return Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .status(400)
                            .body(full("no protocol"))
                            .expect("valid"),
                    );
                }
                tokio::spawn(async move {
                    let Ok(upgraded) = hyper::upgrade::on(req).await else {
                        return;
                    };
                    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    if let Some(cmd) = cmd {
                        run_exec(ws, cmd, stdin, !v4, groups, pod_name).await;
                    }
                });
                Ok(Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "Upgrade")
                    .header("upgrade", "websocket")
                    .header(
                        "sec-websocket-accept",
                        tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key),
                    )
                    .header("sec-websocket-protocol", protocol)
                    .body(full(Bytes::new()))
                    .expect("valid"))
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service)
                .with_upgrades()
                .await;
        });
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(client_io)).await
        else {
            return status(500, "InternalError", "the fake's pipe broke");
        };
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut request = Request::builder().method(parts.method).uri(parts.uri);
        for (k, v) in &parts.headers {
            request = request.header(k, v);
        }
        let request = request.body(Full::new(Bytes::new())).expect("valid");
        match sender.send_request(request).await {
            Ok(response) => response.map(|b| b.map_err(|e| Box::new(e) as _).boxed_unsync()),
            Err(e) => status(500, "InternalError", &e.to_string()),
        }
    }
}

// The service function may be called once; the prepared command moves into it through a
// shared cell.
type Cell = Arc<Mutex<Option<tokio::process::Command>>>;

fn prepared_take(cell: &Cell) -> Option<tokio::process::Command> {
    cell.lock().expect("not poisoned").take()
}

/// The container's environment: the image's (`PATH`, `HOSTNAME`), then its `env`, with
/// `secretKeyRef`s looked up.
fn container_env(
    c: &Container,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Vec<(String, String)>, String> {
    let mut env = vec![(
        "PATH".to_owned(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    )];
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let r = from
                    .secret_key_ref
                    .as_ref()
                    .ok_or("the fake resolves secretKeyRef only")?;
                let secret = secrets
                    .get(&r.name)
                    .ok_or_else(|| format!("secret \"{}\" not found", r.name))?;
                let data = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .ok_or_else(|| format!("couldn't find key {} in Secret {}", r.key, r.name))?;
                String::from_utf8_lossy(&data.0).into_owned()
            }
            (None, None) => String::new(),
        };
        env.push((e.name.clone(), value));
    }
    Ok(env)
}

/// A process of container `c` of pod `p`: the host's `/usr` and `/etc` read-only, the pod's
/// volumes at their mount paths, `/etc/hosts` from the host aliases, a `/tmp` of the
/// container's own, the host's PID namespace (as a container's processes share one).
fn sandbox(
    p: &FakePod,
    c: &Container,
    env: &[(String, String)],
    argv: &[String],
    workdir: Option<&str>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("bwrap");
    cmd.args(["--ro-bind", "/usr", "/usr"]);
    for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
        let host = Path::new("/").join(top);
        match std::fs::read_link(&host) {
            Ok(target) => {
                cmd.arg("--symlink").arg(target).arg(&host);
            }
            Err(_) if host.is_dir() => {
                cmd.arg("--ro-bind").arg(&host).arg(&host);
            }
            Err(_) => {}
        }
    }
    let tmp = p.dir.join("tmp").join(&c.name);
    std::fs::create_dir_all(&tmp).expect("a tmp directory");
    cmd.args(["--ro-bind", "/etc", "/etc"])
        .arg("--ro-bind")
        .arg(&p.hosts)
        .arg("/etc/hosts")
        .args(["--bind", "/proc", "/proc", "--dev", "/dev"])
        .arg("--bind")
        .arg(&tmp)
        .arg("/tmp");
    for m in c.volume_mounts.iter().flatten() {
        if let Some(dir) = p.volumes.get(&m.name) {
            cmd.arg("--bind").arg(dir).arg(&m.mount_path);
        }
    }
    if let Some(w) = workdir {
        cmd.args(["--dir", w, "--chdir", w]);
    }
    cmd.arg("--clearenv");
    for (k, v) in env {
        cmd.arg("--setenv").arg(k).arg(v);
    }
    cmd.arg("--").args(argv);
    cmd.process_group(0).kill_on_drop(false);
    cmd
}

/// One exec session: the process's output on channels 1 and 2, stdin from channel 0, and
/// the status on channel 3 once it exited and its output is drained.
async fn run_exec(
    ws: tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    mut cmd: tokio::process::Command,
    stdin: bool,
    v5: bool,
    cluster: FakeCluster,
    pod: String,
) {
    let (mut tx, mut rx) = ws.split();
    cmd.stdin(if stdin {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": e.to_string(),
                "reason": "InternalError"});
            let mut msg = vec![3u8];
            msg.extend(status.to_string().into_bytes());
            let _ = tx.send(Message::binary(msg)).await;
            return;
        }
    };
    if let Some(pid) = child.id() {
        if let Some(p) = cluster.state().pods.get_mut(&pod) {
            p.groups.push(pid as i32);
        }
    }
    // Empty frames per channel, as the API server sends on open.
    for ch in [1u8, 2, 3] {
        let _ = tx.send(Message::binary(vec![ch])).await;
    }
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let mut pumps = Vec::new();
    let outs: Vec<(u8, Box<dyn tokio::io::AsyncRead + Send + Unpin>)> = vec![
        (1, Box::new(child.stdout.take().expect("piped"))),
        (2, Box::new(child.stderr.take().expect("piped"))),
    ];
    for (ch, mut r) in outs {
        let frames_tx = frames_tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(ch);
                frame.extend_from_slice(&buf[..n]);
                if frames_tx.send(frame).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(frames_tx);
    let mut child_stdin = child.stdin.take();
    let mut exited = None;
    let mut open = true;
    let mut client_gone = false;
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(f) => {
                    if tx.send(Message::binary(f)).await.is_err() {
                        client_gone = true;
                        break;
                    }
                }
                None => { open = false; }
            },
            msg = rx.next(), if !client_gone => match msg {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    if b[0] == 0 {
                        if let Some(w) = child_stdin.as_mut() {
                            let _ = w.write_all(&b[1..]).await;
                        }
                    } else if v5 && b[0] == 255 && b.get(1) == Some(&0) {
                        child_stdin = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client went away: as a kubelet does, leave the process running.
                    client_gone = true;
                    child_stdin = None;
                }
                _ => {}
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some(status.ok().and_then(|s| s.code()).unwrap_or(137));
            }
        }
        if client_gone {
            break;
        }
        if exited.is_some() && !open {
            break;
        }
        if let Some(code) = exited {
            // Exited, but something it started still holds the pipes: drain briefly.
            if tokio::time::timeout(std::time::Duration::from_secs(2), async {
                while let Some(f) = frames.recv().await {
                    if tx.send(Message::binary(f)).await.is_err() {
                        break;
                    }
                }
            })
            .await
            .is_err()
            {
                let _ = code;
            }
            break;
        }
    }
    if client_gone {
        let _ = child.wait().await;
        return;
    }
    let code = match exited {
        Some(c) => c,
        None => child
            .wait()
            .await
            .ok()
            .and_then(|s| s.code())
            .unwrap_or(137),
    };
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    let mut msg = vec![3u8];
    msg.extend(status.to_string().into_bytes());
    let _ = tx.send(Message::binary(msg)).await;
    let _ = tx.close().await;
    for p in pumps {
        p.abort();
    }
}
