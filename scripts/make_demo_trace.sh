#!/bin/sh
# Regenerates workloads/demo.safetensors, the small trace bundled with attnsim: BERT-like
# (bidirectional) but small, 4 layers x 4 heads, 128 tokens, d = 64, F16 (786 KB of tensors),
# with Transkimmer keep masks keeping about 0.8^l of the tokens at layer l.
# Each layer has one head of each pattern (peaked, local, diagonal, uniform); the local
# windows and the diagonal offset (self / previous token) vary by layer, so a LATTE-style
# filter has much to drop in three heads of four and little in the uniform one.
# The output is deterministic: rerunning it gives the same bytes (sha256 printed below).
#
# usage: scripts/make_demo_trace.sh [path/to/attnsim]   (default: build/attnsim)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
attnsim=${1:-$root/build/attnsim}
out=$root/workloads/demo.safetensors

if [ ! -x "$attnsim" ]; then
  echo "make_demo_trace.sh: $attnsim not found; build it first (cmake --build build --target attnsim)" >&2
  exit 1
fi

"$attnsim" trace synth --out "$out" \
  --layers 4 --heads 4 --tokens 128 --head-dim 64 --dtype f16 --seed 2024 \
  --patterns peaked,local,diagonal,uniform --temperature 1.0 --skim-keep 0.8 \
  --model attnsim-demo-bert-tiny
"$attnsim" trace info "$out"
