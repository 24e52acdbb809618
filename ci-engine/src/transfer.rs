//! The job runtime's file steps: the project checked out into the workspace, caches restored
//! and saved, artifacts downloaded and uploaded (with dotenv and JUnit reports), and values
//! found in the log. Each runs the same for every dialect, from the step's data.

use std::path::Path;
use std::sync::Arc;

use ci_config::expr::Value;
use ci_config::model::{ArtifactUpload, Cache, LogOutput, When};
use ci_store::artifacts::{self, IfNoFilesFound};
use ci_store::caches::Caches;
use indexmap::IndexMap;

use crate::env::expand;
use crate::events::Status;
use crate::runner::{JobRunner, StepResult};

/// The job's workspace as a directory of this machine: the workspace itself when the
/// executor shares it (the fast path), else a staging directory whose files go to and come
/// from the job through its file operations.
pub(crate) struct LocalDir {
    pub path: std::path::PathBuf,
    staged: bool,
}

impl JobRunner {
    /// The workspace as a local directory; a staging one is filled with the workspace's
    /// files when `fill`.
    pub(crate) async fn local_dir(&mut self, fill: bool) -> Result<LocalDir, String> {
        if let Some(dir) = self.environment.local_workspace() {
            return Ok(LocalDir {
                path: dir.to_path_buf(),
                staged: false,
            });
        }
        self.stagings += 1;
        let path = self.temp.join(format!("staging-{}", self.stagings));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if fill {
            let archive = self
                .environment
                .read_tar(Path::new("."), &[".".into()])
                .await
                .map_err(|e| e.to_string())?;
            let into = path.clone();
            tokio::task::spawn_blocking(move || tar::Archive::new(archive.as_ref()).unpack(&into))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("unpacking the workspace: {e}"))?;
        }
        Ok(LocalDir { path, staged: true })
    }

    /// Ends the use of a local directory: a staging directory's files are written into the
    /// job when `write`, and it is removed.
    pub(crate) async fn put_back(&mut self, dir: LocalDir, write: bool) -> Result<(), String> {
        if !dir.staged {
            return Ok(());
        }
        let result = if write {
            let from = dir.path.clone();
            let archive = tokio::task::spawn_blocking(move || {
                ci_exec::files::pack(&from, &[std::path::PathBuf::from(".")])
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            match archive {
                Ok(archive) => self
                    .environment
                    .write_tar(Path::new("."), archive)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }
        } else {
            Ok(())
        };
        let _ = std::fs::remove_dir_all(&dir.path);
        result
    }
}

fn done(outcome: Status) -> StepResult {
    StepResult {
        outcome,
        outputs: IndexMap::new(),
    }
}

/// The repository's committed files at the event's commit (with its `.git`), in the
/// workspace: cloned once per run, then copied into each job's workspace (git's object store
/// linked, not copied) — a job may change its copy freely.
pub(crate) async fn checkout(runner: &mut JobRunner) -> Result<StepResult, String> {
    let ctx = Arc::clone(&runner.ctx);
    let local = runner.local_dir(false).await?;
    let dest = local.path.clone();
    // Over a reused workspace the copy is the clean-up: what the checkout lacks goes.
    let prune = runner.leftovers && !local.staged;
    if prune {
        runner.leftovers = false;
    }
    let copied = tokio::task::spawn_blocking(move || {
        let snapshot = ctx
            .snapshot
            .get_or_init(|| {
                let Ok(repo) = ci_vcs::Repository::open(&ctx.root) else {
                    // Not a git repository: nothing to fetch; jobs see an empty directory.
                    return Ok(None);
                };
                let dir = ctx.run_dir.join("_source");
                repo.clone_at(&ctx.event.sha, &dir, 0)
                    .map_err(|e| e.to_string())?;
                // Every job copies it: each file and directory of `.git` left out is one
                // file system object fewer to make and remove per job.
                ci_vcs::Repository::open(&dir)
                    .and_then(|clone| clone.compact_for_copies())
                    .map_err(|e| e.to_string())?;
                Ok(Some(Arc::new(crate::snapshot::Snapshot::read(&dir)?)))
            })
            .clone();
        match snapshot {
            Ok(Some(snapshot)) => snapshot.sync_into(&dest, prune).or_else(|e| {
                if !prune {
                    return Err(e);
                }
                // Something the last job left could not be rewritten: start afresh.
                crate::dirs::empty_dir(&dest);
                snapshot.sync_into(&dest, false)
            }),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let copied = match copied {
        Ok(()) => runner.put_back(local, true).await,
        Err(e) => runner.put_back(local, false).await.and(Err(e)),
    };
    match copied {
        Ok(()) => Ok(done(Status::Success)),
        Err(e) => {
            runner.system_failure = true;
            Err(format!("fetching the project: {e}"))
        }
    }
}

/// The scope of the caches of cache steps: one per repository, shared by every branch (as
/// GitLab keeps them; `actions/cache` keeps its own branch scopes).
const CACHE_SCOPE: &str = "repository";

fn cache_key(dir: &Path, c: &Cache, env: &IndexMap<String, String>) -> String {
    if !c.key_files.is_empty() {
        let files: Vec<&str> = c.key_files.iter().map(String::as_str).collect();
        let prefix = c
            .key_prefix
            .as_deref()
            .map(|p| expand(p, env, &IndexMap::new()));
        return ci_store::caches::files_key(prefix.as_deref(), dir, &files);
    }
    expand(&c.key, env, &IndexMap::new())
}

/// The workspace as a local directory for caches; a problem is a warning (caches never fail
/// a job).
async fn cache_dir(runner: &mut JobRunner, fill: bool, index: usize) -> Option<LocalDir> {
    match runner.local_dir(fill).await {
        Ok(l) => Some(l),
        Err(e) => {
            runner
                .logs
                .annotate(index, "warning", &format!("cache: {e}"))
                .await;
            None
        }
    }
}

/// Restores each cache (its key, then its fallback keys); a miss or a broken cache is a
/// log line, never a failure.
pub(crate) async fn restore_caches(
    runner: &mut JobRunner,
    caches: &[Cache],
    env: &IndexMap<String, String>,
    index: usize,
) -> StepResult {
    let store = Caches::new(runner.ctx.inner.blobs.clone());
    // Keys made from files read them from the workspace.
    let needs_files = caches.iter().any(|c| !c.key_files.is_empty());
    let Some(local) = cache_dir(runner, needs_files, index).await else {
        return done(Status::Success);
    };
    for c in caches {
        if expand(&c.policy, env, &IndexMap::new()) == "push" {
            continue;
        }
        let key = cache_key(&local.path, c, env);
        let mut keys = vec![key.clone()];
        keys.extend(
            c.fallback_keys
                .iter()
                .map(|k| expand(k, env, &IndexMap::new())),
        );
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = if c.prefix_match {
            store.lookup(CACHE_SCOPE, CACHE_SCOPE, &key, &refs).await
        } else {
            store.lookup_exact(CACHE_SCOPE, CACHE_SCOPE, &refs).await
        };
        let line = match found {
            Ok(Some(hit)) => match store.restore(&hit, &local.path).await {
                Ok(n) => format!("Successfully extracted cache {} ({n} file(s))", hit.key),
                Err(e) => {
                    runner
                        .logs
                        .annotate(index, "warning", &format!("cache {}: {e}", hit.key))
                        .await;
                    continue;
                }
            },
            Ok(None) => format!("No cache found for key {key}"),
            Err(e) => {
                runner
                    .logs
                    .annotate(index, "warning", &format!("cache: {e}"))
                    .await;
                continue;
            }
        };
        runner.logs.line(index, &line).await;
    }
    if let Err(e) = runner.put_back(local, true).await {
        runner
            .logs
            .annotate(index, "warning", &format!("cache: {e}"))
            .await;
    }
    done(Status::Success)
}

/// Saves each cache whose `when` matches the job's result so far; saving problems are
/// warnings.
pub(crate) async fn save_caches(
    runner: &mut JobRunner,
    caches: &[Cache],
    env: &IndexMap<String, String>,
    succeeded: bool,
    index: usize,
) -> StepResult {
    let store = Caches::new(runner.ctx.inner.blobs.clone());
    let Some(local) = cache_dir(runner, true, index).await else {
        return done(Status::Success);
    };
    for c in caches {
        let policy = expand(&c.policy, env, &IndexMap::new());
        let due = match c.when {
            When::Always => true,
            When::OnFailure => !succeeded,
            _ => succeeded,
        };
        if policy == "pull" || !due || c.paths.is_empty() {
            continue;
        }
        let key = cache_key(&local.path, c, env);
        let paths: Vec<String> = c
            .paths
            .iter()
            .map(|p| expand(p, env, &IndexMap::new()))
            .collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        match store.save(CACHE_SCOPE, &key, &local.path, &refs).await {
            Ok(ci_store::caches::Saved::Nothing) => {
                runner
                    .logs
                    .annotate(index, "warning", &format!("cache {key}: no matching files"))
                    .await
            }
            Ok(ci_store::caches::Saved::Stored(_)) => {
                runner
                    .logs
                    .line(index, &format!("Created cache {key}"))
                    .await
            }
            Ok(_) => {
                runner
                    .logs
                    .line(index, &format!("Cache {key} exists already; not uploaded"))
                    .await
            }
            Err(e) => {
                runner
                    .logs
                    .annotate(index, "warning", &format!("cache {key}: {e}"))
                    .await
            }
        }
    }
    let _ = runner.put_back(local, false).await;
    done(Status::Success)
}

/// The start of the artifact names of a job's instances.
fn artifact_prefix(job: &str) -> String {
    let safe: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}--")
}

/// The artifact name of a job instance.
pub(crate) fn artifact_name(job: &str, instance: &str) -> String {
    format!(
        "{}{}",
        artifact_prefix(job),
        crate::runner::storage_key(instance)
    )
}

/// Downloads the artifacts of every instance of the jobs named (`None`: every job this one
/// needs) into the workspace.
pub(crate) async fn download_artifacts(
    runner: &mut JobRunner,
    from: Option<&[String]>,
    index: usize,
) -> Result<StepResult, String> {
    let Value::Object(needs) = runner.needs.clone() else {
        return Ok(done(Status::Success));
    };
    let wanted: Vec<String> = needs
        .keys()
        .filter(|n| from.is_none_or(|f| f.contains(n)))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(done(Status::Success));
    }
    let store = runner.ctx.inner.blobs.clone();
    let all = artifacts::list(&store, &runner.ctx.run_id)
        .await
        .map_err(|e| format!("artifacts: {e}"))?;
    let local = runner.local_dir(false).await?;
    let result = download_into(runner, &store, &all, &wanted, &local.path, index).await;
    runner.put_back(local, result.is_ok()).await?;
    result
}

async fn download_into(
    runner: &mut JobRunner,
    store: &ci_store::BlobStore,
    all: &[String],
    wanted: &[String],
    dir: &Path,
    index: usize,
) -> Result<StepResult, String> {
    // Only the artifacts of the instances this one waited for (a `parallel:matrix` need may
    // select some instances of a job).
    let names: Vec<String> = runner
        .needed
        .iter()
        .map(|(job, instance)| artifact_name(job, instance))
        .collect();
    for job in wanted {
        let prefix = artifact_prefix(job);
        for name in all
            .iter()
            .filter(|n| n.starts_with(&prefix) && names.contains(n))
        {
            let m = artifacts::download(store, &runner.ctx.run_id, name, dir)
                .await
                .map_err(|e| {
                    runner.system_failure = true;
                    format!("artifacts of '{job}': {e}")
                })?;
            runner
                .logs
                .line(
                    index,
                    &format!(
                        "Downloaded artifacts of {job} ({} file(s))",
                        m.entries.len()
                    ),
                )
                .await;
        }
    }
    Ok(done(Status::Success))
}

/// Where a run keeps its workspace layers: beside its artifacts, never listed with them.
fn layers(run_id: &str) -> String {
    format!("{run_id}.workspace")
}

/// A relative directory of the workspace that stays inside it.
fn inside(dir: &str) -> Result<&Path, String> {
    let path = Path::new(dir.trim_start_matches("./"));
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("{dir}: a directory outside the workspace"));
    }
    Ok(path)
}

