#!/usr/bin/env python3
"""Rewrites the README's inference benchmark table from `holdfast bench` JSON lines and appends them,
stamped with date, commit and CPU, to a log."""
import argparse, datetime, json, os, platform, re

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--load", default="?")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    date = datetime.date.today().isoformat()
    cpu = cpu_model()
    with open(a.log, "a") as log:
        for r in rows:
            log.write(json.dumps(dict(r, date=date, commit=a.commit, cpu=cpu)) + "\n")
    def pct(x, y):
        return f"{100 * x / y:.0f}%" if y else "n/a"
    main_rows = [r for r in rows if not r.get("context_run")]
    ctx_rows = [r for r in rows if r.get("context_run")]
    r0 = main_rows[0]
    # The probes run before every configuration and move with the VM's neighbours: every row is judged
    # against the medians over the whole run.
    def med(key):
        vals = sorted(r[key] for r in main_rows)
        return vals[len(vals) // 2]
    bw_read, bw_triad, sgemm = med("bandwidth_read_gb_s"), med("bandwidth_triad_gb_s"), med("sgemm_peak_gflops")
    lines = [
        f"Measured {date}, commit {a.commit}, {cpu}, 2 threads, OpenBLAS core {r0.get('blas_core', '?')}, load "
        f"average {a.load} at the start, `scripts/bench.sh` (V2-Lite-shaped model of `configs/bench-infer-0.7b.json`, "
        f"random weights, 512-token prompt, 32 decoded tokens, medians of {os.environ.get('RUNS', '5')} runs). Decode GB/s = active weight "
        f"bytes per token x decode tokens/s; the bound is the machine's read bandwidth measured in the same run; "
        f"prefill GFLOP/s counts the layers' projection GEMMs (attention scores and the head are not counted).",
        "",
        "| weights | prefill tok/s | prefill GFLOP/s (% of SGEMM peak) | decode tok/s | decode GB/s (% of measured bandwidth) | bandwidth bound tok/s | active MB/token | peak RSS GiB | targets |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in main_rows:
        bw = pct(r["decode_gb_s"], bw_read)
        pk = pct(r["prefill_gflops"], sgemm)
        quant = r["dtype"] in ("Q8", "Q4")
        # Issue targets: F32/BF16 decode >= 50% of bandwidth, prefill >= 60% of peak; Q8/Q4 decode >= 80%,
        # prefill >= 70%.
        want_d, want_p = (0.8, 0.7) if quant else (0.5, 0.6)
        ok_d = r["decode_gb_s"] >= want_d * bw_read
        ok_p = r["prefill_gflops"] >= want_p * sgemm
        verdict = (f"decode >= {want_d:.0%} BW: " + ("reached" if ok_d else "NOT reached") + f"; prefill >= {want_p:.0%} "
                   "peak: " + ("reached" if ok_p else "NOT reached"))
        bound = bw_read * 1e9 / r["active_bytes_per_token"]
        lines.append(f"| {r['dtype']} | {r['prefill_tok_s']:.1f} | {r['prefill_gflops']:.1f} ({pk}) | {r['decode_tok_s']:.2f} | "
                     f"{r['decode_gb_s']:.2f} ({bw}) | {bound:.1f} | {r['active_bytes_per_token'] / 1e6:.0f} | "
                     f"{r['peak_rss_gib']:.2f} | {verdict} |")
    lines += ["", f"Machine limits, medians of the probes of these runs: memory read {bw_read:.2f} GB/s, "
              f"STREAM triad {bw_triad:.2f} GB/s, SGEMM (OpenBLAS, 512x4096x1024, 2 threads) {sgemm:.1f} GFLOP/s."]
    if ctx_rows:
        runs = max(sum(1 for r in ctx_rows if (r["dtype"], r.get("kv_cache"), r["prompt"]) ==
                       (ctx_rows[0]["dtype"], ctx_rows[0].get("kv_cache"), ctx_rows[0]["prompt"])), 1)
        lines += ["", "Decode speed against context length (32 tokens decoded after a prompt of 16 or 2048 tokens; "
                  f"medians of {runs} alternating runs each; target: < 25% loss at 2048 with the default KV cache; "
                  "the F32-cache rows (`--kv-cache f32`) are for comparison):", "",
                  "| weights | decode attention cache | decode tok/s, 16-token context | decode tok/s, 2048-token context | loss | target < 25% |",
                  "| --- | --- | --- | --- | --- | --- |"]
        key = lambda r: (r["dtype"], r.get("kv_cache", "f32"), r.get("kv_request", "auto"))
        for dtype, kv, request in dict.fromkeys(key(r) for r in ctx_rows):
            by = {}
            for ctx in (16, 2048):
                v = sorted(r["decode_tok_s"] for r in ctx_rows if key(r) == (dtype, kv, request) and r["prompt"] == ctx)
                if v:
                    by[ctx] = v[len(v) // 2]
            if 16 in by and 2048 in by:
                loss = 1 - by[2048] / by[16]
                default = request == "auto"
                verdict = ("reached" if loss < 0.25 else "NOT reached") if default else "(comparison)"
                lines.append(f"| {dtype} | {kv.upper()} | {by[16]:.2f} | {by[2048]:.2f} | {loss:.0%} | {verdict} |")
    table = "\n".join(lines)
    text = open(a.readme).read()
    begin, end = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), begin + "\n" + table + "\n" + end, text, flags=re.S)
    else:
        text = text.replace("BENCH_TABLE_PLACEHOLDER", begin + "\n" + table + "\n" + end)
    open(a.readme, "w").write(text)

if __name__ == "__main__":
    main()
