#!/usr/bin/env python3
"""`holdfast report RUN_DIR`: renders report.html, loss.svg and expert_load.svg from metrics.jsonl
(written here the way Python would, bare NaN included, plus a garbage line), and fails with one
"holdfast: error:" line naming the directory or file when there is nothing to render.

Environment: HOLDFAST_BIN (the holdfast binary). Only the Python standard library is used.
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.dom.minidom

BIN = os.environ.get("HOLDFAST_BIN", "")


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        sys.exit("HOLDFAST_BIN is not set to an executable")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as d:
        run_dir = os.path.join(d, "run1")
        os.mkdir(run_dir)
        with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
            for step in range(1, 26):
                loss = float("nan") if step == 12 else 9.0 - 0.2 * step
                f.write(json.dumps({"kind": "step", "step": step, "loss": loss, "main_loss": loss, "lr": 1e-3,
                                    "grad_norm": 1.0, "tokens_per_s": 100.0, "rss_mb": 500.0,
                                    "expert_load": {"1": [10, 20, 30, 40]}}) + "\n")
            f.write("garbage\n")
            f.write(json.dumps({"kind": "event", "step": 12, "event": "nan_skip", "detail": "loss NaN"}) + "\n")
        r = run("report", run_dir)
        check(r.returncode == 0, f"report exit {r.returncode}: {r.stderr}")
        check("report.html" in r.stdout, f"stdout does not name report.html: {r.stdout!r}")
        for name in ("report.html", "loss.svg", "expert_load.svg"):
            check(os.path.getsize(os.path.join(run_dir, name)) > 1000, f"{name} missing or tiny")
        for name in ("loss.svg", "expert_load.svg"):  # well-formed XML for a real parser
            try:
                xml.dom.minidom.parse(os.path.join(run_dir, name))
            except Exception as e:  # noqa: BLE001 - any parse error is a failure
                failures.append(f"{name} is not well-formed XML: {e}")
        html = open(os.path.join(run_dir, "report.html")).read()
        check("1 malformed line skipped (line 26)" in html, "garbage line not reported")
        check("nan_skip" in html and "2 NaN/Inf/null values" in html, "NaN step or event not reported")

        for target, needle in ((os.path.join(d, "nope"), "nope: not a directory"),
                               (d, "metrics.jsonl: cannot open")):
            r = run("report", target)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            check(r.returncode == 1, f"report {target}: exit {r.returncode}")
            check(len(lines) == 1 and lines[0].startswith("holdfast: error: ") and needle in lines[0],
                  f"report {target}: stderr {r.stderr!r}")
        r = run("report", "--help")
        check(r.returncode == 0 and "RUN_DIR" in r.stdout, "report --help")

    for f in failures:
        print("FAIL:", f)
    print(f"{'FAILED' if failures else 'OK'}: report CLI ({len(failures)} failures)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
