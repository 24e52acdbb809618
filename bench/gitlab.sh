#!/usr/bin/env bash
# GitLab CI: the same generated 200-job layered pipeline (10 stages of 20 shell jobs, each
# job `needs` 2 random jobs of the stage before and runs `echo`) run by `gantry run` (each job
# in its own checkout, as GitLab gives it), by `make -j2` (the floor: one bash per job) and by
# gitlab-ci-local (`--concurrency 2`, shell executor) in one script; prints the wall times and
# the ratios (targets: gantry <= 2x make -j2, and at least 100x faster than gitlab-ci-local).
#
#   bench/gitlab.sh [JOBS] [WIDTH]       (GCL=0 skips gitlab-ci-local)
#
# Needs gitlab-ci-local 4.60.0 (`npm install -g gitlab-ci-local@4.60.0`; newer versions need
# Node 22) and rsync; installs them when missing and allowed (root).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-200}"
WIDTH="${2:-20}"
if ! command -v rsync >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null
fi
GCL="${GCL:-1}"
if [ "$GCL" = 1 ] && ! command -v gitlab-ci-local >/dev/null; then
    npm install -g --silent gitlab-ci-local@4.60.0
fi
cargo build --release -q
GANTRY="$PWD/target/release/gantry"
DIR="$(mktemp -d)"
[ -n "${KEEP:-}" ] && echo "kept $DIR" || trap 'rm -rf "$DIR"' EXIT

python3 - "$DIR" "$JOBS" "$WIDTH" <<'PY'
import random, sys
out, jobs, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261123)
layers = [[f"j{l}_{i}" for i in range(width)] for l in range((jobs + width - 1) // width)]
with open(f"{out}/.gitlab-ci.yml", "w") as f:
    f.write("stages: [" + ", ".join(f"s{l}" for l in range(len(layers))) + "]\n")
    for l, layer in enumerate(layers):
        for job in layer:
            f.write(f"{job}:\n  stage: s{l}\n")
            if l:
                f.write(f"  needs: [{', '.join(sorted(rng.sample(layers[l - 1], 2)))}]\n")
            f.write(f"  script:\n    - echo {job}\n")
with open(f"{out}/Makefile", "w") as f:
    names = [j for layer in layers for j in layer]
    f.write(".PHONY: all " + " ".join(names) + "\n")
    f.write("all: " + " ".join(layers[-1]) + "\n")
    rng = random.Random(20261123)
    for l, layer in enumerate(layers):
        for job in layer:
            ns = sorted(rng.sample(layers[l - 1], 2)) if l else []
            f.write(f"{job}: {' '.join(ns)}\n\t@bash -e -c 'echo {job}' >/dev/null\n")
PY
(cd "$DIR" && git init -q -b main && git add -A && git -c user.name=b -c user.email=b@e commit -qm dag)

echo "$JOBS jobs, medians of 5 alternating runs (target: gantry <= 2x make -j2 wall):"
python3 bench/compare.py 5 "$DIR" \
    "make -j2=make -s -j2 -f Makefile all" \
    "gantry run=$GANTRY -q run .gitlab-ci.yml --state-dir $DIR/.gantry --max-parallel 2"
if [ "$GCL" = 1 ]; then
    echo "against gitlab-ci-local (medians of 2; target: gantry at least 100x faster):"
    python3 bench/compare.py 2 "$DIR" \
        "gantry run=$GANTRY -q run .gitlab-ci.yml --state-dir $DIR/.gantry --max-parallel 2" \
        "gitlab-ci-local=gitlab-ci-local --concurrency 2 --force-shell-executor"
fi
