#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds release and ASan+UBSan trees, runs every ctest
# (unit, oracle, tokenizer, cli) on the release build and the unit tests under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/holdfast-ccache}
bash scripts/build.sh release
bash scripts/build.sh asan
status=0
echo "== release build: all tests"
(cd build && ctest --output-on-failure -j 2 --timeout 900) || status=1
echo "== ASan+UBSan build: unit tests"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j 2 -L unit) || status=1
exit $status
