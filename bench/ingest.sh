#!/usr/bin/env bash
# Sustained event ingestion through /batch on the embedded store (bench/ingest.py): 300 batches
# of 1,000 product events from 4 clients; prints events/s and the server's memory.
#
# Usage: bench/ingest.sh                      (builds and measures this checkout)
#        VEXIL_BIN=/path/to/vexil bench/ingest.sh   (measures another build, e.g. a baseline)
#        BATCHES=N CLIENTS=N bench/ingest.sh
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
start_server ingest
python3 "$root/bench/ingest.py" "$base" "$admin" "$pid" "${BATCHES:-300}" "${CLIENTS:-4}"
echo "database: $(du -sh "$tmp" | cut -f1) on disk"
