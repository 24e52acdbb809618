//! Steps that `uses:` something: built-in actions (checkout, artifacts, cache), local and
//! mapped actions (composite, node, docker), `docker://` images, and reusable workflows.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ci_config::github::{Action, ActionRuns};
use ci_config::model::Step;
use ci_exec::{ContainerSpec, JobSpec, Shell, StepSpec};
use ci_store::artifacts::{self, IfNoFilesFound};
use ci_store::caches::Caches;
use indexmap::IndexMap;

use crate::context::{strings, Scope};
use crate::events::Status;
use crate::runner::{Executed, Frame, JobRunner, Post, StepResult};

pub(crate) use ci_exec::split_words;

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ok(outputs: IndexMap<String, String>) -> StepResult {
    StepResult {
        outcome: Status::Success,
        outputs,
    }
}

/// The name of an action without its ref (`actions/checkout`).
fn action_name(uses: &str) -> &str {
    uses.split_once('@').map_or(uses, |(n, _)| n)
}

/// Runs a `uses:` step.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn uses(
    runner: &mut JobRunner,
    frame: &mut Frame,
    step: &Step,
    index: usize,
    uses: &str,
    inputs: IndexMap<String, String>,
    env: IndexMap<String, String>,
    timeout: Option<Duration>,
) -> Result<StepResult, String> {
    if let Some(image) = uses.strip_prefix("docker://") {
        return docker_step(runner, index, step, image, &inputs, env, timeout).await;
    }
    if uses.starts_with("./") || uses.starts_with("../") {
        let rel = uses.trim_start_matches("./");
        let dir = [runner.workspace.join(rel), runner.ctx.root.join(rel)]
            .into_iter()
            .find(|d| d.join("action.yml").is_file() || d.join("action.yaml").is_file())
            .ok_or_else(|| {
                format!("local action '{uses}': no action.yml in the workspace or the repository")
            })?;
        return run_action(runner, frame, step, index, uses, &dir, inputs, env, timeout).await;
    }
    if crate::inner::mapped_action(&runner.ctx.inner, uses).is_some() {
        let dir = crate::fetch::remote_dir(&runner.ctx.inner, uses).await?;
        return run_action(runner, frame, step, index, uses, &dir, inputs, env, timeout).await;
    }
    match action_name(uses) {
        "actions/checkout" => checkout(runner, index, &inputs).await,
        "actions/upload-artifact" => upload_artifact(runner, index, &inputs).await,
        "actions/download-artifact" => download_artifact(runner, index, &inputs).await,
        "actions/cache" => cache_restore(runner, index, &inputs, true).await,
        "actions/cache/restore" => cache_restore(runner, index, &inputs, false).await,
        "actions/cache/save" => {
            let key = inputs.get("key").cloned().unwrap_or_default();
            let paths = lines(inputs.get("path").map_or("", String::as_str));
            cache_save(runner, index, &key, &paths).await?;
            Ok(ok(IndexMap::new()))
        }
        _ => {
            let dir = crate::fetch::remote_dir(&runner.ctx.inner, uses)
                .await
                .map_err(|e| format!("action {e}"))?;
            run_action(runner, frame, step, index, uses, &dir, inputs, env, timeout).await
        }
    }
}

/// Reads `action.yml` of a directory.
fn read_action(dir: &Path, uses: &str) -> Result<Action, String> {
    let file = ["action.yml", "action.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("action '{uses}': no action.yml in {}", dir.display()))?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("action '{uses}': {}: {e}", file.display()))?;
    let shown = file.display().to_string();
    let parsed = ci_config::github::parse_action(&shown, &text);
    if parsed.has_errors() {
        let first = parsed
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| d.render(&text, false))
            .unwrap_or_default();
        return Err(format!("action '{uses}' has errors:\n{first}"));
    }
    parsed
        .value
        .ok_or_else(|| format!("action '{uses}': {shown} is empty"))
}

