//! The real server as a child process on 127.0.0.1, real git repositories, signed webhook
//! deliveries, and helpers to follow runs through the API.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

pub const SECRET: &str = "test-webhook-secret";
pub const ADMIN: &str = "test-admin-token";

/// A server process with its state directory; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on loopback")
        .port()
}

impl Server {
    /// Starts a server with the base configuration plus `extra` TOML.
    pub fn start(extra: &str) -> Server {
        Server::start_env(extra, &[])
    }

    /// Starts a server with extra TOML and environment variables.
    pub fn start_env(extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("server.toml");
        let workers = if extra.contains("workers =") {
            ""
        } else {
            "workers = 2\n"
        };
        let labels = if extra.contains("worker_labels =") {
            ""
        } else {
            "worker_labels = [\"linux\"]\n"
        };
        let text = format!(
            r#"listen = "127.0.0.1:{port}"
state_dir = "{state}"
lease_seconds = 3
{workers}{labels}{extra}
[tokens]
admin_env = "GANTRY_TEST_ADMIN"
anonymous_read = true
"#,
            state = dir.path().join("state").display()
        );
        std::fs::write(&config, text).expect("config written");
        let mut server = Server {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            log: dir.path().join("server.log"),
            dir,
            config,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gantry-server"))
            .arg("--config")
            .arg(&self.config)
            .env("GANTRY_TEST_SECRET", SECRET)
            .env("GANTRY_TEST_ADMIN", ADMIN)
            .env("GANTRY_TEST_FORGE_TOKEN", "forge-token")
            .env("RUST_LOG", "gantry_server=debug,info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gantry-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the server exited ({status}):\n{}", self.log_text());
            }
            if std::net::TcpStream::connect(self.url.trim_start_matches("http://")).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not start:\n{}", self.log_text());
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same state and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Octo")
        .env("GIT_AUTHOR_EMAIL", "octo@example.com")
        .env("GIT_COMMITTER_NAME", "Octo")
        .env("GIT_COMMITTER_EMAIL", "octo@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository on branch `main` with `files`, committed; returns it and the commit.
pub fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("dirs");
        std::fs::write(p, text).expect("file written");
    }
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    let sha = git(dir.path(), &["rev-parse", "HEAD"]);
    (dir, sha)
}

/// A GitHub push delivery for `sha` on `main` of `repo` (cloned over file://).
pub fn push_payload(repo: &Path, sha: &str) -> String {
    json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "repository": {
            "full_name": "octo/app",
            "name": "app",
            "owner": { "login": "octo" },
            "default_branch": "main",
            "clone_url": format!("file://{}", repo.display()),
        },
        "head_commit": { "id": sha, "message": "first" },
        "pusher": { "name": "octo" },
        "sender": { "login": "octo" },
    })
    .to_string()
}

/// Posts a signed GitHub delivery.
pub async fn post_push(url: &str, body: &str, delivery: &str) -> reqwest::Response {
    let signature = ci_engine::vcs::webhook::sign_github(SECRET.as_bytes(), body.as_bytes());
    reqwest::Client::new()
        .post(format!("{url}/hooks/github"))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the server answers")
}

pub async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("JSON")
}

/// Waits until `check` holds for the JSON at `url` (or panics after `secs`).
pub async fn wait_for(
    server: &Server,
    path: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{}{path}", server.url)).await {
            if let Ok(v) = r.json::<Value>().await {
                if check(&v) {
                    return v;
                }
                last = v;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting on {path}; last: {last:#}\nserver log:\n{}",
        server.log_text()
    );
}

/// The only run's id once it exists.
pub async fn the_run(server: &Server) -> String {
    let runs = wait_for(server, "/api/runs", 60, |v| {
        v["runs"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    runs["runs"][0]["id"].as_str().expect("a run id").to_owned()
}

/// The status of a job in a run's JSON.
pub fn job_status<'a>(run: &'a Value, job: &str) -> Option<&'a str> {
    run["jobs"].as_array()?.iter().find(|j| j["id"] == job)?["status"].as_str()
}

pub fn finished(run: &Value) -> bool {
    matches!(
        run["run"]["status"].as_str(),
        Some("success" | "failure" | "cancelled" | "skipped")
    )
}

/// One SSE event.
#[derive(Debug, Default, Clone)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads events until `end` (or `max`).
pub async fn read_events(url: &str, last_id: Option<&str>, max: usize) -> Vec<Sse> {
    let mut req = reqwest::Client::new().get(url);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.expect("the server answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let mut current = Sse::default();
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
        .await
        .expect("events keep coming")
    {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
        while let Some(pos) = buf.find('\n') {
            let line: String = buf.drain(..=pos).collect();
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if !current.event.is_empty() || !current.data.is_empty() {
                    let done = current.event == "end";
                    out.push(std::mem::take(&mut current));
                    if done || out.len() >= max {
                        return out;
                    }
                }
            } else if let Some(v) = line.strip_prefix("id:") {
                current.id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("event:") {
                current.event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !current.data.is_empty() {
                    current.data.push('\n');
                }
                current.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }
    out
}

pub fn log_lines(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "log")
        .flat_map(|e| e.data.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.starts_with("tick "))
        .collect()
}

/// A self-signed certificate for 127.0.0.1 made with the `openssl` command, or `None` (with
/// a loud message; a failure in CI, where `.ci/run` installs openssl).
pub fn self_signed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(out) if out.status.success() => Some((cert, key)),
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl could not make a certificate: {other:?}"
            );
            eprintln!("SKIPPED: openssl could not make a test certificate ({other:?})");
            None
        }
    }
}
