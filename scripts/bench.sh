#!/usr/bin/env bash
# Step 10's benchmark, in one go, on loopback, in release mode (lessons/10-many-clients.md):
#
#   1. Round trips at C connections: the Python server written the seed's way, the Python
#      server with selectors, and step 10's three models (serial, threads, poll), each driven
#      by crates/loadgen with the same C, R and S. One table, with ratios to the Python ones.
#   2. Many idle connections held at once (BIG, 10,000 by default): poll, threads and Python
#      selectors; every round trip checked; the server's memory per idle connection.
#   3. Bulk throughput through the serial echo server for receive buffers of 1 byte to
#      64 KiB (--bufsize), as MB/s and as a bar chart; and iperf3 on the same loopback, when
#      it is installed.
#
#   scripts/bench.sh [OUT]          # OUT defaults to bench/mine/results.md
#
# Your run goes to bench/mine/ (git ignores it), beside the published run in bench/results.md,
# which lesson 10 quotes: compare the two side by side. A run never replaces bench/results.md
# (to publish one, copy it there by hand and update the lesson's numbers: a test checks that
# they agree).
#
# Settings (environment): C=100 R=2000 S=64 BIG=10000 BULK_SECONDS=2 LIMIT=120 (seconds a
# single run may take before it is stopped). Every run is bounded; the whole thing takes a
# minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."

published=bench/results.md
out=${1:-bench/mine/results.md}
case $out in
  -*) echo "usage: scripts/bench.sh [OUT]   (OUT defaults to bench/mine/results.md)" >&2; exit 2 ;;
esac
if [ -e "$out" ] && [ "$(realpath "$out")" = "$(realpath "$published")" ]; then
  echo "bench: $published holds the published numbers that lesson 10 quotes; write your run elsewhere (the default is bench/mine/results.md)" >&2
  exit 2
fi
C=${C:-100}
R=${R:-2000}
S=${S:-64}
BIG=${BIG:-10000}
BULK_SECONDS=${BULK_SECONDS:-2}
LIMIT=${LIMIT:-120}

say() { echo "bench: $*" >&2; }

say "building step10_many_clients and loadgen in release mode"
# Wherever cargo builds (./target or CARGO_TARGET_DIR): scripts/bin.sh asks cargo.
server_bin=$(scripts/bin.sh --release step10_many_clients)
loadgen=$(scripts/bin.sh --release loadgen)

# --- descriptors: 10,000 connections need 10,000 descriptors in the server and as many in
# the load generator (each process has its own limit).
need=$((BIG + 100))
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  say "the hard limit on open files is $hard, lower than the $need that $BIG connections need;"
  say "the many-connections run uses $((hard - 100)) connections instead (raise the hard limit, as root: ulimit -Hn $need)"
  BIG=$((hard - 100))
  ulimit -Sn "$hard"
elif [ "$soft" = unlimited ] || [ "$soft" -ge "$need" ]; then
  :
else
  ulimit -Sn "$need"
  say "raised the open-files limit from $soft to $need (the hard limit is $hard)"
fi

# --- python3: the real executable, past any pyenv shim.
python=""
if command -v python3 >/dev/null 2>&1; then
  python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
fi
[ -n "$python" ] || say "python3 is not installed: the Python baselines are skipped"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_server LOG COMMAND...: starts a server, waits (10 s at most) for its ready line, and
# sets server_pid and server_addr.
start_server() {
  local log=$1
  shift
  # The log exists before the server starts: the background job opens it only when it runs,
  # and a sed that looked first would fail (and set -e would end the whole benchmark).
  : >"$log"
  "$@" >"$log" 2>&1 &
  server_pid=$!
  server_addr=""
  local tries=0
  while [ -z "$server_addr" ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      say "the server exited before it was ready:"; cat "$log" >&2; return 1
    fi
    if [ "$tries" -ge 100 ]; then
      say "the server did not print its ready line within 10 s"; return 1
    fi
    # "ready: listening on 127.0.0.1:40321 (pid 1234)": the address is the word after "on".
    server_addr=$(sed -n 's/.*ready: listening on \([^ ]*\).*/\1/p' "$log" | head -1)
    tries=$((tries + 1))
    [ -n "$server_addr" ] || sleep 0.1
  done
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# kv FILE KEY: a value from loadgen --format kv.
kv() { sed -n "s/^$2=//p" "$1" | head -1; }

# The servers, by name.
server_command() {
  case $1 in
    python-seed) echo "$python scripts/seed_echo_server.py --backlog 4096" ;;
    python-selectors) echo "$python scripts/selectors_echo_server.py --backlog 4096" ;;
    serial | threads | poll) echo "$server_bin --model $1 --narrate 0 --backlog 4096" ;;
  esac
}

