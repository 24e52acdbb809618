//! The engine's own cost per job, without processes: a 1,000-job layered DAG on an executor
//! whose steps succeed at once, with run history on SQLite and logs on local files (as
//! `gantry run` keeps them). Compare with `bench/dag.sh`, which adds real processes.
//!
//!     cargo run --release -p ci-engine --example engine_overhead

use std::sync::Arc;
use std::time::Instant;

use ci_engine::{Engine, RunOptions, Source};
use ci_exec::FakeExecutor;
use ci_store::runs::SqliteRunStore;
use ci_store::BlobStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut yaml = String::from("on: push\njobs:\n");
    for layer in 0..50 {
        for i in 0..20 {
            yaml.push_str(&format!("  j{layer}_{i}:\n    runs-on: x\n"));
            if layer > 0 {
                let (a, b) = (i % 20, (i * 7 + 3) % 20);
                yaml.push_str(&format!(
                    "    needs: [j{}_{a}, j{}_{b}]\n",
                    layer - 1,
                    layer - 1
                ));
            }
            yaml.push_str("    steps:\n      - run: 'true'\n");
        }
    }
    let runs = SqliteRunStore::open(&dir.path().join("runs.db").to_string_lossy()).await?;
    let blobs = BlobStore::open(&format!("file://{}", dir.path().display()))?;
    let engine = Engine::builder()
        .default_executor(Arc::new(FakeExecutor::new()))
        .run_store(Arc::new(runs))
        .blobs(blobs)
        .capacity(2)
        .work_dir(dir.path().join("work"))
        .build()
        .await?;
    for round in 0..3 {
        let source = Source::new("dag.yml", yaml.clone(), dir.path());
        let event = source.local_event();
        let started = Instant::now();
        let mut options = RunOptions::new();
        options.log_events = false;
        let summary = engine.start(source, event, options).await?.wait().await;
        let took = started.elapsed();
        println!(
            "round {round}: {} jobs, {:?} in {:.3} s ({:.0} µs per job)",
            summary.jobs.len(),
            summary.status,
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / summary.jobs.len() as f64
        );
    }
    Ok(())
}
