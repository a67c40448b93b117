#!/usr/bin/env python3
"""Error paths of the holdfast CLI on broken checkpoints, configs, tokenizers and flags.

Every case must exit non-zero (not by a signal, not by a timeout) and print exactly one
"holdfast: error: ..." line on stderr that names the file / tensor / field at fault (STYLE.md
"Errors"). A seeded fuzz loop then corrupts the start of model.safetensors 200 times and checks
that the engine never crashes: every run exits 0 or 1.

Environment: HOLDFAST_BIN (the holdfast binary), HOLDFAST_SOURCE_DIR (the repo root).
Only the Python standard library is used.
"""

import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("HOLDFAST_BIN", "")
SRC = os.environ.get("HOLDFAST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = os.path.join(SRC, "tests", "oracle", "configs", "tiny_v3.json")
TIMEOUT_S = 60
N_FUZZ = 200
N_FUZZ_HEADER = 100
FUZZ_SEED = 20240611
ERR_PREFIX = "holdfast: error: "

# ---------------------------------------------------------------------------------------------
# safetensors helper: u64 LE header length, JSON header, packed data section (MODEL-SPEC §2.2).
# ---------------------------------------------------------------------------------------------

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
              "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


class Safetensors:
    """A parsed safetensors file: metadata plus name -> {dtype, shape, bytes} in file order."""

    def __init__(self, metadata, tensors):
        self.metadata = metadata  # dict or None
        self.tensors = tensors    # dict name -> {"dtype", "shape", "data": bytes}

    @staticmethod
    def read(path):
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        data = raw[8 + n:]
        metadata = header.pop("__metadata__", None)
        items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
        tensors = {}
        for name, e in items:
            b, end = e["data_offsets"]
            tensors[name] = {"dtype": e["dtype"], "shape": list(e["shape"]), "data": data[b:end]}
        return Safetensors(metadata, tensors)

    def layout(self):
        """(header dict, data bytes) with tensors packed back to back in dict order."""
        header = {}
        if self.metadata is not None:
            header["__metadata__"] = self.metadata
        parts, off = [], 0
        for name, t in self.tensors.items():
            header[name] = {"dtype": t["dtype"], "shape": t["shape"],
                            "data_offsets": [off, off + len(t["data"])]}
            parts.append(t["data"])
            off += len(t["data"])
        return header, b"".join(parts)

    def write(self, path):
        header, data = self.layout()
        write_raw(path, header, data)


def encode_header(header):
    """JSON header bytes padded with spaces so that 8 + len is a multiple of 8."""
    hj = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return hj + b" " * ((-(8 + len(hj))) % 8)


def write_raw(path, header, data, header_len=None):
    """Writes length + header + data; header may be a dict or raw bytes; header_len overrides N."""
    hj = encode_header(header)
    n = len(hj) if header_len is None else header_len
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + hj + data)


def nbytes(dtype, shape):
    n = DTYPE_SIZE[dtype]
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------------------------------------
# Running the binary.
# ---------------------------------------------------------------------------------------------

class Result:
    def __init__(self, rc, stdout, stderr, timed_out=False):
        self.rc, self.stdout, self.stderr, self.timed_out = rc, stdout, stderr, timed_out


def run(args, stdin_text=""):
    try:
        p = subprocess.run([BIN] + args, input=stdin_text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT_S)
        return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired as e:
        return Result(None, (e.stdout or b"").decode("utf-8", "replace"),
                      (e.stderr or b"").decode("utf-8", "replace"), timed_out=True)


def describe_rc(r):
    if r.timed_out:
        return "timeout"
    if r.rc < 0:
        try:
            return "signal " + signal.Signals(-r.rc).name
        except ValueError:
            return "signal %d" % -r.rc
    return str(r.rc)


CRASH_WORDS = ("Aborted", "Segmentation", "terminate called", "core dumped", "AddressSanitizer",
               "UndefinedBehaviorSanitizer", "runtime error:")

rows = []      # (case, rc, message) for the table
failures = []  # (case, why)


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.strip()]


