#!/usr/bin/python3
"""A/B of thread placements on the step benchmark, in interleaved rounds (every placement once per round, so slow
drift of a shared machine hits all of them alike), with the 1-minute load average recorded beside every figure.

  perf/placement_ab.py [--variants prenorm,wav] [--rounds 3] [--timed 3] [--warmup 1] [--threads 2]
                       [--hog N] [--placements default,spread,...] [--build build/openmp]

--hog N runs N busy-looping processes (unpinned, like a compile) beside the benchmark: the shared-machine case,
where another process takes a core. GOMP_SPINCOUNT=300000 is libgomp's wait when OMP_WAIT_POLICY is unset
(spin, then sleep), which the re-exec would otherwise turn into passive. Placements (the OpenMP variables set;
every other OMP_* and GOMP_* one is removed):
"""
import argparse, json, os, statistics, subprocess, sys, time

PLACEMENTS = {
    "default": {},  # whatever the start-up re-exec chooses (since 2026-11-28, second session: unpinned, 3000 polls)
    "old-default": {"OMP_PROC_BIND": "false", "GOMP_SPINCOUNT": "300000"},  # unpinned, libgomp's unset wait
    # unpinned, a shorter spin before sleeping (libgomp counts GOMP_SPINCOUNT polls of the barrier)
    "unpinned-spin30k": {"OMP_PROC_BIND": "false", "GOMP_SPINCOUNT": "30000"},
    "unpinned-spin3k": {"OMP_PROC_BIND": "false", "GOMP_SPINCOUNT": "3000"},
    "spread": {"OMP_PROC_BIND": "spread", "OMP_PLACES": "threads"},  # with the default wait policy
    "spread-spin": {"OMP_PROC_BIND": "spread", "OMP_PLACES": "threads", "GOMP_SPINCOUNT": "300000"},
    "unpinned-passive": {"OMP_PROC_BIND": "false", "OMP_WAIT_POLICY": "passive"},
    "spread-passive": {"OMP_PROC_BIND": "spread", "OMP_PLACES": "threads", "OMP_WAIT_POLICY": "passive"},
    "unpinned-active": {"OMP_PROC_BIND": "false", "OMP_WAIT_POLICY": "active"},
    "spread-active": {"OMP_PROC_BIND": "spread", "OMP_PLACES": "threads", "OMP_WAIT_POLICY": "active"},
}
__doc__ += "".join(f"  {k:18} {' '.join(f'{a}={b}' for a, b in v.items()) or '(none)'}\n" for k, v in PLACEMENTS.items())
here = os.path.dirname(os.path.abspath(__file__))


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def bench(a, variant, placement):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(PLACEMENTS[placement], OMP_NUM_THREADS=str(a.threads))
    exe = os.path.join(a.build, "perf", f"bench_{variant}_l{a.n_layer}")
    before = load1()
    r = subprocess.run([exe, "--json", "--no-profile", "--timed", str(a.timed), "--warmup", str(a.warmup)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"placement_ab: {exe} failed ({r.returncode}):\n{r.stderr.strip()}")
    j = json.loads(r.stdout.strip().splitlines()[-1])
    j["load1"] = max(before, load1())
    return j


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="prenorm,wav")
    ap.add_argument("--placements", default="default,old-default,spread-spin,spread-passive")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timed", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--hog", type=int, default=0, help="busy-looping processes beside the benchmark")
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "openmp"))
    a = ap.parse_args()
    variants, placements = a.variants.split(","), a.placements.split(",")
    for p in placements:
        if p not in PLACEMENTS:
            sys.exit(f"placement_ab: unknown placement {p!r} (known: {', '.join(PLACEMENTS)})")
    hogs = [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]) for _ in range(a.hog)]
    results = {}
    try:
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {a.hog} busy-looping processes beside the benchmark, "
              f"{a.threads} threads, --timed {a.timed} --warmup {a.warmup}", flush=True)
        print("| round | variant | placement | step (s) | GFLOP/s | FP32 peak | share | CPUs used | load (1 min) | "
              "threads' CPUs |")
        print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for rnd in range(1, a.rounds + 1):
            for v in variants:
                for p in placements:
                    j = bench(a, v, p)
                    results.setdefault((v, p), []).append(j)
                    cpus = j["placement"].split(" on CPUs ", 1)[-1]
                    print(f"| {rnd} | {v} | {p} | {j['median_step_s']:.3f} | {j['gflops']:.0f} | "
                          f"{j['peak_gflops']:.0f} | {100 * j['gflops'] / j['peak_gflops']:.0f} % | "
                          f"{j['distinct_cpus']} | {j['load1']:.2f} | {cpus} |", flush=True)
    finally:
        for h in hogs:
            h.kill()
    print(f"\nmedian over {a.rounds} rounds (step s; vs {placements[0]}: median and range of the per-round ratios)")
    for v in variants:
        base = results[(v, placements[0])]
        for p in placements:
            rs = results[(v, p)]
            ratios = [r["median_step_s"] / b["median_step_s"] for r, b in zip(rs, base)]
            print(f"  {v:8} {p:18} {statistics.median(r['median_step_s'] for r in rs):.3f} s   "
                  f"x{statistics.median(ratios):.2f} ({min(ratios):.2f} .. {max(ratios):.2f})   "
                  f"load {min(r['load1'] for r in rs):.2f} .. {max(r['load1'] for r in rs):.2f}")


if __name__ == "__main__":
    main()
