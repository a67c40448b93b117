#!/usr/bin/env bash
# Installs every Debian package holdfast needs to build, run and test. Idempotent.
# Runtime: OpenBLAS (GEMM), Highway (SIMD), nlohmann-json, CLI11, fmt, OpenSSL libcrypto (sha256).
# Training corpus: bible-kjv-text (King James Bible) read through bible-kjv's `bible` (scripts/prepare_corpus.sh).
# Multi-process training: Gloo + hiredis; redis-server is the multi-host rendezvous (and its test).
# Test-time oracles only: python3-torch/numpy (forward oracle), Node.js + npm (tokenizer oracle).
set -euo pipefail
PKGS=(build-essential cmake ninja-build ccache pkg-config
      libopenblas-dev libhwy-dev nlohmann-json3-dev libcli11-dev libfmt-dev libgtest-dev libcpp-httplib-dev curl
      libssl-dev libicu-dev bible-kjv-text bible-kjv
      libgloo-dev libhiredis-dev libxxhash-dev redis-server
      python3-torch python3-numpy python3-jinja2)
# The machine may ship its own Node.js; only fall back to Debian's when there is none.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# JavaScript test clients (tokenizer oracle, later the OpenAI client), pinned by package-lock.json.
cd "$(dirname "$0")/.."
if [ -f package-lock.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