/// Inputs of an action: given values, then defaults (which may be expressions).
fn action_inputs(
    runner: &JobRunner,
    frame: &Frame,
    action: &Action,
    given: &IndexMap<String, String>,
    uses: &str,
) -> Result<IndexMap<String, String>, String> {
    let env = runner.frame_env(frame);
    let contexts = runner.contexts(frame, &env);
    let scope = Scope::new(&contexts);
    let mut out = IndexMap::new();
    for (name, def) in &action.inputs {
        let value = match given.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some((_, v)) => v.clone(),
            None => match &def.default {
                Some(d) => scope.node_text(d)?,
                None if def.required => {
                    return Err(format!("action '{uses}': input '{name}' is required"))
                }
                None => String::new(),
            },
        };
        out.insert(name.clone(), value);
    }
    for (k, v) in given {
        if !out.keys().any(|n| n.eq_ignore_ascii_case(k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

fn input_env(inputs: &IndexMap<String, String>) -> IndexMap<String, String> {
    inputs
        .iter()
        .map(|(k, v)| {
            (
                format!("INPUT_{}", k.replace(' ', "_").to_uppercase()),
                v.clone(),
            )
        })
        .collect()
}

/// Runs an action from a directory (composite, node or docker).
#[allow(clippy::too_many_arguments)]
async fn run_action(
    runner: &mut JobRunner,
    frame: &mut Frame,
    step: &Step,
    index: usize,
    uses: &str,
    dir: &Path,
    given: IndexMap<String, String>,
    env: IndexMap<String, String>,
    timeout: Option<Duration>,
) -> Result<StepResult, String> {
    let action = read_action(dir, uses)?;
    let inputs = action_inputs(runner, frame, &action, &given, uses)?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match &action.runs {
        ActionRuns::Composite { steps } => {
            if frame.depth >= 10 {
                return Err(format!(
                    "action '{uses}': composite actions nest too deeply"
                ));
            }
            let mut sub = Frame {
                inputs: Some(strings(&inputs)),
                action_path: Some(dir.clone()),
                env: env.clone(),
                depth: frame.depth + 1,
                ..Frame::default()
            };
            sub.env.insert(
                "GITHUB_ACTION_PATH".into(),
                dir.to_string_lossy().into_owned(),
            );
            for s in steps {
                runner.step(s, &mut sub).await;
            }
            let env = runner.frame_env(&sub);
            let contexts = runner.contexts(&sub, &env);
            let scope = Scope::new(&contexts);
            let mut outputs = IndexMap::new();
            for (name, value) in &action.outputs {
                if let Some(t) = value {
                    outputs.insert(name.clone(), scope.render(t)?);
                }
            }
            Ok(StepResult {
                outcome: if sub.failed {
                    Status::Failure
                } else {
                    Status::Success
                },
                outputs,
            })
        }
        ActionRuns::Node {
            using,
            main,
            post,
            pre,
        } => {
            if runner.in_container {
                return Err(format!(
                    "action '{uses}': JavaScript actions run on the host executor only"
                ));
            }
            if let Some(warning) = node_runtime(uses, using).await? {
                runner.logs.annotate(index, "warning", &warning).await;
            }
            let mut env = env;
            env.extend(input_env(&inputs));
            env.insert(
                "GITHUB_ACTION_PATH".into(),
                dir.to_string_lossy().into_owned(),
            );
            // What pre saves with GITHUB_STATE, main and post read as STATE_<name>.
            let state = |env: &mut IndexMap<String, String>, saved: &IndexMap<String, String>| {
                for (k, v) in saved {
                    env.insert(format!("STATE_{k}"), v.clone());
                }
            };
            if let Some(pre) = pre {
                let done = node(runner, index, &step.id, &dir, pre, env.clone(), timeout).await;
                state(&mut env, &done.state);
                let r = runner.conclude(index, done).await;
                if r.outcome != Status::Success {
                    return Ok(r);
                }
            }
            let done = node(runner, index, &step.id, &dir, main, env.clone(), timeout).await;
            state(&mut env, &done.state);
            let result = runner.conclude(index, done).await;
            if let Some(post) = post {
                runner.post.push(Post::Node {
                    dir: dir.clone(),
                    script: post.clone(),
                    env,
                    step: index,
                });
            }
            Ok(result)
        }
        ActionRuns::Docker {
            image,
            entrypoint,
            args,
        } => {
            // A Dockerfile action: built here (once per action directory, which is
            // content-addressed when fetched), then run with its own entrypoint and command
            // unless the action gives others.
            let mut built: Option<(Vec<String>, Vec<String>)> = None;
            let tag;
            let image = match image.strip_prefix("docker://") {
                Some(image) => image,
                None => {
                    let executor = runner.containers.clone().ok_or_else(|| {
                        format!("action '{uses}' is built from a Dockerfile, and no Docker daemon is available")
                    })?;
                    let context = dir
                        .join(image)
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| dir.clone());
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(&context, &mut hasher);
                    tag = format!("gantry-action:{:016x}", std::hash::Hasher::finish(&hasher));
                    built = Some(
                        executor
                            .build_image(&context, &tag)
                            .await
                            .map_err(|e| format!("action '{uses}': {e}"))?,
                    );
                    tag.as_str()
                }
            };
            let mut with = IndexMap::new();
            let contexts = runner.contexts(
                &Frame {
                    inputs: Some(strings(&inputs)),
                    ..Frame::default()
                },
                &env,
            );
            let scope = Scope::new(&contexts);
            if let Some(e) = entrypoint {
                with.insert("entrypoint".to_owned(), scope.render(e)?);
            }
            let rendered: Vec<String> = args
                .iter()
                .map(|a| scope.render(a).map(|s| shell_quote(&s)))
                .collect::<Result<_, _>>()?;
            if !rendered.is_empty() {
                with.insert("args".to_owned(), rendered.join(" "));
            }
            if let Some((image_entrypoint, image_cmd)) = built {
                let quoted = |words: &[String]| {
                    words
                        .iter()
                        .map(|w| shell_quote(w))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let entry = match with.shift_remove("entrypoint") {
                    Some(e) => shell_quote(&e),
                    None => quoted(&image_entrypoint),
                };
                let args = with
                    .shift_remove("args")
                    .unwrap_or_else(|| quoted(&image_cmd));
                with.insert(
                    "args".to_owned(),
                    format!("{entry} {args}").trim().to_owned(),
                );
            }
            let mut env = env;
            env.extend(input_env(&inputs));
            docker_step(runner, index, step, image, &with, env, timeout).await
        }
        _ => Err(format!(
            "action '{uses}': this kind of action is not supported"
        )),
    }
}

/// The host's `node` major version, asked once per process.
static NODE_MAJOR: tokio::sync::OnceCell<Result<u32, String>> = tokio::sync::OnceCell::const_new();

/// Checks that `node` is here for an action that wants `using` (`node20`): an error when it
/// is missing, a warning when it is older than the action asks for.
async fn node_runtime(uses: &str, using: &str) -> Result<Option<String>, String> {
    let found = NODE_MAJOR
        .get_or_init(|| async {
            let out = tokio::process::Command::new("node")
                .arg("--version")
                .output()
                .await
                .map_err(|e| format!("cannot run node: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| format!("node --version said '{}'", text.trim()))
        })
        .await;
    let wanted: u32 = using.trim_start_matches("node").parse().unwrap_or(0);
    match found {
        Err(e) => Err(format!(
            "action '{uses}' runs on {using}: {e}; install Node.js {wanted} or newer"
        )),
        Ok(have) if *have < wanted => Ok(Some(format!(
            "action '{uses}' asks for {using}; the host's node is version {have}, so it may \
             fail (install Node.js {wanted} or newer)"
        ))),
        Ok(_) => Ok(None),
    }
}

pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

async fn node(
    runner: &mut JobRunner,
    index: usize,
    id: &str,
    dir: &Path,
    script: &str,
    env: IndexMap<String, String>,
    timeout: Option<Duration>,
) -> Executed {
    let path = dir.join(script);
    // node runs directly, not through a shell: input variables keep names a shell would drop
    // (`INPUT_WHO-TO-GREET`).
    runner.make_command_files = true;
    let spec = StepSpec {
        id: id.to_owned(),
        script: String::new(),
        shell: Shell::Custom(format!("node {}", shell_quote(&path.to_string_lossy()))),
        env,
        workdir: None,
        timeout,
        inherit_env: true,
    };
    runner.exec(index, spec).await
}

/// Runs a command in a container of `image` with the workspace mounted (`docker://` steps
/// and docker actions).
async fn docker_step(
    runner: &mut JobRunner,
    index: usize,
    step: &Step,
    image: &str,
    with: &IndexMap<String, String>,
    env: IndexMap<String, String>,
    timeout: Option<Duration>,
) -> Result<StepResult, String> {
    let executor = runner.containers.clone().ok_or_else(|| {
        format!("step 'docker://{image}' needs the docker executor, and none is available")
    })?;
    let entrypoint = with.get("entrypoint").cloned().unwrap_or_default();
    let args = with.get("args").cloned().unwrap_or_default();
    if entrypoint.is_empty() && args.is_empty() {
        return Err(format!(
            "step 'docker://{image}': give `with: entrypoint` and/or `args` (the image's own \
             entrypoint is not inspected)"
        ));
    }
    let command = if entrypoint.is_empty() {
        args
    } else {
        format!("{} {args}", shell_quote(&entrypoint))
    };
    let spec = JobSpec {
        run_id: runner.ctx.run_id.clone(),
        job_id: format!("{}-step{index}", crate::runner::storage_key(&runner.id)),
        workspace: runner.workspace.clone(),
        env: IndexMap::new(),
        timeout: Some(runner.deadline.saturating_duration_since(Instant::now())),
        container: Some(ContainerSpec {
            image: image.to_owned(),
            env: IndexMap::new(),
            user: None,
        }),
        services: Vec::new(),
        network: false,
        mounts: vec![runner.temp.clone()],
        scratch: None,
    };
    let environment = executor
        .prepare(&spec)
        .await
        .map_err(|e| format!("docker://{image}: {e}"))?;
    let saved = std::mem::replace(&mut runner.environment, Arc::from(environment));
    let was_in_container = std::mem::replace(&mut runner.in_container, true);
    let done = runner
        .exec(
            index,
            StepSpec {
                id: step.id.clone(),
                script: format!("exec {command}\n"),
                shell: Shell::Sh,
                env,
                workdir: None,
                timeout,
                inherit_env: false,
            },
        )
        .await;
    let environment = std::mem::replace(&mut runner.environment, saved);
    runner.in_container = was_in_container;
    if let Err(e) = environment.teardown().await {
        runner
            .logs
            .annotate(index, "warning", &format!("docker://{image}: {e}"))
            .await;
    }
    Ok(runner.conclude(index, done).await)
}

/// `actions/checkout`: the event's commit of the local repository, cloned into the
/// workspace.
async fn checkout(
    runner: &mut JobRunner,
    index: usize,
    inputs: &IndexMap<String, String>,
) -> Result<StepResult, String> {
    if let Some(repo) = inputs.get("repository").filter(|r| !r.is_empty()) {
        if *repo != runner.ctx.event.repository.full_name {
            return Err(format!(
                "actions/checkout of another repository ('{repo}') needs the network; map it \
                 with --action-dir or check it out in a run step"
            ));
        }
    }
    let repo = ci_vcs::Repository::open(&runner.ctx.root).map_err(|e| {
        format!(
            "actions/checkout: {} is not a git repository: {e}",
            runner.ctx.root.display()
        )
    })?;
    let rev = inputs
        .get("ref")
        .filter(|r| !r.is_empty())
        .cloned()
        .unwrap_or_else(|| runner.ctx.event.sha.clone());
    let depth: u32 = inputs
        .get("fetch-depth")
        .and_then(|d| d.parse().ok())
        .unwrap_or(1);
    let path = inputs.get("path").map_or("", String::as_str);
    if !path.is_empty() && !safe_relative(path) {
        return Err(format!(
            "actions/checkout: path '{path}' leaves the workspace"
        ));
    }
    runner
        .logs
        .line(
            index,
            &format!(
                "Checking out {rev} into {}",
                runner.workspace.join(path).display()
            ),
        )
        .await;
    let local = runner.local_dir(false).await?;
    let dest2 = local.path.join(path);
    let cloned = tokio::task::spawn_blocking(move || {
        // git clone fills an existing empty directory; the directory itself is kept, since
        // a job container has it bind-mounted.
        let empty = std::fs::read_dir(&dest2).map_or(true, |mut d| d.next().is_none());
        if !empty {
            return Err(format!(
                "actions/checkout: {} is not empty",
                dest2.display()
            ));
        }
        repo.clone_at(&rev, &dest2, depth)
            .map_err(|e| format!("actions/checkout: {e}"))
    })
    .await
    .map_err(|e| format!("actions/checkout: {e}"))
    .and_then(|r| r);
    runner.put_back(local, cloned.is_ok()).await?;
    cloned?;
    let mut out = IndexMap::new();
    out.insert("ref".into(), runner.ctx.event.git_ref.clone());
    out.insert("commit".into(), runner.ctx.event.sha.clone());
    Ok(ok(out))
}

fn safe_relative(p: &str) -> bool {
    Path::new(p).components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    })
}

async fn upload_artifact(
    runner: &mut JobRunner,
    index: usize,
    inputs: &IndexMap<String, String>,
) -> Result<StepResult, String> {
    let name = inputs
        .get("name")
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| "artifact".into());
    let paths = inputs.get("path").cloned().unwrap_or_default();
    if paths.trim().is_empty() {
        return Err("actions/upload-artifact: input 'path' is required".into());
    }
    let policy = match inputs.get("if-no-files-found").map(String::as_str) {
        None | Some("") | Some("warn") => IfNoFilesFound::Warn,
        Some("error") => IfNoFilesFound::Error,
        Some("ignore") => IfNoFilesFound::Ignore,
        Some(other) => {
            return Err(format!(
                "actions/upload-artifact: if-no-files-found must be warn, error or ignore, not '{other}'"
            ))
        }
    };
    let expires = inputs
        .get("retention-days")
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|d| *d > 0)
        .map(|days| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + days * 86_400
        });
    let ctx = Arc::clone(&runner.ctx);
    let local = runner.local_dir(true).await?;
    let (root, paths) = artifact_root(&local.path, &paths);
    let upload = artifacts::upload(
        &ctx.inner.blobs,
        &ctx.run_id,
        &name,
        &root,
        &paths,
        policy,
        expires,
    )
    .await
    .map_err(|e| format!("actions/upload-artifact: {e}"));
    runner.put_back(local, false).await?;
    let upload = upload?;
    let mut out = IndexMap::new();
    let shown = format!("Uploaded artifact '{name}': {{}} file(s)");
    if crate::transfer::report_upload(runner, index, &name, &upload, &shown)
        .await
        .map_err(|e| format!("actions/upload-artifact: {e}"))?
    {
        out.insert("artifact-id".into(), name.clone());
    }
    Ok(ok(out))
}

