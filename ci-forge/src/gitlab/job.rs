//! One GitLab job run through the Gantry engine: the payload made into a one-job
//! `.gitlab-ci.yml` (image, services, script, after_script, timeout, artifacts, caches,
//! dependencies), its variables given as the run's (masked ones masked, file ones written to
//! files), the repository checked out at the commit with the job token, the dependencies'
//! artifacts downloaded; the trace streamed with `Content-Range` (a 416 resumes from what
//! GitLab has), cancellation from GitLab's `Job-Status`, artifacts and JUnit reports uploaded,
//! and the final state sent until GitLab takes it (202: again; 412: the trace again).

use std::path::{Path, PathBuf};

use ci_engine::vcs::mirror::Mirrors;
use ci_engine::{Engine, EngineError, RunEvent, RunOptions, Source, Status};
use serde_json::{json, Map, Value};

use super::client::Client;
use super::proto::*;
use crate::TaskOptions;

/// A trace patch is at most this large (gitlab-runner's limit).
const PATCH_LIMIT: usize = 1 << 20;

/// Variables of the payload the engine sets for itself: paths of this machine, not GitLab's.
const LOCAL_VARIABLES: &[&str] = &["CI_PROJECT_DIR", "CI_BUILDS_DIR", "CI_SERVER_TLS_CA_FILE"];

/// The trace and how much of it GitLab has.
struct Trace {
    data: Vec<u8>,
    sent: usize,
    cancelled_by_gitlab: bool,
}

impl Trace {
    fn line(&mut self, text: &str) {
        self.data.extend_from_slice(text.as_bytes());
        self.data.push(b'\n');
    }

    fn ends_job(status: Option<&str>) -> bool {
        matches!(status, Some("canceled" | "canceling" | "failed"))
    }

    /// Sends what GitLab does not have yet, a patch at a time.
    async fn flush(&mut self, client: &Client, job: &Job) -> Result<(), String> {
        let mut mismatches = 0;
        while self.sent < self.data.len() {
            let end = (self.sent + PATCH_LIMIT).min(self.data.len());
            let answer = client
                .patch_trace(job, self.sent as u64, &self.data[self.sent..end])
                .await
                .map_err(|e| e.to_string())?;
            if Self::ends_job(answer.job_status.as_deref()) {
                self.cancelled_by_gitlab = true;
            }
            match answer.status {
                202 => self.sent = end,
                416 if mismatches >= 3 => {
                    return Err("sending the trace: GitLab keeps refusing the range".into())
                }
                416 => {
                    // GitLab has another length: go on from there.
                    mismatches += 1;
                    let have = answer.have.unwrap_or(0) as usize;
                    tracing::info!(job = job.id, have, "trace range mismatch: resuming");
                    self.sent = have.min(self.data.len());
                }
                status => return Err(format!("sending the trace: HTTP {status}")),
            }
        }
        Ok(())
    }

    fn output(&self) -> Output {
        Output {
            checksum: format!("crc32:{:08x}", crc32fast::hash(&self.data)),
            bytesize: self.data.len() as u64,
        }
    }
}

fn step<'a>(job: &'a Job, name: &str) -> Option<&'a JobStep> {
    job.steps.iter().find(|s| s.name == name)
}

/// Whether an artifact's `when` holds for a job that `succeeded`.
fn when_holds(when: &str, succeeded: bool) -> bool {
    match when {
        "always" => true,
        "on_failure" => !succeeded,
        _ => succeeded,
    }
}

