#!/usr/bin/env bash
# Opens N TCP connections to a port and keeps them open, using only bash: each client is a
# background shell whose `exec 3<>/dev/tcp/HOST/PORT` is a plain blocking connect().
# For step 3: watch the server's accept queue fill while nobody calls accept().
#
#   scripts/connect-many.sh PORT [N] [HOST] [SECONDS]
#
# N defaults to 5, HOST to 127.0.0.1, SECONDS (how long each connection is held, and how
# long a connect may wait) to 30. Every client ends after SECONDS at most.
set -u
port=${1:?usage: scripts/connect-many.sh PORT [N] [HOST] [SECONDS]}
count=${2:-5}
host=${3:-127.0.0.1}
hold=${4:-30}

for i in $(seq 1 "$count"); do
  timeout "$hold" bash -c '
    if exec 3<>"/dev/tcp/$1/$2"; then
      echo "client $3: connected"
      sleep "$4"
    fi' _ "$host" "$port" "$i" "$hold" &
  # One client at a time: start the next only when this one's connect has been answered
  # (ESTAB) or left waiting (SYN-SENT). Clients whose SYNs arrive at the same instant can all
  # be answered before any of them is queued; then the ACK of the one that finds the queue
  # full is dropped, though that client already believes it is connected.
  if command -v ss >/dev/null 2>&1; then
    for _ in $(seq 1 250); do
      seen=$(ss -Htn state established state syn-sent "( dport = :$port )" 2>/dev/null | wc -l)
      [ "$seen" -ge "$i" ] && break
      sleep 0.02
    done
  fi
done
echo "started $count clients; each holds its connection for up to $hold s"
wait
echo "all clients ended"