/// Keeps `paths` under `root` as this job's workspace layer for later jobs.
pub(crate) async fn persist_workspace(
    runner: &mut JobRunner,
    root: &str,
    paths: &[String],
    index: usize,
) -> Result<StepResult, String> {
    let root = inside(root)?.to_path_buf();
    let local = runner.local_dir(true).await?;
    let name = artifact_name(&runner.job, &runner.instance);
    let ctx = Arc::clone(&runner.ctx);
    let kept = artifacts::upload(
        &ctx.inner.blobs,
        &layers(&ctx.run_id),
        &name,
        &local.path.join(&root),
        &paths.join("\n"),
        IfNoFilesFound::Error,
        None,
    )
    .await
    .map_err(|e| format!("persisting to the workspace: {e}"));
    runner.put_back(local, false).await?;
    let files = kept?.manifest.map_or(0, |m| m.entries.len());
    runner
        .logs
        .line(
            index,
            &format!("Persisted {files} file(s) to the workspace"),
        )
        .await;
    Ok(done(Status::Success))
}

/// Lays the workspace layers of the jobs this one needs into `at`, in their order (a later
/// layer's file wins).
pub(crate) async fn attach_workspace(
    runner: &mut JobRunner,
    at: &str,
    index: usize,
) -> Result<StepResult, String> {
    let at = inside(at)?.to_path_buf();
    let Value::Object(needs) = runner.needs.clone() else {
        return Ok(done(Status::Success));
    };
    let store = runner.ctx.inner.blobs.clone();
    let run = layers(&runner.ctx.run_id);
    let all = artifacts::list(&store, &run)
        .await
        .map_err(|e| format!("attaching the workspace: {e}"))?;
    let local = runner.local_dir(false).await?;
    let names: Vec<String> = runner
        .needed
        .iter()
        .map(|(job, instance)| artifact_name(job, instance))
        .collect();
    let mut files = 0;
    let mut result = Ok(());
    for job in needs.keys() {
        let prefix = artifact_prefix(job);
        for name in all
            .iter()
            .filter(|n| n.starts_with(&prefix) && names.contains(n))
        {
            match artifacts::download(&store, &run, name, &local.path.join(&at)).await {
                Ok(m) => files += m.entries.len(),
                Err(e) => result = Err(format!("attaching the workspace of '{job}': {e}")),
            }
        }
    }
    runner.put_back(local, result.is_ok()).await?;
    result?;
    runner
        .logs
        .line(
            index,
            &format!("Attached {files} file(s) from the workspace"),
        )
        .await;
    Ok(done(Status::Success))
}

