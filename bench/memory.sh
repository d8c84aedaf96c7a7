#!/usr/bin/env bash
# Memory of `vexil serve` at scale: with 10,000 flags in one deployment (imported with
# `vexil flags import`: vexil-eval's realistic flags, 5 in 20 with targeting, 3 in 20 with a
# prerequisite), then with 10,000 flag streams open on top, on a second project's deployment
# of 51 flags (the `sse_fanout` example, which also times a change reaching all of them).
# Prints VmRSS and VmHWM at each step.
# Usage: bench/memory.sh [FLAGS] [STREAMS]      (default: 10000 10000; BIN=DIR, see below)
# To see where the memory goes, build `vexil` with `--features system-allocator` (heaptrack
# hooks malloc, which jemalloc's allocations bypass), run it under `heaptrack`, and stop it
# with SIGKILL at the step of interest: what was live then is reported as leaked.
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
flags=${1:-10000}
streams=${2:-10000}
ulimit -n "$(ulimit -Hn)"

# BIN=DIR runs the binaries in DIR (vexil, examples/sse_fanout, examples/heavy_fixture)
# instead of building this checkout: a baseline built earlier, measured in the same session.
if [[ -n ${BIN:-} ]]; then
    bin=$BIN
else
    cargo build --release --quiet -p vexil --manifest-path "$root/Cargo.toml"
    cargo build --release --quiet -p vexil-server --example sse_fanout --manifest-path "$root/Cargo.toml"
    cargo build --release --quiet -p vexil-eval --example heavy_fixture --manifest-path "$root/Cargo.toml"
    bin=$CARGO_TARGET_DIR/release
fi

tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin/examples/heavy_fixture" --realistic "$flags" "$tmp/flags.json"
VEXIL_LOG=warn "$bin/vexil" serve --db "$tmp/m.db" --listen 127.0.0.1:0 \
    --max-streams $((streams + 100)) --max-connections $((streams + 1000)) --max-connections-per-ip 0 \
    >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do grep -q "listening on" "$tmp/out" && break; sleep 0.05; done
base=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/out" | head -1)
api() { curl -sf -X "$1" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' ${3:+-d "$3"} "$base$2"; }
api POST /api/v1/projects '{"name": "Memory"}' >/dev/null
key=$(api POST /api/v1/projects/memory/deployments '{"label": "Production", "type": "server"}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
echo "== idle, no flags"
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"

start=$(date +%s.%N)
"$bin/vexil" flags import --db "$tmp/m.db" --file "$tmp/flags.json" --deployment Production >/dev/null
# Served once the running server has published the import: /sdk/v2/flags (local-mode flags and
# the flags they depend on) stops growing.
prev=-1
for _ in $(seq 600); do
    n=$(curl -sf -H "Authorization: Api-Key $key" "$base/sdk/v2/flags" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' || echo 0)
    [[ $n -gt 0 && $n -eq $prev ]] && break
    prev=$n
    sleep 0.5
done
echo "== $flags flags imported, $n served for local evaluation ($(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s from import to served)"
# A few remote evaluations, so the per-flag state of serving exists too.
for i in $(seq 20); do
    curl -sf -H "Authorization: Api-Key $key" "$base/sdk/v2/vardata?user_id=u$i" >/dev/null
done
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
# The allocator's background threads give freed pages back after its decay time (10 s): what
# stays resident after that is what the node holds.
sleep 12
echo "== settled"
grep -E 'VmRSS|RssAnon|RssFile' "/proc/$pid/status"

# The streams follow a deployment of 50 imported flags and one managed flag that changes.
api POST /api/v1/projects '{"name": "Streams"}' >/dev/null
skey=$(api POST /api/v1/projects/streams/deployments '{"label": "Edge", "type": "server"}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
"$bin/examples/heavy_fixture" --realistic 50 "$tmp/fifty.json"
"$bin/vexil" flags import --db "$tmp/m.db" --file "$tmp/fifty.json" --deployment Edge --project streams >/dev/null
version=$(api POST /api/v1/flags '{"project": "streams", "key": "fanout", "name": "Fanout", "evaluation_mode": "local", "deployments": ["edge"], "variants": [{"key": "on"}], "all_other_users": {"percentage": 50, "weights": {"on": 1}}}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
curl -sf -X POST -H "Authorization: Bearer $admin" -H "If-Match: \"$version\"" "$base/api/v1/flags/fanout/activate" >/dev/null
sleep 1
echo "== $streams flag streams open on 51 flags"
"$bin/examples/sse_fanout" "$base" "$skey" "$admin" fanout "$streams" >"$tmp/fanout" &
fanout=$!
# Sampled once every stream is open (the fan-out then changes the flag at once).
open=0
while kill -0 "$fanout" 2>/dev/null && [[ $open -lt $streams ]]; do
    sleep 0.2
    open=$(curl -sf -H "Authorization: Bearer $admin" "$base/metrics" | awk '$1 == "vexil_sse_streams_open" { print $2 }' || true)
done
grep -E 'VmRSS' "/proc/$pid/status"
wait "$fanout"
echo "== after a change reached them: $(cat "$tmp/fanout")"
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
