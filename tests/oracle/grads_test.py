#!/usr/bin/python3
"""holdfast grads versus float64 PyTorch autograd (grads_ref.py) on the three tiny configs.

Run by ctest as `/usr/bin/python3 tests/oracle/grads_test.py` with HOLDFAST_BIN and HOLDFAST_SOURCE_DIR set.
For every config, checkpoints written by `holdfast init` in F32 and BF16 (plus a sharded FP8 one for tiny_v3), and
token/target shapes including S = 1, ignored targets (-100) and an all-ignored batch, it runs `holdfast grads`
(with and without --mtp where the config has MTP) and requires, for every trainable tensor,
max|diff| / max|ref| < 1e-4 (a tensor whose reference gradient is exactly 0 must be exactly 0), and a loss relative
difference < 1e-5. It then shows the comparison is sensitive: an oracle with one gradient rule broken (same forward
values) must move some tensor's error above 1e-2. Prints tables; exits non-zero on any failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import deepseek_ref as ref  # noqa: E402
import gen_checkpoint as gen  # noqa: E402
import grads_ref  # noqa: E402

SRC = os.environ.get("HOLDFAST_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BIN = os.environ.get("HOLDFAST_BIN", os.path.join(SRC, "build", "holdfast"))
CONFIGS = ["tiny_v2lite", "tiny_v3", "tiny_mixed"]
# (name, batch, seq, fraction of targets ignored)
CASES = [("1x1", 1, 1, 0.0), ("2x5-ign", 2, 5, 0.3), ("3x17-ign", 3, 17, 0.25), ("1x64", 1, 64, 0.0),
         ("2x3-all-ign", 2, 3, 1.0)]
GRAD_TOL = 1e-4
LOSS_TOL = 1e-5
SENSITIVITY_MIN = 1e-2
torch.set_num_threads(2)

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print("FAIL:", msg, flush=True)


def rows_arg(t: np.ndarray) -> str:
    return ";".join(",".join(str(int(v)) for v in row) for row in t)


def make_batch(rng, V, B, S, ign):
    toks = rng.integers(0, V, size=(B, S))
    tg = rng.integers(0, V, size=(B, S))
    if ign >= 1.0:
        tg[:] = -100
    elif ign > 0:
        mask = rng.random((B, S)) < ign
        mask.flat[0] = False  # keep at least one target
        tg[mask] = -100
    return toks, tg


def holdfast_grads(model_dir, toks, tg, mtp, lam, out, extra=()):
    if os.path.exists(out):
        os.remove(out)
    cmd = [BIN, "grads", "--model", model_dir, "--tokens", rows_arg(toks), "--targets", rows_arg(tg), "--out", out]
    cmd += list(extra)
    if mtp:
        cmd += ["--mtp", "--mtp-lambda", str(lam)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"holdfast grads exited {r.returncode}: {r.stderr.strip()[-500:]}")
    with open(out, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    raw = ref.read_safetensors(out)
    grads = {}
    for k, (dt, a) in raw.items():
        if dt != "F32":
            raise RuntimeError(f"{k}: dtype {dt}, expected F32")
        grads[k] = a.astype(np.float64)
    printed = [l for l in r.stdout.splitlines() if l.startswith("loss ")]
    if not printed:
        raise RuntimeError(f"no 'loss' line printed: {r.stdout!r}")
    return float(meta["loss"]), grads


def compare(got: dict, want: dict):
    """-> (worst relative error, tensor name, list of problems)."""
    problems = []
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        problems.append(f"missing tensors {missing[:4]}{'...' if len(missing) > 4 else ''}")
    if extra:
        problems.append(f"unexpected tensors {extra[:4]}")
    worst, worst_name = 0.0, "-"
    for name in sorted(set(got) & set(want)):
        g, w = got[name], want[name]
        if g.shape != w.shape:
            problems.append(f"{name}: shape {g.shape} != {w.shape}")
            continue
        if not np.all(np.isfinite(g)):
            problems.append(f"{name}: non-finite gradient")
            continue
        m = float(np.abs(w).max()) if w.size else 0.0
        d = float(np.abs(g - w).max()) if w.size else 0.0
        rel = d / m if m > 0 else (0.0 if d == 0 else float("inf"))
        if rel > worst:
            worst, worst_name = rel, name
    return worst, worst_name, problems


def rel_loss(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def check_case(tag, loss, got, rloss, want, margin, extra_problems=()):
    """Compares one case with the oracle, reports every problem; returns (worst, name, loss rel diff, status)."""
    worst, wname, problems = compare(got, want)
    lrel = rel_loss(loss, rloss)
    problems = list(problems) + list(extra_problems)
    if worst >= GRAD_TOL:
        problems.append(f"{wname} max|diff|/max|ref| = {worst:.3g} >= {GRAD_TOL} (min routing margin {margin:.3g})")
    if lrel >= LOSS_TOL:
        problems.append(f"loss {loss!r} vs oracle {rloss!r}: relative diff {lrel:.3g}")
    for p in problems:
        fail(f"{tag}: {p}")
    return worst, wname, lrel, "FAIL" if problems else "ok"


def checkpoints(cfg_name, cfg_path, root):
    out = []
    for label, dtype, seed in [("init-f32", "f32", 11), ("init-bf16", "bf16", 12)]:
        d = os.path.join(root, f"{cfg_name}-{label}")
        r = subprocess.run([BIN, "init", "--config", cfg_path, "--seed", str(seed), "--out", d, "--dtype", dtype],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{cfg_name}: holdfast init --dtype {dtype}: {r.stderr.strip()[-300:]}")
            continue
        out.append((label, d))
    if cfg_name == "tiny_v3":
        d = os.path.join(root, f"{cfg_name}-gen-fp8x2")
        gen.write_checkpoint(cfg_path, d, 23, "fp8", 2, stray_inv_freq=False)
        out.append(("gen-fp8x2", d))
    return out


def check_errors(model_dir, tmp):
    """Bad input gives a clear error and a non-zero exit."""
    out = os.path.join(tmp, "bad.safetensors")
    bad = [(["--tokens", "1,2,3", "--targets", "2,3"], "targets"),
           (["--tokens", "1,2", "--targets", "2,99999"], "outside"),
           (["--tokens", "1,2", "--targets", "2,x"], "--targets")]
    for extra, needle in bad:
        r = subprocess.run([BIN, "grads", "--model", model_dir, "--out", out] + extra, capture_output=True, text=True)
        if r.returncode == 0 or needle not in r.stderr:
            fail(f"grads {' '.join(extra)}: exit {r.returncode}, stderr {r.stderr.strip()[-200:]!r} "
                 f"(expected an error mentioning {needle!r})")


def main() -> int:
    t0 = time.time()
    if not os.path.exists(BIN):
        print(f"FAIL: holdfast binary not found at {BIN}")
        return 1
    rng = np.random.default_rng(7)
    rows, sens_rows = [], []
    worst_per = {}
    with tempfile.TemporaryDirectory(prefix="holdfast-grads-") as root:
        out = os.path.join(root, "grads.safetensors")
        for cfg_name in CONFIGS:
            cfg_path = os.path.join(HERE, "configs", cfg_name + ".json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            args = ref.ModelArgs.from_config(cfg)
            batches = [(name,) + make_batch(rng, args.vocab_size, B, S, ign) for name, B, S, ign in CASES]
            mtp_modes = [(False, 0.0)] + ([(True, 0.3)] if args.n_mtp else [])
            for label, model_dir in checkpoints(cfg_name, cfg_path, root):
                state = ref.load_state(model_dir)
                if label == "init-f32" and cfg_name == "tiny_v3":
                    check_errors(model_dir, root)
                for case, toks, tg in batches:
                    modes = mtp_modes + ([(True, 1.0)] if args.n_mtp and case == "2x5-ign" else [])
                    for mtp, lam in modes:
                        tag = f"{cfg_name}/{label}/{case}/{'mtp' + str(lam) if mtp else 'main'}"
                        try:
                            loss, got = holdfast_grads(model_dir, toks, tg, mtp, lam, out)
                            rloss, want, margin = grads_ref.compute(model_dir, torch.from_numpy(toks),
                                                                    torch.from_numpy(tg), mtp, lam, state=state)
                        except Exception as e:  # noqa: BLE001
                            fail(f"{tag}: {e}")
                            continue
                        ignored = (tg == -100).all() and (loss != 0 or any(np.any(g != 0) for g in got.values()))
                        worst, wname, lrel, status = check_case(
                            tag, loss, got, rloss, want, margin,
                            [f"all targets ignored but loss {loss} / non-zero gradients"] if ignored else [])
                        key = (cfg_name, label)
                        worst_per[key] = max(worst_per.get(key, 0.0), worst)
                        rows.append((cfg_name, label, case, "mtp" + str(lam) if mtp else "main", loss, lrel, worst,
                                     wname, margin, status))
                        print(f"{tag:40s} loss {loss:10.6f} rel {lrel:8.1e} grad {worst:8.2e} {status}", flush=True)

                # Balance losses (spec 5.3) on the 3x17 batch: sequence-wise and expert-level, each with a large
                # alpha so the term is visible; the oracle without the term must disagree.
                if label == "init-f32":
                    case, toks, tg = batches[2]
                    for flag, kw in [("--seq-aux-alpha", "seq_alpha"), ("--expert-aux-alpha", "expert_alpha")]:
                        tag = f"{cfg_name}/{label}/{case}/{flag[2:]}"
                        try:
                            loss, got = holdfast_grads(model_dir, toks, tg, False, 0.0, out, [flag, "0.5"])
                            rloss, want, margin = grads_ref.compute(model_dir, torch.from_numpy(toks),
                                                                    torch.from_numpy(tg), state=state, **{kw: 0.5})
                            _, plain, _ = grads_ref.compute(model_dir, torch.from_numpy(toks), torch.from_numpy(tg),
                                                            state=state)
                        except Exception as e:  # noqa: BLE001
                            fail(f"{tag}: {e}")
                            continue
                        worst, wname, lrel, status = check_case(tag, loss, got, rloss, want, margin)
                        sens, sname, _ = compare(got, plain)
                        sens_rows.append((cfg_name, "no " + flag[2:], sens, sname, "ok" if sens > SENSITIVITY_MIN else "FAIL"))
                        if sens <= SENSITIVITY_MIN:
                            fail(f"{tag}: the balance loss moves gradients by only {sens:.3g}")
                        worst_per[(cfg_name, label)] = max(worst_per.get((cfg_name, label), 0.0), worst)
                        rows.append((cfg_name, label, case, flag[2:5] + "-aux", loss, lrel, worst, wname, margin, status))
                        print(f"{tag:40s} loss {loss:10.6f} rel {lrel:8.1e} grad {worst:8.2e} {status}", flush=True)

                # Sensitivity: a gradient-rule bug in the oracle (identical forward) must be visible.
                if label != "init-f32":
                    continue
                case, toks, tg = batches[2]  # 3x17 with ignored targets
                flips = []
                if args.norm_topk_prob:
                    flips.append(("grad_no_norm_topk", False, False))
                if args.score_func == "softmax":
                    flips.append(("grad_softmax_chosen_only", False, False))
                else:
                    flips.append(("grad_through_selection", False, False))
                if args.n_mtp:
                    flips += [("grad_mtp_detach", True, False), ("untied_mtp", True, True)]
                for flip, mtp, untied in flips:
                    try:
                        _, got = holdfast_grads(model_dir, toks, tg, mtp, 0.3, out)
                        _, want, _ = grads_ref.compute(model_dir, torch.from_numpy(toks), torch.from_numpy(tg), mtp,
                                                       0.3, flips=() if untied else (flip,), untied_mtp=untied,
                                                       state=state)
                    except Exception as e:  # noqa: BLE001
                        fail(f"{cfg_name}: sensitivity {flip}: {e}")
                        continue
                    worst, wname, _ = compare(got, want)
                    ok = worst > SENSITIVITY_MIN
                    sens_rows.append((cfg_name, flip, worst, wname, "ok" if ok else "FAIL"))
                    if not ok:
                        fail(f"{cfg_name}: broken rule {flip} moves gradients by only {worst:.3g} <= {SENSITIVITY_MIN}")

    print(f"\n== holdfast grads vs float64 autograd (tol: grad {GRAD_TOL} relative to max|ref| per tensor, "
          f"loss {LOSS_TOL}) ==")
    print(f"{'config':12s} {'checkpoint':10s} {'case':12s} {'loss':8s} {'loss':>10s} {'loss rel':>9s} "
          f"{'grad rel':>9s} {'margin':>9s} status  worst tensor")
    for c, l, case, mode, loss, lrel, w, wn, mg, st in rows:
        print(f"{c:12s} {l:10s} {case:12s} {mode:8s} {loss:10.6f} {lrel:9.1e} {w:9.2e} {mg:9.2e} {st:6s}  {wn}")
    print("\n== worst gradient relative error per config / checkpoint ==")
    for (c, l), w in worst_per.items():
        print(f"{c:12s} {l:10s} {w:.3e}")
    print(f"\n== sensitivity: oracle with a broken gradient rule vs holdfast (must be > {SENSITIVITY_MIN}) ==")
    for c, fl, w, wn, st in sens_rows:
        print(f"{c:12s} {fl:26s} {w:9.3g} {st:5s} {wn}")
    print(f"\n{len(rows)} comparisons, {len(failures)} failure(s), {time.time() - t0:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
