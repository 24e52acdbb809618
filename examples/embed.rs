//! Embedding Gantry: run a workflow file from your own program and react to its events.
//!
//!     cargo run --example embed -- examples/workflows/hello.yml

use ci_engine::{Engine, RunEvent, RunOptions, Source};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or("examples/workflows/hello.yml".into());
    let engine = Engine::builder().secret("TOKEN", "s3cr3t").build().await?;
    let source = Source::read(&path)?;
    let event = source.local_event();
    let mut run = engine.start(source, event, RunOptions::new()).await?;
    while let Some(event) = run.next_event().await {
        if let RunEvent::JobFinished { job, status, .. } = event {
            println!("{job}: {status}");
        }
    }
    let summary = run.wait().await;
    println!("run {}: {}", summary.run_id, summary.status);
    std::process::exit(if summary.success() { 0 } else { 1 });
}
