//! Streams N GiB (default 10) of log output through the pipeline with 100 secrets and reports
//! the peak resident memory (`VmHWM`), to show it stays bounded (used by `bench/log-memory.sh`).

use bytes::Bytes;
use ci_exec::{Chunk, LogEvent, LogPipeline, Stream};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let gib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let secrets: Vec<String> = (0..100).map(|i| format!("s3cr3t-{i:03}")).collect();
    let mut line_block = String::new();
    for i in 0..700 {
        line_block.push_str(&format!(
            "[{i:04}] building target/release/deps/libfoo-{i}.rlib s3cr3t-{:03}\n",
            i % 100
        ));
    }
    // One line of 3 MiB without a newline in every block, to exercise over-long lines too.
    let long = "x".repeat(3 * 1024 * 1024);
    let block = Bytes::from(format!("{line_block}{long}\n"));
    let mut pipeline = LogPipeline::new(&secrets);
    let total = gib * 1024 * 1024 * 1024;
    let (mut fed, mut out) = (0u64, 0u64);
    let start = std::time::Instant::now();
    while fed < total {
        for piece in block.chunks(64 * 1024) {
            let chunk = Chunk {
                stream: Stream::Stdout,
                data: block.slice_ref(piece),
            };
            for e in pipeline.push(&chunk) {
                if let LogEvent::Output { data, .. } = e {
                    out += data.len() as u64;
                }
            }
        }
        fed += block.len() as u64;
    }
    for e in pipeline.finish() {
        if let LogEvent::Output { data, .. } = e {
            out += data.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "streamed {:.1} GiB in {secs:.1} s ({:.0} MiB/s), {} MiB out; peak RSS {} MiB (target < 64 MiB)",
        fed as f64 / (1u64 << 30) as f64,
        fed as f64 / (1u64 << 20) as f64 / secs,
        out >> 20,
        peak_rss_kib() / 1024
    );
}
