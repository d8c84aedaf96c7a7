#!/usr/bin/env bash
# Experiment analysis at scale on the embedded store (bench/analysis.py): UNITS exposed units
# and EVENTS product events over DAYS days sent through /batch, then the results timed: the
# first full analysis, the page again, and a refresh after a day of new data.
#
# Usage: UNITS=1000000 EVENTS=20000000 DAYS=30 bench/analysis.sh   (the issue's scale)
#        bench/analysis.sh                                          (100,000 and 2,000,000)
#        VEXIL_BIN=/path/to/vexil bench/analysis.sh
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
start_server analysis
python3 "$root/bench/analysis.py" "$base" "$admin" "$pid" "${UNITS:-100000}" "${EVENTS:-2000000}" "${DAYS:-30}"
