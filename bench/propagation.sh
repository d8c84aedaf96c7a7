#!/usr/bin/env bash
# Cross-node propagation on one PostgreSQL: three `vexil serve` nodes share a fresh database;
# a flag is changed 100 times through the first node while the other two hold flag streams
# open (crates/vexil-server/examples/propagation.rs). Prints p50/p99/max of change -> stream
# event on the followers.
#
# Usage: bench/propagation.sh                    (this checkout's release build)
#        VEXIL_BIN=/path/to/vexil bench/propagation.sh   (another build, e.g. a baseline)
# Needs PostgreSQL at $PG (default postgres://postgres@127.0.0.1:5432), trust auth.
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
pg=${PG:-postgres://postgres@127.0.0.1:5432}
changes=${CHANGES:-100}
cargo build --release --quiet -p vexil-server --example propagation --manifest-path "$root/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [[ -z ${VEXIL_BIN:-} ]]; then
    cargo build --release --quiet -p vexil --manifest-path "$root/Cargo.toml"
    VEXIL_BIN=$target/release/vexil
fi

db=vexil_propagation_$$
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null

start() {
    local n=$1
    VEXIL_LOG=warn "$VEXIL_BIN" serve --db "$pg/$db" --listen 127.0.0.1:0 >"$tmp/$n.out" 2>"$tmp/$n.err" &
    pids+=($!)
    for _ in $(seq 400); do
        grep -q "listening on http://" "$tmp/$n.out" && return 0
        sleep 0.05
    done
    echo "error: node $n did not start" >&2; cat "$tmp/$n.err" >&2; exit 1
}
start a
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/a.out" | head -1)
start b
start c
base() { grep -o 'http://[0-9.:]*' "$tmp/$1.out" | head -1; }
a=$(base a) b=$(base b) c=$(base c)

api() { curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }
api -XPOST "$a/api/v1/projects" -d '{"name": "Propagation"}' >/dev/null
key=$(api -XPOST "$a/api/v1/projects/propagation/deployments" -d '{"label": "prod", "type": "server"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
api -XPOST "$a/api/v1/flags" -d '{"project": "propagation", "name": "Moving", "key": "moving",
    "evaluation_mode": "local", "deployments": ["prod"],
    "all_other_users": {"percentage": 50, "weights": {"on": 1}}}' >/dev/null
api -XPOST "$a/api/v1/flags/moving/activate" -H 'If-Match: "1"' >/dev/null
# The followers learn of the new deployment at their next poll at the latest.
for node in "$b" "$c"; do
    for _ in $(seq 100); do
        curl -sf -H "Authorization: Api-Key $key" "$node/sdk/v2/flags" | grep -q moving && break
        sleep 0.1
    done
done
echo "nodes: $VEXIL_BIN x3 on $db"
"$target/release/examples/propagation" "$a" "$b,$c" "$key" "$admin" moving "$changes"
