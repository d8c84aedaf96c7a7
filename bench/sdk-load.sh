#!/usr/bin/env bash
# Load test of the SDK-facing API next to a hello-world axum server, on loopback.
#
# Starts `vexil serve` (SQLite) with 50 realistic flags (bench/sdk_seed.py), then drives
#   - GET /sdk/v2/vardata with a different user on every request (bench/vardata.lua),
#   - POST /ofrep/v1/evaluate/flags (bulk) with a different context each time (bench/ofrep.lua),
#   - GET / of the hello-world server (crates/vexil-server/examples/hello.rs),
# each with `wrk -t2 -c64 -d10s --latency`, three runs, and reports the medians: requests/s,
# p99 latency, and the server's CPU time per request (from /proc/<pid>/stat, which wrk sharing
# the cores does not disturb). Then the server's memory (VmRSS, VmHWM) and the time for a
# change to reach 1,000 open flag streams (crates/vexil-server/examples/sse_fanout.rs).
#
# Usage: bench/sdk-load.sh            (TRACK=track to measure with assignment tracking on;
#        VEXIL_LOG=info to measure at the default log level instead of warn; BIN=DIR to
#        measure binaries built before, see below)
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
duration=${DURATION:-10s}
runs=${RUNS:-3}
export TRACK=${TRACK:-no-track}
# The fan-out opens 1,000 streams: more descriptors than the usual soft limit of 1,024.
ulimit -n "$(ulimit -Hn)"

# BIN=DIR runs the binaries in DIR (vexil, examples/hello, examples/sse_fanout) instead of
# building this checkout: a baseline built earlier, measured in the same session.
if [[ -n ${BIN:-} ]]; then
    bin=$BIN
else
    cargo build --release --quiet -p vexil --manifest-path "$root/Cargo.toml"
    cargo build --release --quiet -p vexil-server --example hello --example sse_fanout --manifest-path "$root/Cargo.toml"
    bin=$CARGO_TARGET_DIR/release
fi

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# Starts a server in the background and waits for the line with its address.
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

# Room for the fan-out's 1,000 streams next to wrk's connections still closing (the default
# cap of 1,024 connections refused a few of them, and the fan-out then waited forever).
VEXIL_LOG=${VEXIL_LOG:-warn} start "$tmp/vexil.out" "$bin/vexil" serve --db "$tmp/load.db" --listen 127.0.0.1:0 \
    --max-connections 4096 --max-connections-per-ip 0
vexil_pid=${pids[-1]}
vexil=$(grep -o 'http://[0-9.:]*' "$tmp/vexil.out" | head -1)
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/vexil.out" | head -1)
start "$tmp/hello.out" "$bin/examples/hello"
hello_pid=${pids[-1]}
hello=$(grep -o 'http://[0-9.:]*' "$tmp/hello.out" | head -1)

export KEY=$(python3 "$root/bench/sdk_seed.py" "$vexil" "$admin" "$tmp")
export USERS=$tmp/users.txt CONTEXTS=$tmp/contexts.txt

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run: prints "rps p99_ms cpu_us_per_request".
run() {
    local pid=$1 url=$2 script=${3:-}
    local before after out
    before=$(ticks "$pid")
    if [[ -n $script ]]; then
        out=$(wrk -t2 -c64 -d"$duration" --latency -s "$script" "$url")
    else
        out=$(wrk -t2 -c64 -d"$duration" --latency "$url")
    fi
    after=$(ticks "$pid")
    if grep -q "Non-2xx" <<<"$out"; then echo "error: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
    local rps requests p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    python3 -c "print(f'{$rps:.0f} {$p99:.2f} {($after - $before) / $hz / $requests * 1e6:.1f}')"
}

# Three runs; prints the medians of each column.
bench() {
    local name=$1; shift
    local results=()
    wrk -t2 -c64 -d2s ${3:+-s "$3"} "$2" >/dev/null   # warm-up
    for _ in $(seq "$runs"); do results+=("$(run "$@")"); done
    printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
m = [statistics.median(c) for c in zip(*rows)]
print(f'{\"$name\":<28} {m[0]:>10.0f} req/s   p99 {m[1]:>6.2f} ms   {m[2]:>6.1f} us CPU/request   runs: ' + '; '.join(f'{r[0]:.0f}' for r in rows))
"
}

echo "== wrk -t2 -c$((64)) -d$duration, $runs runs, medians (tracking: $TRACK)"
bench "hello world (axum)" "$hello_pid" "$hello/"
bench "vardata, 50 flags" "$vexil_pid" "$vexil/sdk/v2/vardata" "$root/bench/vardata.lua"
bench "OFREP bulk, 50 flags" "$vexil_pid" "$vexil/ofrep/v1/evaluate/flags" "$root/bench/ofrep.lua"

echo "== memory of vexil serve"
grep -E 'VmRSS|VmHWM' "/proc/$vexil_pid/status"

echo "== SSE fan-out"
"$bin/examples/sse_fanout" "$vexil" "$KEY" "$admin" flag-00 1000
grep -E 'VmRSS|VmHWM' "/proc/$vexil_pid/status"
