#!/usr/bin/env python3
"""`holdfast data prepare` end to end with the real DeepSeek-V3 tokenizer.json.

Round trips: the shards (read here with struct, hashed with hashlib) must hold exactly the ids that
`holdfast tokenize` gives for each document, EOS-separated, split into train/val by the documented
every-k-th rule, for blank-line paragraphs (with small --chunk-bytes, so long documents are encoded
in pieces), whole files, --doc-lines and JSON lines; --threads must not change a byte. Then the
error paths (one "holdfast: error:" line naming the file / flag, no DIR.tmp-* left behind), and the
King James corpus from scripts/prepare_corpus.sh (1189 chapters -> 1189 documents).

Environment: HOLDFAST_BIN (the holdfast binary), HOLDFAST_SOURCE_DIR (the repo root).
"""

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

BIN = os.environ.get("HOLDFAST_BIN", "")
SRC = os.environ.get("HOLDFAST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZER = os.path.join(SRC, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models", "tokenizer.json")
ERR_PREFIX = "holdfast: error: "
WS = b" \t\r\n\f\v"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


def run(args, stdin=b""):
    return subprocess.run([BIN] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


IDS = {}  # text -> ids from `holdfast tokenize`; filled by one process per call for what is missing


def tokenize(texts):
    """Ids of each text from `holdfast tokenize` (one process for all texts not seen yet)."""
    missing = sorted(set(t for t in texts if t not in IDS))
    if missing:
        lines = "".join(json.dumps({"text": t}) + "\n" for t in missing).encode()
        p = run(["tokenize", "--tokenizer", TOKENIZER], lines)
        assert p.returncode == 0, p.stderr.decode()
        out = [json.loads(l)["ids"] for l in p.stdout.decode().splitlines()]
        assert len(out) == len(missing)
        IDS.update(zip(missing, out))
    return [IDS[t] for t in texts]


def prepare(args):
    p = run(["data", "prepare", "--tokenizer", TOKENIZER] + args)
    assert p.returncode == 0, "data prepare %r failed: %s" % (args, p.stderr.decode())
    return json.loads(p.stdout.decode()), p.stderr.decode()


def read_split(d, split):
    """The split's token stream, checking sizes and sha256 of every shard."""
    idx = json.load(open(os.path.join(d, "index.json")))
    width = {"uint16": 2, "uint32": 4}[idx["dtype"]]
    fmt = "<%d" + ("H" if width == 2 else "I")
    ids = []
    for sh in idx["splits"][split]["shards"]:
        raw = open(os.path.join(d, sh["file"]), "rb").read()
        check(len(raw) == sh["n_bytes"] == sh["n_tokens"] * width, "%s: size %d vs index %r" % (sh["file"], len(raw), sh))
        check(hashlib.sha256(raw).hexdigest() == sh["sha256"], "%s: sha256 differs from the index" % sh["file"])
        ids += struct.unpack(fmt % (len(raw) // width), raw)
    check(len(ids) == idx["splits"][split]["n_tokens"], "%s: n_tokens" % split)
    return idx, ids


def blank_line_docs(data):
    """Documents of --split-blank-lines, per docs/data_format.md."""
    docs, cur = [], b""
    for line in re.findall(rb"[^\n]*\n|[^\n]+$", data):
        if line.strip(WS) == b"":
            if cur.strip(WS):
                docs.append(cur)
            cur = b""
        else:
            cur += line
    if cur.strip(WS):
        docs.append(cur)
    out = []
    for d in docs:
        if d.endswith(b"\n"):
            d = d[:-1]
        if d.endswith(b"\r"):
            d = d[:-1]
        out.append(d.decode())
    return out


def expect_streams(docs, eos, k):
    """train / val streams for documents `docs` with every k-th in val (k = 0: no val)."""
    train, val = [], []
    for i, ids in enumerate(tokenize(docs)):
        (val if k and i % k == k - 1 else train).extend(ids + [eos])
    return train, val


CORPUS = (
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "\n"
    "Numbers 12345 and 3.14159, then 2024-06-11T10:00:00Z; tabs\tand  double  spaces.\n"
    "  an indented line after a newline\n"
    "(parenthesised) line, \"quoted\" line, 'single' line, -dash line\n"
    "\r\n"
    "Windows line endings here\r\nand here\r\n"
    "\n\n\n"
    "Unicode: café naïve façade, 中文字符测试, 日本語のテキスト, emoji 🙂🚀, Ελληνικά, русский текст.\n"
    "Mixed123abc, ALLCAPS, camelCaseWords, snake_case_words, URLs https://example.com/a?b=c.\n"
    " \n"
    "Short.\n"
    "\t\n"
    + "".join("Verse %d of a long paragraph that spans many chunk pieces when --chunk-bytes is small.\n" % i
              for i in range(40))
    + "\n"
    + "Last paragraph without a final newline"
)


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("HOLDFAST_BIN is not set to an executable: %r" % BIN)
        return 1
    if not os.path.exists(TOKENIZER):
        print("missing %s: run `npm ci` (scripts/install-deps.sh)" % TOKENIZER)
        return 1
    tok = json.load(open(TOKENIZER))
    eos = next(t["id"] for t in tok["added_tokens"] if t["content"] == "<｜end▁of▁sentence｜>")
    tmp = tempfile.mkdtemp(prefix="holdfast_data_prepare_")
    try:
        corpus = os.path.join(tmp, "corpus.txt")
        open(corpus, "wb").write(CORPUS.encode())
        second = os.path.join(tmp, "second.txt")
        open(second, "wb").write("second file\n\nwith a blank line\n".encode())
        jdocs = ["first {\"json\"} doc\nwith lines", "Zweites Dokument — ünïcödé", "third\n" * 30]
        kjv = os.path.join(tmp, "kjv.txt")
        p = subprocess.run(["bash", os.path.join(SRC, "scripts", "prepare_corpus.sh"), kjv], stderr=subprocess.PIPE)
        kjv_ok, kjv_err = p.returncode == 0, p.stderr.decode()
        text = open(kjv, "rb").read() if kjv_ok else b""
        # Every expected document through one `holdfast tokenize` process.
        tokenize(blank_line_docs(CORPUS.encode()) + [CORPUS, "second file\n\nwith a blank line\n", "second file\n",
                 "with a blank line"] + jdocs + blank_line_docs(text))

        # Blank-line paragraphs, val split, small shards, tiny chunks; 1 and 3 threads.
        docs = blank_line_docs(CORPUS.encode())
        check(len(docs) == 7, "expected 7 paragraphs in the corpus, got %d" % len(docs))
        want_train, want_val = expect_streams(docs, eos, 3)
        shas = []
        for threads in ("1", "3"):
            out = os.path.join(tmp, "para" + threads)
            summary, err = prepare(["--input", corpus, "--split-blank-lines", "--val-fraction", "0.34",
                                    "--shard-tokens", "100", "--chunk-bytes", "40", "--threads", threads,
                                    "--out", out])
            idx, train = read_split(out, "train")
            _, val = read_split(out, "val")
            check(idx["dtype"] == "uint32" and idx["tokenizer"]["eos_id"] == eos, "index dtype/eos: %r" % idx["tokenizer"])
            check(idx["tokenizer"]["sha256"] == hashlib.sha256(open(TOKENIZER, "rb").read()).hexdigest(),
                  "tokenizer sha256")
            check(train == want_train, "blank-line train stream differs from `holdfast tokenize` (threads %s)" % threads)
            check(val == want_val, "blank-line val stream differs from `holdfast tokenize` (threads %s)" % threads)
            check(idx["splits"]["train"]["n_documents"] == 5 and idx["splits"]["val"]["n_documents"] == 2,
                  "document counts %r" % {k: v["n_documents"] for k, v in idx["splits"].items()})
            check(len(idx["splits"]["train"]["shards"]) == (len(want_train) + 99) // 100, "shard count")
            check(summary["mb_per_s"] > 0 and "MB/s" in err, "summary lacks MB/s: %r %r" % (summary, err))
            shas.append([s["sha256"] for s in idx["splits"]["train"]["shards"]])
        check(shas[0] == shas[1], "--threads 1 and 3 wrote different shards")

        # Whole files (the default) and --doc-lines.
        out = os.path.join(tmp, "files")
        prepare(["--input", corpus, second, "--chunk-bytes", "64", "--out", out])
        check(read_split(out, "train")[1] == expect_streams([CORPUS, "second file\n\nwith a blank line\n"], eos, 0)[0],
              "whole-file stream differs from `holdfast tokenize` of each file")
        out = os.path.join(tmp, "lines")
        prepare(["--input", second, "--doc-lines", "2", "--out", out])
        check(read_split(out, "train")[1] == expect_streams(["second file\n", "with a blank line"], eos, 0)[0],
              "--doc-lines 2 stream")

        # JSON lines.
        jl = os.path.join(tmp, "docs.jsonl")
        open(jl, "w").write("".join(json.dumps({"text": t, "meta": i}) + "\n" for i, t in enumerate(jdocs)) + "\n")
        out = os.path.join(tmp, "jsonl")
        prepare(["--input", jl, "--format", "jsonl", "--chunk-bytes", "16", "--out", out])
        check(read_split(out, "train")[1] == expect_streams(jdocs, eos, 0)[0], "jsonl stream")

        # Errors: one error line naming the culprit, nothing half-written.
        bad = os.path.join(tmp, "bad.jsonl")
        open(bad, "w").write('{"text": "ok"}\n{"text": 5}\n')
        cases = [
            (["--input", bad, "--format", "jsonl", "--out", os.path.join(tmp, "e1")], ["bad.jsonl:2", "must be a string"]),
            (["--input", corpus, "--out", os.path.join(tmp, "para1")], ["para1", "already exists", "--force"]),
            (["--input", corpus, "--out", corpus, "--force"], ["corpus.txt", "not a dataset directory"]),
            (["--input", corpus, "--eos-id", "999999", "--out", os.path.join(tmp, "e2")], ["--eos-id 999999"]),
            (["--input", jl, "--format", "jsonl", "--split-blank-lines", "--out", os.path.join(tmp, "e3")],
             ["--split-blank-lines"]),
            (["--input", second, "--val-fraction", "0.5", "--doc-lines", "5", "--out", os.path.join(tmp, "e4")],
             ["--val-fraction 0.5 selects no document"]),
            (["--input", corpus, "--out", os.path.join(tmp, "no", "such", "dir")], ["does not exist"]),
        ]
        for args, needles in cases:
            p = run(["data", "prepare", "--tokenizer", TOKENIZER] + args)
            lines = [l for l in p.stderr.decode().splitlines() if l.strip()]
            ok = p.returncode == 1 and len(lines) == 1 and lines[0].startswith(ERR_PREFIX)
            ok = ok and all(n in lines[0] for n in needles)
            check(ok, "error case %r: rc %d, stderr %r, wanted %r" % (args, p.returncode, lines, needles))
        for args, needle in [(["--input", os.path.join(tmp, "missing.txt"), "--out", os.path.join(tmp, "e5")], "missing.txt"),
                             (["--input", corpus, "--val-fraction", "0.7", "--out", os.path.join(tmp, "e6")], "--val-fraction")]:
            p = run(["data", "prepare", "--tokenizer", TOKENIZER] + args)
            check(p.returncode not in (0, 1) and p.returncode > 0 and needle in p.stderr.decode(),
                  "CLI11 validation %r: rc %d %r" % (args, p.returncode, p.stderr.decode()))
        left = sorted(e for e in os.listdir(tmp) if ".tmp-" in e or e.startswith("e"))
        check(left == [], "failed runs left %r behind" % left)
        for args, needle in ((["data", "--help"], b"prepare"), (["data", "prepare", "--help"], b"--split-blank-lines")):
            p = run(args)
            check(p.returncode == 0 and needle in p.stdout, "%r should print help mentioning %r" % (args, needle))

        # The embedded corpus.
        if check(kjv_ok, "prepare_corpus.sh failed (install bible-kjv via scripts/install-deps.sh): %s" % kjv_err):
            check(text.startswith(b"Genesis 1\nIn the beginning God created the heaven and the earth.\n"), "kjv start")
            out = os.path.join(tmp, "kjv")
            summary, err = prepare(["--input", kjv, "--split-blank-lines", "--val-fraction", "0.02", "--out", out])
            idx, train = read_split(out, "train")
            _, val = read_split(out, "val")
            n_docs = idx["splits"]["train"]["n_documents"] + idx["splits"]["val"]["n_documents"]
            check(n_docs == 1189 and idx["splits"]["val"]["n_documents"] == 23, "kjv documents %d" % n_docs)
            check(train.count(eos) == 1166 and val.count(eos) == 23 and train[-1] == eos, "kjv EOS count")
            # The whole corpus (4 MB, several 1 MiB read blocks) against `holdfast tokenize` per chapter.
            want_train, want_val = expect_streams(blank_line_docs(text), eos, 50)
            check(train == want_train and val == want_val, "kjv streams differ from `holdfast tokenize` per chapter")
            print("kjv: %.1f MB in %.2f s: %.1f MB/s wall, %.1f MB per CPU-second, %d train tokens"
                  % (summary["input_bytes"] / 1e6, summary["seconds"], summary["mb_per_s"], summary["mb_per_cpu_s"],
                     len(train)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("data prepare: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
