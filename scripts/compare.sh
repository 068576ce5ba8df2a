#!/usr/bin/env bash
# Draws step 9's table (stream vs datagram, measured) for IPv4, IPv6 and unix sockets.
# Usage: scripts/compare.sh [FAMILY...]   (default: ipv4 ipv6 unix)
# Lesson: lessons/09-stream-vs-dgram.md
set -euo pipefail
cd "$(dirname "$0")/.."
# Wherever cargo builds (./target or CARGO_TARGET_DIR): scripts/bin.sh asks cargo.
step9=$(scripts/bin.sh step9_stream_vs_dgram)
families=("$@")
if [ ${#families[@]} -eq 0 ]; then
    families=(ipv4 ipv6 unix)
fi
for family in "${families[@]}"; do
    echo "== $family =="
    if command -v column >/dev/null; then
        "$step9" --family "$family" --format tsv | column -t -s $'\t'
    else
        "$step9" --family "$family" --format tsv
    fi
    echo
done
