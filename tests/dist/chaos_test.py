#!/usr/bin/env python3
"""The fault-injection harness and the observability commands, end to end with the real binary:

  * `holdfast chaos --scenario tests/dist/scenarios/toy_every_kind.json`: the toy job under the real
    supervisor with every fault kind the toy job has (kill, stop, segv, exit, hang, slow,
    supervisor-kill, ckpt-corrupt); every fault injected, detected and recovered, worker faults lose
    0 steps, final weights bitwise equal to the fault-free run, chaos_summary.json agrees with the
    table; a second run reuses the cached fault-free run;
  * the same scenario gives the same schedule (`--plan`), another seed another one;
  * bad scenario files fail with one error naming the file and the field;
  * `holdfast status` on a live run (workers, pids, heartbeats, a fault and its recovery), on the
    finished run, and on a directory that is not a run;
  * `holdfast report` marks the faults of events.jsonl on the loss curve (kind and rank in tooltips).

The nan, bitflip and disk-full kinds need the training job: tests/dist/chaos_train_test.py.
Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Standard library only; everything on 127.0.0.1.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shm_check import own_shm_leftovers, shm_names  # noqa: E402

BIN = os.environ.get("HOLDFAST_BIN", "")
SRC = os.environ.get("HOLDFAST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCEN = os.path.join(SRC, "tests", "dist", "scenarios")
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def run(*args, timeout=180):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def chaos_every_kind(tmp):
    out = os.path.join(tmp, "every")
    t0 = time.time()
    p = run("chaos", "--scenario", os.path.join(SCEN, "toy_every_kind.json"), "--out", out)
    took = time.time() - t0
    check(p.returncode == 0, f"chaos every kind: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr[-3000:]}")
    print(p.stdout)
    s = json.load(open(os.path.join(out, "chaos_summary.json")))
    want = {"kill": 2, "stop": 1, "segv": 1, "exit": 1, "hang": 1, "slow": 1, "supervisor-kill": 1, "ckpt-corrupt": 1}
    for kind, n in want.items():
        row = s["by_kind"].get(kind, {})
        check(row.get("injected") == n and row.get("detected") == n and row.get("recovered") == n,
              f"{kind}: want {n} injected/detected/recovered, got {row}")
    for f in s["faults"]:
        if f["kind"] in ("kill", "stop", "segv", "exit", "hang"):
            check(f["steps_lost"] == 0, f"{f['spec']} lost {f['steps_lost']} steps")
            check(0 <= f.get("to_good_step_ms", -1) < 5000, f"{f['spec']}: fault -> good step {f.get('to_good_step_ms')}")
    det = {f["kind"]: f.get("detected_as") for f in s["faults"]}
    check(det.get("segv") == "segfault" and det.get("stop") == "hung" and det.get("hang") == "stalled"
          and det.get("slow") == "straggler", f"detected as: {det}")
    ck = [f for f in s["faults"] if f["kind"] == "ckpt-corrupt"][0]
    check("snapshot" in ck.get("detail", ""), f"ckpt-corrupt detail: {ck}")
    check(s["final_weights"]["equal"] and s["ok"] and s["problems"] == [], f"summary verdict: {s['problems']}")
    check(s["supervisor_runs"] >= 3, f"supervisor runs {s['supervisor_runs']}")
    check(s["ettr"] is not None and 0 < s["ettr"] <= 1.5, f"ettr {s['ettr']}")
    for kind in want:
        check(any(line.startswith(kind + " ") for line in p.stdout.splitlines()), f"table has no row for {kind}")
    check("final weights: equal" in p.stdout and "ETTR" in p.stdout, "table misses ETTR or the weights verdict")
    check("fault-free run in" in p.stderr and "chaos: run 0" in p.stderr, "no progress on stderr")
    print(f"chaos every kind: ok in {took:.1f} s")
    # The fault-free run is cached: a second scenario run with the same job reuses it.
    p = run("chaos", "--scenario", os.path.join(SCEN, "toy_every_kind.json"), "--out", out)
    check(p.returncode == 0 and "reusing the fault-free run" in p.stderr, f"second run: {p.returncode} {p.stderr[-1500:]}")
    return os.path.join(out, "run")


def schedule_is_seeded(tmp):
    scen = os.path.join(SCEN, "toy_generated.json")
    a = run("chaos", "--scenario", scen, "--plan")
    b = run("chaos", "--scenario", scen, "--plan")
    check(a.returncode == 0 and a.stdout == b.stdout, f"--plan differs between runs: {a.stderr}")
    plan = json.loads(a.stdout)
    check(len(plan) == 15, f"every 25 of 400 steps with a 5-step margin: want 15 faults, got {len(plan)}")
    check([f["step"] for f in plan] == list(range(25, 376, 25)), f"steps {[f['step'] for f in plan]}")
    check(len({f["kind"] for f in plan}) >= 4, f"kinds not mixed: {plan}")
    check(all(0 <= f.get("rank", 0) < 3 for f in plan), "rank outside the world")
    doc = json.load(open(scen))
    doc["seed"] = 43
    other = os.path.join(tmp, "seed43.json")
    json.dump(doc, open(other, "w"))
    c = run("chaos", "--scenario", other, "--plan")
    check(c.returncode == 0 and c.stdout != a.stdout, "another seed gives the same schedule")
    print("schedule: same seed -> same schedule, another seed -> another")


def bad_scenarios(tmp):
    base = {"job": "toy", "workers": 3, "steps": 100, "seed": 1, "faults": [{"kind": "kill", "rank": 1, "step": 10}]}
    cases = [
        ({"faults": [{"kind": "kill", "rank": 5, "step": 10}]}, "faults[0].rank: 5 is outside [0, 2]"),
        ({"faults": [{"kind": "boom", "rank": 1, "step": 10}]}, "faults[0].kind: 'boom' is not a fault kind"),
        ({"faults": [{"kind": "nan", "rank": 1, "step": 10}]}, "faults[0].kind: 'nan' needs a training job"),
        ({"faults": [{"kind": "kill", "rank": 1, "step": 100}]}, "faults[0].step: 100 is outside [1, 99]"),
        ({"steps": "100"}, "steps: must be an integer"),
        ({"wrokers": 3}, "wrokers: unknown field"),
        ({"seed": None}, "seed: must be an integer"),
        ({"job": "nope.json"}, "job: 'nope.json' is neither \"toy\" nor a train config file"),
        ({"generator": {"every_steps": 5, "kinds": {"kill": 1}}}, "give exactly one of \"faults\""),
    ]
    for i, (patch, want) in enumerate(cases):
        doc = dict(base, **patch)
        path = os.path.join(tmp, f"bad{i}.json")
        json.dump(doc, open(path, "w"))
        p = run("chaos", "--scenario", path, "--plan")
        check(p.returncode != 0 and path in p.stderr and want in p.stderr, f"bad scenario {patch}: {p.stderr!r}")
    doc = dict(base)
    del doc["seed"]
    path = os.path.join(tmp, "noseed.json")
    json.dump(doc, open(path, "w"))
    p = run("chaos", "--scenario", path, "--plan")
    check(p.returncode == 1 and "seed: is required" in p.stderr, f"missing seed: {p.stderr!r}")
    path = os.path.join(tmp, "notjson.json")
    open(path, "w").write("{job: toy")
    p = run("chaos", "--scenario", path, "--plan")
    check(p.returncode == 1 and "not valid JSON" in p.stderr, f"not JSON: {p.stderr!r}")
    print("bad scenarios: errors name the file and the field")


def status_live_and_finished(tmp):
    rd = os.path.join(tmp, "live")
    cmd = [BIN, "dist-toy", "--run", rd, "--workers", "2", "--steps", "300", "--compute-ms", "10", "--quiet",
           "--heartbeat-ms", "1000", "--fault", "kill:1@20"]
    sup = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    st = None
    while time.time() < deadline:
        p = run("status", rd, "--json")
        if p.returncode == 0:
            st = json.loads(p.stdout)
            if st["live"] and st["recoveries"] >= 1 and st["step"] > 25:
                break
        time.sleep(0.2)
    check(st and st["live"] and st["state"] == "running", f"live status: {st}")
    if st:
        check(len(st["workers"]) == 2 and all(w["pid"] > 0 and w["phase"] == "running" for w in st["workers"]),
              f"live workers: {st['workers']}")
        check(all(0 <= w["heartbeat_age_ms"] < 1000 for w in st["workers"]), f"heartbeats: {st['workers']}")
        check(st["steps_per_s"] and st["steps_per_s"] > 0, f"steps/s: {st['steps_per_s']}")
        rf = st["recent_faults"]
        check(len(rf) == 1 and rf[0]["kind"] == "killed" and rf[0]["rank"] == 1 and rf[0]["recovered"],
              f"recent faults: {rf}")
    p = run("status", rd)
    check(p.returncode == 0 and "running" in p.stdout and "heartbeat" in p.stdout and "killed rank 1" in p.stdout,
          f"status table: {p.stdout}")
    sup.wait(timeout=120)
    check(sup.returncode == 0, f"dist-toy exit {sup.returncode}")
    p = run("status", rd, "--json")
    st = json.loads(p.stdout) if p.returncode == 0 else {}
    check(st.get("state") == "finished" and not st.get("live") and st.get("step") == 300 and st.get("faults") == 1,
          f"finished status: {st}")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    p = run("status", empty)
    check(p.returncode == 1 and "not a holdfast run directory" in p.stderr and empty in p.stderr,
          f"not a run: {p.stderr!r}")
    p = run("status", os.path.join(tmp, "missing"))
    check(p.returncode == 1 and "not a directory" in p.stderr, f"missing dir: {p.stderr!r}")
    print("status: live workers and faults, finished run, not-a-run errors")


def report_marks_faults(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        for step in range(1, 121):
            f.write(json.dumps({"kind": "step", "step": step, "loss": 5 - step / 100, "lr": 1e-3, "grad_norm": 1,
                                "tokens_per_s": 100, "rss_mb": 10}) + "\n")
    p = run("report", run_dir)
    check(p.returncode == 0, f"report: {p.stderr}")
    html = open(os.path.join(run_dir, "report.html")).read()
    svg = open(os.path.join(run_dir, "loss.svg")).read()
    for tip in ("killed on rank 1 at step", "segfault on rank 0", "hung on rank 2", "exit on rank 1",
                "stalled on rank 2", "straggler on rank 0", "chaos supervisor-kill", "chaos ckpt-corrupt",
                "killed on rank 2"):
        check(f"<title>{tip}" in svg, f"loss.svg has no fault marker '{tip}'")
        check(tip in html, f"report.html does not mention '{tip}'")
    n_marks = svg.count('class="fault"')
    check(n_marks >= 9, f"{n_marks} fault markers in loss.svg, want >= 9")
    check("recovered in" in html and "<h2>Faults</h2>" in html, "report.html has no faults table with recoveries")
    print("report: faults marked on the loss curve")


def main():
    if not BIN or not os.path.exists(BIN):
        print("HOLDFAST_BIN not set or missing", file=sys.stderr)
        return 1
    shm_before = shm_names()
    with tempfile.TemporaryDirectory(prefix="holdfast-chaos-") as tmp:
        bad_scenarios(tmp)
        schedule_is_seeded(tmp)
        run_dir = chaos_every_kind(tmp)
        report_marks_faults(run_dir)
        status_live_and_finished(tmp)
        leftovers = own_shm_leftovers(tmp, shm_before)
    check(not leftovers, f"shared memory left behind: {leftovers}")
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("all chaos checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