/// JUnit reports (globs) read into the job's test results: kept in the store, summed up in
/// the log with the failed tests named. A missing or malformed report is a warning.
async fn test_results(
    runner: &mut JobRunner,
    patterns: &[String],
    env: &IndexMap<String, String>,
    dir: &Path,
    index: usize,
) {
    let mut results = ci_store::junit::TestResults::default();
    let mut read = 0;
    for pattern in patterns {
        let pattern = expand(pattern, env, &IndexMap::new());
        let files = matching_files(dir, pattern.trim_start_matches("./"));
        if files.is_empty() {
            // As GitLab's runner says it: in the log, not as an annotation.
            runner
                .logs
                .line(index, &format!("JUnit report {pattern}: no matching files"))
                .await;
        }
        for file in files {
            let shown = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            let parsed = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|xml| ci_store::junit::parse(&xml));
            match parsed {
                Ok(r) => {
                    read += 1;
                    results.extend(r);
                }
                Err(e) => {
                    runner
                        .logs
                        .annotate(index, "warning", &format!("JUnit report {shown}: {e}"))
                        .await
                }
            }
        }
    }
    if read == 0 {
        return;
    }
    let key = crate::runner::storage_key(&runner.id);
    if let Err(e) =
        ci_store::junit::save(&runner.ctx.inner.blobs, &runner.ctx.run_id, &key, &results).await
    {
        runner
            .logs
            .annotate(index, "warning", &format!("test results: {e}"))
            .await;
    }
    if runner.table == crate::env::Table::CircleCi {
        if let Err(e) = crate::timings::save(runner, &results).await {
            runner
                .logs
                .annotate(index, "warning", &format!("test timings: {e}"))
                .await;
        }
    }
    runner
        .logs
        .line(index, &format!("Test results: {}", results.summary()))
        .await;
    for case in results
        .cases
        .iter()
        .filter(|c| {
            matches!(
                c.outcome,
                ci_store::junit::Outcome::Failed | ci_store::junit::Outcome::Error
            )
        })
        .take(20)
    {
        let message = case.message.as_deref().unwrap_or("");
        runner
            .logs
            .line(
                index,
                &format!("  failed: {} {} {message}", case.class, case.name),
            )
            .await;
    }
}

