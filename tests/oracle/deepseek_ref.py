#!/usr/bin/python3
"""Independent float64 oracle for the DeepSeek-V2/V3 forward pass (MODEL-SPEC.md sections 1-4).

Written from the spec, class for class in the spirit of deepseek-ai/DeepSeek-V3 `inference/model.py`
(ModelArgs, RMSNorm, precompute_freqs_cis/apply_rotary_emb, MLA, Gate, MLP, Expert, MoE, Block, MTP, Transformer),
but everything runs in torch.float64 and reads an HF-layout checkpoint directory with a tiny built-in
safetensors reader (no `safetensors` package needed).

CLI:
  /usr/bin/python3 tests/oracle/deepseek_ref.py --model DIR --tokens "1,2,3;4,5,6" --out OUT.npy \
      [--mtp-out MTP.npy] [--mla naive|absorb] [--flip FEATURE ...]
Writes float32 logits [B,S,V] (np.save); --mtp-out writes MTP module-1 logits [B,S-1,V].

--flip deliberately breaks one feature (sensitivity tests); see FLIPS below.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

DT = torch.float64

# Deliberate bugs the oracle can emulate. Each is a plausible engine mistake.
FLIPS = {
    "no_yarn": "plain base^(-2i/d) inverse frequencies although rope_scaling is yarn (mscale terms kept)",
    "yarn_old_range": "YaRN correction range computed from max_position_embeddings instead of L0 (old HF 4.x)",
    "no_mscale_all_dim": "softmax scale without the mscale(f, mscale_all_dim)^2 factor",
    "no_interleave": "rotate-half RoPE on the raw (interleaved) layout",
    "no_routed_scaling": "routed_scaling_factor not applied",
    "zero_bias": "e_score_correction_bias ignored in expert selection",
    "bias_in_weights": "gate weights taken from the biased choice values instead of the unbiased scores",
    "no_norm_topk": "norm_topk_prob ignored (weights not renormalized)",
    "no_group_limit": "expert groups ignored (plain top-k over all experts)",
    "wrong_group_score": "group score = max for noaux_tc / sum-of-top-2 for group_limited_greedy (swapped)",
    "wrong_eps": "H-sized RMSNorms use rms_norm_eps * 100",
    "small_norm_eps": "q_a/kv_a layernorms use rms_norm_eps instead of 1e-6",
    "no_shared": "shared experts dropped",
    "mtp_hidden_first": "MTP concat order [hnorm(h), enorm(e)] instead of embedding first (MTP logits only)",
    "mtp_prenorm": "MTP fed the main hidden state BEFORE model.norm (MTP logits only)",
    # Gradient-only bugs (same forward values; used by grads_test.py's sensitivity check).
    "grad_no_norm_topk": "norm_topk_prob's normalizer treated as a constant in backward",
    "grad_softmax_chosen_only": "softmax router backward as if each score depended on its own logit only",
    "grad_through_selection": "router gradient also reaches the unchosen experts' scores (sigmoid: their rows)",
    "grad_mtp_detach": "MTP input h^0 detached: the MTP loss does not reach the main model through it",
}


# ----------------------------------------------------------------------------------------------------------------
# safetensors reading (spec 2.2, 2.4, 2.5)

_ST_DTYPES = {"BOOL": (np.bool_, 1), "U8": (np.uint8, 1), "I8": (np.int8, 1), "F8_E4M3": (np.uint8, 1),
              "F8_E5M2": (np.uint8, 1), "I16": (np.int16, 2), "U16": (np.uint16, 2), "F16": (np.float16, 2),
              "BF16": (np.uint16, 2), "I32": (np.int32, 4), "U32": (np.uint32, 4), "F32": (np.float32, 4),
              "I64": (np.int64, 8), "U64": (np.uint64, 8), "F64": (np.float64, 8)}


def e4m3_table() -> np.ndarray:
    """float64 value of every F8_E4M3 byte (NaN for 0x7F / 0xFF)."""
    out = np.empty(256, dtype=np.float64)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> 3) & 0xF
        m = b & 0x7
        if e == 15 and m == 7:
            out[b] = np.nan
        elif e == 0:
            out[b] = s * m * 2.0 ** -9
        else:
            out[b] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return out


E4M3 = e4m3_table()


def decode(dtype: str, raw: np.ndarray) -> np.ndarray:
    """Raw stored array -> float64."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype == "F8_E4M3":
        return E4M3[raw]
    return raw.astype(np.float64)


