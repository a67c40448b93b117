#!/usr/bin/env python3
"""Multi-host rendezvous through a real Redis server (Debian redis-server), on loopback: two
supervisors ("hosts") with 2 workers each form one 4-rank run via --rdzv redis://127.0.0.1:PORT/RUN.
Rank 3 (the second host's) is SIGKILLed mid-run; its supervisor restarts it, every rank rebuilds the
group at a new epoch, and the final x of all 4 ranks is bitwise equal to a fault-free single-host run.
Also: a supervisor with another run token is refused, and an unreachable Redis is a clear error.

Skips (exit 0, prints SKIP) when redis-server is not installed. Environment: HOLDFAST_BIN.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("HOLDFAST_BIN", "")
TIMEOUT_S = 60
STEPS = 40
FAST = ["--heartbeat-ms", "1000", "--stall-ms", "1500", "--timeout-ms", "3000", "--rejoin-ms", "20000", "--quiet"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_redis(port, deadline):
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    redis = shutil.which("redis-server")
    if not redis:
        print("SKIP: redis-server is not installed (apt-get install redis-server)")
        return 0
    tmp = tempfile.mkdtemp(prefix="holdfast-redis-")
    port = free_port()
    server = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures = []
    try:
        if not wait_for_redis(port, time.time() + 10):
            print("redis-server did not answer", file=sys.stderr)
            return 1
        ref = subprocess.run([BIN, "dist-toy", "--run", os.path.join(tmp, "ref"), "--workers", "2", "--steps",
                              str(STEPS), "--out", os.path.join(tmp, "ref", "out"), *FAST],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        assert ref.returncode == 0, ref.stderr
        want = open(os.path.join(tmp, "ref", "out", "x-rank0.npy"), "rb").read()

        token = secrets.token_hex(16)
        url = f"redis://127.0.0.1:{port}/run-{secrets.token_hex(4)}"
        out = os.path.join(tmp, "out")
        common = ["dist-toy", "--workers", "2", "--world", "4", "--rdzv", url, "--token", token, "--steps", str(STEPS),
                  "--out", out, "--fault", "kill:3@12", *FAST]
        hosts = [subprocess.Popen([BIN, *common, "--run", os.path.join(tmp, f"host{h}"), "--first-rank", str(2 * h)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in (0, 1)]
        results = [h.communicate(timeout=TIMEOUT_S) for h in hosts]
        for h, (so, se) in zip(hosts, results):
            if h.returncode != 0:
                failures.append(f"host exit {h.returncode}: {se[-2000:]}")
        if not failures:
            xs = [open(os.path.join(out, f"x-rank{r}.npy"), "rb").read() for r in range(4)]
            if any(x != want for x in xs):
                failures.append("4 ranks over Redis with a kill: final x differs from the fault-free run")
            ev = [json.loads(l) for l in open(os.path.join(tmp, "host1", "events.jsonl"))]
            kinds = [(e["kind"], e["rank"]) for e in ev if e["event"] == "fault"]
            if kinds != [("killed", 3)]:
                failures.append(f"host1 faults {kinds}")
            rec = [e for e in ev if e["event"] == "recovered"]
            if not rec or rec[0]["steps_lost"] != 0:
                failures.append(f"host1 recoveries {rec}")
            print(f"redis: 2 hosts x 2 workers, rank 3 killed, recovered in {rec[0]['recovery_ms']:.0f} ms, "
                  "bitwise equal" if rec else "redis: no recovery")
            print("redis: events", kinds)

        # Another token on the same run name is refused; an unreachable server is a clear error.
        p = subprocess.run([BIN, "dist-toy", "--workers", "2", "--world", "4", "--rdzv", url, "--token",
                            secrets.token_hex(16), "--run", os.path.join(tmp, "intruder"), "--first-rank", "2",
                            "--steps", "3", *FAST], capture_output=True, text=True, timeout=TIMEOUT_S)
        if p.returncode != 1 or "run token" not in p.stderr:
            failures.append(f"wrong-token supervisor: {p.returncode} {p.stderr}")
        dead = free_port()
        p = subprocess.run([BIN, "dist-toy", "--run", os.path.join(tmp, "dead"), "--workers", "1", "--rdzv",
                            f"redis://127.0.0.1:{dead}/r", "--token", token], capture_output=True, text=True,
                           timeout=TIMEOUT_S)
        if p.returncode != 1 or "unreachable" not in p.stderr or str(dead) not in p.stderr:
            failures.append(f"unreachable redis: {p.returncode} {p.stderr}")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    if not failures:
        print("all redis rendezvous checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
