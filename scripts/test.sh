#!/usr/bin/env bash
# The whole test suite: every test binary of the workspace runs, even after one has failed
# (--no-fail-fast), and at the end comes a summary: how many tests passed and failed, and
# every check that was skipped, with its reason (a test skips a check when a program it needs,
# strace, python3, nc, ..., is not installed, or when the machine lacks something, e.g. IPv6).
#
#   scripts/test.sh                   # skipped checks are listed; the run still passes
#   scripts/test.sh --require-tools   # a check skipped because a program is not installed
#                                     # fails the run (the default when CI=true)
#
# Exit code: 0 when every test passed (and, with --require-tools, no check was skipped for
# want of a program); 1 otherwise; 2 for a bad command line.
set -uo pipefail
cd "$(dirname "$0")/.."

require_tools=false
[ "${CI:-}" = true ] && require_tools=true
for arg in "$@"; do
  case $arg in
    --require-tools) require_tools=true ;;
    *)
      echo "usage: scripts/test.sh [--require-tools]" >&2
      exit 2
      ;;
  esac
done

# testkit::skip appends one line per skipped check to the file this variable names.
skips=$(mktemp "${TMPDIR:-/tmp}/course-skips.XXXXXX")
output=$(mktemp "${TMPDIR:-/tmp}/course-tests.XXXXXX")
trap 'rm -f "$skips" "$output"' EXIT
export COURSE_SKIP_LOG=$skips

cargo test --workspace --no-fail-fast 2>&1 | tee "$output"
status=${PIPESTATUS[0]}

# "test result: ok. 9 passed; 0 failed; 0 ignored; ..." once per test binary.
count() { sed -n "s/^test result: .* \([0-9][0-9]*\) $1;.*/\1/p" "$output" | awk '{ n += $1 } END { print n + 0 }'; }
passed=$(count passed)
failed=$(count failed)
binaries=$(grep -c '^test result: ' "$output")

echo
echo "== summary =="
echo "passed: $passed tests in $binaries test binaries; failed: $failed"
sort -u "$skips" -o "$skips"
if [ -s "$skips" ]; then
  echo "skipped checks: $(wc -l <"$skips") (each test still passed; it skipped the check named):"
  sed 's/^SKIPPED /  /' "$skips"
else
  echo "skipped checks: none"
fi
missing_tools=$(grep -c ' is not installed' "$skips")

if [ "$status" != 0 ]; then
  echo "FAILED: cargo test exited with $status; the failing tests are marked FAILED above"
  exit 1
fi
if [ "$require_tools" = true ] && [ "$missing_tools" -gt 0 ]; then
  echo "FAILED: $missing_tools checks were skipped because a program is not installed, and tools are required (--require-tools or CI=true); install them (.ci/run does, with apt-get)"
  exit 1
fi
echo "ok: every test passed"
