#!/usr/bin/env bash
# Experiment analysis at scale on the embedded store (bench/analysis.py): UNITS exposed units and
# EVENTS product events sent through /batch, then the results computed on request, timed.
#
# Usage: UNITS=100000 EVENTS=2000000 bench/analysis.sh   (defaults: 100,000 and 1,000,000)
#        VEXIL_BIN=/path/to/vexil bench/analysis.sh
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
start_server analysis
python3 "$root/bench/analysis.py" "$base" "$admin" "$pid" "${UNITS:-100000}" "${EVENTS:-1000000}"