def expect_error(case, args, needles, stdin_text="", cli11_usage=False):
    """Runs `args`, which must fail cleanly with one error line containing every needle.

    cli11_usage: the failure is a command-line validation done by CLI11 (its own exit code and a
    "Run with --help" hint line) rather than an engine error; the hint line is not counted.
    """
    r = run(args, stdin_text)
    lines = error_lines(r.stderr)
    msg = " | ".join(lines)
    rows.append((case, describe_rc(r), msg))
    why = []
    if r.timed_out:
        why.append("timed out after %d s" % TIMEOUT_S)
    elif r.rc < 0:
        why.append("killed by %s" % describe_rc(r))
    elif r.rc == 0:
        why.append("exited 0, expected an error")
    if any(w in r.stderr for w in CRASH_WORDS):
        why.append("crash text on stderr")
    if cli11_usage:
        lines = [l for l in lines if not l.startswith("Run with --help")]
        if len(lines) != 1:
            why.append("expected one error line, got %d: %r" % (len(lines), lines))
    else:
        if r.rc not in (None,) and r.rc > 0 and r.rc != 1:
            why.append("exit code %d, expected 1" % r.rc)
        if len(lines) != 1 or not lines[0].startswith(ERR_PREFIX):
            why.append("expected exactly one '%s...' line on stderr, got %r" % (ERR_PREFIX, lines))
    text = "\n".join(lines)
    for n in needles:
        if n not in text:
            why.append("message lacks %r" % n)
    if why:
        failures.append((case, "; ".join(why) + "\n      stderr: " + r.stderr.strip()[:600]))


def expect_model_error(case, model_dir, needles):
    """The broken checkpoint must be rejected the same way by `logits` and `generate`."""
    out = os.path.join(model_dir, "out.npy")
    expect_error(case + " [logits]",
                 ["logits", "--model", model_dir, "--tokens", "1,2,3", "--out", out], needles)
    expect_error(case + " [generate]",
                 ["generate", "--model", model_dir, "--prompt-ids", "1,2,3", "--max-tokens", "2",
                  "--ids"], needles)


# ---------------------------------------------------------------------------------------------
# Cases.
# ---------------------------------------------------------------------------------------------