/// The artifact's root as actions/upload-artifact chooses it: the least common ancestor of
/// the search paths (a directory named as such, a file's parent, a glob's literal prefix);
/// returns it with the patterns rewritten relative to it.
fn artifact_root(workspace: &Path, paths: &str) -> (PathBuf, String) {
    let is_glob = |c: &str| c.contains(['*', '?', '[', '{']);
    let mut roots: Vec<Vec<String>> = Vec::new();
    for line in paths.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('!') {
            continue;
        }
        let line = line.trim_start_matches("./");
        let parts: Vec<String> = line
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_owned)
            .collect();
        let literal: Vec<String> = parts.iter().take_while(|p| !is_glob(p)).cloned().collect();
        let root = if literal.len() == parts.len() && !workspace.join(line).is_dir() {
            literal[..literal.len().saturating_sub(1)].to_vec()
        } else {
            literal
        };
        roots.push(root);
    }
    let Some(first) = roots.first() else {
        return (workspace.to_path_buf(), paths.to_owned());
    };
    let mut common = first.clone();
    for r in &roots[1..] {
        let n = common.iter().zip(r).take_while(|(a, b)| a == b).count();
        common.truncate(n);
    }
    if common.is_empty() || common.iter().any(|c| c == "..") {
        return (workspace.to_path_buf(), paths.to_owned());
    }
    let prefix = common.join("/");
    let rewritten = paths
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (neg, p) = l.strip_prefix('!').map_or(("", l), |p| ("!", p));
            let p = p.trim_start_matches("./");
            let rest = p
                .strip_prefix(prefix.as_str())
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(p);
            let rest = if rest.is_empty() { "." } else { rest };
            format!("{neg}{rest}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    (workspace.join(prefix), rewritten)
}