# load NAME RESULT LOADGEN-ARGS...: one server, one loadgen run, key=value lines in RESULT.
load() {
  local name=$1 result=$2
  shift 2
  # shellcheck disable=SC2046
  start_server "$tmp/$name.log" $(server_command "$name")
  say "$name at $server_addr: loadgen $*"
  if ! timeout $((LIMIT + 30)) "$loadgen" "$server_addr" --server-pid "$server_pid" \
    --timeout "$LIMIT" --format kv --label "$name" "$@" >"$result"; then
    say "$name: loadgen reported errors (they are in the table)"
  fi
  stop_server
}

names=(serial threads poll)
[ -n "$python" ] && names=(python-seed python-selectors "${names[@]}")

{
  echo "# Step 10 benchmark"
  echo
  echo "Measured by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d'): Linux $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), loopback only, release build${python:+, $("$python" --version 2>&1)}."
  echo "The servers and the load generator share the same CPUs."
} >"$tmp/report.md"

# --- 1. round trips at C connections
for name in "${names[@]}"; do
  load "$name" "$tmp/$name.kv" -c "$C" -r "$R" -s "$S" --quiet
done
us() { # us VALUE: "VALUE us", or - when loadgen left it out (too short a run to measure)
  if [ "$1" = - ] || [ -z "$1" ]; then echo -; else echo "$1 us"; fi
}
ratio() { # ratio A B: A/B with one decimal, or - when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.1f", a / b }'
}
{
  echo
  echo "## 1. $C connections, $R round trips each, $S bytes per message"
  echo
  echo "| server | round trips/s | vs Python seed | vs Python selectors | p50 | p99 | max | errors | server CPU per round trip | of it in the server's code | of it in the kernel | server peak RSS |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  seed_rate=""; selectors_rate=""
  [ -f "$tmp/python-seed.kv" ] && seed_rate=$(kv "$tmp/python-seed.kv" per_second)
  [ -f "$tmp/python-selectors.kv" ] && selectors_rate=$(kv "$tmp/python-selectors.kv" per_second)
  for name in "${names[@]}"; do
    f=$tmp/$name.kv
    rate=$(kv "$f" per_second)
    echo "| $name | $rate | $(ratio "$rate" "$seed_rate") | $(ratio "$rate" "$selectors_rate") | $(kv "$f" p50_us) us | $(kv "$f" p99_us) us | $(kv "$f" max_us) us | $(kv "$f" errors) | $(us "$(kv "$f" server_cpu_us_per_rt)") | $(us "$(kv "$f" server_user_us_per_rt)") | $(us "$(kv "$f" server_kernel_us_per_rt)") | $(kv "$f" server_peak_kib) KiB |"
  done
} >>"$tmp/report.md"

# --- 2. many connections, held open at once
big_names=(poll threads)
[ -n "$python" ] && big_names+=(python-selectors)
for name in "${big_names[@]}"; do
  load "$name" "$tmp/big-$name.kv" -c "$BIG" -r 10 -s "$S" --hold --connect-burst 256 --quiet
done
{
  echo
  echo "## 2. $BIG connections held open at once, 10 round trips each"
  echo
  echo "| server | connections open at once | round trips checked | errors | round trips/s | server RSS before | server RSS with all open | RSS per idle connection | virtual memory per connection | server threads |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for name in "${big_names[@]}"; do
    f=$tmp/big-$name.kv
    echo "| $name | $(kv "$f" peak_open) | $(kv "$f" round_trips) | $(kv "$f" errors) | $(kv "$f" per_second) | $(kv "$f" server_rss_before_kib) KiB | $(kv "$f" server_rss_held_kib) KiB | $(kv "$f" server_rss_per_conn_kib) KiB | $(kv "$f" server_virt_per_conn_kib) KiB | $(kv "$f" server_threads_held) |"
  done
} >>"$tmp/report.md"

# --- 3. bulk throughput against the receive buffer size
sizes=(1 4 16 64 256 1024 4096 16384 65536)
for size in "${sizes[@]}"; do
  start_server "$tmp/bulk-$size.log" "$server_bin" --model serial --narrate 0 --bufsize "$size"
  say "bulk through --bufsize $size at $server_addr"
  timeout $((LIMIT + 30)) "$loadgen" "$server_addr" --bulk "$BULK_SECONDS" -s 65536 --format kv \
    --label "$size" --quiet >"$tmp/bulk-$size.kv" || say "bulk $size: loadgen reported an error"
  stop_server