def read_safetensors(path: str) -> Dict[str, tuple]:
    """name -> (dtype string, raw numpy array with the stored element type and shape)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    spans = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = meta["dtype"]
        npdt, size = _ST_DTYPES[dt]
        shape = tuple(meta["shape"])
        b, e = meta["data_offsets"]
        numel = int(np.prod(shape)) if shape else 1
        assert e - b == numel * size, f"{path}: {name}: byte range does not match shape/dtype"
        assert base + e <= len(blob), f"{path}: {name}: data outside the file"
        spans.append((b, e))
        arr = np.frombuffer(blob, dtype=npdt, count=numel, offset=base + b).reshape(shape)
        out[name] = (dt, arr)
    spans.sort()
    pos = 0
    for b, e in spans:
        assert b == pos, f"{path}: gap or overlap in the data section at {pos}"
        pos = e
    assert base + pos == len(blob), f"{path}: data section not fully covered"
    return out


def load_state(model_dir: str) -> Dict[str, np.ndarray]:
    """All tensors of an HF directory as float64 numpy arrays; FP8 weights dequantized (spec 2.5)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    raw: Dict[str, tuple] = {}
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        cache: Dict[str, Dict[str, tuple]] = {}
        for name, shard in weight_map.items():
            if shard not in cache:
                cache[shard] = read_safetensors(os.path.join(model_dir, shard))
            raw[name] = cache[shard][name]
    else:
        raw = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    state = {}
    for name, (dt, arr) in raw.items():
        if name.endswith("_scale_inv") or name.endswith("rotary_emb.inv_freq"):
            continue
        w = decode(dt, arr)
        sname = name + "_scale_inv"
        if dt == "F8_E4M3" and sname in raw:
            sdt, sarr = raw[sname]
            s = decode(sdt, sarr)
            m, n = w.shape
            w = w * np.repeat(np.repeat(s, 128, axis=0), 128, axis=1)[:m, :n]
        state[name] = w
    return state


# ----------------------------------------------------------------------------------------------------------------
# configuration (spec 1.1)