async fn download_artifact(
    runner: &mut JobRunner,
    index: usize,
    inputs: &IndexMap<String, String>,
) -> Result<StepResult, String> {
    let path = inputs.get("path").map_or("", String::as_str);
    if !path.is_empty() && !safe_relative(path) && !Path::new(path).starts_with(&runner.workspace) {
        return Err(format!(
            "actions/download-artifact: path '{path}' leaves the workspace"
        ));
    }
    let shown = runner.workspace.join(path);
    let local = runner.local_dir(false).await?;
    let result = download_into(runner, index, inputs, &local.path.join(path)).await;
    runner.put_back(local, result.is_ok()).await?;
    result?;
    let mut out = IndexMap::new();
    out.insert("download-path".into(), shown.to_string_lossy().into_owned());
    Ok(ok(out))
}

async fn download_into(
    runner: &mut JobRunner,
    index: usize,
    inputs: &IndexMap<String, String>,
    target: &Path,
) -> Result<(), String> {
    let ctx = Arc::clone(&runner.ctx);
    let store = &ctx.inner.blobs;
    let names = match inputs.get("name").filter(|n| !n.is_empty()) {
        Some(n) => vec![(n.clone(), target.to_path_buf())],
        None => artifacts::list(store, &ctx.run_id)
            .await
            .map_err(|e| format!("actions/download-artifact: {e}"))?
            .into_iter()
            .map(|n| {
                let t = target.join(&n);
                (n, t)
            })
            .collect(),
    };
    for (name, dest) in &names {
        let m = artifacts::download(store, &ctx.run_id, name, dest)
            .await
            .map_err(|e| format!("actions/download-artifact: {e}"))?;
        runner
            .logs
            .line(
                index,
                &format!(
                    "Downloaded artifact '{name}' ({} file(s)) to {}",
                    m.entries.len(),
                    dest.display()
                ),
            )
            .await;
    }
    Ok(())
}

