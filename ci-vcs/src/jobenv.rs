//! The environment a forge's runner gives every job, per dialect: GitHub's `GITHUB_*`/
//! `RUNNER_*` variables, GitLab's job-level `CI_*` variables and CircleCI's `CIRCLE_*`. A job sees the table of its
//! own dialect only (a GitLab job never sees `GITHUB_ACTIONS`), which is why both live here,
//! next to [`Event::github_context`](crate::Event::github_context) and
//! [`Event::gitlab_variables`](crate::Event::gitlab_variables), and not in an engine.
//!
//! ```
//! use ci_vcs::jobenv::{github_job_env, JobInfo};
//! let github = serde_json::json!({"ref": "refs/heads/main", "sha": "abc", "event_name": "push"});
//! let job = JobInfo { job: "build".into(), workflow: "CI".into(), ..JobInfo::default() };
//! let env = github_job_env(&github, &job);
//! assert_eq!(env["GITHUB_ACTIONS"], "true");
//! assert_eq!(env["GITHUB_REF"], "refs/heads/main");
//! ```

use indexmap::IndexMap;
use serde_json::Value;

/// What a job's environment is made of besides the event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInfo {
    /// The job's id (`build`), or its instance name in GitLab (`test 1/2`).
    pub job: String,
    /// The job's base name (GitLab `parallel` instances share it).
    pub base: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workspace (the project directory) as the job sees it.
    pub workspace: String,
    /// The directory the job's workspaces live in (`CI_BUILDS_DIR`).
    pub builds_dir: String,
    /// A per-job temporary directory (`RUNNER_TEMP`).
    pub temp: String,
    /// The stage (GitLab).
    pub stage: String,
    /// A number unique to the job within the run's pipeline (`CI_JOB_ID`).
    pub job_number: String,
    /// The pipeline's id.
    pub pipeline_id: String,
    /// The job's time limit in seconds.
    pub timeout_secs: u64,
    /// The job's image, if it runs in one.
    pub image: Option<String>,
    /// `(index, total)` of a parallel instance, 1-based.
    pub node: Option<(usize, usize)>,
    /// Runner tags.
    pub tags: Vec<String>,
}

/// `GITHUB_*` variables taken from the `github` context, by key.
const FROM_GITHUB: &[(&str, &str)] = &[
    ("GITHUB_REF", "ref"),
    ("GITHUB_REF_NAME", "ref_name"),
    ("GITHUB_REF_TYPE", "ref_type"),
    ("GITHUB_SHA", "sha"),
    ("GITHUB_REPOSITORY", "repository"),
    ("GITHUB_REPOSITORY_OWNER", "repository_owner"),
    ("GITHUB_EVENT_NAME", "event_name"),
    ("GITHUB_ACTOR", "actor"),
    ("GITHUB_TRIGGERING_ACTOR", "triggering_actor"),
    ("GITHUB_RUN_ID", "run_id"),
    ("GITHUB_RUN_NUMBER", "run_number"),
    ("GITHUB_RUN_ATTEMPT", "run_attempt"),
    ("GITHUB_SERVER_URL", "server_url"),
    ("GITHUB_API_URL", "api_url"),
    ("GITHUB_GRAPHQL_URL", "graphql_url"),
    ("GITHUB_HEAD_REF", "head_ref"),
    ("GITHUB_BASE_REF", "base_ref"),
];

/// `RUNNER_ARCH` as GitHub spells it.
fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        "x86" => "X86",
        "arm" => "ARM",
        other => other,
    }
}

/// The `GITHUB_*`/`RUNNER_*` variables every step of a GitHub Actions job sees, from the
/// job's `github` context.
pub fn github_job_env(github: &Value, job: &JobInfo) -> IndexMap<String, String> {
    let text = |k: &str| match github.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let mut env = IndexMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("CI", "true".into());
    set("GITHUB_ACTIONS", "true".into());
    set("GANTRY", "true".into());
    set("GITHUB_JOB", job.job.clone());
    for (var, key) in FROM_GITHUB {
        set(var, text(key));
    }
    set("GITHUB_WORKFLOW", job.workflow.clone());
    set("GITHUB_WORKSPACE", job.workspace.clone());
    set("RUNNER_OS", "Linux".into());
    set("RUNNER_ARCH", runner_arch().into());
    set("RUNNER_NAME", "gantry".into());
    set("RUNNER_TEMP", job.temp.clone());
    set("RUNNER_TOOL_CACHE", format!("{}/tool_cache", job.temp));
    env
}

