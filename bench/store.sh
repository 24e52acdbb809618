#!/usr/bin/env bash
# Store figures in one run: log append throughput to the fs store, RunStore writes for a
# 1,000-job run on SQLite vs Postgres (needs `.ci/services start` for Postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p ci-store --example store_bench
