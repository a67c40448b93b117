#!/usr/bin/env bash
# Runs the inference benchmark of the V2-Lite-shaped ~0.7B model (configs/bench-infer-0.7b.json) in F32
# and BF16 on 2 threads, appends the JSON lines to bench/results.jsonl and rewrites the README table.
# Needs ~6 GB of disk for the two random checkpoints (kept in runs/bench-* for re-runs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/holdfast ] || bash scripts/build.sh release
out=$(mktemp)
for dtype in f32 bf16; do
  dir=runs/bench-infer-0.7b-$dtype
  [ -f "$dir/model.safetensors" ] || build/holdfast init --config configs/bench-infer-0.7b.json --seed 1234 --dtype "$dtype" --out "$dir"
  build/holdfast bench --model "$dir" --threads 2 --prompt 512 --decode 32 --runs "${RUNS:-5}" | tee /dev/stderr | grep '^{' >> "$out"
done
mkdir -p bench
python3 scripts/update_bench_table.py --commit "$(git rev-parse --short HEAD)" --results "$out" --readme README.md --log bench/results.jsonl
rm -f "$out"