/// GitLab's job-level predefined variables (the pipeline-level ones come from
/// [`Event::gitlab_variables`](crate::Event::gitlab_variables)).
pub fn gitlab_job_variables(job: &JobInfo) -> IndexMap<String, String> {
    let mut vars = IndexMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_owned(), v);
    };
    set("CI_PROJECT_DIR", job.workspace.clone());
    set("CI_BUILDS_DIR", job.builds_dir.clone());
    set("CI_JOB_NAME", job.job.clone());
    set("CI_JOB_NAME_SLUG", crate::event::ref_slug(&job.job));
    set("CI_JOB_STAGE", job.stage.clone());
    set("CI_JOB_ID", job.job_number.clone());
    set("CI_PIPELINE_ID", job.pipeline_id.clone());
    set("CI_JOB_TIMEOUT", job.timeout_secs.to_string());
    set(
        "CI_RUNNER_TAGS",
        serde_json::to_string(&job.tags).unwrap_or_else(|_| "[]".into()),
    );
    set("CI_SERVER", "yes".into());
    set("GANTRY", "true".into());
    if let Some(image) = &job.image {
        set("CI_JOB_IMAGE", image.clone());
    }
    if let Some((index, total)) = job.node {
        set("CI_NODE_INDEX", index.to_string());
        set("CI_NODE_TOTAL", total.to_string());
    }
    vars
}

/// CircleCI's pipeline-level variables of an event (`CIRCLE_BRANCH` or `CIRCLE_TAG`,
/// `CIRCLE_SHA1`, the project's names and URL, `CIRCLECI=true`).
pub fn circleci_run_variables(event: &crate::Event) -> IndexMap<String, String> {
    let mut vars = IndexMap::new();
    let mut set = |k: &str, v: &str| {
        vars.insert(k.to_owned(), v.to_owned());
    };
    set("CI", "true");
    set("CIRCLECI", "true");
    set("GANTRY", "true");
    if let Some(tag) = event.git_ref.strip_prefix("refs/tags/") {
        set("CIRCLE_TAG", tag);
    } else {
        set(
            "CIRCLE_BRANCH",
            event
                .git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(&event.git_ref),
        );
    }
    set("CIRCLE_SHA1", &event.sha);
    set("CIRCLE_PROJECT_USERNAME", &event.repository.owner);
    set("CIRCLE_PROJECT_REPONAME", &event.repository.name);
    set("CIRCLE_USERNAME", &event.actor);
    if let Some(url) = &event.repository.html_url {
        set("CIRCLE_REPOSITORY_URL", url);
    }
    vars
}

/// CircleCI's job-level variables: `CIRCLE_JOB`, `CIRCLE_WORKFLOW_ID`, `CIRCLE_BUILD_NUM`,
/// `CIRCLE_WORKING_DIRECTORY`, and `CIRCLE_NODE_INDEX` (0-based) / `CIRCLE_NODE_TOTAL`.
pub fn circleci_job_variables(job: &JobInfo) -> IndexMap<String, String> {
    let mut vars = IndexMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_owned(), v);
    };
    set("CIRCLE_JOB", job.base.clone());
    set("CIRCLE_WORKFLOW_ID", job.pipeline_id.clone());
    set("CIRCLE_WORKFLOW_JOB_ID", job.job_number.clone());
    set("CIRCLE_BUILD_NUM", job.job_number.clone());
    set("CIRCLE_WORKING_DIRECTORY", job.workspace.clone());
    let (index, total) = job.node.unwrap_or((1, 1));
    set("CIRCLE_NODE_INDEX", index.saturating_sub(1).to_string());
    set("CIRCLE_NODE_TOTAL", total.to_string());
    vars
}

