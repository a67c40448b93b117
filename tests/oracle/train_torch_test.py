#!/usr/bin/python3
"""The PyTorch training-bench model (bench/train_torch.py) versus the float64 oracle (deepseek_ref.py).

The bench is only a fair peer if it computes the same model as holdfast. On a shrunken copy of
configs/bench-train-small.json (same features: q_proj without q_lora, dense first layer, softmax greedy
top-k MoE with a shared expert, untied head) the bench model, run in float64 with its own random weights,
must match the oracle's logits and loss to 1e-9 given the same weights (renamed to HF keys); the oracle
with the shared expert dropped must differ (the comparison is sensitive). Then the bench CLI runs
1 warm-up + 2 steps on that config and must print its JSON line with finite, positive figures.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HOLDFAST_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "bench"))
import deepseek_ref as ref  # noqa: E402
import train_torch as tt  # noqa: E402

TOL = 1e-9
SENSITIVITY_MIN = 1e-3


def small_config() -> dict:
    with open(os.path.join(SRC, "configs", "bench-train-small.json")) as f:
        cfg = json.load(f)
    cfg.update(vocab_size=256, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
               num_hidden_layers=3, num_attention_heads=4, qk_nope_head_dim=16, qk_rope_head_dim=8,
               v_head_dim=12, kv_lora_rank=24, n_routed_experts=8, num_experts_per_tok=2)
    return cfg


def hf_state(model: torch.nn.Module) -> dict:
    out = {}
    for k, v in model.state_dict().items():
        name = k if k.startswith("lm_head.") else "model." + k
        out[name] = v.detach().double().numpy()
    return out


def main() -> int:
    torch.set_num_threads(2)
    failures = []
    cfg = small_config()
    torch.manual_seed(3)
    model = tt.DeepSeek(tt.Cfg(cfg), 32)
    for p in model.parameters():  # larger than the 0.006 init so every layer matters in the comparison
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=0.15)
    model = model.double()
    tokens = torch.randint(0, cfg["vocab_size"], (2, 21), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours = model.logits(tokens[:, :-1])
        our_loss = model(tokens[:, :-1], tokens[:, 1:]).item()
    state = hf_state(model)
    args = ref.ModelArgs.from_config(cfg)
    theirs, _ = ref.Transformer(args, state).forward(tokens[:, :-1])
    their_loss = F.cross_entropy(theirs.reshape(-1, theirs.shape[-1]), tokens[:, 1:].reshape(-1)).item()
    diff = (ours - theirs).abs().max().item()
    print(f"logits max|diff| {diff:.3e} (tol {TOL}); loss {our_loss:.12f} vs oracle {their_loss:.12f}")
    if not diff < TOL:
        failures.append(f"logits differ from the oracle by {diff:.3e}")
    if not abs(our_loss - their_loss) < TOL:
        failures.append(f"loss {our_loss} vs oracle {their_loss}")
    broken, _ = ref.Transformer(ref.ModelArgs.from_config(cfg, ["no_shared"]), state).forward(tokens[:, :-1])
    sens = (ours - broken).abs().max().item()
    print(f"oracle without shared experts differs by {sens:.3e} (must be > {SENSITIVITY_MIN})")
    if not sens > SENSITIVITY_MIN:
        failures.append(f"comparison is not sensitive: {sens:.3e}")

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([sys.executable, os.path.join(SRC, "bench", "train_torch.py"), "--config", path,
                            "--batch", "2", "--seq", "32", "--steps", "2", "--warmup", "1"],
                           capture_output=True, text=True, timeout=300)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if r.returncode != 0 or len(lines) != 1:
            failures.append(f"bench CLI exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr[-500:]!r}")
        else:
            j = json.loads(lines[0])
            print("bench line:", lines[0])
            for k in ("tokens_per_s", "step_s_median", "peak_rss_mb", "cpu_s_median"):
                if not (isinstance(j.get(k), (int, float)) and j[k] > 0):
                    failures.append(f"bench JSON {k} = {j.get(k)!r}")
            if j.get("impl") != "pytorch" or j.get("tokens_per_step") != 64 or j.get("steps") != 2:
                failures.append(f"bench JSON fields: {j}")
        bad = subprocess.run([sys.executable, os.path.join(SRC, "bench", "train_torch.py"), "--config",
                              os.path.join(d, "missing.json")], capture_output=True, text=True, timeout=60)
        if bad.returncode == 0 or "missing.json" not in bad.stderr:
            failures.append(f"missing config: exit {bad.returncode}, stderr {bad.stderr!r}")
    for f in failures:
        print("FAIL:", f)
    print("FAILED" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
