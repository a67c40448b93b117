#!/usr/bin/env bash
# Long fault-injection soak (docs/chaos.md): FAULTS mixed faults (default 1000), one about every
# EVERY_S seconds (default 10), into the toy job with 3 workers (or JOB=path/to/train-config.json),
# then the harness table: injected / detected / recovered per kind, steps lost, fault -> next good
# step, ETTR, final weights vs the fault-free run. At the defaults this takes about 3 hours;
# FAULTS=16 is a ~3-minute version. Output: runs/chaos/soak/ (chaos_summary.json, run/, reference/).
#   FAULTS=1000 EVERY_S=10 STEP_MS=45 WORKERS=3 SEED=1 JOB=toy HEARTBEAT_MS=500 STALL_MS=750 scripts/chaos_soak.sh
# The toy job's fault-free run goes alongside the run with faults (chaos --alongside).
# STEP_MS is the expected time of one toy step (20 ms of simulated compute per micro-batch, 2
# micro-batches per rank, plus the collectives); faults are placed every EVERY_S*1000/STEP_MS steps,
# so that FAULTS of them always fit, and the table's ETTR uses the measured fault-free step time.
set -euo pipefail
cd "$(dirname "$0")/.."
FAULTS=${FAULTS:-1000}
EVERY_S=${EVERY_S:-10}
STEP_MS=${STEP_MS:-45}
WORKERS=${WORKERS:-3}
SEED=${SEED:-1}
JOB=${JOB:-toy}
HEARTBEAT_MS=${HEARTBEAT_MS:-500}
STALL_MS=${STALL_MS:-750}
BIN=${HOLDFAST_BIN:-build/holdfast}
OUT=${OUT:-runs/chaos/soak}
[ -x "$BIN" ] || bash scripts/build.sh release
mkdir -p "$OUT"
every=$(( EVERY_S * 1000 / STEP_MS ))
[ "$every" -ge 2 ] || every=2
steps=$(( (FAULTS + 1) * every + 10 ))
if [ "$JOB" = toy ]; then
  kinds='{"kill": 3, "stop": 2, "segv": 2, "exit": 2, "hang": 1, "slow": 1, "supervisor-kill": 1, "ckpt-corrupt": 1}'
  job='"toy", "toy": {"n": 65536, "slots": 6, "compute_ms": 20}'
else
  kinds='{"kill": 3, "stop": 2, "segv": 2, "exit": 2, "hang": 1, "slow": 1, "nan": 2, "bitflip": 2, "supervisor-kill": 1, "ckpt-corrupt": 1, "disk-full": 1}'
  job="\"$(realpath "$JOB")\""
fi
cat > "$OUT/soak.json" <<JSON
{
  "job": $job,
  "workers": $WORKERS,
  "steps": $steps,
  "seed": $SEED,
  "timeouts": {"heartbeat_ms": $HEARTBEAT_MS, "stall_ms": $STALL_MS, "timeout_ms": 3000, "rejoin_ms": 30000},
  "generator": {"every_steps": $every, "count": $FAULTS, "kinds": $kinds}
}
JSON
echo "soak: $FAULTS faults, one every $every steps (~${EVERY_S} s), $steps steps; scenario $OUT/soak.json" >&2
# The toy job's compute is a sleep: its fault-free run can go alongside the run with faults.
alongside=()
[ "$JOB" = toy ] && alongside=(--alongside)
exec "$BIN" chaos --scenario "$OUT/soak.json" --out "$OUT" "${alongside[@]}"
