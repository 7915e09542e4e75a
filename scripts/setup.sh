#!/usr/bin/env bash
# Installs the Debian packages attnsim needs. Idempotent; prints nothing when all is there.
# With --fuzz, also those of scripts/fuzz.sh (clang and its libFuzzer; CI does not fuzz).
set -euo pipefail
packages=(
  g++ cmake make pkg-config             # toolchain
  libsystemc-dev                        # SystemC 2.3.4 kernel
  libboost-dev libboost-program-options-dev
  nlohmann-json3-dev catch2             # JSON, tests (Catch2 v2)
  libssl-dev                            # libcrypto: the traces' SHA-256 with the CPU's SHA extensions
  python3-numpy python3-matplotlib      # reference model, plots (/usr/bin/python3)
  python3-torch libopenblas0-pthread    # models in the loop (scripts/train_models.py, eval_mechanisms.py)
  python3-sklearn fortunes              # their data: the 8x8 digits images, English text
  time                                  # /usr/bin/time -v for the benchmark's peak RSS
  parallel                              # GNU parallel: sweep job files (tests/sweep)
)
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)   # libFuzzer targets (tests/fuzz, scripts/fuzz.sh)
fi
missing=()
for p in "${packages[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