@dataclass
class ModelArgs:
    model_type: str = "deepseek_v3"
    vocab_size: int = 129280
    dim: int = 7168
    inter_dim: int = 18432
    moe_inter_dim: int = 2048
    n_layers: int = 61
    n_mtp: int = 0
    n_heads: int = 128
    q_lora_rank: Optional[int] = 1536
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    n_routed_experts: Optional[int] = 256
    n_shared_experts: int = 1
    n_activated_experts: int = 8
    route_scale: float = 2.5
    score_func: str = "sigmoid"
    topk_method: str = "noaux_tc"
    n_groups: int = 8
    topk_groups: int = 4
    norm_topk_prob: bool = True
    first_k_dense: int = 3
    moe_layer_freq: int = 1
    rms_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: Optional[dict] = None
    max_pos: int = 4096
    rope_interleave: bool = True
    attention_bias: bool = False
    tie_embeddings: bool = False
    flips: frozenset = field(default_factory=frozenset)

    @staticmethod
    def from_config(cfg: dict, flips=()) -> "ModelArgs":
        v3 = cfg.get("model_type", "deepseek_v3") != "deepseek_v2"
        g = lambda k, d: d if cfg.get(k) is None else cfg[k]
        rs = cfg.get("rope_scaling")
        if rs is not None and (rs.get("type") or rs.get("rope_type")) != "yarn":
            raise ValueError(f"unsupported rope_scaling {rs}")
        for fl in flips:
            if fl not in FLIPS:
                raise ValueError(f"unknown flip {fl}; known: {sorted(FLIPS)}")
        return ModelArgs(
            model_type=cfg.get("model_type", "deepseek_v3"),
            vocab_size=g("vocab_size", 129280), dim=g("hidden_size", 7168), inter_dim=g("intermediate_size", 18432),
            moe_inter_dim=g("moe_intermediate_size", 2048), n_layers=g("num_hidden_layers", 61),
            n_mtp=g("num_nextn_predict_layers", 0), n_heads=g("num_attention_heads", 128),
            q_lora_rank=cfg.get("q_lora_rank", 1536), kv_lora_rank=g("kv_lora_rank", 512),
            qk_nope_head_dim=g("qk_nope_head_dim", 128), qk_rope_head_dim=g("qk_rope_head_dim", 64),
            v_head_dim=g("v_head_dim", 128), n_routed_experts=cfg.get("n_routed_experts", 256),
            n_shared_experts=cfg.get("n_shared_experts", 1) or 0,
            n_activated_experts=g("num_experts_per_tok", 8), route_scale=float(g("routed_scaling_factor", 2.5)),
            score_func=g("scoring_func", "sigmoid" if v3 else "softmax"),
            topk_method=g("topk_method", "noaux_tc" if v3 else "greedy"),
            n_groups=g("n_group", 8), topk_groups=g("topk_group", 4), norm_topk_prob=g("norm_topk_prob", v3),
            first_k_dense=g("first_k_dense_replace", 3), moe_layer_freq=g("moe_layer_freq", 1),
            rms_eps=float(g("rms_norm_eps", 1e-6)), rope_theta=float(g("rope_theta", 10000.0)), rope_scaling=rs,
            max_pos=g("max_position_embeddings", 4096), rope_interleave=g("rope_interleave", True),
            attention_bias=g("attention_bias", False), tie_embeddings=g("tie_word_embeddings", False),
            flips=frozenset(flips))

    def is_moe_layer(self, i: int) -> bool:
        return bool(self.n_routed_experts) and i >= self.first_k_dense and i % self.moe_layer_freq == 0

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def yarn_factor(self) -> float:
        rs = self.rope_scaling
        L0 = rs.get("original_max_position_embeddings") or self.max_pos
        return float(rs.get("factor") or self.max_pos / L0)


def yarn_mscale(f: float, m: float = 1.0) -> float:
    return 1.0 if f <= 1 else 0.1 * m * math.log(f) + 1.0


# ----------------------------------------------------------------------------------------------------------------
# RoPE (spec 3.4, 3.5)

def yarn_params(args: ModelArgs):
    """(inv_freq [dr/2] float64 tensor, attention factor a, low, high)."""
    dim = args.qk_rope_head_dim
    base = args.rope_theta
    i = torch.arange(0, dim // 2, dtype=DT)
    theta_extra = base ** (-2.0 * i / dim)
    rs = args.rope_scaling
    if rs is None:
        return theta_extra, 1.0, None, None
    f = args.yarn_factor
    L0 = rs.get("original_max_position_embeddings") or args.max_pos
    if "yarn_old_range" in args.flips:
        L0 = args.max_pos
    beta_fast = rs.get("beta_fast") or 32
    beta_slow = rs.get("beta_slow") or 1
    corr = lambda n: dim * math.log(L0 / (2 * math.pi * n)) / (2 * math.log(base))
    low, high = corr(beta_fast), corr(beta_slow)
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((i - low) / (high - low)).clamp(0, 1)
    theta = theta_extra / f * ramp + theta_extra * (1 - ramp)
    if "no_yarn" in args.flips:
        theta = theta_extra
    if rs.get("attention_factor") is not None:
        a = float(rs["attention_factor"])
    elif rs.get("mscale") and rs.get("mscale_all_dim"):
        a = yarn_mscale(f, rs["mscale"]) / yarn_mscale(f, rs["mscale_all_dim"])
    else:
        a = yarn_mscale(f, 1.0)
    return theta, a, low, high


def precompute_freqs_cis(args: ModelArgs, seqlen: int) -> torch.Tensor:
    """Complex [S, dr/2]: a * exp(i * pos * theta)."""
    theta, a, _, _ = yarn_params(args)
    pos = torch.arange(seqlen, dtype=DT)
    ang = torch.outer(pos, theta)
    return torch.polar(torch.full_like(ang, a), ang)


def apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor, interleave: bool) -> torch.Tensor:
    """x: [B,S,...,dr], freqs_cis: [S, dr/2]."""
    B, S = x.shape[:2]
    fc = freqs_cis.view(1, S, *([1] * (x.dim() - 3)), -1)
    if interleave:
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(xc * fc).flatten(-2)
    # rotate-half on the raw layout (wrong for DeepSeek weights; flip only)
    cos = torch.cat([fc.real, fc.real], dim=-1)
    sin = torch.cat([fc.imag, fc.imag], dim=-1)
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