/// Cache scopes: the run's ref, then the default branch (as GitHub restricts caches).
fn cache_scopes(runner: &JobRunner) -> (String, String) {
    let event = &runner.ctx.event;
    (
        event.git_ref.clone(),
        format!("refs/heads/{}", event.repository.default_branch),
    )
}

async fn cache_restore(
    runner: &mut JobRunner,
    index: usize,
    inputs: &IndexMap<String, String>,
    save_after: bool,
) -> Result<StepResult, String> {
    let key = inputs.get("key").cloned().unwrap_or_default();
    if key.is_empty() {
        return Err("actions/cache: input 'key' is required".into());
    }
    let paths = lines(inputs.get("path").map_or("", String::as_str));
    if paths.is_empty() {
        return Err("actions/cache: input 'path' is required".into());
    }
    let restore_keys = lines(inputs.get("restore-keys").map_or("", String::as_str));
    let (scope, default_scope) = cache_scopes(runner);
    let caches = Caches::new(runner.ctx.inner.blobs.clone());
    let prefixes: Vec<&str> = restore_keys.iter().map(String::as_str).collect();
    let hit = caches
        .lookup(&scope, &default_scope, &key, &prefixes)
        .await
        .map_err(|e| format!("actions/cache: {e}"))?;
    let mut out = IndexMap::new();
    out.insert("cache-primary-key".into(), key.clone());
    let exact = match &hit {
        Some(hit) => {
            let local = runner.local_dir(false).await?;
            let restored = caches
                .restore(hit, &local.path)
                .await
                .map_err(|e| format!("actions/cache: {e}"));
            runner.put_back(local, restored.is_ok()).await?;
            let files = restored?;
            runner
                .logs
                .line(
                    index,
                    &format!("Cache restored from key: {} ({files} file(s))", hit.key),
                )
                .await;
            out.insert("cache-matched-key".into(), hit.key.clone());
            hit.exact
        }
        None => {
            runner
                .logs
                .line(index, &format!("Cache not found for input keys: {key}"))
                .await;
            false
        }
    };
    out.insert("cache-hit".into(), exact.to_string());
    if save_after && !exact {
        runner.post.push(Post::CacheSave {
            key,
            paths,
            step: index,
        });
    }
    Ok(ok(out))
}

