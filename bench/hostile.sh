#!/usr/bin/env bash
# Hostile clients against the release server, measured from outside (bench/hostile.py): an event
# flood of 8 x 100,000 events with the public client key (answers, peak and settled RSS from
# /proc/<pid>/status, a management write in the middle) and 1,100 half-sent requests (does an
# ordinary request get through; are they closed).
#
# Usage: bench/hostile.sh                 (builds and measures this checkout)
#        VEXIL_BIN=/path/to/vexil bench/hostile.sh   (measures another build, e.g. a baseline)
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
if [[ -z ${VEXIL_BIN:-} ]]; then
    cargo build --release --quiet -p vexil --manifest-path "$root/Cargo.toml"
    target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    VEXIL_BIN=$target/release/vexil
fi

tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# The slow-client part opens 1,100 connections besides the server's own descriptors.
ulimit -n 4096 2>/dev/null || true
VEXIL_LOG=error "$VEXIL_BIN" serve --db "$tmp/hostile.db" --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do
    grep -q "listening on http://" "$tmp/out" && break
    sleep 0.05
done
base=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/out" | head -1)
[[ -n $base && -n $admin ]] || { echo "error: the server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
echo "server: $VEXIL_BIN ($base, pid $pid)"
python3 "$root/bench/hostile.py" "$base" "$admin" "$pid"
