#!/usr/bin/env python3
"""MTP speculative decoding end to end: `holdfast serve --speculative mtp` and `holdfast generate
--speculative mtp` against the same binary without speculation, on a tiny random-weight V3 model with an
MTP module and the real DeepSeek-V3 tokenizer.

Greedy output (text and logprobs) must be identical with and without speculation: plain prompts,
logit_bias that confines both the main model and the MTP drafts to a few ids (so drafts are kept as well
as rejected), penalties, a long prompt served twice (the second time from the prefix cache), and the
same requests inside a busy batch of sampled streams. Seeded sampling is reproducible on the
speculative server (cold and warm prefix cache). /metrics reports drafts and an acceptance rate in
(0, 1]. A checkpoint without MTP is a clear error for both commands.

Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Needs node_modules (npm ci) for the tokenizer.
"""

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["HOLDFAST_BIN"]
SRC = os.environ["HOLDFAST_SOURCE_DIR"]
TOKDIR = os.path.join(SRC, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models")
CONFIG = os.path.join(SRC, "tests", "serve", "tiny_text_v3.json")


def fail(msg):
    print("speculative_test: FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def run(*args, timeout=300):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def make_model(tmp, name, nextn):
    cfg = json.load(open(CONFIG))
    cfg["num_nextn_predict_layers"] = nextn
    cfg_path = os.path.join(tmp, name + ".json")
    json.dump(cfg, open(cfg_path, "w"))
    out = os.path.join(tmp, name)
    p = run("init", "--config", cfg_path, "--seed", "3", "--dtype", "bf16", "--out", out)
    if p.returncode != 0:
        fail(f"init: {p.stderr}")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKDIR, f), out)
    return out


