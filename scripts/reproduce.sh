#!/usr/bin/env bash
# The paper comparison end to end (docs/reproduction.md): installs what is missing, builds,
# then trains or reuses the models, evaluates every mechanism in the models' forward pass,
# exports traces, simulates them, checks attnsim against PyTorch run by run, and writes the
# plots and tables. One progress line per step.
#   scripts/reproduce.sh            full: docs/reproduction.md, docs/img/reproduction_*.png,
#                                   results/reproduce/ (about 6 min with cached models)
#   scripts/reproduce.sh --quick    cut-down models and points, results/quick/ (what CI runs)
#   [--jobs N]                      parallel processes (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
exec /usr/bin/python3 scripts/reproduce.py --attnsim build/attnsim "$@"
