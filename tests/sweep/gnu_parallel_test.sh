#!/usr/bin/env bash
# A sweep run by GNU parallel as docs/sweeps.md shows: the first two job lines, then all of
# them with --resume (the joblog keeps the first two from running again), then merge.
set -euo pipefail
attnsim=$1
work=$2
command -v parallel >/dev/null || { echo "GNU parallel not installed (scripts/setup.sh)"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

rm -rf "$work"
mkdir -p "$work"
"$attnsim" trace synth --out "$work/tiny.safetensors" --layers 1 --heads 2 --tokens 32 --head-dim 16 --seed 7 >/dev/null
cat > "$work/sweep.json" <<'JSON'
{
  "schema": "attnsim.sweep/1",
  "base": {"schema": "attnsim.config/1", "qk_unit": {"lanes": 16}},
  "baseline": {"schema": "attnsim.config/1", "qk_unit": {"type": "bit_parallel", "mode": "dense", "lanes": 4}},
  "traces": ["tiny.safetensors"],
  "grid": {"comparator.gamma": [0.01, 0.1], "qk_unit.lanes": [8, 32]}
}
JSON
out="$work/out"
"$attnsim" sweep "$work/sweep.json" --out "$out" --emit-jobs "$out/jobs.txt" >/dev/null
[ "$(wc -l < "$out/jobs.txt")" -eq 5 ] || fail "jobs.txt has $(wc -l < "$out/jobs.txt") lines, expected 5"

# A first, partial run: two jobs (sequence numbers 1 and 2 in the joblog).
head -n 2 "$out/jobs.txt" | parallel --joblog "$out/joblog" --resume -j 2
[ "$(ls "$out/points" | grep -c '\.json$')" -eq 2 ] || fail "expected 2 points after the partial run"

# The whole file with --resume: only jobs 3..5 run.
parallel --joblog "$out/joblog" --resume -j 2 < "$out/jobs.txt"
seqs=$(tail -n +2 "$out/joblog" | cut -f1 | sort -n | tr '\n' ' ')
[ "$seqs" = "1 2 3 4 5 " ] || fail "joblog sequence numbers '$seqs', expected each of 1..5 once"
failed=$(tail -n +2 "$out/joblog" | awk -F'\t' '$7 != 0' | wc -l)
[ "$failed" -eq 0 ] || fail "$failed jobs exited non-zero"

merged=$("$attnsim" merge "$out")
[ "$merged" = "merge: 5 points: 5 ok; $out/summary.csv" ] || fail "merge printed '$merged'"
[ "$(wc -l < "$out/summary.csv")" -eq 6 ] || fail "summary.csv should have a header and 5 rows"
# Each point's stats are complete and name the trace it ran.
for f in "$out"/points/*.json; do
  grep -q '"schema": "attnsim.stats/1"' "$f" || fail "$f is not a stats file"
done
echo "gnu parallel sweep: 5 points ok"