/// The job as a `.gitlab-ci.yml` (JSON text), with a stand-in job per dependency.
fn pipeline(job: &Job) -> Result<String, String> {
    let name = if job.job_info.name.is_empty() {
        format!("job-{}", job.id)
    } else {
        job.job_info.name.clone()
    };
    let stage = if job.job_info.stage.is_empty() {
        "test".to_owned()
    } else {
        job.job_info.stage.clone()
    };
    let script = step(job, "script").ok_or("the job has no script step")?;
    let mut body = Map::new();
    body.insert("stage".into(), json!(stage));
    body.insert("script".into(), json!(script.script));
    if script.allow_failure {
        body.insert("allow_failure".into(), json!(true));
    }
    if let Some(after) = step(job, "after_script").filter(|s| !s.script.is_empty()) {
        body.insert("after_script".into(), json!(after.script));
    }
    let timeout = [job.runner_info.timeout, script.timeout]
        .into_iter()
        .filter(|t| *t > 0)
        .min();
    if let Some(t) = timeout {
        body.insert("timeout".into(), json!(format!("{t} seconds")));
    }
    let image = |i: &Image| {
        let mut m = Map::new();
        m.insert("name".into(), json!(i.name));
        if !i.alias.is_empty() {
            m.insert("alias".into(), json!(i.alias));
        }
        if !i.entrypoint.is_empty() {
            m.insert("entrypoint".into(), json!(i.entrypoint));
        }
        if !i.command.is_empty() {
            m.insert("command".into(), json!(i.command));
        }
        Value::Object(m)
    };
    if !job.image.name.is_empty() {
        body.insert("image".into(), image(&job.image));
    }
    if !job.services.is_empty() {
        let services: Vec<Value> = job.services.iter().map(image).collect();
        body.insert("services".into(), json!(services));
    }
    // Every path GitLab wants back (reports too) is kept by the engine.
    let mut paths: Vec<String> = Vec::new();
    let mut artifacts = Map::new();
    let mut junit = Vec::new();
    for a in &job.artifacts {
        paths.extend(a.paths.iter().cloned());
        match a.artifact_type.as_str() {
            "" | "archive" => {
                if !a.exclude.is_empty() {
                    artifacts.insert("exclude".into(), json!(a.exclude));
                }
                if a.untracked {
                    artifacts.insert("untracked".into(), json!(true));
                }
            }
            "junit" => junit.extend(a.paths.iter().cloned()),
            _ => {}
        }
    }
    if !paths.is_empty() {
        artifacts.insert("paths".into(), json!(paths));
        artifacts.insert("when".into(), json!("always"));
        if !junit.is_empty() {
            artifacts.insert("reports".into(), json!({"junit": junit}));
        }
        body.insert("artifacts".into(), Value::Object(artifacts));
    }
    if !job.cache.is_empty() {
        let caches: Vec<Value> = job
            .cache
            .iter()
            .map(|c| {
                let mut m = Map::new();
                m.insert("key".into(), json!(c.key));
                m.insert("paths".into(), json!(c.paths));
                if !c.policy.is_empty() {
                    m.insert("policy".into(), json!(c.policy));
                }
                if !c.when.is_empty() {
                    m.insert("when".into(), json!(c.when));
                }
                if c.untracked {
                    m.insert("untracked".into(), json!(true));
                }
                if !c.fallback_keys.is_empty() {
                    m.insert("fallback_keys".into(), json!(c.fallback_keys));
                }
                Value::Object(m)
            })
            .collect();
        body.insert("cache".into(), json!(caches));
    }
    let mut root = Map::new();
    let mut stages = Vec::new();
    if !job.dependencies.is_empty() {
        stages.push("gantry-dependencies".to_owned());
        let names: Vec<&str> = job.dependencies.iter().map(|d| d.name.as_str()).collect();
        body.insert("dependencies".into(), json!(names));
        for d in &job.dependencies {
            root.insert(
                d.name.clone(),
                json!({"stage": "gantry-dependencies", "script": ["true"]}),
            );
        }
    }
    stages.push(stage);
    root.insert("stages".into(), json!(stages));
    root.insert(name, Value::Object(body));
    serde_json::to_string_pretty(&Value::Object(root)).map_err(|e| e.to_string())
}

/// The clone URL without its credentials, and those credentials as an HTTP header.
fn clone_url(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(userinfo);
    (
        format!("{scheme}://{host}/{path}"),
        Some(format!("Authorization: Basic {basic}")),
    )
}

/// Unpacks a zip archive into `dir` (paths that would leave it are refused).
fn unzip(data: &[u8], dir: &Path) -> Result<usize, String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| e.to_string())?;
    let mut files = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        let Some(name) = entry.enclosed_name() else {
            return Err(format!("{}: a path outside the archive", entry.name()));
        };
        let path = dir.join(name);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut out = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        std::io::copy(&mut entry, &mut out).map_err(|e| e.to_string())?;
        #[cfg(unix)]
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777));
        }
        files += 1;
    }
    Ok(files)
}

