#!/usr/bin/env bash
# The reference server under load: N signed GitHub push deliveries (default 1,000), each a
# distinct delivery, posted concurrently over loopback to a release build of gantry-server
# (SQLite, host jobs, 2 workers). Reports: deliveries accepted (202) and lost, acceptance
# latency p50/p99/max, how long until every run finished, and the server's peak RSS.
#
#   bench/server-load.sh [DELIVERIES] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000}"
CONCURRENCY="${2:-64}"
cargo build --release -q -p gantry-server
SERVER="$PWD/target/release/gantry-server"
DIR="$(mktemp -d)"
trap 'kill $(cat "$DIR/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$DIR"' EXIT

git init -q -b main "$DIR/repo"
mkdir -p "$DIR/repo/.github/workflows"
printf 'on: push\njobs:\n  hello:\n    runs-on: linux\n    steps:\n      - run: echo hello\n' > "$DIR/repo/.github/workflows/ci.yml"
git -C "$DIR/repo" add -A
git -C "$DIR/repo" -c user.name=bench -c user.email=bench@example.com commit -q -m bench
SHA=$(git -C "$DIR/repo" rev-parse HEAD)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$DIR/server.toml" <<TOML
listen = "127.0.0.1:$PORT"
state_dir = "$DIR/state"
workers = 2
worker_labels = ["linux"]
rate_limit_per_minute = 0
[tokens]
anonymous_read = true
[[forges]]
kind = "github"
secret_env = "BENCH_SECRET"
TOML
BENCH_SECRET=bench-secret RUST_LOG=warn "$SERVER" --config "$DIR/server.toml" 2>"$DIR/server.log" &
echo $! > "$DIR/pid"
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done

python3 - "$PORT" "$N" "$CONCURRENCY" "$SHA" "$DIR/repo" "$(cat "$DIR/pid")" <<'PY'
import concurrent.futures, hashlib, hmac, json, sys, time, urllib.request

port, n, conc, sha, repo, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
base = f"http://127.0.0.1:{port}"
body = json.dumps({
    "ref": "refs/heads/main", "before": "0" * 40, "after": sha,
    "repository": {"full_name": "bench/app", "name": "app", "owner": {"login": "bench"},
                   "default_branch": "main", "clone_url": f"file://{repo}"},
    "head_commit": {"id": sha, "message": "bench"}, "sender": {"login": "bench"},
}).encode()
signature = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()

def post(i):
    req = urllib.request.Request(base + "/hooks/github", data=body, method="POST", headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": f"bench-{i}",
        "X-Hub-Signature-256": signature, "Content-Type": "application/json"})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status = r.status
    except Exception as e:
        status = getattr(e, "code", str(e))
    return status, time.perf_counter() - t

start = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(conc) as pool:
    results = list(pool.map(post, range(n)))
posted = time.perf_counter() - start
latencies = sorted(t for _, t in results)
accepted = sum(1 for s, _ in results if s == 202)
pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

def runs_by_status():
    counts, cursor = {}, None
    while True:
        url = base + "/api/runs?limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = json.load(urllib.request.urlopen(url))
        for r in page["runs"]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        cursor = page["next"]
        if not cursor:
            return counts

while True:
    counts = runs_by_status()
    done = sum(v for k, v in counts.items() if k in ("success", "failure", "cancelled", "skipped"))
    if done >= accepted or time.perf_counter() - start > 1800:
        break
    time.sleep(1)
finished = time.perf_counter() - start
rss = next((l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")), "?")
print(f"deliveries: {n} posted with {conc} clients in {posted:.2f}s; accepted (202): {accepted}")
print(f"acceptance latency: p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, max {latencies[-1]*1000:.1f} ms")
print(f"runs: {sum(counts.values())} ({counts}); lost: {accepted - sum(counts.values())}")
print(f"every run finished {finished:.1f}s after the first post ({accepted / max(finished, 1e-9):.1f} runs/s)")
print(f"server peak RSS: {int(rss) / 1024:.1f} MiB" if rss != "?" else "server peak RSS: unknown")
PY
