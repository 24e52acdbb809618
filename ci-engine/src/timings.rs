//! Test timings of CircleCI jobs, for `circleci tests split --split-by=timings`: the test
//! results each node of a job stored last, kept per repository and job in the blob store
//! (`timings/REPO/JOB/NODE.tsv`: a `# written-at-ms` line, then `file<TAB>class<TAB>name<TAB>
//! seconds` per test case), merged newest first into the `timings.tsv` a job's `circleci`
//! command reads.

use ci_store::junit::TestResults;
use ci_store::StoreError;
use indexmap::IndexMap;

use crate::runner::{storage_key, JobRunner};
use crate::state::{now_ms, RunCtx};

fn prefix(ctx: &RunCtx, job: &str) -> String {
    format!(
        "timings/{}/{}/",
        storage_key(&ctx.event.repository.full_name),
        storage_key(job)
    )
}

/// A field of a timings line: no tabs or line breaks, no leading `./`.
fn field(s: &str) -> String {
    s.trim_start_matches("./").replace(['\t', '\n', '\r'], " ")
}

/// Keeps the timings of a job node's test results, replacing what that node kept before.
pub(crate) async fn save(runner: &JobRunner, results: &TestResults) -> Result<(), StoreError> {
    let node = runner
        .env
        .get("CIRCLE_NODE_INDEX")
        .map_or("0", String::as_str);
    let mut text = format!("# {}\n", now_ms());
    for case in &results.cases {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            field(case.file.as_deref().unwrap_or("")),
            field(&case.class),
            field(&case.name),
            case.time
        ));
    }
    let key = format!(
        "{}{}.tsv",
        prefix(&runner.ctx, &runner.job),
        storage_key(node)
    );
    runner
        .ctx
        .inner
        .blobs
        .put(&key, text.into_bytes().into())
        .await
}

/// The timings of `job`'s last stored test results (every node's, the newest kept for a test
/// several nodes ran); empty when there are none.
pub(crate) async fn load(ctx: &RunCtx, job: &str) -> String {
    let blobs = &ctx.inner.blobs;
    let Ok(keys) = blobs.list(&prefix(ctx, job)).await else {
        return String::new();
    };
    let mut files = Vec::new();
    for key in keys {
        if let Ok(Some(bytes)) = blobs.get(&key).await {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let written = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# "))
                .and_then(|n| n.trim().parse::<i64>().ok())
                .unwrap_or(0);
            files.push((written, text));
        }
    }
    files.sort_by_key(|(written, _)| *written);
    let mut cases: IndexMap<(String, String, String), String> = IndexMap::new();
    for (_, text) in &files {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let parts: Vec<&str> = line.splitn(4, '\t').collect();
            if let [file, class, name, seconds] = parts.as_slice() {
                cases.insert(
                    ((*file).into(), (*class).into(), (*name).into()),
                    (*seconds).into(),
                );
            }
        }
    }
    cases
        .into_iter()
        .map(|((file, class, name), seconds)| format!("{file}\t{class}\t{name}\t{seconds}\n"))
        .collect()
}
