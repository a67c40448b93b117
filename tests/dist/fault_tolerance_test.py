#!/usr/bin/env python3
"""End-to-end fault tolerance of the distributed layer: `holdfast dist-toy` runs the deterministic
toy job (x <- x - lr * mean of 6 micro-batch gradients, summed in micro-batch order) under the real
supervisor with worker processes talking through Gloo, while faults are injected.

Checks:
  * fault-free runs with 1, 2 and 3 workers give the same bits (world-size independent reduction);
  * SIGKILL of one worker and SIGSTOP of another mid-run: both detected (events.jsonl), both restarted
    from their shared-memory snapshots, 0 steps lost, every rank's final x bitwise equal to the
    fault-free run;
  * a segfault, a deadlocked main thread and an unexpected exit: the same;
  * a 4x slower rank is reported as a straggler;
  * the supervisor itself SIGKILLed: re-running the same command resumes from the snapshots;
  * a worker without the run token is refused; a second supervisor on a live run directory is
    refused; a store port in use, a bad --fault and a worker started by hand give clear errors.

Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Standard library only; listens on 127.0.0.1 only.
"""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shm_check import own_shm_leftovers, shm_names  # noqa: E402

BIN = os.environ.get("HOLDFAST_BIN", "")
TIMEOUT_S = 60
STEPS = 50
FAST = ["--heartbeat-ms", "1000", "--stall-ms", "1500", "--timeout-ms", "3000", "--rejoin-ms", "20000"]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def toy(run, workers, *extra, steps=STEPS, expect_rc=0, preexec_fn=None, cwd=None):
    out = os.path.join(run, "out")
    cmd = [BIN, "dist-toy", "--run", run, "--workers", str(workers), "--steps", str(steps), "--out", out,
           "--quiet", *FAST, *extra]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, preexec_fn=preexec_fn, cwd=cwd)
    check(p.returncode == expect_rc, f"{' '.join(extra) or 'fault-free'} W={workers}: exit {p.returncode}, "
                                     f"want {expect_rc}; stderr: {p.stderr[-2000:]}")
    summary = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    return p, summary, out, time.time() - t0


def results(out, workers):
    return [open(os.path.join(out, f"x-rank{r}.npy"), "rb").read() for r in range(workers)]


