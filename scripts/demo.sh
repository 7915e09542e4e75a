#!/usr/bin/env bash
# The main job: set up, build, and simulate the LATTE accelerator and the dense baseline
# on the bundled trace (workloads/demo.safetensors). Writes results/demo/stats.json
# (LATTE) and results/demo/dense.json, prints both summaries and the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
mkdir -p results/demo
trace=workloads/demo.safetensors
echo "== dense baseline (configs/dense-baseline.json) =="
build/attnsim run --config configs/dense-baseline.json --trace "$trace" --out results/demo/dense.json
echo
echo "== LATTE (configs/latte.json) =="
build/attnsim run --config configs/latte.json --trace "$trace" --out results/demo/stats.json
echo
build/attnsim compare results/demo/dense.json results/demo/stats.json
