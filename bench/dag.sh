#!/usr/bin/env bash
# Scheduling overhead: a 1,000-job layered DAG (50 layers of 20; each job needs 2 random jobs
# of the layer before; each job runs `true`) generated from one spec as a GitHub workflow and
# as a Makefile, run by `gantry run` (host executor, capacity 2, run and logs persisted under
# .gantry) and by `make -j2`, alternating (bench/compare.py). Prints the medians of wall time,
# CPU time and peak memory and the ratios (targets: gantry <= 1.5x wall, peak <= 40 MiB).
#
#   bench/dag.sh [JOBS] [WIDTH]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-1000}"
WIDTH="${2:-20}"
cargo build --release -q
GANTRY="$PWD/target/release/gantry"
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

python3 - "$DIR" "$JOBS" "$WIDTH" <<'PY'
import random, sys
out, jobs, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261123)
layers = [[f"j{l}_{i}" for i in range(width)] for l in range((jobs + width - 1) // width)]
needs = {}
for l, layer in enumerate(layers):
    for job in layer:
        needs[job] = sorted(rng.sample(layers[l - 1], 2)) if l else []
with open(f"{out}/dag.yml", "w") as f:
    f.write("name: dag\non: push\njobs:\n")
    for job, ns in needs.items():
        f.write(f"  {job}:\n    runs-on: ubuntu-latest\n")
        if ns:
            f.write(f"    needs: [{', '.join(ns)}]\n")
        f.write("    steps:\n      - run: 'true'\n")
with open(f"{out}/Makefile", "w") as f:
    f.write(".PHONY: all " + " ".join(needs) + "\n")
    f.write("all: " + " ".join(layers[-1]) + "\n")
    for job, ns in needs.items():
        # Each job runs `true` through the same shell GitHub uses for `run:` steps.
        f.write(f"{job}: {' '.join(ns)}\n\t@bash -e -c 'true'\n")
PY

# Medians of 5 alternating runs (the first run in a fresh directory pays cold caches).
echo "$JOBS jobs, medians of 5 alternating runs (target: gantry <= 1.5x make -j2 wall, peak <= 40 MiB):"
peers=()
# wrkflw 0.8.0 (`cargo install wrkflw --version 0.8.0`), when installed: the issue's peer
# (process emulation, no history kept), for the CPU comparison.
if command -v wrkflw >/dev/null; then
    peers+=("wrkflw 0.8.0=wrkflw run --runtime emulation dag.yml")
fi
python3 bench/compare.py 5 "$DIR" \
    "make -j2=make -s -j2 -f Makefile all" \
    "gantry run=$GANTRY -q run dag.yml --state-dir $DIR/.gantry --max-parallel 2" \
    "${peers[@]}"