/// Files under `dir` whose relative paths match a glob (`**` across directories).
fn matching_files(dir: &Path, pattern: &str) -> Vec<std::path::PathBuf> {
    let Ok(glob) = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(_) => {
                    if path.strip_prefix(dir).is_ok_and(|r| glob.is_match(r)) {
                        out.push(path);
                    }
                }
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// A path as the project directory's relative path: absolute paths inside the project
/// (`$CI_PROJECT_DIR/dist/`) are fine, as on GitLab; outside it they are refused.
fn in_project(workspace: &Path, pattern: &str) -> Result<String, String> {
    if !pattern.starts_with('/') {
        return Ok(pattern.to_owned());
    }
    match Path::new(pattern).strip_prefix(workspace) {
        Ok(rel) if rel.as_os_str().is_empty() => Ok(".".into()),
        Ok(rel) => Ok(format!(
            "{}{}",
            rel.to_string_lossy(),
            if pattern.ends_with('/') { "/" } else { "" }
        )),
        Err(_) => Err(format!(
            "artifacts: {pattern} is outside the project directory ({})",
            workspace.display()
        )),
    }
}

/// Every file git does not track (and does not ignore) in the workspace, as GitLab adds them
/// for `untracked: true`.
fn untracked_files(workspace: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "--others", "--exclude-standard", "-z"])
        .current_dir(workspace)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

