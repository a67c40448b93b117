"""Shared pieces of the `holdfast train` tests: a tiny synthetic token dataset written in the
docs/data_format.md layout (so the tests need no tokenizer), the tiny_v3 model config, a runner for
the binary and readers for metrics.jsonl and safetensors.

The data is a sparse Markov chain over 64 of the 384 ids (each id has three successors with
probabilities 0.7/0.2/0.1), so a model can learn it quickly: the unigram entropy is about 3.7 nats and
the conditional entropy about 0.8 nats. Only the Python standard library is used.
"""

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

BIN = os.environ.get("HOLDFAST_BIN", "")
SRC = os.environ.get("HOLDFAST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_CONFIG = os.path.join(SRC, "tests", "oracle", "configs", "tiny_v3.json")
VOCAB = 384
EOS = 1


def markov_tokens(n, seed):
    chain = random.Random(0)  # the same language in every split; `seed` picks the text
    succ = {t: chain.sample(range(2, 66), 3) for t in range(2, 66)}
    rng = random.Random(seed)
    out, t = [], 2
    for i in range(n):
        if i % 200 == 199:
            out.append(EOS)
            t = rng.randrange(2, 66)
            continue
        out.append(t)
        r = rng.random()
        t = succ[t][0 if r < 0.7 else 1 if r < 0.9 else 2]
    return out


def write_dataset(path, n_train=20000, n_val=3000, seed=1):
    """A dataset directory with train and val splits (uint16 shards, sha256 in index.json)."""
    os.makedirs(path, exist_ok=True)
    splits = {}
    for name, n, s in (("train", n_train, seed), ("val", n_val, seed + 1000)):
        toks = markov_tokens(n, s)
        data = struct.pack("<%dH" % len(toks), *toks)
        fname = "%s-00000.bin" % name
        with open(os.path.join(path, fname), "wb") as f:
            f.write(data)
        splits[name] = {"n_tokens": len(toks), "n_documents": toks.count(EOS),
                        "shards": [{"file": fname, "n_tokens": len(toks), "n_bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}]}
    index = {"format": "holdfast-tokens", "version": 1,
             "tokenizer": {"vocab_size": VOCAB, "eos_id": EOS, "sha256": ""},
             "dtype": "uint16", "splits": splits, "source": {"generator": "train_fixture.markov_tokens"}}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
    return path


def base_config(tmp, out_name, **overrides):
    """A train config (dict) for the tiny model on the tiny dataset; nested overrides merge."""
    cfg = {
        "model": {"config": TINY_CONFIG},
        "data": {"dir": os.path.join(tmp, "data")},
        "batch": {"global_batch": 4, "micro_batch": 2, "seq_len": 32},
        "steps": 16,
        "optimizer": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2},
        "seed": 7,
        "threads": 2,
        "out_dir": os.path.join(tmp, out_name),
        "checkpoint": {"every": 4, "keep_last": 3},
        "eval": {"every": 8, "batches": 2},
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = dict(cfg[k], **v)
        else:
            cfg[k] = v
    return cfg


def write_config(tmp, name, cfg):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err


def run(args, timeout=120):
    p = subprocess.run([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return Result(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def metrics(run_dir, kind=None):
    lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
    return [l for l in lines if kind is None or l["kind"] == kind]


def events(run_dir, name=None):
    return [e for e in metrics(run_dir, "event") if name is None or e["event"] == name]


def checkpoints(run_dir):
    d = os.path.join(run_dir, "checkpoints")
    return sorted(n for n in os.listdir(d) if n.startswith("step-")) if os.path.isdir(d) else []


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_safetensors(path):
    raw = read_bytes(path)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    return meta, header, raw[8 + n:]


def write_safetensors(path, meta, header, data):
    h = dict(header)
    if meta is not None:
        h["__metadata__"] = meta
    hj = json.dumps(h, separators=(",", ":")).encode()
    hj += b" " * ((-(8 + len(hj))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + data)


class Checks:
    """Collects failures so one run reports every broken property."""

    def __init__(self):
        self.failures = []

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failures.append(what)

    def finish(self):
        if self.failures:
            print("\n%d check(s) failed" % len(self.failures))
            sys.exit(1)
        print("\nall checks passed")


def temp_root(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def require_binary():
    if not BIN or not os.path.exists(BIN):
        print("HOLDFAST_BIN is not set or missing")
        sys.exit(1)
