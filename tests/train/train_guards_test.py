#!/usr/bin/env python3
"""Stability guards and faults of `holdfast train` by injection (fault_injection.*), on the tiny_v3
model and the synthetic dataset of train_fixture.py:

- a NaN gradient is skipped (on_nan=skip) or rolled back to the last checkpoint's state (rollback),
  logged as an event, and the run still finishes;
- a loss spike (loss x1000) is detected by the z-score guard and skipped;
- a checkpoint write that fails with ENOSPC leaves the previous checkpoint intact (it verifies and
  --resume uses it), is logged as a fault, and the run goes on;
- aux-loss-free balancing: a router skewed through its correction bias (3 of 8 experts get every
  token) becomes balanced: the max/mean expert load falls.

Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Standard library only.
"""

import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_fixture as fx  # noqa: E402


def train(tmp, name, extra_args=(), **overrides):
    cfg = fx.base_config(tmp, name, **overrides)
    return fx.run(["train", "--config", fx.write_config(tmp, name, cfg)] + list(extra_args)), os.path.join(tmp, name)


def imbalance(load):
    """max/mean over the experts of each MoE layer, worst layer."""
    worst = 0
    for counts in load.values():
        mean = sum(counts) / len(counts)
        worst = max(worst, max(counts) / mean if mean else 0)
    return worst


def main():
    fx.require_binary()
    c = fx.Checks()
    tmp = fx.temp_root("holdfast_train_guards_")
    try:
        fx.write_dataset(os.path.join(tmp, "data"))

        # NaN, skip.
        r, d = train(tmp, "nan_skip", steps=8, fault_injection={"nan_grad_at": [3]}, eval={"every": 0})
        c.check(r.rc == 0, "NaN skip run finishes: " + r.err[-300:])
        steps = fx.metrics(d, "step")
        c.check([s["step"] for s in steps] == list(range(1, 9)), "every step has a line")
        c.check(steps[2]["skipped"] and steps[2]["event"] == "nan_skip", "step 3 skipped as nan_skip")
        c.check(not any(s["skipped"] for s in steps if s["step"] != 3), "no other step skipped")
        ev = fx.events(d, "nan_skip")
        c.check(len(ev) == 1 and "non-finite" in ev[0]["detail"], "nan_skip event logged")
        c.check("update skipped" in r.err, "NaN reported on stderr")

        # NaN, rollback to the last checkpoint's state (step 4), the data moves on.
        r, d = train(tmp, "nan_rb", steps=8, fault_injection={"nan_grad_at": [6]},
                     guards={"on_nan": "rollback"}, checkpoint={"every": 4}, eval={"every": 0})
        c.check(r.rc == 0, "NaN rollback run finishes: " + r.err[-300:])
        steps = fx.metrics(d, "step")
        rb = [s for s in steps if s.get("event") == "nan_rollback"]
        c.check(len(rb) == 1 and rb[0]["step"] == 4 and rb[0]["batch"] == 6, "batch 6 rolled back to step 4")
        c.check(steps[-1]["step"] == 8 and steps[-1]["batch"] == 10, "run reaches step 8 on batch 10")
        c.check(len(fx.events(d, "nan_rollback")) == 1, "nan_rollback event logged")

        # Loss spike.
        r, d = train(tmp, "spike", steps=10, fault_injection={"spike_at": [8], "spike_factor": 1000},
                     guards={"spike_window": 4, "spike_zscore": 6}, eval={"every": 0})
        c.check(r.rc == 0, "spike run finishes")
        steps = fx.metrics(d, "step")
        skipped = [s["step"] for s in steps if s["skipped"]]
        c.check(skipped == [8] and steps[7].get("event") == "spike_skip", "only step 8 skipped as a spike: %s" % skipped)
        ev = fx.events(d, "spike_skip")
        c.check(len(ev) == 1 and "z-score" in ev[0]["detail"], "spike_skip event names the z-score")

        # Disk full while writing the step-4 checkpoint.
        r, d = train(tmp, "enospc", steps=6, checkpoint={"every": 2, "keep_last": 5},
                     fault_injection={"checkpoint_enospc_at": [4]}, eval={"every": 0})
        c.check(r.rc == 0, "run goes on after a failed checkpoint: " + r.err[-300:])
        c.check(fx.checkpoints(d) == ["step-00000002", "step-00000006"], "no step-4 checkpoint, others intact: %s" %
                fx.checkpoints(d))
        c.check(not any(n.startswith(".tmp") for n in os.listdir(os.path.join(d, "checkpoints"))),
                "no temporary directory left")
        faults = fx.events(d, "fault")
        c.check(len(faults) == 1 and "No space left on device" in faults[0]["detail"], "fault event says ENOSPC")
        c.check("checkpoint failed" in r.err and "failed" in r.out, "failure reported on stderr and in the summary")
        # The previous checkpoint is what a resume uses once the newer one is gone.
        shutil.rmtree(os.path.join(d, "checkpoints", "step-00000006"))
        r = fx.run(["train", "--config", os.path.join(tmp, "enospc.json"), "--resume", "--stop_at", "3"])
        c.check(r.rc == 0 and "step-00000002" in r.err, "resume from the intact step-2 checkpoint: " + r.err[-300:])

        # A skewed router becomes balanced under aux-free bias updates.
        init = os.path.join(tmp, "skewed")
        r = fx.run(["init", "--config", fx.TINY_CONFIG, "--seed", "3", "--out", init])
        c.check(r.rc == 0, "holdfast init")
        path = os.path.join(init, "model.safetensors")
        meta, header, data = fx.read_safetensors(path)
        data = bytearray(data)
        name = "model.layers.1.mlp.gate.e_score_correction_bias"
        b, e = header[name]["data_offsets"]
        n = (e - b) // 4
        # Experts 0, 1 (group 0) and 2 (group 1) win every token: top-3 of 8 in top-2 of 4 groups.
        struct.pack_into("<%df" % n, data, b, *([1.0, 1.0, 1.0] + [0.0] * (n - 3)))
        fx.write_safetensors(path, meta, header, bytes(data))
        r, d = train(tmp, "balance", steps=40, model={"config": "", "init_checkpoint": init},
                     balance={"bias_update_speed": 0.05}, eval={"every": 0}, checkpoint={"every": 0})
        c.check(r.rc == 0, "balancing run finishes: " + r.err[-300:])
        steps = fx.metrics(d, "step")
        first, last = imbalance(steps[0]["expert_load"]), imbalance(steps[-1]["expert_load"])
        c.check(first > 2.5, "skewed at the start: max/mean load %.2f" % first)
        c.check(0.99 < last < 1.6, "balanced at the end: max/mean load %.2f" % last)
        bias = steps[-1]["router_bias"]["1"]
        gap = sum(bias[:3]) / 3 - sum(bias[3:]) / (len(bias) - 3)
        c.check(gap < 0.2, "the skew of the correction bias (1.0 at the start) is undone: overloaded minus others "
                "%.3f, biases %s" % (gap, [round(x, 3) for x in bias]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
