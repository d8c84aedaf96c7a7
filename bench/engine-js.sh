#!/usr/bin/env bash
# The engine on heavy configs against Amplitude's JS engine, on the same input in one run:
# 50 flags of 3 to 8 segments (regexes, sets, versions, numbers, cohorts, a third with a
# dependency) for 16 users. Prints microseconds per user for each engine and the ratio.
# Needs node and `npm ci` in tests/sdk-node (for @amplitude/experiment-core).
# Usage: bench/engine-js.sh
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
[[ -d $root/tests/sdk-node/node_modules/@amplitude/experiment-core ]] \
    || { echo "error: run (cd tests/sdk-node && npm ci) first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rust=$(cargo run --quiet --release -p vexil-eval --example heavy_fixture --manifest-path "$root/Cargo.toml" -- "$tmp/heavy.json")
js=$(node "$root/bench/engine-js.mjs" "$tmp/heavy.json")
echo "$rust"
echo "$js"
awk -v r="$(echo "$rust" | awk '{print $2}')" -v j="$(echo "$js" | awk '{print $3}')" \
    'BEGIN { printf "ratio: the JS engine takes %.1fx the time of vexil-eval\n", j / r }'
