#!/usr/bin/env python3
"""Rewrites the README's serving benchmark table (between <!-- serve-bench-table:begin/end -->) from
`holdfast bench serve` JSON lines and appends them, stamped with date, commit, CPU and load, to a log."""
import argparse, datetime, json, re

from update_bench_table import cpu_model

BEGIN, END = "<!-- serve-bench-table:begin -->", "<!-- serve-bench-table:end -->"


def render(rows, date, commit, cpu, load):
    cases = {}
    for r in rows:
        cases.setdefault(r["case"], []).append(r)
    streams = sorted(cases.get("streams", []), key=lambda r: r["streams"])
    if not streams:
        raise SystemExit("update_serve_table: no 'streams' case in the results")
    s0 = streams[0]
    lines = [
        f"Measured {date}, commit {commit}, {cpu}, {s0['threads']} threads, `scripts/bench_serve.sh` "
        f"(`holdfast bench serve`: the scheduler in-process, no HTTP; V2-Lite-shaped model of "
        f"`configs/bench-infer-0.7b.json`, random {s0['dtype']} weights; each stream a {s0['prompt']}-token prompt "
        f"and {s0['decode']} greedy tokens, all submitted at once; medians of the runs; load average {load} at "
        f"the start, and the machine is a shared VM: read the figures as lower bounds). "
        f"Aggregate = all generated tokens / wall time from submit to the last token (prefill included); "
        f"decode = tokens generated after every stream had its first token / the time from then to the last token "
        f"(the steady phase where each step is one batched forward over all streams).",
        "",
        "| concurrent streams | aggregate tok/s | decode tok/s | per-stream decode tok/s | decode speed-up vs 1 stream |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in streams:
        lines.append(f"| {r['streams']} | {r['aggregate_tok_s']:.1f} | {r['decode_tok_s']:.1f} | "
                     f"{r['per_stream_tok_s']:.2f} | {r['decode_tok_s'] / s0['decode_tok_s']:.1f}x |")
    dec = [r["decode_tok_s"] for r in streams]
    grows = all(b > a for a, b in zip(dec, dec[1:]))
    lines += ["", f"Aggregate decode throughput {'grows' if grows else 'does NOT grow'} with concurrency "
              f"({' < '.join(f'{d:.1f}' for d in dec) if grows else ', '.join(f'{d:.1f}' for d in dec)} tok/s): "
              f"one batched forward per step reads every weight once for all streams."]
    single = cases.get("single_stream", [None])[0]
    if single:
        text = f"Single-stream decode: {single['decode_tok_s']:.2f} tok/s"
        if single.get("bandwidth_bound_tok_s"):
            text += (f", {100 * single['decode_tok_s'] / single['bandwidth_bound_tok_s']:.0f}% of the memory-bandwidth "
                     f"bound of {single['bandwidth_bound_tok_s']:.1f} tok/s ({single['weight_bytes_per_token'] / 1e6:.0f} MB "
                     f"of active weights per token at the {single['bandwidth_read_gb_s']:.2f} GB/s read bandwidth "
                     f"measured in the same run)")
        lines.append(f"{text}.")
    ttft = cases.get("ttft", [None])[0]
    if ttft:
        lines.append(f"Time to first token, {ttft['prompt']}-token prompt: {ttft['ttft_s']:.2f} s "
                     f"(prefill chunks of {ttft['prefill_chunk']} tokens).")
    kv = cases.get("kv_cache", [None])[0]
    if kv:
        rows = "F32 + the BF16 copy the decode attention reads" if kv.get("bf16_copy") else "F32"
        lines.append(f"KV cache: {kv['bytes_per_token']} bytes per token (absorbed-MLA latent rows, {rows}), "
                     f"{kv['per_head_kv_bytes_per_token'] / kv['bytes_per_token']:.1f}x less than per-head keys "
                     f"and values ({kv['per_head_kv_bytes_per_token']} bytes).")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--load", default="unknown", help="load average when the run started")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    date, cpu = datetime.date.today().isoformat(), cpu_model()
    table = render(rows, date, a.commit, cpu, a.load)
    with open(a.log, "a") as log:
        for r in rows:
            log.write(json.dumps(dict(r, date=date, commit=a.commit, cpu=cpu, load=a.load)) + "\n")
    text = open(a.readme).read()
    if BEGIN not in text:
        raise SystemExit(f"update_serve_table: {a.readme} has no {BEGIN} marker")
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: BEGIN + "\n" + table + "\n" + END, text,
                  flags=re.S)
    open(a.readme, "w").write(text)


if __name__ == "__main__":
    main()
