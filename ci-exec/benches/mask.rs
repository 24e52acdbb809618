//! Log pipeline throughput with 100 secrets (target ≥ 1 GB/s), and the bound on memory.

use bytes::Bytes;
use ci_exec::{Chunk, LogPipeline, Stream};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let secrets: Vec<String> = (0..100)
        .map(|i| format!("s3cr3t-{i:03}-{}", "x".repeat(i % 20)))
        .collect();
    // 64 MiB of realistic log lines, a few secrets sprinkled in, cut into 64 KiB chunks.
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 64 * 1024 * 1024 {
        text.push_str(&format!(
            "2026-11-23T09:00:00Z [INFO] compiling crate number {i} in target/release/deps with flags -C opt-level=3\n"
        ));
        if i % 997 == 0 {
            text.push_str(&format!("token is {}\n", secrets[i % 100]));
        }
        i += 1;
    }
    let chunks: Vec<Chunk> = text
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Chunk {
            stream: Stream::Stdout,
            data: Bytes::copy_from_slice(c),
        })
        .collect();
    let mut group = c.benchmark_group("logs");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("pipeline_100_secrets_64MiB", |b| {
        b.iter(|| {
            let mut p = LogPipeline::new(&secrets);
            let mut n = 0;
            for chunk in &chunks {
                n += p.push(chunk).len();
            }
            n + p.finish().len()
        })
    });
    // Secrets as tokens look: random letters and digits (a fixed generator, so runs compare).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tokens: Vec<String> = (0..100)
        .map(|i| {
            let len = 12 + i % 30;
            (0..len)
                .map(|_| char::from(ALPHABET[(next() % ALPHABET.len() as u64) as usize]))
                .collect()
        })
        .collect();
    group.bench_function("pipeline_100_random_token_secrets_64MiB", |b| {
        b.iter(|| {
            let mut p = LogPipeline::new(&tokens);
            let mut n = 0;
            for chunk in &chunks {
                n += p.push(chunk).len();
            }
            n + p.finish().len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
