#!/usr/bin/env bash
# Configures and builds one tree: scripts/build.sh [release|asan]. Output: build/ or build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc)
case "$kind" in
  release) cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOLDFAST_WERROR=ON >/dev/null
           cmake --build build -j "$jobs" ;;
  asan)    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOLDFAST_SANITIZE=ON -DHOLDFAST_WERROR=ON >/dev/null
           cmake --build build-asan -j "$jobs" --target holdfast_unit_tests holdfast ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
