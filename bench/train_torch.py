#!/usr/bin/python3
"""PyTorch peer of `holdfast train` for the training benchmark (bench/train_bench.sh).

A float32 implementation of the DeepSeek model of MODEL-SPEC.md section 3, restricted to what the
bench-train configs use: MLA in the naive form without q_lora (q_proj), interleaved RoPE without YaRN,
dense SwiGLU MLP for layers < first_k_dense_replace, MoE with softmax scores, greedy top-k and shared
experts, untied head, no MTP. One step = forward + backward + global-norm clip (1.0) + AdamW (lr 3e-4,
betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices and none on norms, as holdfast's train/adamw.h)
on a fresh batch of uniformly random tokens. The MoE is written the efficient PyTorch way: one gather of
the routed (token, slot) rows sorted by expert, one contiguous slice per expert, one index_add back.
tests/oracle/train_torch_test.py checks this model against the float64 oracle (deepseek_ref.py).

Prints one JSON line on stdout (per-step progress goes to stderr):
  {"impl":"pytorch","tokens_per_s":..,"step_s_median":..,"peak_rss_mb":..,...}
tokens_per_s = batch*seq / step_s_median over the measured (non-warm-up) steps; cpu_s_median is the
process CPU time per step (less sensitive to a busy machine); peak_rss_mb is
getrusage(RUSAGE_SELF).ru_maxrss. On an oversubscribed machine OpenMP's default spin-waiting makes
2-thread figures much worse; OMP_WAIT_POLICY=PASSIVE helps there (it is echoed in the JSON line).

  /usr/bin/python3 bench/train_torch.py --config configs/bench-train-small.json --steps 10 --warmup 2
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cfg:
    """The config.json keys the model reads, named as in the file."""

    def __init__(self, d: dict):
        def need(k):
            if k not in d or d[k] is None:
                raise SystemExit(f"config: '{k}' is missing")
            return d[k]
        self.vocab_size = need("vocab_size")
        self.hidden_size = need("hidden_size")
        self.intermediate_size = need("intermediate_size")
        self.moe_intermediate_size = need("moe_intermediate_size")
        self.num_hidden_layers = need("num_hidden_layers")
        self.num_attention_heads = need("num_attention_heads")
        self.kv_lora_rank = need("kv_lora_rank")
        self.qk_nope_head_dim = need("qk_nope_head_dim")
        self.qk_rope_head_dim = need("qk_rope_head_dim")
        self.v_head_dim = need("v_head_dim")
        self.n_routed_experts = d.get("n_routed_experts") or 0
        self.n_shared_experts = d.get("n_shared_experts") or 0
        self.num_experts_per_tok = d.get("num_experts_per_tok") or 0
        self.first_k_dense_replace = d.get("first_k_dense_replace", 0)
        self.moe_layer_freq = d.get("moe_layer_freq", 1)
        self.norm_topk_prob = bool(d.get("norm_topk_prob", False))
        self.routed_scaling_factor = float(d.get("routed_scaling_factor", 1.0))
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        unsupported = {
            "q_lora_rank": d.get("q_lora_rank") is not None,
            "rope_scaling": d.get("rope_scaling") is not None,
            "scoring_func": d.get("scoring_func", "softmax") != "softmax",
            "topk_method": d.get("topk_method", "greedy") != "greedy",
            "tie_word_embeddings": bool(d.get("tie_word_embeddings", False)),
            "num_nextn_predict_layers": (d.get("num_nextn_predict_layers") or 0) != 0,
            "attention_bias": bool(d.get("attention_bias", False)),
        }
        bad = [k for k, v in unsupported.items() if v]
        if bad:
            raise SystemExit(f"config: this bench only implements the bench-train configs; unsupported: {bad}")

    def is_moe_layer(self, i: int) -> bool:
        return self.n_routed_experts > 0 and i >= self.first_k_dense_replace and i % self.moe_layer_freq == 0


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(cfg: Cfg, seq_len: int):
    """cos, sin [S, dr/2] (float64; cast to the compute dtype per step) of pos * theta_i,
    theta_i = base^(-2i/dr) (spec 3.5, no YaRN)."""
    dr = cfg.qk_rope_head_dim
    theta = cfg.rope_theta ** (-torch.arange(0, dr // 2, dtype=torch.float64) * 2.0 / dr)
    ang = torch.outer(torch.arange(seq_len, dtype=torch.float64), theta)
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):
    """Rotates adjacent pairs (x[2i], x[2i+1]) (spec 3.4). x: [B,S,heads,dr]; cos/sin: [S, dr/2]."""
    x = x.unflatten(-1, (-1, 2))
    x0, x1 = x[..., 0], x[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    """Multi-head latent attention, naive form (spec 3.3), q_lora_rank = null."""

    def __init__(self, cfg: Cfg):
        super().__init__()
        H, nh = cfg.hidden_size, cfg.num_attention_heads
        self.nh, self.dn, self.dr, self.dv, self.r = (nh, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                                                      cfg.v_head_dim, cfg.kv_lora_rank)
        self.q_proj = nn.Linear(H, nh * (self.dn + self.dr), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(H, self.r + self.dr, bias=False)
        self.kv_a_layernorm = RMSNorm(self.r, 1e-6)
        self.kv_b_proj = nn.Linear(self.r, nh * (self.dn + self.dv), bias=False)
        self.o_proj = nn.Linear(nh * self.dv, H, bias=False)
        self.scale = (self.dn + self.dr) ** -0.5

    def forward(self, x, cos, sin, mask):
        B, S, _ = x.shape
        nh, dn, dr, dv, r = self.nh, self.dn, self.dr, self.dv, self.r
        q_nope, q_pe = self.q_proj(x).view(B, S, nh, dn + dr).split([dn, dr], dim=-1)
        c, k_pe = self.kv_a_proj_with_mqa(x).split([r, dr], dim=-1)
        k_nope, v = self.kv_b_proj(self.kv_a_layernorm(c)).view(B, S, nh, dn + dv).split([dn, dv], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin)                         # [B,S,nh,dr]
        k_pe = apply_rope(k_pe.unsqueeze(2), cos, sin)            # [B,S,1,dr], shared by all heads
        q = torch.cat((q_nope, q_pe), dim=-1).transpose(1, 2)     # [B,nh,S,dq]
        k = torch.cat((k_nope, k_pe.expand(B, S, nh, dr)), dim=-1).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + mask   # [B,nh,S,S]
        o = torch.matmul(scores.softmax(dim=-1), v.transpose(1, 2))         # [B,nh,S,dv]
        return self.o_proj(o.transpose(1, 2).reshape(B, S, nh * dv))


class MLP(nn.Module):
    """SwiGLU (spec 3.8): dense layers, routed experts and the shared expert."""

    def __init__(self, H: int, inter: int):
        super().__init__()
        self.gate_proj = nn.Linear(H, inter, bias=False)
        self.up_proj = nn.Linear(H, inter, bias=False)
        self.down_proj = nn.Linear(inter, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    """Softmax router, greedy top-k, routed + shared experts (spec 3.9)."""

    def __init__(self, cfg: Cfg):
        super().__init__()
        H, E = cfg.hidden_size, cfg.n_routed_experts
        self.E, self.k = E, cfg.num_experts_per_tok
        self.norm_topk_prob, self.scaling = cfg.norm_topk_prob, cfg.routed_scaling_factor
        self.gate = nn.Linear(H, E, bias=False)
        self.experts = nn.ModuleList(MLP(H, cfg.moe_intermediate_size) for _ in range(E))
        self.shared_experts = (MLP(H, cfg.moe_intermediate_size * cfg.n_shared_experts)
                               if cfg.n_shared_experts else None)

    def forward(self, x):
        shape = x.shape
        xt = x.reshape(-1, shape[-1])                             # [T,H]
        scores = self.gate(xt).softmax(dim=-1)                    # [T,E]
        w, idx = torch.topk(scores, self.k, dim=-1)               # [T,k]
        if self.norm_topk_prob:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        w = w * self.scaling
        flat = idx.reshape(-1)                                    # [T*k] expert of each (token, slot)
        order = torch.argsort(flat, stable=True)
        token = order // self.k                                   # token of each sorted row
        counts = torch.bincount(flat, minlength=self.E).tolist()
        xs = xt.index_select(0, token)                            # [T*k,H] rows grouped by expert
        ws = w.reshape(-1).index_select(0, order).unsqueeze(-1)
        ys, begin = [], 0
        for e, n in enumerate(counts):
            if n:
                ys.append(self.experts[e](xs[begin:begin + n]))
            begin += n
        y = torch.zeros_like(xt).index_add(0, token, torch.cat(ys) * ws)
        if self.shared_experts is not None:
            y = y + self.shared_experts(xt)
        return y.view(shape)


class Block(nn.Module):
    def __init__(self, cfg: Cfg, i: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MoE(cfg) if cfg.is_moe_layer(i) else MLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, h, cos, sin, mask):
        a = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        return a + self.mlp(self.post_attention_layernorm(a))


class DeepSeek(nn.Module):
    def __init__(self, cfg: Cfg, seq_len: int):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg, seq_len)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("mask", torch.full((seq_len, seq_len), float("-inf")).triu(1), persistent=False)
        for m in self.modules():  # spec 5.4: N(0, 0.006^2); norms stay 1
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.006)

    def logits(self, tokens):
        """tokens [B,S] -> logits [B,S,V]."""
        S = tokens.shape[1]
        h = self.embed_tokens(tokens)
        cos, sin, mask = self.cos[:S].to(h.dtype), self.sin[:S].to(h.dtype), self.mask[:S, :S].to(h.dtype)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.lm_head(self.norm(h))

    def forward(self, tokens, targets):
        """Mean next-token cross-entropy (spec 5.1)."""
        logits = self.logits(tokens)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/bench-train-small.json", help="HF config.json")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--seq", type=int, default=256, help="tokens per sequence")
    ap.add_argument("--steps", type=int, default=10, help="measured steps")
    ap.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.batch < 1 or a.seq < 1 or a.threads < 1:
        raise SystemExit("--steps, --batch, --seq, --threads must be >= 1 and --warmup >= 0")
    try:
        with open(a.config) as f:
            cfg = Cfg(json.load(f))
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{a.config}: {e}")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = DeepSeek(cfg, a.seq)
    params = [p for p in model.parameters() if p.requires_grad]
    # As holdfast's AdamW: decay on matrices (linear, router, embedding), none on norms (the 1-D tensors).
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed + 1)

    times, cpu, losses = [], [], []
    for step in range(a.warmup + a.steps):
        window = torch.randint(0, cfg.vocab_size, (a.batch, a.seq + 1), generator=gen)
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model(window[:, :-1], window[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        losses.append(loss.item())
        if step >= a.warmup:
            times.append(dt)
            cpu.append(dc)
        print(f"step {step + 1}/{a.warmup + a.steps} loss {losses[-1]:.4f} {dt:.3f} s"
              f"{' (warm-up)' if step < a.warmup else ''}", file=sys.stderr, flush=True)

    med = statistics.median(times)
    tokens = a.batch * a.seq
    print(json.dumps({
        "impl": "pytorch", "tokens_per_s": round(tokens / med, 2), "step_s_median": round(med, 5),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "cpu_s_median": round(statistics.median(cpu), 5), "step_s_min": round(min(times), 5), "step_s_max": round(max(times), 5),
        "tokens_per_step": tokens, "steps": a.steps, "warmup": a.warmup, "threads": a.threads,
        "n_params": sum(p.numel() for p in params), "loss_first": round(losses[0], 5),
        "loss_last": round(losses[-1], 5), "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"), "config": a.config}), flush=True)
    if not all(math.isfinite(x) for x in losses):
        raise SystemExit("non-finite loss")


if __name__ == "__main__":
    main()
