// Checks a file written by `holdfast export gguf` with the official @huggingface/gguf reader, against expectations
// derived here, independently, from the checkpoint's config.json, tokenizer files and safetensors (read by a small
// safetensors reader in this file) and llama.cpp's deepseek2 layout:
//   every metadata key, its GGUF type and value; every tensor's name, shape (ne order), ggml type and offset
//   (aligned, in bounds, non-overlapping); and tensor values decoded from the file (F32 / F16 / Q8_0) against the
//   source weights: exact for F32, F16 rounding, Q8_0 blocks (d = amax/127, error <= d/2), or within --tol of a
//   reference checkpoint (--ref) for quantized sources.
// Usage: node gguf_check.mjs --gguf FILE --model DIR --type f32|f16|q8_0 [--ref DIR --tol X] [--sample N]
import { gguf } from '@huggingface/gguf';
import fs from 'node:fs';
import path from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const fail = (msg) => { console.error(`gguf_check: FAIL: ${msg}`); process.exit(1); };
const check = (cond, msg) => { if (!cond) fail(msg); };

const file = args.gguf, modelDir = args.model, outType = args.type;
const refDir = args.ref ?? modelDir;
const tol = args.tol === undefined ? null : Number(args.tol);
const sample = args.sample === undefined ? null : Number(args.sample);
const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));

// ---------------------------------------------------------------- expected metadata
const T = { U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 };
const L = cfg.num_hidden_layers, H = cfg.hidden_size, V = cfg.vocab_size, nh = cfg.num_attention_heads;
const r = cfg.kv_lora_rank, rq = cfg.q_lora_rank ?? null, dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim;
const dv = cfg.v_head_dim, E = cfg.n_routed_experts ?? 0, ns = cfg.n_shared_experts ?? 0;
const Im = cfg.moe_intermediate_size, I = cfg.intermediate_size;
const tied = cfg.tie_word_embeddings ?? false;
const yarn = cfg.rope_scaling ?? null;
const eos = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id[0] : cfg.eos_token_id;
const isMoe = (i) => E > 0 && i >= cfg.first_k_dense_replace && i % (cfg.moe_layer_freq ?? 1) === 0;
const groups = E > 0 && cfg.topk_method !== 'greedy' && cfg.n_group > 1 && cfg.topk_group < cfg.n_group;

const want = new Map();
const put = (key, type, value, subType) => want.set(key, { type, value, subType });
put('general.architecture', T.STRING, 'deepseek2');
put('general.name', T.STRING, path.basename(path.resolve(modelDir)));
put('general.file_type', T.U32, { f32: 0, f16: 1, q8_0: 7 }[outType]);
put('general.quantization_version', T.U32, 2);
put('general.alignment', T.U32, 32);
const a = 'deepseek2.';
put(a + 'block_count', T.U32, L);
put(a + 'context_length', T.U32, cfg.max_position_embeddings);
put(a + 'embedding_length', T.U32, H);
put(a + 'feed_forward_length', T.U32, I);
put(a + 'attention.head_count', T.U32, nh);
put(a + 'attention.head_count_kv', T.U32, 1);
put(a + 'rope.freq_base', T.F32, cfg.rope_theta);
put(a + 'attention.layer_norm_rms_epsilon', T.F32, cfg.rms_norm_eps);
if (E > 0) {
  put(a + 'expert_count', T.U32, E);
  put(a + 'expert_used_count', T.U32, cfg.num_experts_per_tok);
}
if (groups) {
  put(a + 'expert_group_count', T.U32, cfg.n_group);
  put(a + 'expert_group_used_count', T.U32, cfg.topk_group);
}
put(a + 'expert_gating_func', T.U32, cfg.scoring_func === 'sigmoid' ? 2 : 1);
put(a + 'leading_dense_block_count', T.U32, E > 0 ? Math.min(cfg.first_k_dense_replace, L) : L);
put(a + 'vocab_size', T.U32, V);
put(a + 'attention.q_lora_rank', T.U32, rq ?? 0);
put(a + 'attention.kv_lora_rank', T.U32, r);
put(a + 'attention.key_length', T.U32, r + dr);
put(a + 'attention.value_length', T.U32, r);
put(a + 'attention.key_length_mla', T.U32, dn + dr);
put(a + 'attention.value_length_mla', T.U32, dv);
put(a + 'expert_feed_forward_length', T.U32, Im);
put(a + 'expert_shared_count', T.U32, ns);
put(a + 'expert_weights_scale', T.F32, cfg.routed_scaling_factor);
put(a + 'expert_weights_norm', T.BOOL, cfg.norm_topk_prob);
put(a + 'rope.dimension_count', T.U32, dr);
if (yarn && yarn.factor > 1) {
  put(a + 'rope.scaling.type', T.STRING, 'yarn');
  put(a + 'rope.scaling.factor', T.F32, yarn.factor);
  put(a + 'rope.scaling.original_context_length', T.U32, yarn.original_max_position_embeddings);
  put(a + 'rope.scaling.yarn_beta_fast', T.F32, yarn.beta_fast ?? 32);
  put(a + 'rope.scaling.yarn_beta_slow', T.F32, yarn.beta_slow ?? 1);
  put(a + 'rope.scaling.yarn_log_multiplier', T.F32, 0.1 * yarn.mscale_all_dim);
}