/// Uploads the job's artifacts; the variables of its dotenv reports are the step's outputs
/// (and become the job's).
pub(crate) async fn upload_artifacts(
    runner: &mut JobRunner,
    a: &ArtifactUpload,
    env: &IndexMap<String, String>,
    index: usize,
) -> Result<StepResult, String> {
    let local = runner.local_dir(true).await?;
    let result = upload_from(runner, a, env, &local.path, index).await;
    runner.put_back(local, false).await?;
    result
}

async fn upload_from(
    runner: &mut JobRunner,
    a: &ArtifactUpload,
    env: &IndexMap<String, String>,
    dir: &Path,
    index: usize,
) -> Result<StepResult, String> {
    let mut patterns: Vec<String> = Vec::new();
    for p in &a.paths {
        patterns.push(in_project(
            &runner.workspace,
            &expand(p, env, &IndexMap::new()),
        )?);
    }
    // Reports are not artifacts: a dotenv report hands on its variables, not its file.
    if a.untracked {
        match untracked_files(dir) {
            Some(files) => patterns.extend(files),
            None => {
                runner
                    .logs
                    .annotate(
                        index,
                        "warning",
                        "artifacts:untracked: the workspace is not a git checkout",
                    )
                    .await
            }
        }
    }
    let mut dotenv = IndexMap::new();
    for file in &a.dotenv {
        let path = dir.join(file.trim_start_matches("./"));
        // GitLab warns about a missing or malformed report and goes on.
        let vars = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| ci_exec::envfile::parse_env_file(&text).map_err(|e| e.to_string()));
        match vars {
            Ok(vars) => dotenv.extend(vars),
            Err(e) => {
                runner
                    .logs
                    .annotate(index, "warning", &format!("dotenv report {file}: {e}"))
                    .await
            }
        }
    }
    if !a.junit.is_empty() {
        test_results(runner, &a.junit, env, dir, index).await;
    }
    if patterns.is_empty() {
        return Ok(StepResult {
            outcome: Status::Success,
            outputs: dotenv,
        });
    }
    let mut lines = patterns.join("\n");
    for e in &a.exclude {
        lines.push_str(&format!("\n!{e}"));
    }
    let expires = a
        .expire_in
        .as_deref()
        .and_then(ci_config::gitlab::duration_secs)
        .map(|s| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_add(s)
        });
    let name = artifact_name(&runner.job, &runner.instance);
    let ctx = Arc::clone(&runner.ctx);
    let up = artifacts::upload(
        &ctx.inner.blobs,
        &ctx.run_id,
        &name,
        dir,
        &lines,
        IfNoFilesFound::Warn,
        expires,
    )
    .await
    .map_err(|e| format!("artifacts: {e}"))?;
    report_upload(runner, index, &name, &up, "Uploading artifacts: {} file(s)").await?;
    Ok(StepResult {
        outcome: Status::Success,
        outputs: dotenv,
    })
}

