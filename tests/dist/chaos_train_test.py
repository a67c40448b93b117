#!/usr/bin/env python3
"""`holdfast chaos` on the training job: the tiny_v3 model on the synthetic dataset of
tests/train/train_fixture.py, `holdfast train --workers 3` under the supervisor, with every fault kind:
nan, bitflip, kill, segv, stop, exit, hang, slow, disk-full, supervisor-kill and ckpt-corrupt (the
newest checkpoint corrupted and the snapshots removed, so the re-run must skip it). Every fault must
be injected, detected and recovered, the final weights bitwise equal to the fault-free run's; then
`holdfast status` on the finished run (tokens/s from metrics.jsonl) and `holdfast report` with the
faults on the loss curve.

Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Standard library only; listens on 127.0.0.1 only.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import train_fixture as fx  # noqa: E402

STEPS = 40
FAULTS = [
    {"kind": "nan", "rank": 1, "step": 3},
    {"kind": "bitflip", "rank": 2, "step": 5},
    {"kind": "segv", "rank": 0, "step": 8},
    {"kind": "kill", "rank": 1, "step": 10},
    {"kind": "disk-full", "step": 12},
    {"kind": "stop", "rank": 2, "step": 14},
    {"kind": "supervisor-kill", "step": 17},
    {"kind": "exit", "rank": 1, "step": 20},
    {"kind": "hang", "rank": 2, "step": 23},
    {"kind": "slow", "rank": 0, "step": 26, "factor": 4},
    {"kind": "ckpt-corrupt", "step": 30},
    {"kind": "kill", "rank": 2, "step": 34},
]


def main():
    fx.require_binary()
    c = fx.Checks()
    tmp = fx.temp_root("holdfast_chaos_train_")
    fx.write_dataset(os.path.join(tmp, "data"))
    cfg = fx.base_config(tmp, "unused", batch={"global_batch": 6, "micro_batch": 1, "seq_len": 16}, steps=STEPS,
                         threads=1, checkpoint={"every": 4, "keep_last": 10}, eval={"every": 0, "batches": 1},
                         dist={"checksum_every": 2})
    fx.write_config(tmp, "train", cfg)
    scenario = {"job": "train.json", "workers": 3, "steps": STEPS, "seed": 3,
                "timeouts": {"heartbeat_ms": 1000, "stall_ms": 3000, "timeout_ms": 4000, "rejoin_ms": 30000},
                "faults": FAULTS}
    path = os.path.join(tmp, "scenario.json")
    json.dump(scenario, open(path, "w"), indent=2)
    out = os.path.join(tmp, "out")
    t0 = time.time()
    p = subprocess.run([fx.BIN, "chaos", "--scenario", path, "--out", out], capture_output=True, text=True,
                       timeout=600)
    print(p.stdout)
    c.check(p.returncode == 0, f"chaos exit {p.returncode}: {p.stderr[-4000:]}")
    s = json.load(open(os.path.join(out, "chaos_summary.json")))
    kinds = {}
    for f in FAULTS:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    for kind, n in kinds.items():
        row = s["by_kind"].get(kind, {})
        c.check(row.get("injected") == n and row.get("detected") == n and row.get("recovered") == n,
                f"{kind}: {n} injected, detected and recovered ({row})")
    det = {f["kind"]: f.get("detected_as") for f in s["faults"]}
    c.check(det.get("nan") == "nan" and det.get("bitflip") == "sdc" and det.get("disk-full") == "disk_full",
            f"detected as {det}")
    sk = [f for f in s["faults"] if f["kind"] == "supervisor-kill"][0]
    c.check(sk["steps_lost"] == 0, f"supervisor-kill: resumed from the snapshots, 0 steps lost ({sk})")
    for f in s["faults"]:
        if f["kind"] in ("nan", "bitflip", "kill", "segv", "stop", "exit", "hang", "disk-full"):
            c.check(f["steps_lost"] == 0, f"{f['spec']}: 0 steps lost (got {f['steps_lost']})")
    c.check(s["final_weights"]["equal"] and s["ok"], f"verdict: {s['problems']}")
    print(f"chaos on the training job: {time.time() - t0:.1f} s")

    run_dir = os.path.join(out, "run")
    st = subprocess.run([fx.BIN, "status", run_dir, "--json"], capture_output=True, text=True, timeout=60)
    j = json.loads(st.stdout) if st.returncode == 0 else {}
    c.check(j.get("state") == "finished" and j.get("step") == STEPS and (j.get("tokens_per_s") or 0) > 0,
            f"status of the finished run: {j} {st.stderr}")
    r = subprocess.run([fx.BIN, "report", run_dir], capture_output=True, text=True, timeout=120)
    c.check(r.returncode == 0, f"report: {r.stderr}")
    svg = open(os.path.join(run_dir, "loss.svg")).read()
    for tip in ("nan on rank 1", "sdc on rank 2", "killed on rank 1", "chaos supervisor-kill", "chaos ckpt-corrupt"):
        c.check(f"<title>{tip}" in svg, f"loss.svg marks '{tip}'")
    c.finish()


if __name__ == "__main__":
    main()