// Tokenizer: one entry per id below vocab_size, byte-level spellings as in tokenizer.json.
const tok = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8'));
const tokens = Array.from({ length: V }, (_, i) => `[PAD${i}]`);
const types = new Array(V).fill(5);
for (const [t, id] of Object.entries(tok.model.vocab)) { tokens[id] = t; types[id] = 1; }
for (const t of tok.added_tokens ?? []) { tokens[t.id] = t.content; types[t.id] = t.special ? 3 : 4; }
const merges = (tok.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
put('tokenizer.ggml.model', T.STRING, 'gpt2');
put('tokenizer.ggml.pre', T.STRING, 'deepseek-v3');
put('tokenizer.ggml.tokens', T.ARRAY, tokens, T.STRING);
put('tokenizer.ggml.token_type', T.ARRAY, types, T.I32);
put('tokenizer.ggml.merges', T.ARRAY, merges, T.STRING);
put('tokenizer.ggml.bos_token_id', T.U32, cfg.bos_token_id);
put('tokenizer.ggml.eos_token_id', T.U32, eos);
if (cfg.pad_token_id !== undefined && cfg.pad_token_id !== null) put('tokenizer.ggml.padding_token_id', T.U32, cfg.pad_token_id);
const tcPath = path.join(modelDir, 'tokenizer_config.json');
if (fs.existsSync(tcPath)) {
  const tc = JSON.parse(fs.readFileSync(tcPath, 'utf8'));
  if (typeof tc.add_bos_token === 'boolean') put('tokenizer.ggml.add_bos_token', T.BOOL, tc.add_bos_token);
  if (typeof tc.add_eos_token === 'boolean') put('tokenizer.ggml.add_eos_token', T.BOOL, tc.add_eos_token);
  if (typeof tc.chat_template === 'string') put('tokenizer.chat_template', T.STRING, tc.chat_template);
}

// ---------------------------------------------------------------- expected tensors
// src(row) -> the source values of one GGUF row; rows run over ne[1] then ne[2].
const want_t = [];
const tensor = (name, ne, src, keepF32 = false) => {
  let type = 0;
  if (ne.length >= 2 && !keepF32) type = outType === 'f32' ? 0 : outType === 'f16' ? 1 : ne[0] % 32 === 0 ? 8 : 1;
  want_t.push({ name, ne, type, src });
};
const plain = (n) => ({ kind: 'plain', n });
tensor('token_embd.weight', [H, V], plain('model.embed_tokens.weight'));
tensor('output_norm.weight', [H], plain('model.norm.weight'));
if (!tied) tensor('output.weight', [H, V], plain('lm_head.weight'));
for (let i = 0; i < L; ++i) {
  const b = `blk.${i}.`, s = `model.layers.${i}.`;
  tensor(b + 'attn_norm.weight', [H], plain(s + 'input_layernorm.weight'));
  if (rq !== null) {
    tensor(b + 'attn_q_a_norm.weight', [rq], plain(s + 'self_attn.q_a_layernorm.weight'));
    tensor(b + 'attn_q_a.weight', [H, rq], plain(s + 'self_attn.q_a_proj.weight'));
    tensor(b + 'attn_q_b.weight', [rq, nh * (dn + dr)], plain(s + 'self_attn.q_b_proj.weight'));
  } else {
    tensor(b + 'attn_q.weight', [H, nh * (dn + dr)], plain(s + 'self_attn.q_proj.weight'));
  }
  tensor(b + 'attn_kv_a_norm.weight', [r], plain(s + 'self_attn.kv_a_layernorm.weight'));
  tensor(b + 'attn_kv_a_mqa.weight', [H, r + dr], plain(s + 'self_attn.kv_a_proj_with_mqa.weight'));
  tensor(b + 'attn_k_b.weight', [dn, r, nh], { kind: 'k_b', n: s + 'self_attn.kv_b_proj.weight' });
  tensor(b + 'attn_v_b.weight', [r, dv, nh], { kind: 'v_b', n: s + 'self_attn.kv_b_proj.weight' });
  tensor(b + 'attn_output.weight', [nh * dv, H], plain(s + 'self_attn.o_proj.weight'));
  tensor(b + 'ffn_norm.weight', [H], plain(s + 'post_attention_layernorm.weight'));
  if (!isMoe(i)) {
    tensor(b + 'ffn_gate.weight', [H, I], plain(s + 'mlp.gate_proj.weight'));
    tensor(b + 'ffn_up.weight', [H, I], plain(s + 'mlp.up_proj.weight'));
    tensor(b + 'ffn_down.weight', [I, H], plain(s + 'mlp.down_proj.weight'));
    continue;
  }
  tensor(b + 'ffn_gate_inp.weight', [H, E], plain(s + 'mlp.gate.weight'), true);
  if (cfg.topk_method === 'noaux_tc') tensor(b + 'exp_probs_b.bias', [E], plain(s + 'mlp.gate.e_score_correction_bias'));
  const ex = (w) => ({ kind: 'exps', names: Array.from({ length: E }, (_, e) => `${s}mlp.experts.${e}.${w}.weight`) });
  tensor(b + 'ffn_gate_exps.weight', [H, Im, E], ex('gate_proj'));
  tensor(b + 'ffn_up_exps.weight', [H, Im, E], ex('up_proj'));
  tensor(b + 'ffn_down_exps.weight', [Im, H, E], ex('down_proj'));
  tensor(b + 'ffn_gate_shexp.weight', [H, Im * ns], plain(s + 'mlp.shared_experts.gate_proj.weight'));
  tensor(b + 'ffn_up_shexp.weight', [H, Im * ns], plain(s + 'mlp.shared_experts.up_proj.weight'));
  tensor(b + 'ffn_down_shexp.weight', [Im * ns, H], plain(s + 'mlp.shared_experts.down_proj.weight'));
}

// ---------------------------------------------------------------- safetensors reader (reference values)
function openSafetensors(dir) {
  const byName = new Map();
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const buf = fs.readFileSync(path.join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      byName.set(name, { ...t, buf, base: 8 + n });
    }
  }
  return byName;
}
const f16ToF32 = (h) => {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
};
const e4m3ToF32 = (b) => {  // float8_e4m3fn: bias 7, no infinities, S.1111.111 = NaN
  const s = b & 0x80 ? -1 : 1, e = (b >> 3) & 0xf, m = b & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? s * m * 2 ** -9 : s * (1 + m / 8) * 2 ** (e - 7);
};
const st = openSafetensors(refDir);
const decoded = new Map();
function values(name) {
  if (decoded.has(name)) return decoded.get(name);
  const t = st.get(name);
  if (!t) fail(`${refDir}: reference tensor '${name}' is missing (quantized sources need --ref)`);
  const [b0, b1] = t.data_offsets, n = (b1 - b0) / { F32: 4, BF16: 2, F16: 2, F8_E4M3: 1 }[t.dtype];
  if (!Number.isInteger(n)) fail(`${name}: dtype ${t.dtype} is not a float type this checker reads`);
  const at = t.base + b0;
  let out;
  if (t.dtype === 'F32') {
    out = new Float32Array(t.buf.buffer.slice(t.buf.byteOffset + at, t.buf.byteOffset + at + 4 * n));
  } else if (t.dtype === 'BF16') {  // bf16 bits are the top half of the f32 bits
    const u = new Uint32Array(n);
    for (let i = 0; i < n; ++i) u[i] = t.buf.readUInt16LE(at + 2 * i) << 16;
    out = new Float32Array(u.buffer);
  } else {
    out = new Float32Array(n);
    for (let i = 0; i < n; ++i)
      out[i] = t.dtype === 'F16' ? f16ToF32(t.buf.readUInt16LE(at + 2 * i)) : e4m3ToF32(t.buf.readUInt8(at + i));
  }
  if (t.dtype === 'F8_E4M3') {  // W = fp8(Wq) · scale_inv[i / 128][j / 128] (MODEL-SPEC §2.5)
    const sc = values(name + '_scale_inv'), cols = t.shape[1], scols = sc.shape[1];
    for (let i = 0; i < n; ++i) out[i] *= sc.data[Math.floor(Math.floor(i / cols) / 128) * scols + Math.floor((i % cols) / 128)];
  }
  const v = { data: out, shape: t.shape };
  decoded.set(name, v);
  return v;
}
// The source values of GGUF row `row` (ne[0] values) of tensor `w`.
function sourceRow(w, row) {
  const n0 = w.ne[0], src = w.src;
  if (src.kind === 'plain') {
    const v = values(src.n);
    return v.data.subarray(row * n0, (row + 1) * n0);
  }
  if (src.kind === 'exps') {
    const R = w.ne[1], v = values(src.names[Math.floor(row / R)]);
    return v.data.subarray((row % R) * n0, (row % R + 1) * n0);
  }
  const kv = values(src.n).data;  // kv_b_proj [nh·(dn+dv), r], head-major
  if (src.kind === 'k_b') {        // row (h, j): W_UK[h] column j, i.e. kv_b[h·(dn+dv) + d][j] for d < dn
    const h = Math.floor(row / r), j = row % r, out = new Float32Array(dn);
    for (let d = 0; d < dn; ++d) out[d] = kv[(h * (dn + dv) + d) * r + j];
    return out;
  }
  const h = Math.floor(row / dv), d = row % dv;  // v_b row (h, d): kv_b row h·(dn+dv) + dn + d
  const base = (h * (dn + dv) + dn + d) * r;
  return kv.subarray(base, base + r);
}