def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("HOLDFAST_BIN is not set to an executable: %r" % BIN)
        return 1
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="holdfast_errors_")
    try:
        return run_cases(tmp, t_start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_cases(tmp, t_start):
    good = os.path.join(tmp, "good")
    r = run(["init", "--config", CONFIG, "--seed", "1", "--out", good])
    if r.rc != 0:
        print("init failed (%s): %s" % (describe_rc(r), r.stderr))
        return 1
    r = run(["logits", "--model", good, "--tokens", "1,2,3", "--out", os.path.join(tmp, "good.npy")])
    if r.rc != 0:
        print("logits on the valid checkpoint failed (%s): %s" % (describe_rc(r), r.stderr))
        return 1

    st_path = os.path.join(good, "model.safetensors")
    raw = open(st_path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    good_st = Safetensors.read(st_path)
    good_cfg = json.load(open(os.path.join(good, "config.json")))
    counter = [0]

    def copy_ckpt():
        counter[0] += 1
        d = os.path.join(tmp, "case%03d" % counter[0])
        shutil.copytree(good, d)
        return d

    def st_of(d):
        return os.path.join(d, "model.safetensors")

    def cfg_of(d):
        return os.path.join(d, "config.json")

    # --- truncated files -------------------------------------------------------------------
    for label, cut in [("to nothing", 0),
                       ("inside the 8-byte length", 5),
                       ("inside the header", 8 + hlen // 2),
                       ("just after the header", 8 + hlen),
                       ("inside the data", 8 + hlen + (len(raw) - 8 - hlen) // 2),
                       ("one byte short", len(raw) - 1)]:
        d = copy_ckpt()
        with open(st_of(d), "wb") as f:
            f.write(raw[:cut])
        needles = ["model.safetensors"]
        if cut < 8:
            needles.append("8-byte")
        elif cut < 8 + hlen:
            needles += [str(hlen), "past the end"]
        else:
            needles.append("tensor '")  # the tensor whose bytes are cut off
        expect_model_error("truncated %s (%d bytes)" % (label, cut), d, needles)

    # --- header length field ----------------------------------------------------------------
    d = copy_ckpt()
    with open(st_of(d), "wb") as f:
        f.write(struct.pack("<Q", len(raw) + 1000) + raw[8:])
    expect_model_error("header length beyond the file", d,
                       ["model.safetensors", str(len(raw) + 1000), str(len(raw))])
    d = copy_ckpt()
    with open(st_of(d), "wb") as f:
        f.write(struct.pack("<Q", 2**63 + 5) + raw[8:])
    expect_model_error("header length 2^63+5", d, ["model.safetensors", str(2**63 + 5)])

    # --- header JSON --------------------------------------------------------------------------
    header, data = good_st.layout()
    d = copy_ckpt()
    hj = json.dumps(header, separators=(",", ":")).encode()
    write_raw(st_of(d), hj[:-1] + b",}", data)  # trailing comma: not JSON
    expect_model_error("invalid header JSON", d, ["model.safetensors", "JSON"])

    d = copy_ckpt()
    write_raw(st_of(d), b"[1, 2, 3]", b"")
    expect_model_error("header not an object", d, ["model.safetensors", "object"])

    d = copy_ckpt()
    write_raw(st_of(d), b'{"__metadata__": {"format": "pt"}, "a": 1}', b"")
    expect_model_error("tensor entry not an object", d, ["model.safetensors", "'a'"])

    # --- offsets ---------------------------------------------------------------------------------
    names = list(good_st.tensors)
    first, second, last = names[0], names[1], names[-1]

    d = copy_ckpt()
    h, data = good_st.layout()
    size2 = h[second]["data_offsets"][1] - h[second]["data_offsets"][0]
    h[second]["data_offsets"] = [0, size2]  # overlaps `first`, which starts at 0
    write_raw(st_of(d), h, data)
    expect_model_error("overlapping offsets", d, ["model.safetensors", "overlap", first, second])

    d = copy_ckpt()
    h, data = good_st.layout()
    b, e = h[last]["data_offsets"]
    h[last]["data_offsets"] = [b + 4096, e + 4096]
    write_raw(st_of(d), h, data)
    expect_model_error("out-of-range offsets", d,
                       ["model.safetensors", last, str(e + 4096), str(len(data))])

    d = copy_ckpt()
    h, data = good_st.layout()
    b, e = h[last]["data_offsets"]
    h[last]["data_offsets"] = [b + 8, e + 8]
    write_raw(st_of(d), h, data[:b] + b"\0" * 8 + data[b:])
    expect_model_error("hole in the data section", d, ["model.safetensors", "hole", last, str(b)])

    d = copy_ckpt()
    h, data = good_st.layout()
    write_raw(st_of(d), h, data + b"\0" * 16)
    expect_model_error("trailing bytes after the data", d, ["model.safetensors", "16"])

    d = copy_ckpt()
    h, data = good_st.layout()
    b, e = h[first]["data_offsets"]
    h[first]["data_offsets"] = [b, e - 4]  # byte count no longer matches dtype x shape
    write_raw(st_of(d), h, data)
    expect_model_error("offsets disagree with shape", d, ["model.safetensors", first])

    # --- dtypes ----------------------------------------------------------------------------------
    d = copy_ckpt()
    h, data = good_st.layout()
    victim = "model.layers.0.self_attn.q_a_proj.weight"
    h[victim]["dtype"] = "F12"
    write_raw(st_of(d), h, data)
    expect_model_error("unknown dtype F12", d, ["model.safetensors", victim, "F12"])

    d = copy_ckpt()
    st = Safetensors.read(st_path)
    t = st.tensors[victim]
    t["dtype"] = "F8_E4M3"
    t["data"] = t["data"][:nbytes("F8_E4M3", t["shape"])]
    st.write(st_of(d))
    expect_model_error("F8_E4M3 without _scale_inv", d,
                       ["model.safetensors", victim, victim + "_scale_inv", "F8_E4M3"])

    d = copy_ckpt()
    st = Safetensors.read(st_path)
    t = st.tensors[victim]
    t["dtype"] = "F8_E4M3"
    t["data"] = t["data"][:nbytes("F8_E4M3", t["shape"])]
    st.tensors[victim + "_scale_inv"] = {"dtype": "F32", "shape": [2, 2], "data": b"\0" * 16}
    st.write(st_of(d))
    need = [(t["shape"][0] + 127) // 128, (t["shape"][1] + 127) // 128]
    expect_model_error("F8_E4M3 with a wrongly shaped _scale_inv", d,
                       ["model.safetensors", victim + "_scale_inv", "[2, 2]",
                        "[%d, %d]" % tuple(need)])

    d = copy_ckpt()
    st = Safetensors.read(st_path)
    t = st.tensors[victim]
    t["dtype"] = "I32"  # same byte size, but not a weight dtype
    st.write(st_of(d))
    expect_model_error("weight stored as I32", d, ["model.safetensors", victim, "I32"])

    # --- shapes against config.json --------------------------------------------------------------
    d = copy_ckpt()
    st = Safetensors.read(st_path)
    rows_, cols = st.tensors[victim]["shape"]
    assert rows_ != cols
    st.tensors[victim]["shape"] = [cols, rows_]  # same byte size, dims swapped
    st.write(st_of(d))
    expect_model_error("tensor shape swapped", d,
                       ["model.safetensors", victim, "[%d, %d]" % (cols, rows_),
                        "[%d, %d]" % (rows_, cols), "config.json"])

    d = copy_ckpt()
    cfg = dict(good_cfg)
    cfg["hidden_size"] = good_cfg["hidden_size"] // 2
    json.dump(cfg, open(cfg_of(d), "w"))
    V, H = good_cfg["vocab_size"], good_cfg["hidden_size"]
    expect_model_error("config.json hidden_size halved", d,
                       ["model.safetensors", "model.embed_tokens.weight", "[%d, %d]" % (V, H),
                        "[%d, %d]" % (V, H // 2), "hidden_size=%d" % (H // 2)])

    d = copy_ckpt()
    st = Safetensors.read(st_path)
    dropped = "model.layers.1.mlp.experts.3.up_proj.weight"
    del st.tensors[dropped]
    st.write(st_of(d))
    expect_model_error("missing tensor", d, [dropped, "missing"])

    d = copy_ckpt()
    st = Safetensors.read(st_path)
    del st.tensors["model.layers.2.shared_head.head.weight"]
    st.write(st_of(d))
    expect_model_error("missing MTP tensor", d, ["model.layers.2.shared_head.head.weight"])

    # --- config.json -----------------------------------------------------------------------------
    d = copy_ckpt()
    os.remove(cfg_of(d))
    expect_model_error("config.json missing", d, ["config.json"])

    d = copy_ckpt()
    open(cfg_of(d), "w").write('{"model_type": "deepseek_v3", "hidden_size": 128,')
    expect_model_error("config.json not JSON", d, ["config.json", "JSON"])

    d = copy_ckpt()
    os.remove(cfg_of(d))
    os.mkdir(cfg_of(d))
    expect_model_error("config.json is a directory", d, ["config.json"])

    d = copy_ckpt()
    open(cfg_of(d), "w").write("[1, 2]")
    expect_model_error("config.json not an object", d, ["config.json", "object"])

    bad_values = [
        ("negative hidden_size", {"hidden_size": -128}, "hidden_size", ["-128"]),
        ("string hidden_size", {"hidden_size": "128"}, "hidden_size", ['"128"']),
        ("fractional num_hidden_layers", {"num_hidden_layers": 2.5}, "num_hidden_layers", ["2.5"]),
        ("unknown scoring_func", {"scoring_func": "tanh"}, "scoring_func", ["tanh"]),
        ("unknown topk_method", {"topk_method": "top_p"}, "topk_method", ["top_p"]),
        ("num_experts_per_tok > n_routed_experts", {"num_experts_per_tok": 9},
         "num_experts_per_tok", ["9", "8"]),
        ("n_group not dividing experts", {"n_group": 3}, "n_group", ["3", "8"]),
        ("topk_group > n_group", {"topk_group": 5}, "topk_group", ["5", "4"]),
        ("rope_scaling type linear", {"rope_scaling": {"type": "linear", "factor": 2.0}},
         "rope_scaling.type", ["linear"]),
        ("unknown model_type", {"model_type": "llama"}, "model_type", ["llama"]),
        ("hidden_act gelu", {"hidden_act": "gelu"}, "hidden_act", ["gelu"]),
        ("odd qk_rope_head_dim", {"qk_rope_head_dim": 15}, "qk_rope_head_dim", ["15"]),
        ("rms_norm_eps zero", {"rms_norm_eps": 0}, "rms_norm_eps", ["0"]),
        ("norm_topk_prob a string", {"norm_topk_prob": "yes"}, "norm_topk_prob", ["yes"]),
    ]
    for label, patch, field, extra in bad_values:
        d = copy_ckpt()
        cfg = dict(good_cfg)
        cfg.update(patch)
        json.dump(cfg, open(cfg_of(d), "w"), indent=2)
        expect_model_error("config.json " + label, d, ["config.json", "'%s'" % field] + extra)

    # --- sharded checkpoints ---------------------------------------------------------------------
    d = copy_ckpt()
    weight_map = {n: "model.safetensors" for n in names}
    weight_map[victim] = "model-00002-of-00002.safetensors"
    json.dump({"metadata": {"total_size": len(raw)}, "weight_map": weight_map},
              open(os.path.join(d, "model.safetensors.index.json"), "w"))
    expect_model_error("index names a missing shard", d,
                       ["model.safetensors.index.json", "model-00002-of-00002.safetensors", victim])

    d = copy_ckpt()
    open(os.path.join(d, "model.safetensors.index.json"), "w").write('{"weight_map": ')
    expect_model_error("index not JSON", d, ["model.safetensors.index.json", "JSON"])

    d = copy_ckpt()
    weight_map = {n: "model.safetensors" for n in names}
    weight_map["model.layers.0.not_a_tensor.weight"] = "model.safetensors"
    json.dump({"weight_map": weight_map}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
    expect_model_error("index names a tensor its shard lacks", d,
                       ["model.safetensors.index.json", "model.layers.0.not_a_tensor.weight"])

    d = copy_ckpt()
    os.remove(st_of(d))
    expect_model_error("no safetensors at all", d, [d])

    expect_model_error("model directory missing", os.path.join(tmp, "nonexistent"),
                       [os.path.join(tmp, "nonexistent")])

    # --- token ids and flag values ---------------------------------------------------------------
    out = os.path.join(tmp, "x.npy")
    V = good_cfg["vocab_size"]
    expect_error("logits token id out of range",
                 ["logits", "--model", good, "--tokens", "1,99999", "--out", out],
                 ["99999", str(V)])
    expect_error("logits negative token id",
                 ["logits", "--model", good, "--tokens", "1,-1", "--out", out], ["-1", str(V)])
    expect_error("logits token id = vocab_size",
                 ["logits", "--model", good, "--tokens", "%d" % V, "--out", out], [str(V)])
    expect_error("logits malformed --tokens '1,a'",
                 ["logits", "--model", good, "--tokens", "1,a", "--out", out], ["--tokens", "'a'"])
    expect_error("logits unequal rows '1,2;3'",
                 ["logits", "--model", good, "--tokens", "1,2;3", "--out", out],
                 ["--tokens", "2", "1"])
    expect_error("logits empty --tokens",
                 ["logits", "--model", good, "--tokens", "", "--out", out], ["--tokens"])
    expect_error("logits token id beyond int32",
                 ["logits", "--model", good, "--tokens", "1,4294967296", "--out", out],
                 ["--tokens", "4294967296"])
    expect_error("generate token id out of range",
                 ["generate", "--model", good, "--prompt-ids", "1,99999", "--ids"],
                 ["99999", str(V)])
    expect_error("generate malformed --prompt-ids '1,a'",
                 ["generate", "--model", good, "--prompt-ids", "1,a", "--ids"],
                 ["--prompt-ids", "'a'"])
    expect_error("logits --out in a missing directory",
                 ["logits", "--model", good, "--tokens", "1,2", "--out",
                  os.path.join(tmp, "no", "such", "dir", "x.npy")], [os.path.join(tmp, "no")])

    # --- tokenizers ------------------------------------------------------------------------------
    expect_error("tokenize --tokenizer /nonexistent.json",
                 ["tokenize", "--tokenizer", "/nonexistent.json"], ["/nonexistent.json"],
                 stdin_text='{"text": "hi"}\n', cli11_usage=True)
    bad_tok = os.path.join(tmp, "bad_tokenizer.json")
    open(bad_tok, "w").write('{"model": {"type": "BPE", "vocab": {"a": 0,')
    expect_error("tokenize tokenizer.json not JSON", ["tokenize", "--tokenizer", bad_tok],
                 [bad_tok, "JSON"], stdin_text='{"text": "hi"}\n')
    expect_error("generate --tokenizer /nonexistent.json",
                 ["generate", "--model", good, "--prompt", "hi", "--tokenizer",
                  "/nonexistent.json"], ["/nonexistent.json"])
    expect_error("generate --prompt with a bad tokenizer.json",
                 ["generate", "--model", good, "--prompt", "hi", "--tokenizer", bad_tok], [bad_tok])

    # --- fuzz: random corruption of the first 4 KiB of model.safetensors ------------------------
    rng = random.Random(FUZZ_SEED)
    fuzz_dir = copy_ckpt()
    fpath = st_of(fuzz_dir)
    outcomes = {}
    fuzz_failures = [0]

    def fuzz_run(label):
        """One `logits` run on the corrupted file: exit 0, or 1 with one error line; never a crash."""
        r = run(["logits", "--model", fuzz_dir, "--tokens", "1", "--out",
                 os.path.join(tmp, "fuzz.npy")])
        key = describe_rc(r)
        outcomes[key] = outcomes.get(key, 0) + 1
        bad = []
        if r.timed_out or r.rc not in (0, 1):
            bad.append("exit %s" % key)
        if any(w in r.stderr for w in CRASH_WORDS):
            bad.append("crash text on stderr")
        if r.rc == 1:
            lines = error_lines(r.stderr)
            if len(lines) != 1 or not lines[0].startswith(ERR_PREFIX):
                bad.append("expected one error line, got %r" % lines[:3])
        if bad:
            fuzz_failures[0] += 1
            keep = os.path.join(tempfile.gettempdir(),
                                "holdfast_fuzz_fail_%d.safetensors" % fuzz_failures[0])
            shutil.copyfile(fpath, keep)
            failures.append((label, "; ".join(bad) + " (input kept at %s)\n      stderr: %s"
                             % (keep, r.stderr.strip()[:400])))

    for i in range(N_FUZZ):
        buf = bytearray(raw)
        kind = rng.choice(["flip", "flip", "byte", "truncate", "both"])
        if kind in ("flip", "both"):
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(4096)] ^= 1 << rng.randrange(8)
        if kind == "byte":
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(4096)] = rng.randrange(256)
        if kind in ("truncate", "both"):
            del buf[rng.randrange(4096):]
        with open(fpath, "wb") as f:
            f.write(buf)
        fuzz_run("fuzz #%d (%s)" % (i, kind))

    # Structured variant: rewrite one number of the header JSON (shapes, offsets, digits in names)
    # to an extreme value, keeping the length field consistent, so the checks behind the JSON
    # parser run too.
    htext = raw[8:8 + hlen].decode()
    numbers = [m.span() for m in re.finditer(r"\d+", htext)]
    extremes = ["0", "1", "7", "4294967296", "9223372036854775807", "9223372036854775808",
                "18446744073709551615", "18446744073709551616", "-1", "1e30", "3.5"]
    for i in range(N_FUZZ_HEADER):
        b, e = numbers[rng.randrange(len(numbers))]
        new = rng.choice(extremes + [str(rng.randrange(1 << rng.randrange(1, 64)))])
        write_raw(fpath, (htext[:b] + new + htext[e:]).encode(), raw[8 + hlen:])
        fuzz_run("header fuzz #%d (%r -> %s)" % (i, htext[b:e], new))

    rows.append(("fuzz: %d corrupted copies + %d header numbers" % (N_FUZZ, N_FUZZ_HEADER),
                 ", ".join("%s x%d" % kv for kv in sorted(outcomes.items())),
                 "%d bad" % fuzz_failures[0]))

    # --- report ----------------------------------------------------------------------------------
    w_case = max(len(c) for c, _, _ in rows)
    w_rc = max(len(str(rc)) for _, rc, _ in rows)
    print("%-*s  %-*s  %s" % (w_case, "case", w_rc, "exit", "message"))
    print("-" * (w_case + w_rc + 60))
    for case, rc, msg in rows:
        if len(msg) > 220:
            msg = msg[:217] + "..."
        print("%-*s  %-*s  %s" % (w_case, case, w_rc, rc, msg))
    print()
    print("%d cases, %d failed, %.1f s" % (len(rows), len(failures), time.time() - t_start))
    for case, why in failures:
        print("FAIL %s: %s" % (case, why))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
