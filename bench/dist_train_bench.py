#!/usr/bin/env python3
"""Cost of the resilience machinery of `holdfast train --workers N`, and the time a worker crash costs.

On one model config and the synthetic dataset of tests/train/train_fixture.py, with the same global
batch in every case:
  plain-2t   `holdfast train` alone, 2 threads
  plain-1t   `holdfast train` alone, 1 thread
  dist-2x1   `holdfast train --workers 2 --threads 1` (snapshots, heartbeats, commit vote, checksums);
             its run_step_s_median leaves out the worker loop's snapshot and checksum time
  kill       the same with rank 1 SIGKILLed after step KILL_AT: detection, recovery, next good step
Step time = median wall time between consecutive metrics.jsonl step lines (elapsed_s) after WARMUP steps
(for the workers: rank 0's, which includes the snapshot and the collectives). Prints one JSON line per
case and a summary line.

Environment: HOLDFAST_BIN (build/holdfast), CONFIG (configs/train-quickstart-model.json), STEPS (24),
WARMUP (4), BATCH (8), MICRO (1), SEQ (128), KILL_AT (12), CHECKSUM_EVERY (10).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "train"))
import train_fixture as fx  # noqa: E402

BIN = os.environ.get("HOLDFAST_BIN", os.path.join(HERE, "..", "build", "holdfast"))
CONFIG = os.environ.get("CONFIG", os.path.join(HERE, "..", "configs", "train-quickstart-model.json"))
STEPS = int(os.environ.get("STEPS", "24"))
WARMUP = int(os.environ.get("WARMUP", "4"))
BATCH, MICRO, SEQ = int(os.environ.get("BATCH", "8")), int(os.environ.get("MICRO", "1")), int(os.environ.get("SEQ", "128"))
KILL_AT = int(os.environ.get("KILL_AT", "12"))
K = int(os.environ.get("CHECKSUM_EVERY", "10"))


def step_times(run):
    steps = [s for s in fx.metrics(run, "step")]
    el = [s["elapsed_s"] for s in steps]
    return [b - a for a, b in zip(el[WARMUP:], el[WARMUP + 1:])]


def main():
    tmp = tempfile.mkdtemp(prefix="holdfast-dist-bench-")
    fx.write_dataset(os.path.join(tmp, "data"), n_train=200000, n_val=3000)
    base = {"model": {"config": CONFIG}, "data": {"dir": os.path.join(tmp, "data")},
            "batch": {"global_batch": BATCH, "micro_batch": MICRO, "seq_len": SEQ}, "steps": STEPS,
            "optimizer": {"lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 2}, "seed": 1,
            "checkpoint": {"every": 0, "keep_last": 1}, "eval": {"every": 0, "batches": 1}, "dist": {"checksum_every": K}}
    out = {}
    cases = [("plain-2t", 2, 0, []), ("plain-1t", 1, 0, []), ("dist-2x1", 1, 2, []),
             ("kill", 1, 2, ["--fault", "kill:1@%d" % KILL_AT])]
    for name, threads, workers, extra in cases:
        cfg = dict(base, threads=threads, out_dir=os.path.join(tmp, name))
        path = fx.write_config(tmp, name, cfg)
        cmd = [BIN, "train", "--config", path] + (["--workers", str(workers)] if workers else []) + extra
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            print(json.dumps({"case": name, "error": p.stderr[-2000:]}))
            continue
        run = os.path.join(tmp, name)
        t = step_times(run)
        inner = [x["step_s"] for x in fx.metrics(run, "step")][WARMUP + 1:]
        line = {"case": name, "threads": threads, "workers": workers, "step_s_median": statistics.median(t),
                # the step itself (forward/backward, collectives, vote, update), without the snapshot
                # and checksum work of the worker loop around it
                "run_step_s_median": statistics.median(inner),
                "step_s_mean": statistics.mean(t), "tokens_per_step": BATCH * SEQ, "steps_timed": len(t)}
        if workers:
            s = json.load(open(os.path.join(run, "dist_summary.json")))
            line.update({k: s[k] for k in ("wall_s", "productive_s", "ettr", "steps_lost", "faults")})
            ev = [json.loads(l) for l in open(os.path.join(run, "events.jsonl"))]
            fault = [e for e in ev if e["event"] == "fault"]
            rec = [e for e in ev if e["event"] == "recovered"]
            if fault and rec:
                line.update({"detect_ms": fault[0]["detect_ms"], "recovery_ms": rec[0]["recovery_ms"],
                             "kill_to_next_step_ms": fault[0]["detect_ms"] + rec[0]["recovery_ms"]})
        out[name] = line
        print(json.dumps(line), flush=True)
    if "plain-2t" in out and "dist-2x1" in out:
        print(json.dumps({"case": "summary",
                          "dist_vs_plain_2t": out["dist-2x1"]["step_s_median"] / out["plain-2t"]["step_s_median"],
                          "dist_vs_plain_1t": out["dist-2x1"]["step_s_median"] / out["plain-1t"]["step_s_median"]}))


if __name__ == "__main__":
    main()