// ---------------------------------------------------------------- read the file with @huggingface/gguf
const parsed = await gguf(path.resolve(file), { allowLocalFile: true, typedMetadata: true });
const { typedMetadata, tensorInfos, tensorDataOffset } = parsed;
check(parsed.metadata.version === 3, `GGUF version ${parsed.metadata.version}, expected 3`);
check(parsed.littleEndian, 'file is not little-endian');
check(typedMetadata['general.architecture'].value === 'deepseek2', 'architecture is not deepseek2');

const got = Object.keys(typedMetadata).filter((k) => !['version', 'tensor_count', 'kv_count'].includes(k));
for (const k of got) check(want.has(k), `unexpected metadata key '${k}'`);
for (const [k, w] of want) {
  const g = typedMetadata[k];
  check(g !== undefined, `metadata key '${k}' is missing`);
  check(g.type === w.type, `'${k}' has GGUF type ${g.type}, expected ${w.type}`);
  if (w.type === T.ARRAY) {
    check(g.subType === w.subType, `'${k}' has element type ${g.subType}, expected ${w.subType}`);
    check(g.value.length === w.value.length, `'${k}' has ${g.value.length} entries, expected ${w.value.length}`);
    for (let i = 0; i < w.value.length; ++i)
      if (g.value[i] !== w.value[i]) fail(`'${k}'[${i}] is ${JSON.stringify(g.value[i])}, expected ${JSON.stringify(w.value[i])}`);
  } else {
    const expect = w.type === T.F32 ? Math.fround(w.value) : w.value;
    check(g.value === expect, `'${k}' is ${JSON.stringify(g.value)}, expected ${JSON.stringify(expect)}`);
  }
}
check(Number(parsed.metadata.kv_count) === want.size, `kv_count ${parsed.metadata.kv_count}, expected ${want.size}`);

