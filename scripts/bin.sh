#!/usr/bin/env bash
# Prints the path of one of the workspace's programs, building it first if needed, wherever
# cargo builds (./target, CARGO_TARGET_DIR, a target-dir in .cargo/config.toml): the path is
# the one cargo itself reports. For the commands that must run a program directly rather
# than through `cargo run` (strace would trace cargo too), e.g.:
#
#   strace -e trace=%network $(scripts/bin.sh step1_create) --family ipv6
#
#   scripts/bin.sh [--release] NAME              # the binary NAME (step1_create, loadgen, ...)
#   scripts/bin.sh [--release] --example NAME    # the example NAME (std_listener)
#
# Cargo's own errors (a build that fails) go to stderr and the exit code is 1; a bad command
# line exits 2. Nothing but the path goes to stdout.
set -euo pipefail

usage() {
  echo "usage: scripts/bin.sh [--release] [--example] NAME   (prints the path of a built program)" >&2
  exit 2
}

profile=()
kind=--bin
name=""
while [ $# -gt 0 ]; do
  case $1 in
    --release) profile=(--release) ;;
    --example) kind=--example ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) [ -z "$name" ] || usage; name=$1 ;;
  esac
  shift
done
[ -n "$name" ] || usage

cd "$(dirname "$0")/.."
# Cargo reports every artifact it built, or found already built, as a line of JSON; the one
# with an "executable" is the program asked for. Diagnostics are rendered on stderr as usual.
messages=$(cargo build --quiet "${profile[@]}" "$kind" "$name" \
  --message-format=json-render-diagnostics) || exit 1
path=$(printf '%s\n' "$messages" | grep '"reason":"compiler-artifact"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
if [ -z "$path" ] || [ ! -x "$path" ]; then
  echo "scripts/bin.sh: cargo built no program named $name" >&2
  exit 1
fi
printf '%s\n' "$path"
