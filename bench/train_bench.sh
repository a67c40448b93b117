#!/usr/bin/env bash
# Training benchmark: tokens/s and peak RSS of one training step (fwd + bwd + AdamW) on
# configs/bench-train-small.json, batch 8 x 256 tokens, 2 threads, holdfast and its PyTorch peer
# (bench/train_torch.py, python3-torch) side by side in one run. Prints one JSON line per
# implementation and a ratio line:
#   {"impl":"pytorch","tokens_per_s":..,"step_s_median":..,"peak_rss_mb":..,...}
#   {"impl":"holdfast","tokens_per_s":..,"step_s_median":..,"peak_rss_mb":..,...}
#   {"impl":"ratio","tokens_per_s":holdfast/pytorch,"peak_rss":holdfast/pytorch}
# holdfast is run only when `holdfast train --help` works. Both figures use the same definition:
# tokens per step / median wall time of the steps after WARMUP; peak RSS is the process's ru_maxrss.
# holdfast's step times come from RUN/metrics.jsonl (docs/metrics_format.md).
#
# Environment: HOLDFAST_BIN (build/holdfast), CONFIG (configs/bench-train-small.json), STEPS (10),
# WARMUP (2), THREADS (2), BATCH (8), SEQ (256), SKIP_TORCH=1 (holdfast only),
# DATA (runs/kjv-data-8192: the King James Bible with an 8192-id BPE, made on first use),
# HOLDFAST_TRAIN_ARGS: the complete `holdfast train` arguments instead of the default ones; they must
# write the run into $RUN_DIR, which the script creates and exports.
# Both implementations run with the same OpenBLAS kernels (bench/blas_core.py; see kernels/blas_core.h).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${HOLDFAST_BIN:-build/holdfast}
CONFIG=${CONFIG:-configs/bench-train-small.json}
STEPS=${STEPS:-10} WARMUP=${WARMUP:-2} THREADS=${THREADS:-2} BATCH=${BATCH:-8} SEQ=${SEQ:-256}
PY=/usr/bin/python3
DATA=${DATA:-runs/kjv-data-8192}
torch_line="" holdfast_line=""
core=$("$PY" bench/blas_core.py)
[ -n "$core" ] && export OPENBLAS_CORETYPE=$core

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  torch_line=$("$PY" bench/train_torch.py --config "$CONFIG" --batch "$BATCH" --seq "$SEQ" \
    --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" | grep '^{')
  echo "$torch_line"
fi

# CLI11 answers `holdfast train --help` with the root help while `train` does not exist: require its usage line.
train_help=$([ -x "$BIN" ] && "$BIN" train --help 2>/dev/null || true)
if grep -qE '^Usage: .* train( |$)' <<<"$train_help"; then
  if [ -z "${HOLDFAST_TRAIN_ARGS:-}" ] && [ ! -f "$DATA/index.json" ]; then
    [ -f runs/kjv.txt ] || bash scripts/prepare_corpus.sh runs/kjv.txt
    mkdir -p runs/kjv-tokenizer-8192
    [ -f runs/kjv-tokenizer-8192/tokenizer.json ] || "$BIN" tokenizer train --input runs/kjv.txt --vocab-size 8192 \
      --out runs/kjv-tokenizer-8192/tokenizer.json >&2
    "$BIN" data prepare --tokenizer runs/kjv-tokenizer-8192/tokenizer.json --input runs/kjv.txt --out "$DATA" \
      --split-blank-lines >&2
  fi
  RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-train-bench.XXXXXX")
  export RUN_DIR
  trap 'rm -rf "$RUN_DIR"' EXIT
  holdfast_line=$("$PY" - "$BIN" "$CONFIG" "$STEPS" "$WARMUP" "$THREADS" "$BATCH" "$SEQ" "$RUN_DIR" "$DATA" <<'EOF'
import json, os, re, resource, shlex, statistics, subprocess, sys
bin_, config, steps, warmup, threads, batch, seq, run_dir, data = sys.argv[1:]
steps, warmup = int(steps), int(warmup)
if os.environ.get("HOLDFAST_TRAIN_ARGS"):
    args = shlex.split(os.path.expandvars(os.environ["HOLDFAST_TRAIN_ARGS"]))
else:
    # The step the PyTorch peer times: fwd + bwd + clip + AdamW (lr 3e-4) over the whole batch at once;
    # no validation, one checkpoint at the end (outside the timed steps).
    args = ["--model.config", config, "--data.dir", data, "--data.val_split", "", "--batch.global_batch", batch,
            "--batch.seq_len", seq, "--steps", str(warmup + steps), "--threads", threads, "--out_dir", run_dir,
            "--optimizer.lr", "3e-4", "--checkpoint.every", "0", "--log_every", "1000000"]
r = subprocess.run([bin_, "train", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if r.returncode != 0:
    sys.exit(f"train_bench.sh: holdfast train {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
step_s, tokens = {}, {}
metrics = os.path.join(run_dir, "metrics.jsonl")
for line in open(metrics):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("kind") == "step" and not j.get("skipped"):
        step_s[j["step"]] = j.get("step_s")
        tokens[j["step"]] = j.get("tokens")
measured = [step_s[s] for s in sorted(step_s) if s > warmup and isinstance(step_s[s], (int, float))]
if not measured:
    sys.exit(f"train_bench.sh: {metrics} has no step lines after the {warmup} warm-up steps")
med = statistics.median(measured)
per_step = int(batch) * int(seq)
print(json.dumps({"impl": "holdfast", "tokens_per_s": round(per_step / med, 2), "step_s_median": round(med, 5),
                  "peak_rss_mb": round(peak_mb, 1), "tokens_per_step": per_step, "steps": len(measured),
                  "warmup": warmup, "threads": int(threads), "config": config, "args": args}))
EOF
)
  echo "$holdfast_line"
else
  echo "train_bench.sh: '$BIN train --help' does not work yet; only the PyTorch peer was measured" >&2
fi

if [ -n "$torch_line" ] && [ -n "$holdfast_line" ]; then
  "$PY" -c '
import json, sys
t, h = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"impl": "ratio", "tokens_per_s": round(h["tokens_per_s"] / t["tokens_per_s"], 3),
                  "peak_rss": round(h["peak_rss_mb"] / t["peak_rss_mb"], 3)}))' "$torch_line" "$holdfast_line"
fi