/// A stand-in for the `circleci` command inside CircleCI jobs (POSIX sh): `tests glob`
/// (`*` and `**` both match across directories), `tests split` (this node's share of the
/// names by `CIRCLE_NODE_INDEX`/`CIRCLE_NODE_TOTAL`: `--split-by=name` round robin over their
/// sorted order; `filesize` and `timings` packed greedily, heaviest first onto the lightest
/// node, timings from the `timings.tsv` the engine writes from the job's last stored test
/// results, by `--timings-type=filename|classname|testname`, unknown names weighing
/// `--time-default` or the known average) and `tests run --command=…` (the share fed to the
/// command's standard input), and `step halt` (also as `circleci-agent step halt`): the
/// job ends successfully after the current step (a `halt` file beside the command's folder
/// tells the engine); `continue CONFIG [PARAMETERS]` and `finish` (dynamic configuration:
/// the configuration, its parameters as JSON text or a JSON file, kept in `continuation/`
/// beside the command's folder for the engine; once per pipeline).
pub const CIRCLECI_CLI: &str = r#"#!/bin/sh
# Gantry's stand-in for the circleci CLI inside jobs: tests glob, split and run; step halt;
# continue and finish (dynamic configuration).
set -e
die() { echo "circleci: $*" >&2; exit 2; }
cont="$(dirname "$0")/../continuation"
case "$1" in
  continue)
    [ -n "$2" ] || die "continue needs the path of the configuration to continue with"
    [ -f "$2" ] || die "continue: there is no file $2"
    [ -e "$cont" ] && die "the pipeline was already continued or finished: it continues once"
    mkdir -p "$cont"
    params=${3:-"{}"}
    if [ -f "$params" ]; then cp "$params" "$cont/parameters.json"; else printf '%s' "$params" > "$cont/parameters.json"; fi
    cp "$2" "$cont/config.yml"
    printf '%s' "$2" > "$cont/path"
    echo "circleci: the pipeline continues with $2 after this workflow"
    exit 0 ;;
  finish)
    [ -e "$cont" ] && die "the pipeline was already continued or finished"
    mkdir -p "$cont"
    : > "$cont/finished"
    echo "circleci: the pipeline ends with this workflow"
    exit 0 ;;
esac
index=${CIRCLE_NODE_INDEX:-0}
total=${CIRCLE_NODE_TOTAL:-1}
by=name
ttype=filename
tdefault=""
file=""
cmd=""
tab=$(printf '\t')
parse() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --split-by=*) by=${1#*=} ;;
      --timings-type=*) ttype=${1#*=} ;;
      --time-default=*) tdefault=${1#*=} ;;
      --command=*) cmd=${1#*=} ;;
      --index=*) index=${1#*=} ;;
      --total=*) total=${1#*=} ;;
      --split-by|--timings-type|--time-default|--command|--index|--total)
        [ $# -gt 1 ] || die "$1 needs a value"
        case "$1" in
          --split-by) by=$2 ;; --timings-type) ttype=$2 ;; --time-default) tdefault=$2 ;;
          --command) cmd=$2 ;; --index) index=$2 ;; --total) total=$2 ;;
        esac
        shift ;;
      -*) ;;
      *) file=$1 ;;
    esac
    shift
  done
}
# Weighted names ("weight<TAB>name") packed greedily, heaviest first, onto the lightest node.
pack() {
  LC_ALL=C sort -t "$tab" -k1,1nr -k2,2 | awk -F '\t' -v i="$index" -v n="$total" '
    { best = 0
      for (j = 1; j < n; j++) if (load[j] + 0 < load[best] + 0) best = j
      load[best] += $1
      if (best == i) print $2 }' | LC_ALL=C sort
}
# Names weighted by the timings of the job's last stored test results (timings.tsv beside
# this command's folder: file, class, test name, seconds); unknown ones get --time-default or
# the average of the known ones.
timings() {
  tf="$(dirname "$0")/../timings.tsv"
  [ -f "$tf" ] || tf=/dev/null
  case "$ttype" in
    filename) col=1 ;; classname) col=2 ;; testname) col=3 ;;
    *) die "--timings-type=$ttype: expected filename, classname or testname" ;;
  esac
  awk -F '\t' -v tf="$tf" -v col="$col" -v def="${tdefault%s}" '
    FILENAME == tf { if ($col != "") t[$col] += $4; next }
    NF { n++; item[n] = $0; k = $0; sub(/^\.\//, "", k)
         if (k in t) { w[n] = t[k]; known++; sum += t[k] } else w[n] = -1 }
    END {
      if (known == 0) { print "circleci: no timing data for these names: splitting by name" > "/dev/stderr"; d = 1 }
      else d = (def != "") ? def + 0 : sum / known
      for (j = 1; j <= n; j++) printf "%s\t%s\n", (w[j] < 0 ? d : w[j]), item[j] }' "$tf" -
}
share() {
  case "$by" in
    name) LC_ALL=C sort | awk -v i="$index" -v n="$total" 'NF { if ((c++ % n) == i) print }' ;;
    filesize)
      LC_ALL=C sort -u | while IFS= read -r f; do
        [ -n "$f" ] || continue
        if [ -f "$f" ]; then size=$(wc -c < "$f"); else size=0; fi
        printf '%s\t%s\n' "$size" "$f"
      done | pack ;;
    timings) LC_ALL=C sort -u | timings | pack ;;
    *) die "--split-by=$by: expected name, filesize or timings" ;;
  esac
}
case "$1 $2" in
  "tests glob")
    shift 2
    for p in "$@"; do
      find . -type f -path "./$(printf '%s' "$p" | sed 's#^\./##; s#\*\*/#*#g')" | sed 's#^\./##'
    done | sort -u ;;
  "tests split")
    shift 2
    parse "$@"
    if [ -n "$file" ]; then share < "$file"; else share; fi ;;
  "tests run")
    shift 2
    parse "$@"
    [ -n "$cmd" ] || die "tests run needs --command"
    share | sh -c "$cmd" ;;
  "step halt")
    : > "$(dirname "$0")/../halt"
    echo "circleci-agent: the job ends after this step (step halt)" ;;
  *) die "only 'tests glob', 'tests split', 'tests run' and 'step halt' work locally (asked: $*)" ;;
