#!/usr/bin/env bash
# Configures and builds attnsim (Release) in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" 2>&1 | grep -E "error|warning:|Error" || true
test -x build/attnsim || { echo "build: attnsim did not build" >&2; exit 1; }
