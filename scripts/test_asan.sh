#!/usr/bin/env bash
# The test suite under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer:
# CMakePresets.json "asan" (GCC, -O1 -g, -fsanitize=address,undefined, every report fatal)
# built into build-asan/, then ctest. Fails when a test fails or when any process of the
# suite (test binaries, and the sanitized attnsim that the Python and shell tests run)
# wrote a sanitizer report, even one a test swallowed. CI runs it after scripts/test.sh.
# docs/reliability.md#sanitizers: the configuration, and the tests left out and why.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset asan >/dev/null
log=build-asan/build.log
if ! cmake --build build-asan -j"$(nproc)" >"$log" 2>&1; then
  grep -E "error|Error" "$log" | head -40 >&2
  echo "test_asan: the sanitized build failed (log: $log)" >&2
  exit 1
fi

# Every report goes to a file of its own (log_path), whichever process wrote it; these
# options come after the built-in ones (core/sanitizer_options.h).
reports=$PWD/build-asan/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="log_path=$reports/asan"
export UBSAN_OPTIONS="log_path=$reports/ubsan"

# Left out (docs/reliability.md#sanitizers): the tests that run no code of ours built here,
# train_skim (PyTorch only) and the layering probes (compile checks: they pass or fail the
# same in every build), and fuzz_known_* (crashers awaiting a fix: they are meant to fail,
# and the normal suite checks that they still do).
skipped='^(train_skim|layering_.*|fuzz_known_.*)$'
status=0
(cd build-asan && ctest --output-on-failure -j"$(nproc)" -E "$skipped") || status=$?

found=$(find "$reports" -type f | sort)
# A report printed rather than logged (a process started without ASAN_OPTIONS).
if grep -lE "ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:|WARNING: ASan is ignoring" \
  build-asan/Testing/Temporary/LastTest.log >/dev/null 2>&1; then
  found="$found build-asan/Testing/Temporary/LastTest.log"
fi
if [ -n "$found" ]; then
  for f in $found; do
    echo "=== $f"
    grep -E -B2 -A30 "ERROR: |runtime error:|WARNING: ASan" "$f" | head -80
  done
  echo "test_asan: sanitizer reports (above); the suite must have none" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "test_asan: tests failed under the sanitizers" >&2
  exit "$status"
fi
echo "test_asan: no sanitizer report"
