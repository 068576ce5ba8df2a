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
done
echo "started $count clients; each holds its connection for up to $hold s"
wait
echo "all clients ended"
