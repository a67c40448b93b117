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
# HOLDFAST_TRAIN_ARGS: the complete `holdfast train` arguments when the flags guessed from its --help
# (config, batch, sequence length, steps, threads, run directory, synthetic data) do not fit; it must
# write the run into $RUN_DIR, which the script creates and exports.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${HOLDFAST_BIN:-build/holdfast}
CONFIG=${CONFIG:-configs/bench-train-small.json}
STEPS=${STEPS:-10} WARMUP=${WARMUP:-2} THREADS=${THREADS:-2} BATCH=${BATCH:-8} SEQ=${SEQ:-256}
PY=/usr/bin/python3
torch_line="" holdfast_line=""

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  torch_line=$("$PY" bench/train_torch.py --config "$CONFIG" --batch "$BATCH" --seq "$SEQ" \
    --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" | grep '^{')
  echo "$torch_line"
fi

# CLI11 answers `holdfast train --help` with the root help while `train` does not exist: require its usage line.
train_help=$([ -x "$BIN" ] && "$BIN" train --help 2>/dev/null || true)
if grep -qE '^Usage: .* train( |$)' <<<"$train_help"; then
  RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-train-bench.XXXXXX")
  export RUN_DIR
  trap 'rm -rf "$RUN_DIR"' EXIT
  holdfast_line=$("$PY" - "$BIN" "$CONFIG" "$STEPS" "$WARMUP" "$THREADS" "$BATCH" "$SEQ" "$RUN_DIR" <<'EOF'
import json, os, re, resource, shlex, statistics, subprocess, sys
bin_, config, steps, warmup, threads, batch, seq, run_dir = sys.argv[1:]
steps, warmup = int(steps), int(warmup)
help_text = subprocess.run([bin_, "train", "--help"], capture_output=True, text=True).stdout
listed = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))

def pick(*names):
    return next((n for n in names if n in listed), None)

if os.environ.get("HOLDFAST_TRAIN_ARGS"):
    args = shlex.split(os.path.expandvars(os.environ["HOLDFAST_TRAIN_ARGS"]))
else:
    wanted = [(("--config",), config), (("--batch", "--batch-size", "--global-batch"), batch),
              (("--seq-len", "--seq", "--sequence-length"), seq), (("--steps", "--max-steps"), str(warmup + steps)),
              (("--threads",), threads), (("--out", "--run-dir", "--run"), run_dir)]
    args, missing = [], []
    for names, value in wanted:
        flag = pick(*names)
        (args.extend([flag, value]) if flag else missing.append(names[0]))
    data = pick("--random-data", "--synthetic-data", "--random-tokens")
    if data:
        args.append(data)
    else:
        missing.append("--random-data")
    if missing:
        sys.exit(f"train_bench.sh: `holdfast train --help` lists none of {missing}; "
                 "set HOLDFAST_TRAIN_ARGS (it must write the run into $RUN_DIR)")
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