class Server:
    def __init__(self, tmp, name, *args):
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        self.proc = subprocess.Popen([BIN, "serve", "--port", "0", "--threads", "1", "--served-model-name", "m", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(400):
            self.log.seek(0)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read())
            if m:
                self.url = f"http://127.0.0.1:{m.group(1)}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        fail(f"{name} server did not start: {self.log.read()}")

    def post(self, body):
        req = urllib.request.Request(self.url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.load(r)

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as r:
            text = r.read().decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(holdfast_\w+) (\S+)$", text, re.M)}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def choices(resp):
    return [{k: c.get(k) for k in ("index", "text", "logprobs", "finish_reason")} for c in resp["choices"]]


def main():
    if not os.path.exists(os.path.join(TOKDIR, "tokenizer.json")):
        fail(f"{TOKDIR}/tokenizer.json is missing: run 'npm ci' in {SRC}")
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(tmp, "tiny-mtp", 1)
        plain = Server(tmp, "plain", "--model", model)
        spec = Server(tmp, "spec", "--model", model, "--speculative", "mtp")
        try:
            # A few ids both the main model and the MTP head are confined to: drafts are kept and rejected.
            few = {str(i): 100 for i in (301, 302, 303)}
            long_prompt = "Determinism probe: " + "the quick brown fox jumps over the lazy dog " * 30
            greedy = [
                {"prompt": "The capital of France is", "max_tokens": 24, "temperature": 0},
                {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "logit_bias": few},
                {"prompt": "Count:", "max_tokens": 40, "temperature": 0, "logit_bias": few, "logprobs": 2},
                {"prompt": "Penalised", "max_tokens": 32, "temperature": 0, "logit_bias": few,
                 "frequency_penalty": 0.7, "presence_penalty": 0.3},
                {"prompt": long_prompt, "max_tokens": 30, "temperature": 0, "logit_bias": few},
                {"prompt": long_prompt, "max_tokens": 30, "temperature": 0, "logit_bias": few},  # prefix cache hit
                {"prompt": ["Two prompts", "at once"], "max_tokens": 20, "temperature": 0, "logit_bias": few},
            ]
            want = [choices(plain.post({"model": "m", **g})) for g in greedy]
            for g, w in zip(greedy, want):
                got = choices(spec.post({"model": "m", **g}))
                if got != w:
                    fail(f"greedy output differs with speculation for {str(g)[:80]}:\n  plain {w}\n  spec  {got}")
            if spec.metrics().get("holdfast_prefix_cache_hit_tokens_total", 0) <= 0:
                fail("the repeated long prompt was not served from the prefix cache")
            print("  ok greedy output identical with and without speculation (text, logprobs, penalties, prefix cache)")

            # The same greedy requests inside a busy batch of sampled streams.
            noise = [{"prompt": f"noise {i} " + "lorem ipsum " * (i * 3), "max_tokens": 30, "temperature": 1,
                      "seed": i, "logit_bias": few if i % 2 else {}} for i in range(10)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(greedy) + len(noise)) as ex:
                futs = [ex.submit(spec.post, {"model": "m", **g}) for g in greedy]
                noise_futs = [ex.submit(spec.post, {"model": "m", **n}) for n in noise]
                busy = [choices(f.result()) for f in futs]
                for f in noise_futs:
                    f.result()
            if busy != want:
                fail("greedy output in a busy speculative batch differs from the plain server's")
            print("  ok greedy output identical inside a busy speculative batch")

            # Seeded sampling is reproducible with speculation, cold and warm prefix cache.
            sampled = {"model": "m", "prompt": "Sampled " + "words and more words " * 30, "max_tokens": 40,
                       "temperature": 0.9, "top_p": 0.95, "seed": 11, "logit_bias": few, "n": 2}
            a, b = choices(spec.post(sampled)), choices(spec.post(sampled))
            if a != b:
                fail(f"seeded sampling is not reproducible with speculation:\n  {a}\n  {b}")
            print("  ok seeded sampling reproducible with speculation")

            m = spec.metrics()
            drafted, kept = m.get("holdfast_spec_draft_tokens_total", 0), m.get("holdfast_spec_accepted_tokens_total", 0)
            rate = m.get("holdfast_spec_acceptance_rate", -1)
            if not (drafted > 0 and 0 < kept < drafted and abs(rate - kept / drafted) < 1e-6):
                fail(f"/metrics: {drafted} drafted, {kept} accepted, rate {rate}")
            if plain.metrics().get("holdfast_spec_draft_tokens_total", -1) != 0:
                fail("the plain server reports drafts")
            print(f"  ok /metrics: {int(drafted)} drafts, {int(kept)} accepted (rate {rate:.3f})")
        finally:
            plain.stop()
            spec.stop()

        # holdfast generate: same greedy ids, acceptance reported.
        ids = ["--model", model, "--prompt-ids", "0,1000,2000,3000", "--max-tokens", "24", "--ids", "--threads", "1"]
        p0, p1 = run("generate", *ids), run("generate", *ids, "--speculative", "mtp")
        if p0.returncode != 0 or p1.returncode != 0:
            fail(f"generate: {p0.stderr} {p1.stderr}")
        if p0.stdout != p1.stdout or not json.loads(p1.stdout)["ids"]:
            fail(f"generate ids differ with --speculative mtp: {p0.stdout} vs {p1.stdout}")
        if not re.search(r"speculative \(mtp\): \d+ drafts, \d+ accepted \(acceptance [\d.]+%\)", p1.stderr):
            fail(f"generate --speculative mtp does not report acceptance: {p1.stderr}")
        print("  ok generate --speculative mtp: same ids, acceptance reported")

        # Without an MTP module: clear errors.
        no_mtp = make_model(tmp, "tiny-no-mtp", 0)
        p = run("generate", "--model", no_mtp, "--prompt-ids", "0,1", "--speculative", "mtp")
        if p.returncode != 1 or "num_nextn_predict_layers" not in p.stderr:
            fail(f"generate --speculative mtp without MTP: {p.returncode} {p.stderr}")
        p = run("serve", "--model", no_mtp, "--port", "0", "--speculative", "mtp", timeout=60)
        if p.returncode != 1 or "num_nextn_predict_layers" not in p.stderr:
            fail(f"serve --speculative mtp without MTP: {p.returncode} {p.stderr}")
        p = run("generate", "--model", model, "--prompt-ids", "0,1", "--speculative", "eagle")
        if p.returncode == 0 or "--speculative" not in p.stderr:
            fail(f"--speculative eagle: {p.returncode} {p.stderr}")
        print("  ok errors without an MTP module and for an unknown --speculative")
    print("speculative_test: PASS")


if __name__ == "__main__":
    main()