def softmax_scale(args: ModelArgs) -> float:
    s = args.qk_head_dim ** -0.5
    rs = args.rope_scaling
    if rs is not None and rs.get("mscale_all_dim") and "no_mscale_all_dim" not in args.flips:
        m = yarn_mscale(args.yarn_factor, rs["mscale_all_dim"])
        s = s * m * m
    return s


# ----------------------------------------------------------------------------------------------------------------
# modules (functional, weights pulled from the state dict by prefix)

def linear(x, W, b=None):
    y = x @ W.T
    return y if b is None else y + b


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class Weights:
    def __init__(self, state: Dict[str, np.ndarray]):
        self.t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(DT) for k, v in state.items()}

    def __getitem__(self, k):
        if k not in self.t:
            raise KeyError(f"tensor {k} missing from checkpoint")
        return self.t[k]

    def get(self, k):
        return self.t.get(k)


class MLA:
    def __init__(self, args: ModelArgs, W: Weights, p: str):
        self.a, self.W, self.p = args, W, p + "self_attn."

    def __call__(self, x, freqs_cis, mla="naive"):
        a, W, p = self.a, self.W, self.p
        B, S, _ = x.shape
        nh, dn, dr, dv, r = a.n_heads, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim, a.kv_lora_rank
        small_eps = a.rms_eps if "small_norm_eps" in a.flips else 1e-6
        if a.q_lora_rank is None:
            q = linear(x, W[p + "q_proj.weight"])
        else:
            qa = linear(x, W[p + "q_a_proj.weight"], W.get(p + "q_a_proj.bias") if a.attention_bias else None)
            q = linear(rms_norm(qa, W[p + "q_a_layernorm.weight"], small_eps), W[p + "q_b_proj.weight"])
        q = q.view(B, S, nh, dn + dr)
        q_nope, q_pe = q[..., :dn], q[..., dn:]
        ckv = linear(x, W[p + "kv_a_proj_with_mqa.weight"],
                     W.get(p + "kv_a_proj_with_mqa.bias") if a.attention_bias else None)
        c = rms_norm(ckv[..., :r], W[p + "kv_a_layernorm.weight"], small_eps)
        k_pe = ckv[..., r:]
        q_pe = apply_rotary_emb(q_pe, freqs_cis, a.rope_interleave and "no_interleave" not in a.flips)
        k_pe = apply_rotary_emb(k_pe, freqs_cis, a.rope_interleave and "no_interleave" not in a.flips)
        wkv_b = W[p + "kv_b_proj.weight"].view(nh, dn + dv, r)
        scale = softmax_scale(a)
        mask = torch.full((S, S), float("-inf"), dtype=DT).triu(1)
        if mla == "naive":
            kv = torch.einsum("bsc,hdc->bshd", c, wkv_b)
            k_nope, v = kv[..., :dn], kv[..., dn:]
            scores = (torch.einsum("bshd,bthd->bsht", q_nope, k_nope) +
                      torch.einsum("bshd,btd->bsht", q_pe, k_pe)) * scale
            scores = scores + mask[:, None, :]
            P = scores.softmax(dim=-1)
            o = torch.einsum("bsht,bthd->bshd", P, v)
        else:  # absorbed (spec 3.7)
            q_lat = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :dn])
            scores = (torch.einsum("bshc,btc->bsht", q_lat, c) +
                      torch.einsum("bshd,btd->bsht", q_pe, k_pe)) * scale
            scores = scores + mask[:, None, :]
            P = scores.softmax(dim=-1)
            o_lat = torch.einsum("bsht,btc->bshc", P, c)
            o = torch.einsum("bshc,hdc->bshd", o_lat, wkv_b[:, dn:])
        return linear(o.reshape(B, S, nh * dv), W[p + "o_proj.weight"],
                      W.get(p + "o_proj.bias") if a.attention_bias else None)


