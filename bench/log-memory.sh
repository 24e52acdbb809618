#!/usr/bin/env bash
# Peak memory of the log pipeline over a long stream (default 10 GiB, 100 secrets, over-long
# lines included): it must stay bounded (< 64 MiB), whatever the stream's length.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p ci-exec --example log_memory -- "${1:-10}"
