#!/usr/bin/env python3
"""Smoke test of `holdfast bench serve` (the benchmark itself is not timed here): on a tiny random
model with the real DeepSeek-V3 tokenizer it must print the table and one JSON line per case
(streams at every requested count, ttft, kv_cache, single_stream) with positive, consistent figures;
bad flags and a missing tokenizer are clean errors that name the flag or the file.

Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Needs node_modules (npm ci) for the tokenizer.
"""

import json
import os
import subprocess
import sys
import tempfile

BIN = os.environ["HOLDFAST_BIN"]
SRC = os.environ["HOLDFAST_SOURCE_DIR"]
TOKENIZER = os.path.join(SRC, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models", "tokenizer.json")
CONFIG = os.path.join(SRC, "tests", "oracle", "configs", "tiny_v3.json")


def run(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def fail(msg):
    print("bench_serve_test: FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def expect_error(args, needle):
    p = run(*args)
    if p.returncode != 1 or "holdfast: error: " not in p.stderr or needle not in p.stderr:
        fail(f"{args}: want exit 1 and an error naming {needle!r}, got {p.returncode}: {p.stderr.strip()}")


def main():
    if not os.path.exists(TOKENIZER):
        fail(f"{TOKENIZER} is missing: run 'npm ci' in {SRC}")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tiny")
        p = run("init", "--config", CONFIG, "--seed", "5", "--dtype", "bf16", "--out", model)
        if p.returncode != 0:
            fail(f"init: {p.stderr}")
        base = ["bench", "serve", "--model", model, "--tokenizer", TOKENIZER, "--skip-probes", "--runs", "1",
                "--prompt", "8", "--decode", "6", "--ttft-prompt", "40", "--kv-cache", "f32"]  # F32 rows only
        p = run(*base, "--streams", "1,3,8")
        if p.returncode != 0:
            fail(f"bench serve exited {p.returncode}: {p.stderr}")
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        by_case = {}
        for l in lines:
            if l.get("bench") != "serve":
                fail(f"line without bench=serve: {l}")
            by_case.setdefault(l["case"], []).append(l)
        streams = by_case.get("streams", [])
        if [s["streams"] for s in streams] != [1, 3, 8]:
            fail(f"stream cases {streams}")
        for s in streams:
            # decode_tok_s may be 0 on this tiny model: all its tokens can land within one 1 ms poll.
            if not (s["aggregate_tok_s"] > 0 and s["decode_tok_s"] >= 0 and s["wall_s"] > 0):
                fail(f"non-positive figures: {s}")
            if abs(s["per_stream_tok_s"] * s["streams"] - s["decode_tok_s"]) > 1e-6 * s["decode_tok_s"]:
                fail(f"per-stream rate is not decode rate / streams: {s}")
        ttft = by_case.get("ttft", [{}])[0]
        if ttft.get("prompt") != 40 or not ttft.get("ttft_s", 0) > 0:
            fail(f"ttft case {ttft}")
        kv = by_case.get("kv_cache", [{}])[0]
        cfg = json.load(open(CONFIG))
        want = cfg["num_hidden_layers"] * (cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]) * 4
        if kv.get("bf16_copy") is not False:
            fail(f"kv_cache bf16_copy {kv.get('bf16_copy')} with --kv-cache f32")
        if kv.get("bytes_per_token") != want:
            fail(f"kv_cache bytes_per_token {kv.get('bytes_per_token')}, want {want}")
        single = by_case.get("single_stream", [{}])[0]
        if single.get("decode_tok_s") != streams[0]["decode_tok_s"]:
            fail(f"single_stream {single} is not the 1-stream case")
        for word in ("aggregate tok/s", "single-stream decode tok/s", "TTFT, 40-token prompt", "KV cache bytes/token"):
            if word not in p.stdout:
                fail(f"table lacks {word!r}:\n{p.stdout}")

        expect_error([*base, "--streams", "0"], "--streams")
        expect_error([*base, "--streams", "4,x"], "--streams")
        expect_error(["bench", "serve", "--model", model, "--tokenizer", os.path.join(tmp, "nope.json")], "nope.json")
        expect_error([a if a != "6" else "300" for a in base] + ["--streams", "1"], "context")
        h = run("bench", "serve", "--help")
        if h.returncode != 0 or "--streams" not in h.stdout:
            fail("bench serve --help")
    print("bench_serve_test: ok")


if __name__ == "__main__":
    main()