const fileBytes = fs.statSync(file).size;
const blob = fs.readFileSync(file);
check(tensorDataOffset % 32n === 0n, `tensor data starts at ${tensorDataOffset}, not a multiple of 32`);
check(tensorInfos.length === want_t.length, `${tensorInfos.length} tensors, expected ${want_t.length}`);
const byName = new Map(tensorInfos.map((t) => [t.name, t]));
check(byName.size === tensorInfos.length, 'duplicate tensor names');
const nbytes = (w) => {
  const rows = w.ne.slice(1).reduce((x, y) => x * y, 1);
  return rows * (w.type === 0 ? 4 * w.ne[0] : w.type === 1 ? 2 * w.ne[0] : (w.ne[0] / 32) * 34);
};
const spans = [];
for (const w of want_t) {
  const t = byName.get(w.name);
  check(t !== undefined, `tensor '${w.name}' is missing`);
  check(t.n_dims === w.ne.length && t.shape.length === w.ne.length, `'${w.name}' has ${t.n_dims} dims, expected ${w.ne.length}`);
  check(t.shape.every((d, i) => d === BigInt(w.ne[i])), `'${w.name}' is [${t.shape}], expected [${w.ne}]`);
  check(t.dtype === w.type, `'${w.name}' has ggml type ${t.dtype}, expected ${w.type}`);
  check(t.offset % 32n === 0n, `'${w.name}' offset ${t.offset} is not aligned to 32`);
  const begin = Number(tensorDataOffset + t.offset);
  check(begin + nbytes(w) <= fileBytes, `'${w.name}' runs past the end of the file`);
  spans.push([begin, begin + nbytes(w), w.name]);
}
spans.sort((x, y) => x[0] - y[0]);
for (let i = 1; i < spans.length; ++i) check(spans[i][0] >= spans[i - 1][1], `'${spans[i][2]}' overlaps '${spans[i - 1][2]}'`);
check(!tensorInfos.some((t) => t.name.startsWith(`blk.${L}.`)), 'an MTP layer was exported');

