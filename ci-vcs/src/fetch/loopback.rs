//! Real servers on 127.0.0.1 for tests of code that fetches: a `git daemon` serving
//! repositories and a small HTTP server serving files. Both stop when dropped.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! let root = tempfile::tempdir()?;
//! std::fs::write(root.path().join("ci.yml"), "build: {script: [make]}\n")?;
//! let server = ci_vcs::fetch::loopback::FileServer::start(root.path())?;
//! let fetcher = ci_vcs::fetch::Fetcher::new(ci_vcs::fetch::FetchConfig {
//!     cache_dir: root.path().join("cache"),
//!     ..ci_vcs::fetch::FetchConfig::from_env()
//! });
//! let text = fetcher.remote_file(&format!("{}/ci.yml", server.url())).unwrap();
//! assert!(text.contains("make"));
//! # Ok(()) }
//! ```

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the file server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request target (path and query).
    pub target: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The method (`GET`, `POST`).
    pub method: String,
    /// The request body (of a POST).
    pub body: String,
}

/// An HTTP server on 127.0.0.1 answering `GET /path` (and `POST /path`, whatever its body)
/// with the file at `root/path` (the query ignored; `..` refused), 404 otherwise.
#[derive(Debug)]
pub struct FileServer {
    url: String,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Starts serving `root`.
    pub fn start(root: impl Into<PathBuf>) -> std::io::Result<FileServer> {
        let root = root.into();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream {
                        let _ = answer(s, &root, &requests);
                    }
                }
            })
        };
        Ok(FileServer {
            url,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: TcpStream, root: &Path, requests: &Mutex<Vec<Request>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let method = line.split_whitespace().next().unwrap_or("GET").to_owned();
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if let Ok(mut r) = requests.lock() {
        r.push(Request {
            target: target.clone(),
            headers,
            method,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let path = target.split('?').next().unwrap_or("/");
    let path = percent_decode(path.trim_start_matches('/'));
    let body = (!path.split('/').any(|c| c == ".."))
        .then(|| std::fs::read(root.join(&path)).ok())
        .flatten();
    let mut stream = stream;
    match body {
        Some(b) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )?;
            stream.write_all(&b)?;
        }
        None => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            )?;
        }
    }
    stream.flush()?;
    // Let the client read everything before the socket closes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `git daemon` on 127.0.0.1 serving every repository under a base directory as
/// `git://127.0.0.1:PORT/<path>` (commits fetchable by SHA, as GitHub allows).
#[derive(Debug)]
pub struct GitDaemon {
    url: String,
    child: Child,
}

impl GitDaemon {
    /// Starts serving `base` (repositories at `base/owner/repo`, bare or not).
    pub fn start(base: impl AsRef<Path>) -> std::io::Result<GitDaemon> {
        let base = base.as_ref();
        // A free port: bind, read it, release it for the daemon.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("git")
            .args([
                "-c",
                "uploadpack.allowAnySHA1InWant=true",
                "daemon",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                "--export-all",
                "--reuseaddr",
                "--informative-errors",
                &format!("--base-path={}", base.display()),
            ])
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut daemon = GitDaemon {
            url: format!("git://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || daemon.child.try_wait()?.is_some() {
                return Err(std::io::Error::other("git daemon did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// `git://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a git repository at `dir` from `files` (path → content), commits it and tags the
/// commit with `tags`; returns the commit. For tests that serve repositories.
pub fn commit_repository(
    dir: &Path,
    files: &[(&str, &str)],
    tags: &[&str],
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let git = |args: &[&str]| -> std::io::Result<String> {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=gantry",
                "-c",
                "user.email=gantry@localhost",
            ])
            .args(args)
            .current_dir(dir)
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    if !dir.join(".git").exists() {
        git(&["init", "-q", "-b", "main"])?;
    }
    for (path, content) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)?;
    }
    git(&["add", "-A"])?;
    git(&["commit", "-q", "--allow-empty", "-m", "fixture"])?;
    for t in tags {
        git(&["tag", "-f", t])?;
    }
    git(&["rev-parse", "HEAD"])
}
