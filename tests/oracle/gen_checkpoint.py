#!/usr/bin/python3
"""Write a random DeepSeek-V2/V3 checkpoint in HF layout with the MODEL-SPEC section 9 test distributions.

  /usr/bin/python3 tests/oracle/gen_checkpoint.py --config CFG.json --out DIR --seed N \
      --dtype f32|bf16|f16|fp8 [--shards K] [--stray-inv-freq]

Distributions: linear N(0, 1/fan_in) (lm_head included); router N(0, 4/H); embeddings N(0, 1) (N(0, 1/H) when tied);
norm weights 1 + 0.2 N(0, 1); e_score_correction_bias U[0, 0.25); attention biases 0.1 N(0, 1);
MTP embed_tokens / shared_head.head are copies of the main embedding / head.

Storage: f32 everything F32; bf16/f16 everything BF16/F16 except the correction bias (F32); fp8 = the
decoder-layer projections (attention, dense MLP, routed and shared experts, also in MTP layers) as F8_E4M3
with 128x128 block `weight_scale_inv` (spec 2.5), everything else BF16, the bias F32, and
`quantization_config` added to config.json. --shards K splits the tensors over K files in a shuffled
(not layer-ordered) assignment with model.safetensors.index.json, so an FP8 weight and its scale may live in
different shards. This is an independent writer: the engine's loader is tested on files it did not write.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deepseek_ref import E4M3, ModelArgs  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------
# tensor inventory (spec 2.3)


def inventory(args: ModelArgs) -> List[Tuple[str, Tuple[int, ...], str]]:
    """(name, shape, kind) in a fixed order. kind: linear | proj (FP8-able linear) | router | embed | norm | bias |
    attn_bias | copy:<name>."""
    H, V = args.dim, args.vocab_size
    nh, dn, dr, dv, r = args.n_heads, args.qk_nope_head_dim, args.qk_rope_head_dim, args.v_head_dim, args.kv_lora_rank
    out = [("model.embed_tokens.weight", (V, H), "embed")]

    def layer(i):
        p = f"model.layers.{i}."
        t = [(p + "input_layernorm.weight", (H,), "norm"), (p + "post_attention_layernorm.weight", (H,), "norm")]
        a = p + "self_attn."
        if args.q_lora_rank is None:
            t.append((a + "q_proj.weight", (nh * (dn + dr), H), "proj"))
        else:
            rq = args.q_lora_rank
            t += [(a + "q_a_proj.weight", (rq, H), "proj"), (a + "q_a_layernorm.weight", (rq,), "norm"),
                  (a + "q_b_proj.weight", (nh * (dn + dr), rq), "proj")]
            if args.attention_bias:
                t.append((a + "q_a_proj.bias", (rq,), "attn_bias"))
        t += [(a + "kv_a_proj_with_mqa.weight", (r + dr, H), "proj"), (a + "kv_a_layernorm.weight", (r,), "norm"),
              (a + "kv_b_proj.weight", (nh * (dn + dv), r), "proj"), (a + "o_proj.weight", (H, nh * dv), "proj")]
        if args.attention_bias:
            t += [(a + "kv_a_proj_with_mqa.bias", (r + dr,), "attn_bias"), (a + "o_proj.bias", (H,), "attn_bias")]
        m = p + "mlp."

        def swiglu(q, width):
            return [(q + "gate_proj.weight", (width, H), "proj"), (q + "up_proj.weight", (width, H), "proj"),
                    (q + "down_proj.weight", (H, width), "proj")]
        if args.is_moe_layer(i):
            E = args.n_routed_experts
            t.append((m + "gate.weight", (E, H), "router"))
            if args.topk_method == "noaux_tc":
                t.append((m + "gate.e_score_correction_bias", (E,), "bias"))
            for e in range(E):
                t += swiglu(f"{m}experts.{e}.", args.moe_inter_dim)
            if args.n_shared_experts:
                t += swiglu(m + "shared_experts.", args.moe_inter_dim * args.n_shared_experts)
        else:
            t += swiglu(m, args.inter_dim)
        return t

    for i in range(args.n_layers):
        out += layer(i)
    out.append(("model.norm.weight", (H,), "norm"))
    if not args.tie_embeddings:
        out.append(("lm_head.weight", (V, H), "linear"))  # a linear layer: N(0, 1/H)
    head = "model.embed_tokens.weight" if args.tie_embeddings else "lm_head.weight"
    for m in range(args.n_mtp):
        j = args.n_layers + m
        p = f"model.layers.{j}."
        out += [(p + "embed_tokens.weight", (V, H), "copy:model.embed_tokens.weight"),
                (p + "enorm.weight", (H,), "norm"), (p + "hnorm.weight", (H,), "norm"),
                (p + "eh_proj.weight", (H, 2 * H), "linear"),
                (p + "shared_head.norm.weight", (H,), "norm"), (p + "shared_head.head.weight", (V, H), "copy:" + head)]
        out += layer(j)
    return out


def random_state(args: ModelArgs, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    H = args.dim
    state: Dict[str, np.ndarray] = {}
    for name, shape, kind in inventory(args):
        if kind in ("linear", "proj"):
            w = rng.standard_normal(shape) / np.sqrt(shape[1])
        elif kind == "router":
            w = rng.standard_normal(shape) * np.sqrt(4.0 / H)
        elif kind == "embed":
            w = rng.standard_normal(shape) * (np.sqrt(1.0 / H) if args.tie_embeddings else 1.0)
        elif kind == "norm":
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif kind == "bias":
            w = rng.uniform(0.0, 0.25, shape)
        elif kind == "attn_bias":
            w = 0.1 * rng.standard_normal(shape)
        elif kind.startswith("copy:"):
            w = state[kind[5:]].copy()
        else:
            raise AssertionError(kind)
        state[name] = w.astype(np.float32)
    return state


# ----------------------------------------------------------------------------------------------------------------
# number formats (spec 2.4, 2.5)

def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits (uint16), round to nearest even, NaN -> quiet NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(x)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = (0x7FC0 | ((u[nan] >> 16) & 0x8000)).astype(np.uint16)
    return r


_POS_VALS = E4M3[:127]  # codes 0x00..0x7E, ascending, 0 .. 448


def to_e4m3(x: np.ndarray) -> np.ndarray:
    """float -> F8_E4M3 bytes, round to nearest even, saturate at 448."""
    x = np.asarray(x, dtype=np.float64)
    sign = (np.signbit(x)).astype(np.uint8) << 7
    ax = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(_POS_VALS, ax, side="left"), 0, 126)
    lo = np.clip(hi - 1, 0, 126)
    dlo, dhi = ax - _POS_VALS[lo], _POS_VALS[hi] - ax
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    return code | sign


def quantize_fp8(w: np.ndarray):
    """[M,N] float32 -> (F8 bytes [M,N], scale_inv float32 [ceil(M/128), ceil(N/128)])."""
    M, N = w.shape
    bm, bn = -(-M // 128), -(-N // 128)
    q = np.empty((M, N), np.uint8)
    s = np.empty((bm, bn), np.float32)
    for i in range(bm):
        for j in range(bn):
            blk = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128].astype(np.float64)
            m = np.abs(blk).max()
            sc = np.float32(m / 448.0) if m > 0 else np.float32(1.0)
            s[i, j] = sc
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = to_e4m3(blk / np.float64(sc))
    return q, s


# ----------------------------------------------------------------------------------------------------------------
# safetensors writing (spec 2.2)

_ALIGN = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1}


def write_safetensors(path: str, tensors: Dict[str, Tuple[str, np.ndarray]]) -> int:
    """tensors: name -> (dtype string, array holding the stored bytes). Returns bytes of tensor data."""
    order = sorted(tensors, key=lambda n: (-_ALIGN[tensors[n][0]], n))
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for n in order:
        dt, a = tensors[n]
        nb = a.nbytes
        header[n] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + nb]}
        off += nb
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - (8 + len(hj)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for n in order:
            f.write(np.ascontiguousarray(tensors[n][1]).tobytes())
    return off


def encode_state(args: ModelArgs, state: Dict[str, np.ndarray], dtype: str) -> Dict[str, Tuple[str, np.ndarray]]:
    kinds = {n: k for n, _, k in inventory(args)}
    out = {}
    for name, w in state.items():
        kind = kinds.get(name, "stray")
        if name.endswith("e_score_correction_bias") or dtype == "f32" or kind == "stray":
            out[name] = ("F32", w.astype(np.float32))
        elif dtype == "f16":
            out[name] = ("F16", w.astype(np.float16))
        elif dtype == "fp8" and kind == "proj":
            q, s = quantize_fp8(w)
            out[name] = ("F8_E4M3", q)
            out[name + "_scale_inv"] = ("F32", s)
        else:  # bf16, and the non-projection tensors of fp8
            out[name] = ("BF16", to_bf16(w))
    return out


def write_checkpoint(config_path: str, out_dir: str, seed: int, dtype: str, shards: int = 1,
                     stray_inv_freq: bool = False) -> None:
    with open(config_path) as f:
        cfg = json.load(f)
    args = ModelArgs.from_config(cfg)
    state = random_state(args, seed)
    if stray_inv_freq:  # older checkpoints carry these; readers must ignore them (spec 2.3)
        theta = 10000.0 ** (-np.arange(0, args.qk_rope_head_dim, 2) / args.qk_rope_head_dim)
        state["model.layers.0.self_attn.rotary_emb.inv_freq"] = theta.astype(np.float32)
    tensors = encode_state(args, state, dtype)
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(out_dir, f))
    cfg = dict(cfg)
    cfg["torch_dtype"] = {"f32": "float32", "f16": "float16"}.get(dtype, "bfloat16")
    if dtype == "fp8":
        cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                      "weight_block_size": [128, 128]}
    else:
        cfg.pop("quantization_config", None)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if shards <= 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
        return
    rng = np.random.default_rng(seed + 7919)
    names = sorted(tensors)
    assign = rng.permutation(len(names)) % shards  # shuffled, every shard non-empty
    weight_map, total = {}, 0
    for k in range(shards):
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n, a in zip(names, assign) if a == k}
        total += write_safetensors(os.path.join(out_dir, fname), part)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "bf16", "f16", "fp8"], default="f32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--stray-inv-freq", action="store_true")
    a = ap.parse_args(argv)
    write_checkpoint(a.config, a.out, a.seed, a.dtype, a.shards, a.stray_inv_freq)


if __name__ == "__main__":
    main()