/// Every file under `dir`, relative, `/`-separated, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// A zip archive of `files` under `dir`.
fn zip_files(dir: &Path, files: &[String]) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for f in files {
        let path = dir.join(f);
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(&path).map_or(0o644, |m| m.permissions().mode() & 0o777)
        };
        #[cfg(not(unix))]
        let mode = 0o644;
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        zip.start_file(f.as_str(), options)
            .map_err(|e| e.to_string())?;
        let data = std::fs::read(&path).map_err(|e| format!("{f}: {e}"))?;
        zip.write_all(&data).map_err(|e| e.to_string())?;
    }
    zip.finish()
        .map(std::io::Cursor::into_inner)
        .map_err(|e| e.to_string())
}

/// Files matching one of GitLab's artifact paths (globs; a directory stands for its files).
fn matching(files: &[String], patterns: &[String]) -> Vec<String> {
    let mut set = globset::GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_start_matches("./").trim_end_matches('/');
        for pattern in [p.to_owned(), format!("{p}/**")] {
            if let Ok(g) = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
            {
                set.add(g);
            }
        }
    }
    let Ok(set) = set.build() else {
        return Vec::new();
    };
    files.iter().filter(|f| set.is_match(f)).cloned().collect()
}

/// How the job ended, as GitLab is told.
struct Ending {
    succeeded: bool,
    reason: Option<String>,
    exit_code: Option<i32>,
}

