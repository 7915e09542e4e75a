#!/usr/bin/env bash
# Set up, build, and run every test (ctest runs each SystemC test in its own process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)"
