#!/usr/bin/env python3
"""Rewrites the README's inference benchmark table from `holdfast bench` JSON lines and appends them,
stamped with date, commit and CPU, to a log."""
import argparse, datetime, json, platform, re

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
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    date = datetime.date.today().isoformat()
    cpu = cpu_model()
    with open(a.log, "a") as log:
        for r in rows:
            log.write(json.dumps(dict(r, date=date, commit=a.commit, cpu=cpu)) + "\n")
    def pct(x, y):
        return f"{100 * x / y:.0f}%" if y else "n/a"
    lines = [
        f"Measured {date}, commit {a.commit}, {cpu}, 2 threads, `scripts/bench.sh` "
        f"(V2-Lite-shaped model of `configs/bench-infer-0.7b.json`, random weights, 512-token prompt, 32 decoded "
        f"tokens, medians of 5 runs). Bandwidth = active weight bytes per token x decode tokens/s; the bound is the "
        f"machine's measured read bandwidth; prefill GFLOP/s counts the projection GEMMs only.",
        "",
        "| dtype | prefill tok/s | prefill GFLOP/s (% of SGEMM peak) | decode tok/s | decode GB/s (% of measured bandwidth) | active MB/token | peak RSS GiB | targets: decode >= 50% BW, prefill >= 60% peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        bw = pct(r["decode_gb_s"], r["bandwidth_read_gb_s"])
        pk = pct(r["prefill_gflops"], r["sgemm_peak_gflops"])
        ok_d = r["decode_gb_s"] >= 0.5 * r["bandwidth_read_gb_s"]
        ok_p = r["prefill_gflops"] >= 0.6 * r["sgemm_peak_gflops"]
        verdict = ("decode reached" if ok_d else "decode NOT reached") + ", " + ("prefill reached" if ok_p else "prefill NOT reached")
        lines.append(f"| {r['dtype']} | {r['prefill_tok_s']:.1f} | {r['prefill_gflops']:.1f} ({pk}) | {r['decode_tok_s']:.2f} | "
                     f"{r['decode_gb_s']:.2f} ({bw}) | {r['active_bytes_per_token'] / 1e6:.0f} | {r['peak_rss_gib']:.2f} | {verdict} |")
    r0 = rows[0]
    lines += ["", f"Machine limits measured in the same runs: memory read {r0['bandwidth_read_gb_s']:.2f} GB/s, "
              f"STREAM triad {r0['bandwidth_triad_gb_s']:.2f} GB/s, SGEMM (OpenBLAS, 512x4096x1024) {r0['sgemm_peak_gflops']:.1f} GFLOP/s."]
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
