#!/usr/bin/env bash
# MTP speculative decoding benchmark: `holdfast generate` with --speculative off and mtp, alternating,
# RUNS times each per prompt, greedy and sampled; prints the medians of decode tokens/s, the speed-up
# and the draft acceptance rate, one JSON line per mode and prompt plus a summary line per mode:
#   {"bench":"speculative","mode":"greedy","prompt":"...","plain_tok_s":..,"mtp_tok_s":..,"speedup":..,
#    "acceptance":..,"tokens_per_forward":..,"identical":true}
# (identical: greedy ids equal with and without speculation in every run; for sampled runs it is null).
# Usage: bench/speculative_bench.sh MODEL_DIR
# Environment: HOLDFAST_BIN (build/holdfast), RUNS (5), THREADS (2), MAX_TOKENS (128).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${HOLDFAST_BIN:-build/holdfast}
MODEL=${1:?usage: bench/speculative_bench.sh MODEL_DIR}
RUNS=${RUNS:-5} THREADS=${THREADS:-2} MAX_TOKENS=${MAX_TOKENS:-128}
prompts=("And God said" "In the beginning" "And it came to pass, when" "The LORD is my shepherd")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for mode in greedy sampled; do
  sampling=(--temperature 0)
  [ "$mode" = sampled ] && sampling=(--temperature 0.8 --top-p 0.95)
  for p in "${prompts[@]}"; do
    for r in $(seq 1 "$RUNS"); do
      for spec in off mtp; do
        "$BIN" generate --model "$MODEL" --prompt "$p" --max-tokens "$MAX_TOKENS" --threads "$THREADS" --ids \
          --seed "$r" "${sampling[@]}" --speculative "$spec" >"$tmp/$spec.$r.out" 2>"$tmp/$spec.$r.err"
      done
    done
    /usr/bin/python3 - "$tmp" "$RUNS" "$mode" "$p" <<'PY'
import json, re, statistics, sys
tmp, runs, mode, prompt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rate(spec, r):
    err = open(f"{tmp}/{spec}.{r}.err").read()
    m = re.search(r"decode: (\d+) tokens in ([\d.]+) s", err)
    return int(m.group(1)) / float(m.group(2)), err
plain, mtp, acc, tpf, same = [], [], [], [], True
for r in range(1, runs + 1):
    a, _ = rate("off", r)
    b, err = rate("mtp", r)
    plain.append(a); mtp.append(b)
    m = re.search(r"(\d+) drafts, (\d+) accepted .* ([\d.]+) tokens per forward", err)
    acc.append(int(m.group(2)) / max(int(m.group(1)), 1)); tpf.append(float(m.group(3)))
    same &= open(f"{tmp}/off.{r}.out").read() == open(f"{tmp}/mtp.{r}.out").read()
line = {"bench": "speculative", "mode": mode, "prompt": prompt, "plain_tok_s": round(statistics.median(plain), 1),
        "mtp_tok_s": round(statistics.median(mtp), 1),
        "speedup": round(statistics.median(mtp) / statistics.median(plain), 3),
        "acceptance": round(statistics.median(acc), 3), "tokens_per_forward": round(statistics.median(tpf), 3),
        "identical": same if mode == "greedy" else None}
print(json.dumps(line))
with open(f"{tmp}/lines.jsonl", "a") as f:
    f.write(json.dumps(line) + "\n")
PY
  done
done
/usr/bin/python3 - "$tmp/lines.jsonl" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for mode in ("greedy", "sampled"):
    ls = [l for l in lines if l["mode"] == mode]
    print(json.dumps({"bench": "speculative", "mode": mode, "summary": True,
                      "speedup_median": statistics.median(l["speedup"] for l in ls),
                      "acceptance_median": statistics.median(l["acceptance"] for l in ls),
                      "plain_tok_s_median": statistics.median(l["plain_tok_s"] for l in ls),
                      "mtp_tok_s_median": statistics.median(l["mtp_tok_s"] for l in ls),
                      "identical": all(l["identical"] for l in ls) if mode == "greedy" else None}))
PY