/// Logs an upload's warning and what it stored (`shown`, `{}` standing for the number of
/// files) and records the artifact with the run; whether anything was stored.
pub(crate) async fn report_upload(
    runner: &mut JobRunner,
    index: usize,
    name: &str,
    up: &artifacts::Upload,
    shown: &str,
) -> Result<bool, String> {
    if let Some(w) = &up.warning {
        runner.logs.annotate(index, "warning", w).await;
    }
    let Some(m) = &up.manifest else {
        return Ok(false);
    };
    runner
        .logs
        .line(index, &shown.replace("{}", &m.entries.len().to_string()))
        .await;
    let ctx = Arc::clone(&runner.ctx);
    ctx.inner
        .runs
        .record_artifact(
            &ctx.run_id,
            name,
            &format!("artifacts/{}/{name}/manifest.json", ctx.run_id),
        )
        .await
        .map_err(|e| format!("recording artifact '{name}': {e}"))?;
    Ok(true)
}

/// The values the job's log outputs find in the (masked) log, line by line: the last
/// match's first group (or whole match), its leading number.
pub(crate) fn log_outputs(outputs: &[LogOutput], log: &str) -> Vec<(String, String, String)> {
    outputs
        .iter()
        .filter_map(|o| {
            let found = last_match(&o.pattern, log)?;
            Some((o.name.clone(), o.shown.replace("{}", &found), found))
        })
        .collect()
}

fn last_match(pattern: &str, log: &str) -> Option<String> {
    let (pattern, flags) = ci_config::gitlab::split_regex(pattern)?;
    let re = ci_config::gitlab::regex(&pattern, &flags).ok()?;
    // Line by line, as GitLab reads a job's log: `$` ends a line.
    let m = log.lines().rev().find_map(|line| re.captures(line))?;
    let text = m.get(1).or_else(|| m.get(0))?.as_str();
    let number: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!number.is_empty()).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_count_inside_the_project_only() {
        let ws = Path::new("/builds/p");
        assert_eq!(in_project(ws, "dist/").as_deref(), Ok("dist/"));
        assert_eq!(in_project(ws, "/builds/p/dist/").as_deref(), Ok("dist/"));
        assert_eq!(in_project(ws, "/builds/p").as_deref(), Ok("."));
        assert!(in_project(ws, "/etc/passwd").is_err());
        assert!(in_project(ws, "/builds/pother/x").is_err());
    }

    #[test]
    fn log_outputs_take_the_last_match() {
        let log = "Coverage: 10%\nlines......: 85.5% (3 of 4)\n";
        assert_eq!(
            last_match("/lines\\.+: (\\d+\\.\\d+)%/", log).as_deref(),
            Some("85.5")
        );
        assert_eq!(last_match("/Coverage: \\d+%/", log).as_deref(), Some("10"));
        assert_eq!(last_match("/nothing/", log), None);
    }
}
