#!/usr/bin/env bash
# Sustained event ingestion through /batch on the embedded store (bench/ingest.py): 300 batches
# of 1,000 product events from 4 clients; prints events/s and the server's memory.
#
# Usage: bench/ingest.sh                      (builds and measures this checkout)
#        VEXIL_BIN=/path/to/vexil bench/ingest.sh   (measures another build, e.g. a baseline)
#        BATCHES=N CLIENTS=N bench/ingest.sh
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

VEXIL_LOG=error "$VEXIL_BIN" serve --db "$tmp/ingest.db" --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do
    grep -q "listening on http://" "$tmp/out" && break
    sleep 0.05
done
base=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/out" | head -1)
[[ -n $base && -n $admin ]] || { echo "error: the server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
echo "server: $VEXIL_BIN ($base, pid $pid)"
python3 "$root/bench/ingest.py" "$base" "$admin" "$pid" "${BATCHES:-300}" "${CLIENTS:-4}"
echo "database: $(du -sh "$tmp" | cut -f1) on disk"
