#!/usr/bin/env bash
# scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#
# Fuzzes one target of tests/fuzz (trace, config, sweep, exported_trace) for SECONDS
# seconds with libFuzzer under ASan + UBSan (docs/reliability.md#fuzzing). Installs clang
# if missing (scripts/setup.sh --fuzz), builds the target if needed (CMakePresets.json
# "fuzz", clang++, build-fuzz/), starts from the seed corpus tests/fuzz/corpus/TARGET and
# grows build-fuzz/corpus/TARGET across runs. libFuzzer runs in fork mode, so a finding
# does not end the run (its whole output: build-fuzz/last-run_TARGET.log). At the end it
# prints the stats line (executions, coverage, corpus, findings) and the new findings
# under build-fuzz/findings/TARGET, grouped by their first report line, each group with
# its count, one file, the line and, for a sanitizer report, the first frames: keep a
# real one in tests/fuzz/regressions/TARGET (fixed) or tests/fuzz/known/TARGET (pending).
set -euo pipefail
cd "$(dirname "$0")/.."
targets="trace config sweep exported_trace"
if [ $# -lt 2 ] || ! [[ " $targets " == *" $1 "* ]] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]   (TARGET: ${targets// /, })" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2

scripts/setup.sh --fuzz
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  cmake --preset fuzz >/dev/null
fi
log=build-fuzz/build-fuzz_$target.log
if ! cmake --build build-fuzz --target "fuzz_$target" -j"$(nproc)" >"$log" 2>&1; then
  grep -E "error|Error" "$log" | head -40 >&2
  echo "fuzz: building fuzz_$target failed (log: $log)" >&2
  exit 1
fi
binary=build-fuzz/tests/fuzz/fuzz_$target

corpus=build-fuzz/corpus/$target
findings=build-fuzz/findings/$target
mkdir -p "$corpus" "$findings"
dict=()
[ -f "tests/fuzz/dict/$target.dict" ] && dict=(-dict="tests/fuzz/dict/$target.dict")
scratch=$(mktemp -d)  # the harness's temporary files (a crashed input leaves its own behind)
trap 'rm -rf "$scratch"' EXIT
before=$(mktemp -p "$scratch")
ls "$findings" >"$before"

echo "fuzz: $target for ${seconds}s ($binary, corpus $corpus + tests/fuzz/corpus/$target)"
out=build-fuzz/last-run_$target.log  # libFuzzer's whole output
status=0
TMPDIR=$scratch SC_COPYRIGHT_MESSAGE=DISABLE "$binary" -max_total_time="$seconds" -fork=1 \
  -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$findings/" "${dict[@]}" "$@" "$corpus" "tests/fuzz/corpus/$target" >"$out" 2>&1 || status=$?

stats=$(grep -E '^#[0-9]+: cov:' "$out" | tail -1 || true)
if [ -z "$stats" ]; then
  tail -30 "$out" >&2
  echo "fuzz: libFuzzer printed no stats line (exit status $status)" >&2
  exit 1
fi
echo "stats: $stats"
runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$stats")
failures=$(sed -E 's#.*oom/timeout/crash: ([0-9]+/[0-9]+/[0-9]+).*#\1#' <<<"$stats")
new=$(ls "$findings" | grep -vxF -f "$before" || true)
echo "fuzz: $target: $runs executions in ${seconds}s, oom/timeout/crash $failures, corpus $(ls "$corpus" | wc -l) inputs, $(grep -c . <<<"$new" || true) new findings"
# Findings grouped by their first report line (numbers and addresses masked): the count,
# one file, the line, and for a sanitizer report the first frames of the fuzzed code.
summary=$scratch/summary
for f in $new; do
  report=$(TMPDIR=$scratch SC_COPYRIGHT_MESSAGE=DISABLE timeout 60 "$binary" "$findings/$f" 2>&1 || true)
  line=$(grep -a -m1 -E "attnsim fuzz|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error|ERROR: libFuzzer: (timeout|out-of-memory)" <<<"$report" |
    cut -c1-200 | tr -c '[:print:]\n' '?')
  [ -z "$line" ] && line="(no report on replay: flaky, or a time-out that replays fast)"
  signature=$(sed -E "s#$scratch/attnsim_fuzz_[A-Za-z0-9]+#TMP#g; s/0x[0-9a-f]+|[0-9]+/N/g" <<<"$line")
  printf '%s\t%s\n' "$signature" "$f" >>"$summary"
  if ! grep -q "attnsim fuzz" <<<"$line"; then
    printf '%s\n' "$report" | grep -a -E '^ +#[0-9]+ ' | grep -v -E 'fuzzer::|__sanitizer|libc\.so|__libc' | head -8 >"$scratch/frames.$f"
  fi
done
if [ -f "$summary" ]; then
  cut -f1 "$summary" | sort | uniq -c | sort -rn | while read -r count signature; do
    first=$(S="$signature" awk -F'\t' '$1 == ENVIRON["S"] {print $2; exit}' "$summary")
    echo "--- $count x  $findings/$first"
    TMPDIR=$scratch SC_COPYRIGHT_MESSAGE=DISABLE timeout 60 "$binary" "$findings/$first" 2>&1 |
      grep -a -m1 -E "attnsim fuzz|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error|ERROR: libFuzzer" |
      cut -c1-300 | tr -c '[:print:]\n' '?' || true
    [ -f "$scratch/frames.$first" ] && cat "$scratch/frames.$first"
  done
fi
