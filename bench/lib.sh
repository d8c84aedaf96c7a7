# Shared by the bench scripts that run one release server over a throwaway SQLite database.
# Source it after setting `root`; it sets VEXIL_BIN (built from `root` unless given), `tmp` (a
# directory removed on exit with the server), and `start_server NAME [ARGS…]`, which starts
# `vexil serve` over `$tmp/NAME.db` on port 0 and sets `pid`, `base` and `admin`.

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

start_server() {
    local name=$1
    shift
    VEXIL_LOG=error "$VEXIL_BIN" serve --db "$tmp/$name.db" --listen 127.0.0.1:0 "$@" \
        >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 200); do
        grep -q "listening on http://" "$tmp/out" && break
        sleep 0.05
    done
    base=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
    admin=$(grep -o 'vxm_[A-Za-z0-9]*' "$tmp/out" | head -1)
    [[ -n $base && -n $admin ]] || { echo "error: the server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
    echo "server: $VEXIL_BIN ($base, pid $pid)"
}
