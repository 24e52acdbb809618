#!/usr/bin/env bash
# Jobs on remote agents: a generated layered DAG (default 200 jobs, 20 per layer, each
# `true`) run by a release gantry-server twice in one script — once with its jobs on the
# server's own host executor, once dispatched to two `gantry-server agent` processes (the agent of `gantry agent`) on
# loopback (capacity 2 each) — and the per-job dispatch overhead and throughput of each.
#
#   bench/agents.sh [JOBS] [WIDTH]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-200}"
WIDTH="${2:-20}"
cargo build --release -q -p gantry-server
SERVER="$PWD/target/release/gantry-server"
DIR="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT

python3 - "$DIR" "$JOBS" "$WIDTH" <<'PY'
import os, sys
out, jobs, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{out}/repo/.github/workflows")
lines = ["on: push", "jobs:"]
layers = (jobs + width - 1) // width
for l in range(layers):
    for i in range(width):
        if l * width + i >= jobs:
            break
        lines.append(f"  j{l}_{i}:")
        lines.append("    runs-on: linux")
        if l > 0:
            lines.append(f"    needs: [j{l-1}_{i}, j{l-1}_{(i+1) % width}]")
        lines.append("    steps:\n      - run: 'true'")
open(f"{out}/repo/.github/workflows/ci.yml", "w").write("\n".join(lines) + "\n")
PY
git -C "$DIR/repo" init -q -b main
git -C "$DIR/repo" add -A
git -C "$DIR/repo" -c user.name=bench -c user.email=bench@example.com commit -q -m bench
SHA=$(git -C "$DIR/repo" rev-parse HEAD)

run_once() { # $1: mode (host|agents)
    local mode=$1 port state
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    state="$DIR/state-$mode"
    {
        echo "listen = \"127.0.0.1:$port\""
        echo "state_dir = \"$state\""
        echo "workers = 1"
        echo "rate_limit_per_minute = 0"
        if [ "$mode" = agents ]; then
            printf '[agents]\ntoken_env = "BENCH_AGENT_TOKEN"\n[executors]\nlinux = "agent:linux"\n'
        else
            printf '[executors]\nlinux = "host"\n'
        fi
        printf '[tokens]\nanonymous_read = true\n[[forges]]\nkind = "github"\nsecret_env = "BENCH_SECRET"\n'
    } > "$DIR/$mode.toml"
    BENCH_SECRET=s BENCH_AGENT_TOKEN=t RUST_LOG=warn "$SERVER" --config "$DIR/$mode.toml" 2>"$DIR/$mode.log" &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    if [ "$mode" = agents ]; then
        for name in a1 a2; do
            BENCH_AGENT_TOKEN=t RUST_LOG=warn "$SERVER" agent --server "http://127.0.0.1:$port" --token-env BENCH_AGENT_TOKEN \
                --name $name --label linux --capacity 2 2>"$DIR/$name.log" &
            PIDS+=($!)
        done
        sleep 1
    fi
    python3 - "$port" "$SHA" "$DIR/repo" "$mode" "$JOBS" <<'PY'
import hashlib, hmac, json, sys, time, urllib.request
port, sha, repo, mode, jobs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
base = f"http://127.0.0.1:{port}"
body = json.dumps({"ref": "refs/heads/main", "before": "0" * 40, "after": sha,
    "repository": {"full_name": "bench/app", "name": "app", "owner": {"login": "bench"},
                   "clone_url": f"file://{repo}"}, "sender": {"login": "bench"}}).encode()
sig = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
req = urllib.request.Request(base + "/hooks/github", data=body, method="POST", headers={
    "X-GitHub-Event": "push", "X-GitHub-Delivery": f"bench-{mode}", "X-Hub-Signature-256": sig})
urllib.request.urlopen(req).read()
while True:
    runs = json.load(urllib.request.urlopen(base + "/api/runs"))["runs"]
    if runs and runs[0]["status"] in ("success", "failure", "cancelled"):
        break
    time.sleep(0.2)
r = runs[0]
if r["status"] != "success":
    run = json.load(urllib.request.urlopen(base + "/api/runs/" + r["id"]))
    bad = [j for j in run["jobs"] if j["status"] != "success"]
    print(f"{mode}: {len(bad)} jobs did not succeed; errors: {run['errors'][:3]}")
    if bad:
        log = urllib.request.urlopen(f"{base}/api/runs/{r['id']}/jobs/{bad[0]['id']}/log").read().decode()
        print(f"{bad[0]['id']} ({bad[0]['status']}):\n{log[-2000:]}")
took = (r["finished_at"] - r["started_at"]) / 1000
print(f"{mode}: {r['status']} — {jobs} jobs in {took:.2f}s ({jobs / took:.1f} jobs/s, {took / jobs * 1000:.1f} ms per job)")
open(f"/tmp/bench-agents-{mode}", "w").write(str(took))
PY
}
run_once host
run_once agents
python3 - "$JOBS" <<'PY'
import sys
jobs = int(sys.argv[1])
host = float(open("/tmp/bench-agents-host").read())
agents = float(open("/tmp/bench-agents-agents").read())
print(f"dispatch to agents: {agents / host:.2f}x the host executor; {(agents - host) / jobs * 1000:.1f} ms of overhead per job")
PY