async fn cache_save(
    runner: &mut JobRunner,
    index: usize,
    key: &str,
    paths: &[String],
) -> Result<(), String> {
    if key.is_empty() || paths.is_empty() {
        return Err("actions/cache/save: inputs 'key' and 'path' are required".into());
    }
    let (scope, _) = cache_scopes(runner);
    let caches = Caches::new(runner.ctx.inner.blobs.clone());
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let local = runner.local_dir(true).await?;
    let saved = caches
        .save(&scope, key, &local.path, &refs)
        .await
        .map_err(|e| format!("actions/cache: {e}"));
    runner.put_back(local, false).await?;
    match saved? {
        ci_store::caches::Saved::Stored(meta) => {
            runner
                .logs
                .line(
                    index,
                    &format!("Cache saved with key: {key} ({} bytes)", meta.size),
                )
                .await
        }
        ci_store::caches::Saved::Nothing => {
            runner
                .logs
                .annotate(
                    index,
                    "warning",
                    &format!("Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved. (key: {key})"),
                )
                .await
        }
        _ => {
            runner
                .logs
                .line(
                    index,
                    &format!("Cache not saved: key '{key}' exists already"),
                )
                .await
        }
    }
    Ok(())
}

/// Runs a post step (cache save only after a successful job, as actions/cache does).
pub(crate) async fn run_post(runner: &mut JobRunner, frame: &mut Frame, post: Post) {
    match post {
        Post::CacheSave { key, paths, step } => {
            if frame.failed || runner.cancel.is_cancelled() {
                return;
            }
            if let Err(e) = cache_save(runner, step, &key, &paths).await {
                runner.logs.annotate(step, "warning", &e).await;
            }
        }
        Post::Node {
            dir,
            script,
            env,
            step,
        } => {
            let id = format!("post-{step}");
            let done = node(runner, step, &id, &dir, &script, env, None).await;
            let r = runner.conclude(step, done).await;
            if r.outcome == Status::Failure {
                frame.failed = true;
            }
        }
    }
}