def mlp(x, W: Weights, p: str):
    return linear(F.silu(linear(x, W[p + "gate_proj.weight"])) * linear(x, W[p + "up_proj.weight"]),
                  W[p + "down_proj.weight"])


class Gate:
    """Router (spec 3.9). Returns (weights [T,k], indices [T,k]) and records selection margins."""

    def __init__(self, args: ModelArgs, W: Weights, p: str):
        self.a, self.W, self.p = args, W, p + "mlp.gate."
        self.min_margin = float("inf")

    def __call__(self, x):
        a, fl = self.a, self.a.flips
        E, k = a.n_routed_experts, a.n_activated_experts
        z = linear(x, self.W[self.p + "weight"])
        s = z.softmax(-1) if a.score_func == "softmax" else z.sigmoid()
        if "grad_softmax_chosen_only" in fl and a.score_func == "softmax":
            s = torch.exp(z - torch.logsumexp(z, -1, keepdim=True).detach())
        c = s
        if a.topk_method == "noaux_tc" and "zero_bias" not in fl:
            c = s + self.W[self.p + "e_score_correction_bias"]
        cm = c
        if a.topk_method != "greedy" and a.n_groups > 1 and "no_group_limit" not in fl:
            g = c.view(-1, a.n_groups, E // a.n_groups)
            use_max = a.topk_method == "group_limited_greedy"
            if "wrong_group_score" in fl:
                use_max = not use_max
            gs = g.amax(-1) if use_max else g.topk(2, dim=-1).values.sum(-1)
            gsort = gs.sort(-1, descending=True).values
            if a.topk_groups < a.n_groups:
                self.min_margin = min(self.min_margin,
                                      (gsort[:, a.topk_groups - 1] - gsort[:, a.topk_groups]).min().item())
            keep = gs.topk(a.topk_groups, dim=-1).indices
            gmask = torch.ones_like(gs, dtype=torch.bool).scatter_(1, keep, False)
            cm = g.masked_fill(gmask.unsqueeze(-1), float("-inf")).view(-1, E)
        srt = cm.sort(-1, descending=True).values
        if k < E:
            kth, nxt = srt[:, k - 1], srt[:, k]
            fin = torch.isfinite(nxt)
            if fin.any():
                self.min_margin = min(self.min_margin, (kth[fin] - nxt[fin]).min().item())
        idx = cm.topk(k, dim=-1).indices
        self.last = (s, idx)  # scores and selection of the latest call, for the balance losses (spec 5.3)
        w = (c if "bias_in_weights" in fl else s).gather(1, idx)
        if "grad_through_selection" in fl:  # value unchanged, gradient also through every expert's score
            w = w + (s.sum(-1, keepdim=True) - s.sum(-1, keepdim=True).detach())
        if a.norm_topk_prob and "no_norm_topk" not in fl:
            den = w.sum(-1, keepdim=True) + 1e-20
            w = w / (den.detach() if "grad_no_norm_topk" in fl else den)
        if "no_routed_scaling" not in fl:
            w = w * a.route_scale
        return w, idx


class MoE:
    def __init__(self, args: ModelArgs, W: Weights, p: str):
        self.a, self.W, self.p = args, W, p + "mlp."
        self.gate = Gate(args, W, p)

    def __call__(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        w, idx = self.gate(x)
        y = torch.zeros_like(x)
        for e in range(self.a.n_routed_experts):
            tok, slot = torch.where(idx == e)
            if tok.numel() == 0:
                continue
            y[tok] += w[tok, slot, None] * mlp(x[tok], self.W, f"{self.p}experts.{e}.")
        if self.a.n_shared_experts and "no_shared" not in self.a.flips:
            y = y + mlp(x, self.W, self.p + "shared_experts.")
        return y.view(shape)


class Block:
    def __init__(self, args: ModelArgs, W: Weights, layer: int):
        p = f"model.layers.{layer}."
        self.a, self.W, self.p = args, W, p
        self.attn = MLA(args, W, p)
        self.ffn = MoE(args, W, p) if args.is_moe_layer(layer) else (lambda x: mlp(x, W, p + "mlp."))

    def __call__(self, h, freqs_cis, mla):
        eps = self.a.rms_eps * (100 if "wrong_eps" in self.a.flips else 1)
        h = h + self.attn(rms_norm(h, self.W[self.p + "input_layernorm.weight"], eps), freqs_cis, mla)
        return h + self.ffn(rms_norm(h, self.W[self.p + "post_attention_layernorm.weight"], eps))


class Transformer:
    def __init__(self, args: ModelArgs, state: Dict[str, np.ndarray]):
        self.a = args
        self.W = Weights(state)
        self.layers = [Block(args, self.W, i) for i in range(args.n_layers)]
        self.mtp = [Block(args, self.W, args.n_layers + m) for m in range(args.n_mtp)]
        self.eps = args.rms_eps * (100 if "wrong_eps" in args.flips else 1)

    def gates(self):
        return [b.ffn.gate for b in self.layers + self.mtp if isinstance(b.ffn, MoE)]

    def head(self):
        return self.W["model.embed_tokens.weight"] if self.a.tie_embeddings else self.W["lm_head.weight"]

    def forward(self, tokens: torch.Tensor, mla: str = "naive", want_mtp: bool = False):
        """tokens [B,S] int64 -> (logits [B,S,V], list of MTP logits [B,S-m,V] for m = 1..D)."""
        a, W = self.a, self.W
        B, S = tokens.shape
        freqs_cis = precompute_freqs_cis(a, S)
        h = W["model.embed_tokens.weight"][tokens]
        for blk in self.layers:
            h = blk(h, freqs_cis, mla)
        hN = rms_norm(h, W["model.norm.weight"], self.eps)
        logits = linear(hN, self.head())
        mtp_logits = []
        if want_mtp:
            hin = h if "mtp_prenorm" in a.flips else hN
            if "grad_mtp_detach" in a.flips:
                hin = hin.detach()
            for m, blk in enumerate(self.mtp, start=1):
                p = blk.p
                n = S - m
                emb = W.get(p + "embed_tokens.weight")
                emb = W["model.embed_tokens.weight"] if emb is None else emb
                e = emb[tokens[:, m:]]
                en = rms_norm(e, W[p + "enorm.weight"], self.eps)
                hn = rms_norm(hin[:, :n], W[p + "hnorm.weight"], self.eps)
                cat = [hn, en] if "mtp_hidden_first" in a.flips else [en, hn]
                u = linear(torch.cat(cat, dim=-1), W[p + "eh_proj.weight"])
                if n > 0:
                    hm = blk(u, freqs_cis[:n], mla)
                else:
                    hm = u
                head = W.get(p + "shared_head.head.weight")
                head = self.head() if head is None else head
                mtp_logits.append(linear(rms_norm(hm, W[p + "shared_head.norm.weight"], self.eps), head))
                hin = hm
        return logits, mtp_logits


def load_model(model_dir: str, flips=()) -> Transformer:
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    return Transformer(ModelArgs.from_config(cfg, flips), load_state(model_dir))


def parse_tokens(s: str) -> torch.Tensor:
    rows = [[int(t) for t in r.split(",") if t.strip()] for r in s.split(";")]
    assert len({len(r) for r in rows}) == 1, "all rows of --tokens must have the same length"
    return torch.tensor(rows, dtype=torch.int64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help='rows separated by ";", ids by ","')
    ap.add_argument("--out", required=True)
    ap.add_argument("--mtp-out")
    ap.add_argument("--mla", choices=["naive", "absorb"], default="naive")
    ap.add_argument("--flip", action="append", default=[], choices=sorted(FLIPS))
    args = ap.parse_args(argv)
    model = load_model(args.model, args.flip)
    tokens = parse_tokens(args.tokens)
    with torch.no_grad():
        logits, mtp = model.forward(tokens, args.mla, want_mtp=args.mtp_out is not None)
    np.save(args.out, logits.numpy().astype(np.float32))
    if args.mtp_out:
        if not mtp:
            sys.exit("--mtp-out given but the config has no MTP module")
        np.save(args.mtp_out, mtp[0].numpy().astype(np.float32))


if __name__ == "__main__":
    main()
