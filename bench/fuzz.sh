#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600), one after another, from a seed
# corpus built from the conformance data and the fixtures, and reports crashes.
#
#   bench/fuzz.sh [SECONDS] [TARGET…]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Corpora grow under
# fuzz/corpus/<target>/ (not committed); crashes land in fuzz/artifacts/<target>/ and each one
# becomes a regression test (ci-config/tests/no_panic.rs and friends). Exit status: 0 no crash,
# 1 a target crashed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
seconds="${1:-600}"
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(load_workflow load_gitlab load_circleci expressions rules_if webhooks env_files)
fi
conformance="${GANTRY_CONFORMANCE_DIR:-$root/../shared/conformance}"

# --- seed corpora ------------------------------------------------------------------------------
seed() { # seed TARGET NAME < content
    mkdir -p "fuzz/corpus/$1"
    cat >"fuzz/corpus/$1/seed-$2"
}
seed_files() { # seed_files TARGET FILE…
    local target=$1 f
    shift
    for f in "$@"; do
        [[ -f $f ]] || continue
        seed "$target" "$(printf '%s' "$f" | sha256sum | cut -c1-16)" <"$f"
    done
}

shopt -s nullglob globstar
seed_files load_workflow tests/github/*/.github/workflows/*.yml \
    "$conformance"/workflow-reader/*.yml "$conformance"/schema-tests/**/*github*/**/*.yml
seed_files load_gitlab tests/gitlab/*/.gitlab-ci.yml tests/gitlab/*/**/*.yml \
    "$conformance"/schema-tests/**/*gitlab*/**/*.yml
seed_files load_circleci tests/circleci/*/.circleci/config.yml "$conformance"/circleci-validate/*.yml \
    "$conformance"/schema-tests/**/*circleci*/**/*.yml
# Expressions and `rules:if` conditions: one seed per expression in the data.
if [[ -d $conformance/expressions ]]; then
    python3 - "$conformance/expressions" fuzz/corpus/expressions <<'PY'
import json, pathlib, sys, hashlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for f in src.glob("*.json"):
    for cases in json.loads(f.read_text()).values():
        for case in cases:
            e = case["expr"].encode()
            (out / ("seed-" + hashlib.sha256(e).hexdigest()[:16])).write_bytes(e)
PY
fi
grep -ho "if: .*" tests/gitlab/*/.gitlab-ci.yml 2>/dev/null | sed -e 's/^if: //' -e "s/^'\(.*\)'$/\1/" |
    while IFS= read -r cond; do
        printf '%s' "$cond" | seed rules_if "$(printf '%s' "$cond" | sha256sum | cut -c1-16)"
    done
i=0
for f in ci-vcs/tests/data/*.json; do
    for selector in 0 1 2 3 4 8 16; do
        { printf "\\x$(printf %02x $selector)"; cat "$f"; } | seed webhooks "$i-$selector"
    done
    i=$((i + 1))
done
printf '{"ref":"refs/heads/main","after":"%040d","repository":{"full_name":"o/r"}}' 0 | seed webhooks push
printf '\x01{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"%040d","project":{"path_with_namespace":"g/p"}}' 0 | seed webhooks gitlab-push
printf 'A=1\nB<<EOF\nline\nEOF\nC=x=y\n' | seed env_files heredoc
printf 'export KEY="quoted value"\n# comment\nEMPTY=\n' | seed env_files dotenv
printf '/usr/local/bin\n\n/opt/tool/bin\n' | seed env_files path

# --- run ---------------------------------------------------------------------------------------
crashed=()
for target in "${targets[@]}"; do
    printf '\n==> %s for %ss (%s seeds)\n' "$target" "$seconds" "$(ls "fuzz/corpus/$target" 2>/dev/null | wc -l)"
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/artifacts/$target/last-run.log"
    if (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | tr '\n' ' '
        grep -E '#[0-9]+.*(cov|DONE)' "$log" | tail -1
    else
        crashed+=("$target")
        echo "CRASH: see $log and fuzz/artifacts/$target/"
        tail -30 "$log"
    fi
done
echo
if ((${#crashed[@]})); then
    echo "crashed: ${crashed[*]}"
    exit 1
fi
echo "no crash in ${targets[*]} (${seconds}s each)"
