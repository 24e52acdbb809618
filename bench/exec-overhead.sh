#!/usr/bin/env bash
# Executor overhead against bare baselines, in one run (medians of N jobs, default 30):
#   host   — prepare + run `true` + teardown vs spawning `sh -c true`
#   docker — the same on the docker executor vs `docker run --rm IMAGE true`
# Needs the services for the docker part: .ci/services start
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p ci-exec --example overhead -- "${1:-30}"
