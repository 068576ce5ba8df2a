#!/usr/bin/env bash
# What a newcomer's first `cargo run` costs, measured against the floor: building the
# course's named dependencies alone.
#
#   scripts/cold-run.sh [ROUNDS]      # ROUNDS defaults to 3
#
# Each round builds, from an empty target directory, on this machine, one after the other:
#   course:  `cargo run -p step1_create` in this workspace (CARGO_TARGET_DIR set to a fresh
#            directory, so ./target is neither used nor touched);
#   scratch: `cargo run` of a scratch crate that depends only on socket2, clap (derive) and
#            colored, at the versions in this workspace's Cargo.lock, with cargo's default
#            dev profile.
# The rounds alternate which goes first. Other work on the machine only ever slows a build
# down, so the fastest of the rounds is the fairest figure for each; the script prints every
# time, the fastest of each, and their ratio. The target is a ratio of at most 1.4; the exit
# code is 1 when the ratio is above it. Sources are fetched (not timed) before the first round.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rounds=${1:-3}
case $rounds in
  '' | *[!0-9]* | 0) echo "usage: scripts/cold-run.sh [ROUNDS]   (ROUNDS: a whole number, 1 or more)" >&2; exit 2 ;;
esac
target_ratio=1.4

say() { echo "cold-run: $*" >&2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The scratch crate: the three dependencies the course names, used so that the build is the
# same as a real program's, and the workspace's lock file so that the versions are the same.
mkdir -p "$tmp/scratch/src"
cat >"$tmp/scratch/Cargo.toml" <<EOF
[package]
name = "scratch"
version = "0.1.0"
edition = "2024"

[dependencies]
$(grep -E '^(socket2|clap|colored) = ' "$root/Cargo.toml")
EOF
cat >"$tmp/scratch/src/main.rs" <<'EOF'
use clap::Parser;
use colored::Colorize;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn main() {
    let cli = Cli::parse();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
    println!("{} {} {}", "scratch".bold(), cli.port, socket.is_ok());
}
EOF
cp "$root/Cargo.lock" "$tmp/scratch/Cargo.lock"

say "fetching sources for both builds (not timed)"
cargo fetch -q --manifest-path "$root/Cargo.toml"
cargo fetch -q --manifest-path "$tmp/scratch/Cargo.toml"

now() { date +%s.%N; }

# build NAME: one cold build and run of NAME, in an empty target directory; prints seconds.
build() {
  local dir=$tmp/target-$1 start end
  rm -rf "$dir"
  start=$(now)
  case $1 in
    course) (cd "$root" && CARGO_TARGET_DIR=$dir cargo run -q -p step1_create >/dev/null) ;;
    scratch) (cd "$tmp/scratch" && CARGO_TARGET_DIR=$dir cargo run -q >/dev/null) ;;
  esac
  end=$(now)
  rm -rf "$dir"
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

course_times=()
scratch_times=()
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order=(course scratch); else order=(scratch course); fi
  for name in "${order[@]}"; do
    t=$(build "$name")
    if [ "$name" = course ]; then course_times+=("$t"); else scratch_times+=("$t"); fi
    say "round $round: $name $t s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  done
done

fastest() { printf '%s\n' "$@" | sort -n | head -1; }
course=$(fastest "${course_times[@]}")
scratch=$(fastest "${scratch_times[@]}")
ratio=$(awk -v a="$course" -v b="$scratch" 'BEGIN { printf "%.2f", a / b }')

echo "cold first run, fastest of $rounds on $(nproc) CPUs (load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %-52s %6s s   (%s)\n' "cargo run -p step1_create (this course)" "$course" "${course_times[*]}"
printf '  %-52s %6s s   (%s)\n' "socket2 + clap (derive) + colored alone (scratch)" "$scratch" "${scratch_times[*]}"
echo "  ratio: $ratio (target: at most $target_ratio)"
awk -v r="$ratio" -v t="$target_ratio" 'BEGIN { exit !(r <= t) }'
