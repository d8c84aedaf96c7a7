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
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
# The slow-client part opens 1,100 connections besides the server's own descriptors.
ulimit -n 4096 2>/dev/null || true
start_server hostile
python3 "$root/bench/hostile.py" "$base" "$admin" "$pid"
