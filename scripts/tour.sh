#!/usr/bin/env bash
# The whole course in one terminal: builds once, then runs every finished step's --demo in
# order. Each demo runs its own peers and exits on its own.
#
#   scripts/tour.sh            # every step
#   scripts/tour.sh 3          # from step 3 on
set -euo pipefail
cd "$(dirname "$0")/.."

from=${1:-1}
steps=(
  step1_create
  step2_bind
  step3_listen
  step4_accept
  step5_recv_send
  step6_close
  step7_connect
  step8_udp
  step9_stream_vs_dgram
  step10_many_clients
  step11_framing
  step12_addresses
  step13_dead_peers
)

cargo build -q --workspace --bins
for crate in "${steps[@]}"; do
  number=${crate#step}
  number=${number%%_*}
  [ "$number" -ge "$from" ] || continue
  echo
  echo "################ cargo run -q -p $crate -- --demo"
  cargo run -q -p "$crate" -- --demo "${@:2}"
done
