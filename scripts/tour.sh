#!/usr/bin/env bash
# The whole course in one terminal: builds once, then runs every finished step's --demo in
# order. Each demo runs its own peers and exits on its own. On a terminal the tour waits for
# Enter before each next step (Ctrl-D or Ctrl-C ends it there); into a pipe or a file it runs
# straight through.
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

pause=false
[ -t 0 ] && [ -t 1 ] && pause=true

cargo build -q --workspace --bins
shown=0
for crate in "${steps[@]}"; do
  number=${crate#step}
  number=${number%%_*}
  [ "$number" -ge "$from" ] || continue
  if [ "$pause" = true ] && [ "$shown" -gt 0 ]; then
    echo
    printf '%s' "-- Enter: step $number ($crate); Ctrl-D or Ctrl-C: stop here -- "
    if ! read -r _; then
      echo
      echo "tour stopped before step $number; go on later with: scripts/tour.sh $number"
      exit 0
    fi
  fi
  shown=$((shown + 1))
  echo
  echo "################ cargo run -q -p $crate -- --demo"
  cargo run -q -p "$crate" -- --demo "${@:2}"
done
