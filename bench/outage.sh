#!/usr/bin/env bash
# Event ingestion through an outage of PostgreSQL, measured from outside: a throwaway cluster
# (this machine's PostgreSQL 15, initdb into a temporary directory, a free port), the release
# server on it with a state directory, then
#   1. batches with the database up (the baseline answer latencies);
#   2. the cluster stopped hard (pg_ctl stop -m immediate) and batches sent meanwhile: their
#      answers and latencies, and the spool's size on disk;
#   3. the cluster started again: how long the spool takes to drain, and a count of the stored
#      rows with psql (every event exactly once, and again after a client re-sends batches).
#
# Usage: bench/outage.sh                        (builds and measures this checkout)
#        BATCHES=500 EVENTS=100 CONCURRENCY=4 bench/outage.sh
#        VEXIL_BIN=/path/to/vexil bench/outage.sh
set -euo pipefail

BATCHES=${BATCHES:-500}
EVENTS=${EVENTS:-100}
CONCURRENCY=${CONCURRENCY:-4}
BASELINE=${BASELINE:-100}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
if [[ -z ${VEXIL_BIN:-} ]]; then
    cargo build --release --quiet -p vexil --manifest-path "$root/Cargo.toml"
    target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    VEXIL_BIN=$target/release/vexil
fi
[[ -x $PG_BIN/initdb ]] || { echo "error: no PostgreSQL binaries in $PG_BIN (set PG_BIN)" >&2; exit 1; }

tmp=$(mktemp -d)
pgdir=$(mktemp -d)
pid=
# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_ctl() { as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" "$@"; }
cleanup() {
    # The server stops (SIGTERM) before the cluster goes, so that a failed shutdown shows.
    if [[ -n $pid ]] && kill "$pid" 2>/dev/null; then
        wait "$pid" || { echo "error: the server exited with status $?" >&2; tail -20 "$tmp/err" >&2; }
    fi
    pg_ctl stop -m immediate >/dev/null 2>&1 || true
    rm -rf "$tmp" "$pgdir"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] && chown postgres "$pgdir"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PG_BIN/initdb" -D "$pgdir/data" -U vexil --auth=trust -E UTF8 >/dev/null
start_pg() {
    pg_ctl start -w -l "$pgdir/log" -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1" >/dev/null
}
start_pg
url="postgres://vexil@127.0.0.1:$port/postgres"
psql() { "$PG_BIN/psql" "$url" -XtAq "$@"; }

VEXIL_LOG=warn "$VEXIL_BIN" serve --db "$url" --listen 127.0.0.1:0 --state-dir "$tmp/state" \
    --sync-interval-ms 500 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do
    grep -q "listening on http://" "$tmp/out" && break
    sleep 0.05
done
base=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/out" | head -1)
[[ -n $base && -n $admin ]] || { echo "error: the server did not start" >&2; cat "$tmp/err" >&2; exit 1; }

api() {
    local method=$1 path=$2 body=${3:-}
    curl -sf -X "$method" "$base$path" -H "Authorization: Bearer $admin" \
        -H 'content-type: application/json' -H 'If-Match: "1"' ${body:+-d "$body"}
}
project=$(api POST /api/v1/projects '{"name": "Outage bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
key=$(api POST "/api/v1/projects/$project/deployments" '{"label": "prod", "type": "server"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
api POST /api/v1/flags "{\"project\": \"$project\", \"key\": \"bench\", \"name\": \"bench\", \"deployments\": [\"prod\"],
    \"all_other_users\": {\"percentage\": 100, \"weights\": {\"on\": 1}}}" >/dev/null
api POST /api/v1/flags/bench/activate >/dev/null

# Sends batches of $EVENTS exposures over $CONCURRENCY keep-alive connections; every event has
# its own insert id (`<prefix>-<batch>-<event>`). Prints the answers and latencies as JSON.
send() {
    python3 - "$base" "$key" "$1" "$2" "$EVENTS" "$CONCURRENCY" <<'PY'
import http.client, json, sys, threading, time, urllib.parse
base, key, prefix, batches, events, workers = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
host = urllib.parse.urlparse(base).netloc
results, lock, next_batch = [], threading.Lock(), iter(range(batches))
def work():
    conn = http.client.HTTPConnection(host, timeout=60)
    while True:
        with lock:
            b = next(next_batch, None)
        if b is None:
            return
        body = json.dumps({"api_key": key, "events": [
            {"event_type": "$exposure", "user_id": f"{prefix}-u{b}-{e}", "insert_id": f"{prefix}-{b}-{e}",
             "event_properties": {"flag_key": "bench", "variant": "on"}} for e in range(events)]})
        started = time.perf_counter()
        try:
            conn.request("POST", "/2/httpapi", body, {"content-type": "application/json"})
            r = conn.getresponse(); r.read(); status = r.status
        except Exception:
            conn.close(); conn = http.client.HTTPConnection(host, timeout=60); status = 0
        with lock:
            results.append((status, (time.perf_counter() - started) * 1000))
began = time.perf_counter()
threads = [threading.Thread(target=work) for _ in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
took = time.perf_counter() - began
lat = sorted(ms for _, ms in results)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
statuses = {}
for s, _ in results: statuses[str(s)] = statuses.get(str(s), 0) + 1
print(json.dumps({"batches": len(results), "statuses": statuses, "seconds": round(took, 2),
    "p50_ms": round(pick(0.5), 1), "p90_ms": round(pick(0.9), 1), "p99_ms": round(pick(0.99), 1),
    "max_ms": round(lat[-1], 1)}))
PY
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }
ready() { curl -s "$base/readyz"; }
rows() { psql -c "SELECT count(*), count(DISTINCT insert_id) FROM exposures WHERE project = '$project'"; }

echo "server: $VEXIL_BIN ($base), PostgreSQL 15 on port $port"
echo "batches of $EVENTS events with insert ids, $CONCURRENCY at a time"
up=$(send up "$BASELINE")
echo "database up:   $BASELINE batches: $up"

pg_ctl stop -m immediate >/dev/null
down=$(send down "$BATCHES")
echo "database down: $BATCHES batches: $down"
spool=$(field "$(ready)" '["spool"]["bytes"]')
ondisk=$(du -sb "$tmp/state/spool" | cut -f1)
echo "spool: $spool bytes of records ($ondisk bytes on disk) for $((BATCHES * EVENTS)) events"

began=$(date +%s.%N)
start_pg
while :; do
    r=$(ready)
    [[ $(field "$r" '["spool"]["bytes"]') == 0 && $(field "$r" '["store"]') == reachable ]] && break
    if (($(date +%s) - ${began%.*} > 300)); then echo "error: the spool did not drain: $r" >&2; exit 1; fi
    sleep 0.1
done
drained=$(python3 -c "import sys,time; print(round(time.time() - float(sys.argv[1]), 2))" "$began")
echo "database restarted: spool drained ${drained}s after pg_ctl start (crash recovery included)"

expected=$(((BASELINE + BATCHES) * EVENTS))
stored=$(rows)
echo "stored rows (count, distinct insert ids): ${stored/|/, } of $expected events sent"
# A client that never saw its answers sends the outage's first batches again.
again=$(send down $((BATCHES < 50 ? BATCHES : 50)))
echo "re-sent $((BATCHES < 50 ? BATCHES : 50)) of the outage's batches: $again"
after=$(rows)
echo "stored rows after the re-send: ${after/|/, }"
if [[ $stored == "$expected|$expected" && $after == "$stored" ]]; then
    echo "no event lost, none stored twice"
else
    echo "error: expected $expected rows with as many insert ids" >&2
    exit 1
fi