esac
"#;

/// GitLab's environment variables of a job that deploys to `name` (variables already
/// expanded): `CI_ENVIRONMENT_NAME`, `_SLUG` (lower case, `-` for anything else, at most 24
/// characters), `_URL`, `_ACTION` (default `start`) and `_TIER` (given, else guessed from the
/// name as GitLab does).
pub fn gitlab_environment_variables(
    name: &str,
    url: Option<&str>,
    action: Option<&str>,
    tier: Option<&str>,
) -> IndexMap<String, String> {
    let mut vars = IndexMap::new();
    let slug: String = crate::event::ref_slug(name).chars().take(24).collect();
    vars.insert("CI_ENVIRONMENT_NAME".into(), name.to_owned());
    vars.insert(
        "CI_ENVIRONMENT_SLUG".into(),
        slug.trim_end_matches('-').to_owned(),
    );
    if let Some(url) = url {
        vars.insert("CI_ENVIRONMENT_URL".into(), url.to_owned());
    }
    vars.insert(
        "CI_ENVIRONMENT_ACTION".into(),
        action.unwrap_or("start").to_owned(),
    );
    vars.insert(
        "CI_ENVIRONMENT_TIER".into(),
        tier.map_or_else(|| environment_tier(name), str::to_owned),
    );
    vars
}

/// The tier GitLab guesses from an environment's name.
fn environment_tier(name: &str) -> String {
    let lower = name.to_lowercase();
    let first = lower.split('/').next().unwrap_or("");
    let any = |words: &[&str]| {
        words
            .iter()
            .any(|w| first.starts_with(w) || lower.starts_with(w))
    };
    if any(&["prod", "live"]) {
        "production"
    } else if any(&["stag", "model", "pre", "demo"]) {
        "staging"
    } else if any(&["test", "qc"]) {
        "testing"
    } else if any(&["dev", "review", "trunk"]) {
        "development"
    } else {
        "other"
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dialect_sees_only_its_own_table() {
        let job = JobInfo {
            job: "test 1/2".into(),
            node: Some((1, 2)),
            ..JobInfo::default()
        };
        let gitlab = gitlab_job_variables(&job);
        assert!(gitlab
            .keys()
            .all(|k| !k.starts_with("GITHUB_") && !k.starts_with("RUNNER_")));
        assert_eq!(gitlab["CI_NODE_TOTAL"], "2");
        assert_eq!(gitlab["CI_JOB_NAME_SLUG"], "test-1-2");
        let github = github_job_env(&serde_json::json!({"run_number": 7}), &job);
        assert!(github.keys().all(|k| !k.starts_with("CI_")));
        assert_eq!(github["GITHUB_RUN_NUMBER"], "7");
    }

    #[test]
    fn environments_get_a_slug_and_a_tier() {
        let v = gitlab_environment_variables("Review/Feature_X", None, None, None);
        assert_eq!(v["CI_ENVIRONMENT_SLUG"], "review-feature-x");
        assert_eq!(v["CI_ENVIRONMENT_TIER"], "development");
        assert_eq!(v["CI_ENVIRONMENT_ACTION"], "start");
        let v = gitlab_environment_variables("production", Some("https://x"), Some("stop"), None);
        assert_eq!(
            (
                v["CI_ENVIRONMENT_TIER"].as_str(),
                v["CI_ENVIRONMENT_ACTION"].as_str()
            ),
            ("production", "stop")
        );
        let long = gitlab_environment_variables(&"a".repeat(40), None, None, Some("other"));
        assert_eq!(long["CI_ENVIRONMENT_SLUG"].len(), 24);
    }
}
