#!/usr/bin/env bash
# Inference benchmark of the V2-Lite-shaped ~0.7B model (configs/bench-infer-0.7b.json) on 2 threads:
#  - F32, BF16, Q8 and Q4 weights: 512-token prefill, then 32 decoded tokens (medians of RUNS=5);
#  - decode after a 16-token and a 2048-token context (BF16, Q8, Q4 with the default KV cache; Q8 and Q4 also
#    with --kv-cache f32 for comparison; medians of CTX_RUNS=5 alternating runs).
# Appends the JSON lines to bench/results.jsonl and rewrites the README table. Needs ~6 GB of disk for
# the random checkpoints (kept in runs/bench-* for re-runs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/holdfast ] || bash scripts/build.sh release
only=${ONLY:-all}  # "context": skip the main table (reuses its last rows from bench/results.jsonl)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
ckpt() {  # the checkpoint directory for a dtype, made on first use
  local dir=runs/bench-infer-0.7b-$1
  if [ ! -f "$dir/model.safetensors" ]; then
    case $1 in
      f32|bf16) build/holdfast init --config configs/bench-infer-0.7b.json --seed 1234 --dtype "$1" --out "$dir" >&2 ;;
      *) ckpt f32 >/dev/null; build/holdfast quantize --model runs/bench-infer-0.7b-f32 --type "$1" --out "$dir" >&2 ;;
    esac
  fi
  echo "$dir"
}
load=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$only" = context ] && grep -v context_run bench/results.jsonl | tail -n 4 >> "$out"
for dtype in f32 bf16 q8 q4; do
  [ "$only" = context ] && break
  build/holdfast bench --model "$(ckpt $dtype)" --threads 2 --prompt 512 --decode 32 --runs "${RUNS:-5}" \
    | tee /dev/stderr | grep '^{' >> "$out"
done
# The VM's speed drifts by tens of percent over a minute: alternate the two context lengths, one run each,
# and take medians, so that drift does not land on one of them.
for case in bf16:auto q8:auto q8:f32 q4:auto q4:f32; do
  dtype=${case%:*} kv=${case#*:}
  for i in $(seq "${CTX_RUNS:-5}"); do
    for ctx in 16 2048; do
      build/holdfast bench --model "$(ckpt $dtype)" --threads 2 --prompt $ctx --decode 32 --runs 1 --skip-probes \
        --kv-cache "$kv" | tee /dev/stderr | grep '^{' | sed "s/^{/{\"context_run\":true,\"kv_request\":\"$kv\",/" >> "$out"
    done
  done
done
mkdir -p bench
python3 scripts/update_bench_table.py --commit "$(git rev-parse --short HEAD)" --results "$out" --readme README.md \
  --log bench/results.jsonl --load "$load"
