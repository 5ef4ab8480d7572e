#!/usr/bin/python3
"""One command, both figures: wavres's training step and the PyTorch baseline of the same model, timed in the
same run on the same machine, plus the proof that they compute the same thing (the loss of one batch at the
same parameters, via a wavres dump loaded into the PyTorch model).

Both sides run under the same thread placement: the benchmark runs first, and PyTorch gets the OMP_PROC_BIND,
OMP_PLACES, OMP_WAIT_POLICY and GOMP_SPINCOUNT the benchmark ran with (wavres's defaults where the caller set none); each side's
placement, as read back from its threads, is printed. --variant all runs the four variants one after another.

  perf/compare_torch.py --variant prenorm|full|block|wav|all --n-layer 12 [--d-model 256 --heads 4 --d-ff 704 --seq-len 256
                        --batch 16 --threads 2 --timed 5] [--build build/openmp]
"""
import argparse, json, os, subprocess, sys, tempfile

FULL = {"prenorm": "prenorm", "full": "full_attnres", "block": "block_attnres", "wav": "wav_v1"}
here = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"compare_torch: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=list(FULL) + ["all"], default="prenorm")
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=704)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timed", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "openmp"))
    a = ap.parse_args()
    width = ["--d-model", str(a.d_model), "--heads", str(a.heads), "--d-ff", str(a.d_ff),
             "--seq-len", str(a.seq_len), "--batch", str(a.batch)]
    for variant in FULL if a.variant == "all" else [a.variant]:
        compare(a, variant, width)


def same_placement_env(env, cpp):
    """env with the OpenMP placement variables the benchmark ran with (after its start-up defaults)."""
    env = dict(env)
    for var, key in (("OMP_PROC_BIND", "omp_proc_bind"), ("OMP_PLACES", "omp_places"),
                     ("OMP_WAIT_POLICY", "omp_wait_policy"), ("GOMP_SPINCOUNT", "gomp_spincount")):
        if cpp.get(key, "unset") == "unset":
            env.pop(var, None)
        else:
            env[var] = cpp[key]
    return env


def compare(a, variant, width):
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    bench = os.path.join(a.build, "perf", f"bench_{variant}_l{a.n_layer}")
    cpp = json.loads(run([bench, "--json", "--timed", str(a.timed), "--warmup", "2"] + width, env).strip().splitlines()[-1])
    env = same_placement_env(env, cpp)
    torch = json.loads(run(["/usr/bin/python3", os.path.join(here, "torch_baseline.py"), "--variant", FULL[variant],
                            "--n-layer", str(a.n_layer), "--steps", str(a.timed), "--warmup-steps", "2",
                            "--threads", str(a.threads), "--json"] + width, env).strip().splitlines()[-1])

    # parity: the same parameters and batch in both implementations (a small batch keeps it quick)
    parity = "n/a (no experiment executable for this depth)"
    exe = os.path.join(a.build, "experiments", f"exp_{variant}_l{a.n_layer}_text8")
    if os.path.exists(exe):
        with tempfile.TemporaryDirectory() as tmp:
            dump = os.path.join(tmp, "d.h5")
            small = width[:-1] + ["2"]
            run([exe, "dump", "--out", dump, "--routing-init", "normal:0.5"] + small, env)
            out = run(["/usr/bin/python3", os.path.join(here, "torch_baseline.py"), "--from-dump", dump, "--json"], env)
            p = json.loads(out.strip().splitlines()[-1])
            parity = json.dumps({k: p[k] for k in p if "loss" in k or "rel" in k})

    print(f"{variant} {a.n_layer} layers, d_model {a.d_model}, heads {a.heads}, d_ff {a.d_ff}, T {a.seq_len}, "
          f"batch {a.batch}, {a.threads} threads; CPU: {cpp['cpu']}")
    print(f"  placement, wavres:  {cpp['placement']}, OMP_WAIT_POLICY={cpp['omp_wait_policy']} "
          f"GOMP_SPINCOUNT={cpp.get('gomp_spincount', 'unset')}")
    print(f"  placement, PyTorch: {torch['placement']}, OMP_WAIT_POLICY={torch['omp_wait_policy']} "
          f"GOMP_SPINCOUNT={torch.get('gomp_spincount', 'unset')}")
    if cpp["distinct_cpus"] != torch["distinct_cpus"]:
        print(f"  warning: wavres's threads may use {cpp['distinct_cpus']} CPUs, PyTorch's "
              f"{torch['distinct_cpus']}: the ratio below compares unequal resources")
    print(f"  {'':14}{'step (median)':>15}{'tokens/s':>12}")
    print(f"  {'wavres':14}{cpp['median_step_s']:>13.3f} s{cpp['tokens_per_s']:>12.0f}")
    print(f"  {'PyTorch ' + torch.get('torch_version', '')[:6]:14}{torch['median_step_s']:>13.3f} s{torch['tokens_per_s']:>12.0f}")
    print(f"  ratio wavres / PyTorch: {cpp['tokens_per_s'] / torch['tokens_per_s']:.2f}x   "
          f"(wavres {cpp['gflops']:.0f} GFLOP/s = {100 * cpp['gflops'] / cpp['peak_gflops']:.0f} % of the measured "
          f"FP32 peak {cpp['peak_gflops']:.0f}; peak RSS {cpp['peak_rss_mib']:.0f} MiB)")
    print(f"  same parameters and batch, loss: {parity}")


if __name__ == "__main__":
    main()
