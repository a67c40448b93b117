#!/usr/bin/python3
"""Float64 autograd oracle for `holdfast grads` (MODEL-SPEC 4, 5.1), on top of deepseek_ref.py's forward.

loss = mean cross-entropy of the main logits over targets != -100 (targets explicit, no shift)
       [+ (lambda/D) * sum_m mean CE of MTP module m's logits, position i against targets[i+m]]
A loss with no valid targets is 0 (no NaN). Every tensor but e_score_correction_bias is trainable. The MTP
modules' embed_tokens / shared_head.head are tied to the main embedding / head (one tensor; their reported
gradient is the total), as holdfast does; a tied lm_head is model.embed_tokens.weight.

CLI:
  /usr/bin/python3 tests/oracle/grads_ref.py --model DIR --tokens "1,2,3;4,5,6" --targets "2,3,4;5,6,-100" \
      --out GRADS.npz [--mtp] [--mtp-lambda 0.3] [--flip FEATURE ...] [--untied-mtp]
      [--seq-aux-alpha A] [--expert-aux-alpha A1]     (+ the balance losses of spec 5.3)
Writes float64 gradients by HF name and the loss (key "__loss__") with np.savez.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as ref  # noqa: E402


def trainable(name: str) -> bool:
    return not name.endswith("e_score_correction_bias")


def balance_loss(model, B: int, S: int, seq_alpha: float, expert_alpha: float):
    """Spec 5.3 over the main model's MoE layers: the sequence-wise loss (mean over sequences) and the
    expert-level loss over the batch's B*S tokens; s' = s / sum(s) for sigmoid scores, s for softmax."""
    total = torch.zeros((), dtype=torch.float64)
    for blk in model.layers:
        if not isinstance(blk.ffn, ref.MoE):
            continue
        s, idx = blk.ffn.gate.last
        E, k = s.shape[-1], idx.shape[-1]
        sp = s / s.sum(-1, keepdim=True) if model.a.score_func == "sigmoid" else s
        sp = sp.reshape(B, S, E)
        counts = F.one_hot(idx.reshape(B, S, k), E).sum(2).to(s.dtype)  # [B, S, E]
        if seq_alpha:
            f = E / (k * S) * counts.sum(1)  # [B, E]
            total = total + seq_alpha * (f * sp.mean(1)).sum(-1).mean()
        if expert_alpha:
            f = E / (k * B * S) * counts.sum((0, 1))
            total = total + expert_alpha * (f * sp.reshape(-1, E).mean(0)).sum()
    return total


def compute(model_dir: str, tokens: torch.Tensor, targets: torch.Tensor, mtp: bool = False, lam: float = 0.3,
            flips=(), untied_mtp: bool = False, state=None, seq_alpha: float = 0.0, expert_alpha: float = 0.0):
    """-> (loss float, {name: float64 numpy gradient}, min routing margin)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    args = ref.ModelArgs.from_config(cfg, flips)
    model = ref.Transformer(args, state if state is not None else ref.load_state(model_dir))
    W = model.W
    head_name = "model.embed_tokens.weight" if args.tie_embeddings else "lm_head.weight"
    if not untied_mtp:  # tie: the MTP copies become the main tensors themselves
        for m in range(args.n_mtp):
            p = f"model.layers.{args.n_layers + m}."
            W.t[p + "embed_tokens.weight"] = W.t["model.embed_tokens.weight"]
            W.t[p + "shared_head.head.weight"] = W.t[head_name]
    for name, t in W.t.items():
        if trainable(name):
            t.requires_grad_(True)
    logits, mtp_logits = model.forward(tokens, "naive", want_mtp=mtp)
    V = logits.shape[-1]

    def mean_ce(lg, tg):
        n = int((tg != -100).sum())
        if n == 0:
            return lg.sum() * 0.0
        return F.cross_entropy(lg.reshape(-1, V), tg.reshape(-1), ignore_index=-100, reduction="sum") / n

    loss = mean_ce(logits, targets)
    if mtp:
        D = args.n_mtp
        for m, lg in enumerate(mtp_logits, start=1):
            loss = loss + lam / D * mean_ce(lg, targets[:, m:])
    if seq_alpha or expert_alpha:
        loss = loss + balance_loss(model, tokens.shape[0], tokens.shape[1], seq_alpha, expert_alpha)
    params = [t for name, t in W.t.items() if trainable(name)]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    by_id = {id(t): (g if g is not None else torch.zeros_like(t)) for t, g in zip(params, grads)}
    out = {name: by_id[id(t)].detach().numpy() for name, t in W.t.items() if trainable(name)}
    margin = min([g.min_margin for g in model.gates()] or [float("inf")])
    return float(loss.detach()), out, margin


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mtp", action="store_true")
    ap.add_argument("--mtp-lambda", type=float, default=0.3)
    ap.add_argument("--flip", action="append", default=[], choices=sorted(ref.FLIPS))
    ap.add_argument("--untied-mtp", action="store_true")
    ap.add_argument("--seq-aux-alpha", type=float, default=0.0)
    ap.add_argument("--expert-aux-alpha", type=float, default=0.0)
    a = ap.parse_args(argv)
    loss, grads, _ = compute(a.model, ref.parse_tokens(a.tokens), ref.parse_tokens(a.targets), a.mtp, a.mtp_lambda,
                             a.flip, a.untied_mtp, seq_alpha=a.seq_aux_alpha, expert_alpha=a.expert_aux_alpha)
    np.savez(a.out, __loss__=np.array(loss), **grads)
    print(f"loss {loss:.12g}")


if __name__ == "__main__":
    main()
