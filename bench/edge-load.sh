#!/usr/bin/env bash
# Load test of `vexil edge` next to the `vexil serve` it follows, in the same run, on loopback.
#
# Starts `vexil serve` (SQLite) with 50 realistic flags (bench/sdk_seed.py) and a `vexil edge`
# following its deployment, waits until the edge serves the server's revision, then drives
# GET /sdk/v2/vardata with a different user on every request (bench/vardata.lua) against each,
# alternating, with `wrk -t2 -c64 -d10s --latency`, three runs each, and reports the medians:
# requests/s, p99 latency, and the process's CPU time per request (from /proc/<pid>/stat).
# OFREP bulk (bench/ofrep.lua) is measured the same way with OFREP=1.
#
# Usage: bench/edge-load.sh      (DURATION=10s RUNS=3 TRACK=no-track OFREP=0)
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
duration=${DURATION:-10s}
runs=${RUNS:-3}
export TRACK=${TRACK:-no-track}

cargo build --release --quiet -p vexil --manifest-path "$root/Cargo.toml"
bin=$CARGO_TARGET_DIR/release

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# Starts a process in the background and waits for the line with its address.
start() {
    local out=$1; shift
    "$@" >"$out" 2>"$out.err" &
    pids+=($!)
    for _ in $(seq 200); do
        grep -q "listening on http://" "$out" && return 0
        sleep 0.05
    done
    echo "error: $* did not start" >&2; cat "$out.err" >&2; exit 1
}

VEXIL_LOG=warn start "$tmp/vexil.out" "$bin/vexil" serve --db "$tmp/load.db" --listen 127.0.0.1:0
vexil_pid=${pids[-1]}
vexil=$(grep -o 'http://[0-9.:]*' "$tmp/vexil.out" | head -1)
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/vexil.out" | head -1)

export KEY=$(python3 "$root/bench/sdk_seed.py" "$vexil" "$admin" "$tmp")
export USERS=$tmp/users.txt CONTEXTS=$tmp/contexts.txt

VEXIL_LOG=warn start "$tmp/edge.out" "$bin/vexil" edge --upstream "$vexil" --key "$KEY" \
    --listen 127.0.0.1:0 --data-dir "$tmp/edge"
edge_pid=${pids[-1]}
edge=$(grep -o 'http://[0-9.:]*' "$tmp/edge.out" | head -1)

# The edge serves what the server serves: the same flags ETag.
etag() { curl -s -o /dev/null -D - -H "Authorization: Api-Key $KEY" "$1/sdk/v2/flags" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}'; }
for _ in $(seq 200); do
    [[ -n $(etag "$edge") && $(etag "$edge") == $(etag "$vexil") ]] && break
    sleep 0.05
done
[[ $(etag "$edge") == $(etag "$vexil") ]] || { echo "error: the edge does not follow the server" >&2; cat "$tmp/edge.out.err" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run: prints "rps p99_ms cpu_us_per_request".
run() {
    local pid=$1 url=$2 script=$3
    local before after out
    before=$(ticks "$pid")
    out=$(wrk -t2 -c64 -d"$duration" --latency -s "$script" "$url")
    after=$(ticks "$pid")
    if grep -q "Non-2xx" <<<"$out"; then echo "error: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
    local rps requests p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    python3 -c "print(f'{$rps:.0f} {$p99:.2f} {($after - $before) / $hz / $requests * 1e6:.1f}')"
}

# The same endpoint on the server and on the edge, runs alternating so that both see the
# same machine; prints the medians of each.
compare() {
    local name=$1 path=$2 script=$3
    local served=() edged=()
    wrk -t2 -c64 -d2s -s "$script" "$vexil$path" >/dev/null   # warm-up
    wrk -t2 -c64 -d2s -s "$script" "$edge$path" >/dev/null
    for _ in $(seq "$runs"); do
        served+=("$(run "$vexil_pid" "$vexil$path" "$script")")
        edged+=("$(run "$edge_pid" "$edge$path" "$script")")
    done
    for which in serve edge; do
        if [[ $which == serve ]]; then rows=("${served[@]}"); else rows=("${edged[@]}"); fi
        printf '%s\n' "${rows[@]}" | python3 -c "
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
m = [statistics.median(c) for c in zip(*rows)]
print(f'{\"$name on vexil $which\":<32} {m[0]:>10.0f} req/s   p99 {m[1]:>6.2f} ms   {m[2]:>6.1f} us CPU/request   runs: ' + '; '.join(f'{r[0]:.0f}' for r in rows))
"
    done
}

echo "== wrk -t2 -c64 -d$duration, $runs runs each, alternating, medians (tracking: $TRACK)"
compare "vardata, 50 flags" "/sdk/v2/vardata" "$root/bench/vardata.lua"
if [[ ${OFREP:-0} == 1 ]]; then
    compare "OFREP bulk, 50 flags" "/ofrep/v1/evaluate/flags" "$root/bench/ofrep.lua"
fi

echo "== memory"
for which in vexil_pid edge_pid; do
    echo "${which%_pid}: $(grep -E 'VmRSS|VmHWM' "/proc/${!which}/status" | tr -s ' \n' ' ')"
done