done
# iperf3 on the same loopback: one way (what iperf3 usually reports), and --bidir (a stream
# each way at once, as an echo moves them).
iperf() { # iperf MODE-ARGS...: prints MB/s per direction, or nothing
  # iperf3 takes no port 0: try a few random ports until its server listens on one.
  local port iperf_pid="" attempt
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    : >"$tmp/iperf3-server.log"
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$tmp/iperf3-server.log" 2>&1 &
    iperf_pid=$!
    # Ready when the port is in the kernel's table of listening sockets (iperf3 buffers its
    # "listening" line when writing to a file).
    # Without ss (iproute2), give it a second.
    listening() {
      if command -v ss >/dev/null 2>&1; then
        ss -Htln "( sport = :$port )" 2>/dev/null | grep -q .
      else
        sleep 1
      fi
    }
    for _ in $(seq 50); do
      listening && break
      kill -0 "$iperf_pid" 2>/dev/null || break # it exited: the port was taken
      sleep 0.1
    done
    listening && break
    say "iperf3 could not listen on port $port (attempt $attempt): $(head -1 "$tmp/iperf3-server.log")"
    kill "$iperf_pid" 2>/dev/null || true
    wait "$iperf_pid" 2>/dev/null || true
  done
  if timeout $((LIMIT + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$BULK_SECONDS" -J "$@" >"$tmp/iperf3.json" 2>/dev/null; then
    "$python" -c '
import json, sys
end = json.load(open(sys.argv[1]))["end"]
rates = [end[k]["bits_per_second"] for k in ("sum_received", "sum_received_bidir_reverse") if k in end]
print("%.1f" % (sum(rates) / len(rates) / 8e6))' "$tmp/iperf3.json"
  fi
  kill "$iperf_pid" 2>/dev/null || true
  wait "$iperf_pid" 2>/dev/null || true
}
iperf_rate=""
iperf_bidir=""
if command -v iperf3 >/dev/null 2>&1 && [ -n "$python" ]; then
  say "iperf3 on 127.0.0.1, one way, then both ways, $BULK_SECONDS s each"
  iperf_rate=$(iperf)
  iperf_bidir=$(iperf --bidir)
  [ -n "$iperf_rate" ] || say "iperf3 failed; its rows are left out"
elif ! command -v iperf3 >/dev/null 2>&1; then
  say "iperf3 is not installed: its rows are skipped (install it with: apt-get install -y iperf3)"
else
  say "iperf3 is installed but python3 (which reads its JSON report) is not: its rows are skipped"
fi
{
  echo
  echo "## 3. Bulk: one stream echoed through \`--model serial --bufsize N\` for $BULK_SECONDS s"
  echo
  echo "MB/s counts bytes that came back (1 MB = 10^6 bytes). \"Per recv\" is the time one"
  echo "recv() and its send() take together: N bytes divided by the rate."
  echo
  echo "| --bufsize | MB/s | per recv + send | errors |"
  echo "|---:|---:|---:|---:|"
  best=0
  for size in "${sizes[@]}"; do
    rate=$(kv "$tmp/bulk-$size.kv" mb_per_s)
    per=$(awk -v n="$size" -v r="$rate" 'BEGIN { if (r > 0) printf "%.2f us", n / r; else print "-" }')
    echo "| $size | $rate | $per | $(kv "$tmp/bulk-$size.kv" errors) |"
    best=$(awk -v a="$best" -v b="$rate" 'BEGIN { print (b > a) ? b : a }')
  done
  if [ -n "$iperf_rate" ]; then
    last=$(kv "$tmp/bulk-65536.kv" mb_per_s)
    percent() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }'; }
    echo "| iperf3, one way | $iperf_rate | | |"
    echo "| iperf3 --bidir, per direction | ${iperf_bidir:--} | | |"
    echo
    echo "At 64 KiB the echo brings back $(percent "$last" "$iperf_rate") of what iperf3 moves one way, and $(percent "$last" "$iperf_bidir") of what it moves in each direction when it sends both ways at once, as an echo does."
  else
    echo
    echo "(iperf3 is not installed: apt-get install -y iperf3, then run the script again.)"
  fi
  echo
  echo '```text'
  for size in "${sizes[@]}"; do
    rate=$(kv "$tmp/bulk-$size.kv" mb_per_s)
    awk -v n="$size" -v r="$rate" -v best="$best" 'BEGIN {
      width = (best > 0) ? int(50 * r / best + 0.5) : 0
      bar = ""; for (i = 0; i < width; i++) bar = bar "#"
      printf "%6s B %-50s %9.1f MB/s\n", n, bar, r
    }'
  done
  echo '```'
} >>"$tmp/report.md"

mkdir -p "$(dirname "$out")"
cp "$tmp/report.md" "$out"
cat "$out"
say "your run is in $out; the published one is in $published. Side by side:"
say "  diff -y -W 200 $published $out | less -S"
