#!/usr/bin/env bash
# Streams generated users through `vexil eval --users -` and reports wall time and peak memory.
#
# `vexil eval` reads and writes one line at a time, so its peak memory should not depend on
# the number of users: the script runs 10,000 and then 100,000 (or the counts given as
# arguments) and prints both figures side by side. The flags are the `project-realistic`
# engine vector (holdout, experiment, cohort release, prerequisite, group-level release).
#
# With --heavy it measures instead how close the command comes to the engine: the 50 heavy
# flags and 16 users of vexil-eval's `heavy` bench (its `heavy_fixture` example), the users
# repeated to 100,000 lines; it prints microseconds per user for the command (reading,
# evaluating, writing each line) and for the engine alone on the same flags and users.
#
# Usage: bench/eval-stream.sh [USERS...]      (default: 10000 100000)
#        bench/eval-stream.sh --heavy
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
shared="$root/../shared"
vector="$shared/vectors/engine/project-realistic.json"
[[ -f $vector ]] || { echo "error: $vector not found" >&2; exit 2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -p vexil --manifest-path "$root/Cargo.toml"
bin="$CARGO_TARGET_DIR/release/vexil"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["flags"], open(sys.argv[2], "w"))' \
    "$vector" "$tmp/flags.json"

# Writes N SDK users as JSON Lines, shaped like the vector's own users, from a fixed seed so
# that every run evaluates the same stream.
generate() {
    python3 - "$1" <<'PY'
import json, random, sys
n = int(sys.argv[1])
rnd = random.Random(42)
countries = ["United States", "Canada", "Germany", "Japan", "New Zealand", "France"]
platforms = ["iOS", "Android", "Web"]
plans = ["free", "pro", "enterprise"]
tags = ["beta", "power-user", "staff"]
write = sys.stdout.write
for i in range(n):
    user = {"user_id": f"user-{i}", "device_id": f"dev-{i}", "country": rnd.choice(countries),
            "platform": rnd.choice(platforms), "version": f"2.{rnd.randrange(4)}.{rnd.randrange(4)}",
            "user_properties": {"plan": rnd.choice(plans), "age": rnd.randrange(16, 80),
                                "tags": rnd.sample(tags, rnd.randrange(3))}}
    if i % 3 == 0:
        company = f"company-{rnd.randrange(50)}"
        user["groups"] = {"company": [company]}
        user["group_properties"] = {"company": {company: {"tier": rnd.choice(["startup", "enterprise"]),
                                                          "seats": rnd.randrange(1, 500)}}}
    write(json.dumps(user, separators=(",", ":")))
    write("\n")
PY
}

# Writes the stream to measure: N generated users, or the file given.
feed() {
    if [[ -n ${2:-} ]]; then cat "$2"; else generate "$1"; fi
}

# Runs vexil on `feed N [FILE]`; prints "<seconds> s, <KB> KB max RSS" and checks the line count.
measure() {
    local n=$1 file=${2:-}
    if [[ -x /usr/bin/time ]]; then
        feed "$n" "$file" \
            | /usr/bin/time -f '%e s, %M KB max RSS' -o "$tmp/time" \
                "$bin" eval --flags "$tmp/flags.json" --users - \
            | wc -l >"$tmp/lines"
        figures=$(cat "$tmp/time")
    else
        # Without GNU time: bash measures the wall time and /proc the peak resident set
        # (VmHWM), sampled until the process exits.
        local start end pid hwm=0 now
        start=$(date +%s.%N)
        "$bin" eval --flags "$tmp/flags.json" --users - < <(feed "$n" "$file") > >(wc -l >"$tmp/lines") &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            now=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $now ]] && hwm=$now
            sleep 0.01
        done
        wait "$pid"
        end=$(date +%s.%N)
        figures="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s, ${hwm} KB max RSS (sampled)"
    fi
    # The output is piped to wc, which may still be counting when the process exits.
    wait
    local lines
    lines=$(tr -d ' ' <"$tmp/lines")
    if [[ $lines != "$n" ]]; then
        echo "error: $n users gave $lines output lines" >&2
        exit 1
    fi
    echo "$figures"
}

if [[ ${1:-} == --heavy ]]; then
    cargo build --release -p vexil-eval --example heavy_fixture --manifest-path "$root/Cargo.toml"
    engine=$("$CARGO_TARGET_DIR/release/examples/heavy_fixture" "$tmp/heavy.json" --sdk "$tmp")
    for _ in $(seq 6250); do cat "$tmp/users.jsonl"; done >"$tmp/users100k.jsonl"
    start=$(date +%s.%N)
    "$bin" eval --flags "$tmp/flags.json" --users "$tmp/users100k.jsonl" >/dev/null
    end=$(date +%s.%N)
    echo "$engine"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "vexil eval: %.2f µs per user (100,000 lines of the same 16 users, written to /dev/null)\n", (e - s) * 1e6 / 100000 }'
    exit 0
fi

counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(10000 100000)

echo "flags: $(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/flags.json") from $vector"
for n in "${counts[@]}"; do
    # Piped from the generator, as a producer would feed it; the generator is slower than
    # vexil, so the same users are then read back from a file to time vexil alone.
    streamed=$(measure "$n")
    generate "$n" >"$tmp/users.jsonl"
    from_file=$(measure "$n" "$tmp/users.jsonl")
    rm "$tmp/users.jsonl"
    echo "vexil eval: $n users -> $n lines: generated on the fly $streamed; from a file $from_file"
done
