#!/usr/bin/env bash
# Fresh machine to a trained model: install dependencies, build, train a byte-level BPE tokenizer on
# the King James Bible, tokenize it, train a small DeepSeek-V3-architecture model (MLA with q_lora,
# sigmoid noaux_tc MoE with aux-loss-free balancing, MTP; configs/train-quickstart.json) for a few
# minutes on 2 cores, then generate a sample from the trained checkpoint.
# Re-running continues where it stopped (every step is skipped when its output exists; training
# resumes from its newest checkpoint). Outputs live in runs/ (git-ignored):
#   runs/kjv.txt  runs/kjv-tokenizer/  runs/kjv-data/  runs/quickstart-train/{metrics.jsonl,report.html,checkpoints/}
#   runs/quickstart-model -> the final checkpoint (a HF model directory: holdfast generate / serve load it)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
hf=build/holdfast
run=runs/quickstart-train

echo "== corpus: the King James Bible"
[ -f runs/kjv.txt ] || bash scripts/prepare_corpus.sh runs/kjv.txt

echo "== tokenizer: byte-level BPE, 4096 ids, trained on the corpus"
if [ ! -f runs/kjv-tokenizer/tokenizer.json ]; then
  mkdir -p runs/kjv-tokenizer
  $hf tokenizer train --input runs/kjv.txt --vocab-size 4096 --out runs/kjv-tokenizer/tokenizer.json
fi

echo "== data: one document per chapter, 2% of the chapters held out for validation"
[ -f runs/kjv-data/index.json ] || $hf data prepare --tokenizer runs/kjv-tokenizer/tokenizer.json \
  --input runs/kjv.txt --out runs/kjv-data --split-blank-lines --val-fraction 0.02

echo "== training (configs/train-quickstart.json; Ctrl-C stops with a checkpoint, re-run to resume)"
resume=()
[ -d "$run/checkpoints" ] && [ -n "$(ls "$run/checkpoints" | grep '^step-' || true)" ] && resume=(--resume)
$hf train --config configs/train-quickstart.json "${resume[@]}"

final=$(ls -d "$run"/checkpoints/step-* | sort | tail -n 1)
ln -sfn "$(realpath --relative-to=runs "$final")" runs/quickstart-model
echo "== report: $run/report.html   model: runs/quickstart-model -> $final"
echo "== a sample from the trained model"
$hf generate --model runs/quickstart-model --prompt "And God said" --max-tokens 80 --temperature 0.8 \
  --top-p 0.95 --seed 1
echo
