#!/usr/bin/python3
"""Quality of q8 / q4 checkpoints against their source: perplexity on held-out text, top-1 agreement and
KL divergence with the source model's next-token distribution.

  /usr/bin/python3 bench/quant_quality.py --model DIR            # an F32/BF16 checkpoint (a trained one)
  /usr/bin/python3 bench/quant_quality.py --config CFG.json      # or random weights from `holdfast init`
      [--text FILE ...] [--windows 4] [--length 128] [--decode] [--threads 2] [--work DIR] [--json OUT]

Tokens: with DIR/tokenizer.json the text is tokenized by `holdfast tokenize`; otherwise its UTF-8 bytes
are the ids (byte + 3, so below most vocabularies). The text defaults to this repository's docs and
README (held out: no holdfast model is trained on them). Windows are taken from the end of the stream.
`--decode` feeds the tokens one at a time (`holdfast logits --decode`), as `generate` and `serve` decode;
without it each window runs as one prefill. Both take the int8 kernels for every Q8 / Q4 product.
On random weights perplexity is near the vocabulary size for every dtype and only the agreement and
KL numbers say much; on a trained model all three do.
Prints a table and one JSON line per dtype (and writes them to --json).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
BIN = os.environ.get("HOLDFAST_BIN", os.path.join(SRC, "build", "holdfast"))


def sh(args: list[str], stdin: str | None = None) -> str:
    r = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} ... failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def token_stream(model: str, texts: list[str], vocab: int) -> tuple[np.ndarray, str]:
    text = "\n\n".join(open(p, encoding="utf-8", errors="replace").read() for p in texts)
    tok = os.path.join(model, "tokenizer.json")
    if os.path.exists(tok):
        lines = "".join(json.dumps({"text": para}) + "\n" for para in text.split("\n\n") if para.strip())
        ids = [i for l in sh([BIN, "tokenize", "--tokenizer", tok], lines).splitlines() for i in json.loads(l)["ids"]]
        return np.array(ids, dtype=np.int64), "tokenizer.json"
    return (np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64) + 3) % vocab, "utf-8 bytes + 3"


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="source checkpoint directory (F32, BF16, F16 or FP8)")
    src.add_argument("--config", help="config.json to instantiate with random weights")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--text", nargs="*", default=None)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--decode", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=None, help="where quantized copies go (default: a temp dir, removed)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    work = a.work or tempfile.mkdtemp(prefix="holdfast_quality_")
    os.makedirs(work, exist_ok=True)
    try:
        source = a.model
        if a.config:
            source = os.path.join(work, "f32")
            sh([BIN, "init", "--config", a.config, "--seed", str(a.seed), "--out", source])
        cfg = json.load(open(os.path.join(source, "config.json")))
        texts = a.text or sorted(glob.glob(os.path.join(SRC, "docs", "*.md"))) + [os.path.join(SRC, "README.md")]
        stream, how = token_stream(source, texts, cfg["vocab_size"])
        need = a.windows * a.length
        if len(stream) < need:
            sys.exit(f"the text gives {len(stream)} tokens; --windows x --length needs {need}")
        toks = stream[-need:].reshape(a.windows, a.length)
        arg = ";".join(",".join(str(int(t)) for t in row) for row in toks)

        models = {"source": source}
        for kind in ("q8", "q4"):
            models[kind] = os.path.join(work, kind)
            t0 = time.time()
            sh([BIN, "quantize", "--model", source, "--type", kind, "--out", models[kind], "--threads", str(a.threads)])
            print(f"quantized {kind} in {time.time() - t0:.1f} s", file=sys.stderr)
        logp = {}
        for name, d in models.items():
            out = os.path.join(work, f"logits_{name}.npy")
            t0 = time.time()
            sh([BIN, "logits", "--model", d, "--tokens", arg, "--out", out, "--threads", str(a.threads)]
               + (["--decode", "--mla", "absorb"] if a.decode else []))
            print(f"logits {name} in {time.time() - t0:.1f} s", file=sys.stderr)
            logp[name] = log_softmax(np.load(out)[:, :-1])  # predictions for tokens 1..L-1
            os.remove(out)
        target = toks[:, 1:]
        ref = logp["source"]
        rows = []
        for name, lp in logp.items():
            nll = -np.take_along_axis(lp, target[..., None], axis=-1).mean()
            kl = (np.exp(ref) * (ref - lp)).sum(-1).mean()
            rows.append({"bench": "quant_quality", "dtype": name, "ppl": float(np.exp(nll)),
                         "ppl_vs_source_pct": 0.0, "top1_agree": float((lp.argmax(-1) == ref.argmax(-1)).mean()),
                         "kl_mean": float(kl), "tokens": int(target.size), "decode_path": bool(a.decode),
                         "vocab_size": cfg["vocab_size"], "token_source": how})
        for r in rows:
            r["ppl_vs_source_pct"] = 100 * (r["ppl"] / rows[0]["ppl"] - 1)
        print(f"{'dtype':<8}{'perplexity':>12}{'vs source':>11}{'top-1 agree':>13}{'KL(src||q)':>12}")
        for r in rows:
            print(f"{r['dtype']:<8}{r['ppl']:>12.3f}{r['ppl_vs_source_pct']:>+10.2f}%{r['top1_agree']:>13.4f}"
                  f"{r['kl_mean']:>12.2e}")
        print(f"({rows[0]['tokens']} predicted tokens, {how}, {'decode' if a.decode else 'prefill'} path)")
        for r in rows:
            print(json.dumps(r))
        if a.json:
            with open(a.json, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
