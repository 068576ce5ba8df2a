#!/usr/bin/env bash
# Draws step 9's table (stream vs datagram, measured) for IPv4, IPv6 and unix sockets.
# Usage: scripts/compare.sh [FAMILY...]   (default: ipv4 ipv6 unix)
# Lesson: lessons/09-stream-vs-dgram.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p step9_stream_vs_dgram
families=("$@")
if [ ${#families[@]} -eq 0 ]; then
    families=(ipv4 ipv6 unix)
fi
for family in "${families[@]}"; do
    echo "== $family =="
    if command -v column >/dev/null; then
        target/debug/step9_stream_vs_dgram --family "$family" --format tsv | column -t -s $'\t'
    else
        target/debug/step9_stream_vs_dgram --family "$family" --format tsv
    fi
    echo
done