// ---------------------------------------------------------------- values
function decodeRow(w, begin, row) {
  const n0 = w.ne[0], out = new Float32Array(n0), scales = [];
  if (w.type === 0) for (let i = 0; i < n0; ++i) out[i] = blob.readFloatLE(begin + row * 4 * n0 + 4 * i);
  else if (w.type === 1) for (let i = 0; i < n0; ++i) out[i] = f16ToF32(blob.readUInt16LE(begin + row * 2 * n0 + 2 * i));
  else {
    const rb = (n0 / 32) * 34;
    for (let b = 0; b < n0 / 32; ++b) {
      const at = begin + row * rb + b * 34, d = f16ToF32(blob.readUInt16LE(at));
      scales.push(d);
      for (let j = 0; j < 32; ++j) out[b * 32 + j] = d * blob.readInt8(at + 2 + j);
    }
  }
  return { out, scales };
}
let compared = 0, worst = 0;
let seed = 12345;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
for (const w of want_t) {
  const rows = w.ne.slice(1).reduce((x, y) => x * y, 1);
  let picks = [...Array(rows).keys()];
  if (sample !== null && rows > sample + 2) picks = [0, rows - 1, ...Array.from({ length: sample }, () => rand(rows))];
  const begin = Number(tensorDataOffset + byName.get(w.name).offset);
  let tensorMax = 0;
  if (tol !== null) for (const row of picks) for (const x of sourceRow(w, row)) tensorMax = Math.max(tensorMax, Math.abs(x));
  for (const row of picks) {
    const src = sourceRow(w, row), { out, scales } = decodeRow(w, begin, row);
    check(src.length === out.length, `'${w.name}': source row has ${src.length} values, file row ${out.length}`);
    for (let i = 0; i < out.length; ++i) {
      const s = src[i], g = out[i];
      let bound;
      if (tol !== null) bound = tol * tensorMax + Math.abs(s) * 2 ** -10 + 2 ** -24;
      else if (w.type === 0) bound = 0;
      else if (w.type === 1) bound = Math.abs(s) * 2 ** -11 + 2 ** -25;
      else {
        const b = Math.floor(i / 32);
        let amax = 0;
        for (let j = b * 32; j < b * 32 + 32; ++j) amax = Math.max(amax, Math.abs(src[j]));
        const d = scales[b];
        check(Math.abs(d - amax / 127) <= (amax / 127) * 2 ** -11 + 2 ** -24,
              `'${w.name}' row ${row} block ${b}: scale ${d}, expected amax/127 = ${amax / 127}`);
        bound = d / 2 + amax * 2 ** -10 + 1e-12;  // q uses the unrounded d, stored d is F16-rounded
      }
      const err = Math.abs(g - s);
      if (!(err <= bound)) fail(`'${w.name}' row ${row} [${i}] = ${g}, source ${s} (error ${err} > ${bound})`);
      worst = Math.max(worst, err);
      ++compared;
    }
  }
  decoded.clear();
}
console.log(`gguf_check: OK: ${want.size} metadata keys, ${want_t.length} tensors, ${compared} values ` +
            `(max abs error ${worst.toExponential(2)}) in ${path.basename(file)}`);