/// Runs `job` through `engine`, reporting to GitLab; whether it succeeded.
pub async fn run_job(
    client: &Client,
    engine: &Engine,
    mirrors: &Mirrors,
    job: Job,
    options: &TaskOptions,
) -> bool {
    let mut trace = Trace {
        data: Vec::new(),
        sent: 0,
        cancelled_by_gitlab: false,
    };
    trace.line(&format!(
        "Running with gantry {} (GitLab job {})",
        env!("CARGO_PKG_VERSION"),
        job.id
    ));
    let dir = options.work_dir.join("jobs").join(job.id.to_string());
    let ending = match execute(client, engine, mirrors, &job, &dir, &mut trace, options).await {
        Ok(ending) => ending,
        Err(message) => {
            trace.line(&format!("ERROR: {message}"));
            Ending {
                succeeded: false,
                reason: Some("runner_system_failure".into()),
                exit_code: None,
            }
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    finish(client, &job, &mut trace, &ending, options).await;
    ending.succeeded
}

async fn execute(
    client: &Client,
    engine: &Engine,
    mirrors: &Mirrors,
    job: &Job,
    dir: &Path,
    trace: &mut Trace,
    options: &TaskOptions,
) -> Result<Ending, String> {
    let text = pipeline(job)?;
    let name = if job.job_info.name.is_empty() {
        format!("job-{}", job.id)
    } else {
        job.job_info.name.clone()
    };
    // The repository at the commit.
    let root = dir.join("repo");
    let (url, header) = clone_url(&job.git_info.repo_url);
    trace.line(&format!("Fetching {url} at {}", job.git_info.sha));
    mirrors
        .checkout_with(&url, &job.git_info.sha, &root, header.as_deref())
        .await
        .map_err(|e| format!("fetching the repository: {e}"))?;
    let mut run = RunOptions::new();
    // Variables: GitLab's values, final; masked ones masked; file ones in files.
    let files = dir.join("variables");
    for v in &job.variables {
        if LOCAL_VARIABLES.contains(&v.key.as_str()) {
            continue;
        }
        let value = if v.file {
            std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
            let path = files.join(&v.key);
            std::fs::write(&path, &v.value).map_err(|e| format!("{}: {e}", path.display()))?;
            path.to_string_lossy().into_owned()
        } else {
            v.value.clone()
        };
        if v.masked && !v.value.is_empty() {
            run.secrets.insert(v.key.clone(), v.value.clone());
        }
        run.vars.insert(v.key.clone(), value);
    }
    if !job.token.is_empty() {
        run.secrets.insert("CI_JOB_TOKEN".into(), job.token.clone());
    }
    // The dependencies' artifacts, as if their jobs had run here.
    for d in &job.dependencies {
        run.job_result(d.name.clone(), Status::Success, Default::default());
        if d.artifacts_file.is_none() {
            continue;
        }
        let zip = client
            .download_artifacts(d)
            .await
            .map_err(|e| e.to_string())?;
        let to = dir.join("dependencies").join(d.id.to_string());
        std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
        let n = unzip(&zip, &to).map_err(|e| format!("the artifacts of '{}': {e}", d.name))?;
        trace.line(&format!(
            "Downloaded the artifacts of {} ({n} file(s))",
            d.name
        ));
        run.job_artifacts(d.name.clone(), to);
    }
    let source = Source::new(".gitlab-ci.yml", text, &root)
        .with_dialect(ci_engine::config::Dialect::GitLabCi);
    let mut event = source.local_event();
    event.sha = job.git_info.sha.clone();
    event.git_ref = if job.git_info.ref_type == "tag" {
        format!("refs/tags/{}", job.git_info.git_ref)
    } else {
        format!("refs/heads/{}", job.git_info.git_ref)
    };
    if !job.git_info.before_sha.is_empty() {
        event.before = Some(job.git_info.before_sha.clone());
    }
    let mut handle = match engine.start(source, event, run).await {
        Ok(h) => h,
        Err(EngineError::Invalid { diagnostics, .. }) => {
            let messages: Vec<String> = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.message.clone())
                .collect();
            return Err(format!("the job cannot run: {}", messages.join("; ")));
        }
        Err(e) => return Err(e.to_string()),
    };
    let run_id = handle.id().to_owned();
    let mut tick = tokio::time::interval(options.report_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut quiet_ticks = 0u32;
    let mut cancelled = false;
    loop {
        tokio::select! {
            event = handle.next_event() => {
                let Some(event) = event else { break };
                match event {
                    RunEvent::Log { job: j, line, .. } if j == name => trace.line(&line),
                    RunEvent::Annotation { job: j, level, message, .. } if j == name => {
                        let level = if level == "error" { "ERROR" } else { "WARNING" };
                        trace.line(&format!("{level}: {message}"));
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let before = trace.sent;
                if let Err(e) = trace.flush(client, job).await {
                    tracing::warn!(job = job.id, "{e}");
                }
                if trace.sent == before {
                    quiet_ticks += 1;
                }
                if quiet_ticks >= 5 {
                    // Nothing to send for a while: tell GitLab the job lives, and hear
                    // whether it was cancelled.
                    quiet_ticks = 0;
                    let touch = UpdateJob {
                        info: RunnerInfo::gantry(),
                        token: job.token.clone(),
                        state: "running".into(),
                        output: trace.output(),
                        ..UpdateJob::default()
                    };
                    if let Ok(answer) = client.update_job(job, &touch).await {
                        if Trace::ends_job(answer.job_status.as_deref()) {
                            trace.cancelled_by_gitlab = true;
                        }
                    }
                }
                if trace.cancelled_by_gitlab && !cancelled {
                    cancelled = true;
                    trace.line("ERROR: Job was canceled in GitLab");
                    handle.cancel();
                }
            }
        }
    }
    let summary = handle.wait().await;
    let own = summary.job(&name);
    let status = own.map_or(summary.status, |j| j.status);
    let succeeded = status == Status::Success && !cancelled;
    let mut ending = Ending {
        succeeded,
        reason: if cancelled {
            Some("job_canceled".into())
        } else {
            own.and_then(|j| j.reason.clone())
                .map(|r| {
                    if r == "stuck_or_timeout_failure" {
                        "job_execution_timeout".into()
                    } else {
                        r
                    }
                })
                .or_else(|| (!succeeded).then(|| "script_failure".into()))
        },
        exit_code: own.and_then(|j| j.exit_code),
    };
    if !cancelled {
        if let Err(e) = upload(client, engine, job, &run_id, &name, dir, succeeded, trace).await {
            trace.line(&format!("ERROR: {e}"));
            ending.succeeded = false;
            ending.reason = Some("runner_system_failure".into());
        }
    }
    Ok(ending)
}

/// Uploads the artifacts and reports whose `when` holds.
#[allow(clippy::too_many_arguments)]
async fn upload(
    client: &Client,
    engine: &Engine,
    job: &Job,
    run_id: &str,
    name: &str,
    dir: &Path,
    succeeded: bool,
    trace: &mut Trace,
) -> Result<(), String> {
    let wanted: Vec<&Artifact> = job
        .artifacts
        .iter()
        .filter(|a| when_holds(&a.when, succeeded))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let out: PathBuf = dir.join("artifacts");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    ci_engine::job_artifacts(engine.blobs(), run_id, name, name, &out)
        .await
        .map_err(|e| format!("the job's artifacts: {e}"))?;
    let all = files_under(&out);
    for a in wanted {
        let files = matching(&all, &a.paths);
        let files: Vec<String> = if a.exclude.is_empty() {
            files
        } else {
            let excluded = matching(&files, &a.exclude);
            files
                .into_iter()
                .filter(|f| !excluded.contains(f))
                .collect()
        };
        if files.is_empty() {
            trace.line(&format!(
                "WARNING: {}: no matching files",
                a.paths.join(", ")
            ));
            continue;
        }
        let (data, file_name, format) = match a.artifact_type.as_str() {
            "" | "archive" => (zip_files(&out, &files)?, "artifacts.zip", "zip"),
            _ => {
                // A report: the files, gzip streams one after another.
                use std::io::Write as _;
                let mut gz = Vec::new();
                for f in &files {
                    let data = std::fs::read(out.join(f)).map_err(|e| e.to_string())?;
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    enc.write_all(&data).map_err(|e| e.to_string())?;
                    gz.extend(enc.finish().map_err(|e| e.to_string())?);
                }
                (gz, "report.gz", "gzip")
            }
        };
        let kind = if a.artifact_type.is_empty() {
            "archive"
        } else {
            a.artifact_type.as_str()
        };
        client
            .upload_artifacts(job, file_name, data, kind, format, &a.expire_in)
            .await
            .map_err(|e| format!("uploading {kind} artifacts: {e}"))?;
        trace.line(&format!(
            "Uploaded {kind} artifacts ({} file(s))",
            files.len()
        ));
    }
    Ok(())
}

/// The rest of the trace, then the final state until GitLab takes it.
async fn finish(
    client: &Client,
    job: &Job,
    trace: &mut Trace,
    ending: &Ending,
    options: &TaskOptions,
) {
    trace.line(if ending.succeeded {
        "Job succeeded"
    } else {
        "ERROR: Job failed"
    });
    let allowed = |r: &str| {
        job.features.failure_reasons.is_empty()
            || job.features.failure_reasons.iter().any(|a| a == r)
    };
    let reason = ending
        .reason
        .clone()
        .filter(|_| !ending.succeeded)
        .map(|r| {
            if allowed(&r) {
                r
            } else {
                "script_failure".into()
            }
        });
    for attempt in 1..=options.close_attempts.max(1) * 3 {
        if let Err(e) = trace.flush(client, job).await {
            tracing::warn!(job = job.id, attempt, "{e}");
            tokio::time::sleep(options.retry_delay).await;
            continue;
        }
        let update = UpdateJob {
            info: RunnerInfo::gantry(),
            token: job.token.clone(),
            state: if ending.succeeded {
                "success"
            } else {
                "failed"
            }
            .into(),
            failure_reason: reason.clone(),
            exit_code: ending.exit_code,
            output: trace.output(),
        };
        match client.update_job(job, &update).await {
            Ok(a) if a.status == 200 => return,
            Ok(a) if a.status == 412 => {
                // GitLab's trace differs from ours: send all of it again.
                trace.sent = 0;
            }
            Ok(a) if matches!(a.status, 403 | 404) => {
                tracing::warn!(
                    job = job.id,
                    status = a.status,
                    "GitLab refused the final state"
                );
                return;
            }
            Ok(a) => tracing::info!(
                job = job.id,
                status = a.status,
                attempt,
                "final state not taken yet"
            ),
            Err(e) => tracing::warn!(job = job.id, attempt, "{e}"),
        }
        tokio::time::sleep(options.retry_delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_clone_url_for_a_header() {
        let (url, header) = clone_url("https://gitlab-ci-token:abc@gitlab.example.com/g/p.git");
        assert_eq!(url, "https://gitlab.example.com/g/p.git");
        assert!(header
            .expect("a header")
            .starts_with("Authorization: Basic "));
        assert_eq!(
            clone_url("file:///srv/p.git"),
            ("file:///srv/p.git".into(), None)
        );
    }

    #[test]
    fn artifact_paths_match_files_and_directories() {
        let files: Vec<String> = ["dist/a.js", "dist/sub/b.js", "report.xml", "x.txt"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            matching(&files, &["dist".into(), "*.xml".into()]),
            ["dist/a.js", "dist/sub/b.js", "report.xml"]
        );
    }
}
