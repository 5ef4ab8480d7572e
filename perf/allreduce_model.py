#!/usr/bin/env python3
"""On paper: what a data-parallel step costs in communication against its compute, at the paper width.

  perf/allreduce_model.py [--layers 12,48] [--ranks 1,2,4,8,16] [--gbps 25,100,400] [--tflops 33,200]

Gradient bytes per step: the fp32 parameter count (WAV v1, the largest table: model/params.hpp) x 4. A ring
allreduce moves 2(R-1)/R of them through each rank's link, so its time is 2(R-1)/R x bytes / bandwidth (latency
and the reduction arithmetic are left out: at these sizes the bandwidth term dominates). Compute per step is the
analytic FLOP count of perf/bench_step.cpp (3x the forward's multiply-adds x 2: the seven projections, causal
QK^T and PV over (T+1)/2 keys on average, and the head) divided by an *assumed* sustained rate: --tflops, e.g.
33 (half of an H100/H200's FP32 peak) and 200 (TF32 tensor cores, --gemm-precision tf32). These rates are
assumptions, not measurements: no GPU has run this code yet. With R ranks each computes 1/R of the batch and
the allreduce does not overlap the backward, so a step takes compute/R + allreduce.
"""
import argparse

P = dict(d_model=512, heads=8, d_ff=1408, seq_len=512, batch=32, vocab=27)  # experiments/study.py "paper", text8


def params(L, D, F, T, V):
    sub = 2 * L  # sublayers: routing has a query and key gain per consumer (sublayers + output)
    n = V * D + T * D  # token and position embeddings
    n += L * (4 * D * D + 3 * D * F + 2 * D)  # attention, MLP, the two norm gains
    n += V * D + D  # head, final norm
    n += 2 * (sub + 1) * D + 2 * (sub + 1)  # routing query, key gain, WAV detail bias
    return n


def flops_per_step(L, D, F, T, V, B):
    per_token = L * (2 * (4 * D * D + 3 * D * F) + 2 * D * (T + 1)) + 2 * D * V
    return 3 * per_token * B * T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="12,48")
    ap.add_argument("--ranks", default="1,2,4,8,16")
    ap.add_argument("--gbps", default="25,100,400")
    ap.add_argument("--tflops", default="33,200")
    a = ap.parse_args()
    D, F, T, V, B = P["d_model"], P["d_ff"], P["seq_len"], P["vocab"], P["batch"]
    ranks = [int(x) for x in a.ranks.split(",")]
    for L in (int(x) for x in a.layers.split(",")):
        n = params(L, D, F, T, V)
        gb = 4 * n / 1e9
        fl = flops_per_step(L, D, F, T, V, B)
        print(f"\n{L} layers, d_model {D}, d_ff {F}, T {T}, global batch {B} ({B * T} tokens): {n:,} parameters, "
              f"{gb * 1e3:.1f} MB of fp32 gradients per step, {fl / 1e12:.2f} TFLOP per step")
        print("| link | allreduce, R = " + " | ".join(str(r) for r in ranks) + " |")
        print("|---|" + "---|" * len(ranks))
        for g in (float(x) for x in a.gbps.split(",")):
            t = [2 * (r - 1) / r * gb * 8 / g if r > 1 else 0.0 for r in ranks]
            print(f"| {g:g} Gb/s | " + " | ".join(f"{x * 1e3:.0f} ms" for x in t) + " |")
        for tf in (float(x) for x in a.tflops.split(",")):
            c = fl / (tf * 1e12)
            print(f"\ncompute {c * 1e3:.0f} ms per step at an assumed {tf:g} TFLOP/s; step time compute/R + allreduce"
                  f" (speed-up over 1 rank):")
            print("| link | " + " | ".join(f"R = {r}" for r in ranks) + " |")
            print("|---|" + "---|" * len(ranks))
            for g in (float(x) for x in a.gbps.split(",")):
                cells = []
                for r in ranks:
                    s = c / r + (2 * (r - 1) / r * gb * 8 / g if r > 1 else 0.0)
                    cells.append(f"{s * 1e3:.0f} ms ({c / s:.1f}x)")
                print(f"| {g:g} Gb/s | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