def events(run):
    with open(os.path.join(run, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def faults_of(run):
    return [(e["kind"], e["rank"]) for e in events(run) if e["event"] == "fault"]


def main():
    if not BIN or not os.path.exists(BIN):
        print("HOLDFAST_BIN not set or missing", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="holdfast-dist-")
    shm_before = shm_names()

    # --- fault-free references --------------------------------------------------------------
    _, s3, out3, t_ref = toy(os.path.join(tmp, "ref3"), 3)
    ref = results(out3, 3)
    check(len(set(ref)) == 1, "fault-free W=3: ranks disagree")
    ref = ref[0]
    check(s3["final_step"] == STEPS and s3["faults"] == 0, f"fault-free summary {s3}")
    for w in (1, 2):
        _, _, out, _ = toy(os.path.join(tmp, f"ref{w}"), w)
        check(all(x == ref for x in results(out, w)), f"W={w} differs from W=3 (reduction not world-size independent)")
    print(f"fault-free W=1,2,3 bitwise equal ({t_ref:.2f} s for W=3)")

    # --- SIGKILL + SIGSTOP --------------------------------------------------------------------
    run = os.path.join(tmp, "kill_stop")
    _, s, out, t = toy(run, 3, "--fault", "kill:1@15", "--fault", "stop:2@30")
    check(all(x == ref for x in results(out, 3)), "kill+stop: final x differs from the fault-free run")
    check(faults_of(run) == [("killed", 1), ("hung", 2)], f"kill+stop: faults {faults_of(run)}")
    rec = [e for e in events(run) if e["event"] == "recovered"]
    check(len(rec) == 2 and all(e["steps_lost"] == 0 for e in rec), f"kill+stop: recoveries {rec}")
    check(all(e["recovery_ms"] < 1000 for e in rec), f"kill+stop: recovery over 1 s: {rec}")
    hung = [e for e in events(run) if e["event"] == "fault" and e["kind"] == "hung"]
    check(hung and hung[0]["detect_ms"] < 1000 + 500, f"SIGSTOP detected late: {hung}")
    check(s["steps_lost"] == 0 and s["final_step"] == STEPS, f"kill+stop summary {s}")
    print(f"kill+stop: detected, recovered in {[round(e['recovery_ms']) for e in rec]} ms, 0 lost, bitwise equal "
          f"({t:.2f} s)")

    # --- segfault, deadlock, exit ---------------------------------------------------------------
    run = os.path.join(tmp, "self")
    _, s, out, t = toy(run, 3, "--fault", "segv:0@10", "--fault", "hang:1@20", "--fault", "exit:2@35")
    check(all(x == ref for x in results(out, 3)), "segv+hang+exit: final x differs")
    check(faults_of(run) == [("segfault", 0), ("stalled", 1), ("exit", 2)], f"segv+hang+exit: faults {faults_of(run)}")
    check(s["recoveries"] == 3 and s["steps_lost"] == 0, f"segv+hang+exit summary {s}")
    print(f"segfault+deadlock+exit: detected, recovered, bitwise equal ({t:.2f} s)")

    # --- a segfault that dumps core: classified from the crash handler's report, not the slow death ---
    run = os.path.join(tmp, "core")
    os.makedirs(run, exist_ok=True)
    unlimited = lambda: resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    _, s, out, t = toy(run, 3, "--fault", "segv:1@10", preexec_fn=unlimited, cwd=run)
    check(all(x == ref for x in results(out, 3)), "segv with core dump: final x differs")
    check(faults_of(run) == [("segfault", 1)], f"segv with core dump: faults {faults_of(run)}")
    via = [e.get("detail", "") for e in events(run) if e["event"] == "fault"]
    print(f"segfault with core dumps on: detected ({via[0] if via else '-'}), recovered, bitwise equal ({t:.2f} s)")

    # --- several self-injected faults on one rank: each replacement gets the ones not yet reached ----
    run = os.path.join(tmp, "same_rank")
    _, s, out, t = toy(run, 3, "--fault", "segv:1@8", "--fault", "exit:1@16", "--fault", "hang:1@24",
                       "--fault", "slow:1@30x4+6")
    check(all(x == ref for x in results(out, 3)), "same-rank faults: final x differs")
    check(faults_of(run) == [("segfault", 1), ("exit", 1), ("stalled", 1)], f"same-rank faults: {faults_of(run)}")
    check(s["recoveries"] == 3 and s["steps_lost"] == 0, f"same-rank faults summary {s}")
    st = [e for e in events(run) if e["event"] == "straggler"]
    check(st and st[0]["rank"] == 1, f"same-rank faults: the third replacement's straggling not reported: {st}")
    print(f"segv, exit, hang, slow on one rank: each once, recovered, bitwise equal ({t:.2f} s)")

    # --- straggler ------------------------------------------------------------------------------
    run = os.path.join(tmp, "slow")
    _, s, out, _ = toy(run, 3, "--fault", "slow:2@5x4", steps=25)
    st = [e for e in events(run) if e["event"] == "straggler"]
    check(st and st[0]["rank"] == 2 and st[0]["ratio"] > 2, f"straggler not reported: {st}")
    check(all(e["rank"] == 2 for e in st), f"a fast rank reported as straggler: {st}")
    print(f"straggler: rank 2 reported at ratio {st[0]['ratio']:.1f}" if st else "straggler: none")

    # --- supervisor killed; re-run resumes from the snapshots; live-run and token refusals -----------
    run = os.path.join(tmp, "resume")
    long_steps = 400
    _, _, out_ref, _ = toy(os.path.join(tmp, "ref_long"), 3, steps=long_steps)
    ref_long = results(out_ref, 3)[0]
    cmd = [BIN, "dist-toy", "--run", run, "--workers", "3", "--steps", str(long_steps), "--out",
           os.path.join(run, "out"), "--quiet", "--compute-ms", "5", *FAST]
    sup = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while not os.path.exists(os.path.join(run, "rdzv.json")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # some steps happen
    info = json.load(open(os.path.join(run, "rdzv.json")))
    # A second supervisor on the same live run directory.
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    check(p.returncode == 1 and "owned by another live run" in p.stderr, f"second supervisor: {p.returncode} {p.stderr}")
    # A worker that does not hold the run token.
    env = dict(os.environ, HOLDFAST_DIST_RANK="0", HOLDFAST_DIST_WORLD="3", HOLDFAST_DIST_SLOT="0",
               HOLDFAST_DIST_STORE=info["store"], HOLDFAST_DIST_TOKEN="f" * 32, HOLDFAST_DIST_BOARD=info["board"],
               HOLDFAST_DIST_SNAPSHOT="/holdfast-test-intruder", HOLDFAST_DIST_HOST="127.0.0.1",
               HOLDFAST_DIST_TIMEOUT_MS="2000", HOLDFAST_DIST_REJOIN_MS="2000", HOLDFAST_DIST_INCARNATION="0")
    p = subprocess.run([BIN, "worker", "--job", "toy", "--steps", "5"], env=env, capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    check(p.returncode == 2 and "run token" in p.stderr, f"intruder worker: {p.returncode} {p.stderr}")
    check(sup.poll() is None, "the run died when an intruder knocked")
    sup.send_signal(signal.SIGKILL)
    sup.wait()
    time.sleep(0.3)  # workers die with their supervisor (PR_SET_PDEATHSIG)
    p, s, out, _ = toy(run, 3, "--compute-ms", "5", steps=long_steps)
    logs = "".join(open(os.path.join(run, "logs", f"rank-{r}.log")).read() for r in range(3))
    check("restored step" in logs, "re-run did not restore from the snapshots")
    check(all(x == ref_long for x in results(out, 3)), "resumed run: final x differs from the uninterrupted run")
    print("supervisor SIGKILL: re-run resumed from snapshots, bitwise equal; intruder and second supervisor refused")

    # --- bad input ---------------------------------------------------------------------------------------
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    p, _, _, _ = toy(os.path.join(tmp, "busy"), 2, "--store-port", str(port), expect_rc=1)
    check("already in use" in p.stderr and str(port) in p.stderr, f"port in use: {p.stderr}")
    busy.close()
    p, _, _, _ = toy(os.path.join(tmp, "badfault"), 2, "--fault", "kill:5@3", expect_rc=1)
    check("--fault 'kill:5@3'" in p.stderr, f"bad fault: {p.stderr}")
    p = subprocess.run([BIN, "worker"], capture_output=True, text=True, timeout=TIMEOUT_S,
                       env={k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_DIST_")})
    check(p.returncode == 2 and "HOLDFAST_DIST_WORLD is not set" in p.stderr, f"worker by hand: {p.stderr}")
    print("bad input: clear errors")

    leftovers = own_shm_leftovers(tmp, shm_before)
    check(not leftovers, f"shared memory left behind: {leftovers}")
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("all fault-tolerance checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
