#!/usr/bin/python3
"""The depth study: does WAV v1 beat Block AttnRes as depth grows?

For each dataset, every routing variant at 12, 24 and 48 layers is trained with identical width, data order
(same --seed), token budget and schedule; the 48-layer Block AttnRes and WAV v1 runs get extra seeds so their
difference can be told from noise. Runs resume where they stopped (--resume latest), finished runs are skipped.
Writes experiments/results/<study>/results.md, per-run log.csv, loss curves and routing heatmaps.

  experiments/study.py cpu            # the CPU-sized study (see PRESETS)
  experiments/study.py paper --build build/cuda   # sized for one H100: cmake/wavres.sh build-cuda first
  experiments/study.py smoke          # seconds per run: checks the pipeline end to end
"""
import argparse, csv, json, math, os, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VARIANTS = ["prenorm", "full", "block", "wav"]
PRESETS = {
    # width and budget chosen so that the whole study fits in a few hours on 2 cores
    "cpu": dict(depths=[12, 24, 48], datasets=["text8", "tinystories"], d_model=64, heads=4, d_ff=176, seq_len=128,
                batch=16, steps=300, lr=2e-3, seeds=[1], extra_seeds_48=[2], eval_every=100, eval_batches=16),
    # the paper-scale study for one H100 (CUDA build)
    "paper": dict(depths=[12, 24, 48], datasets=["text8", "tinystories"], d_model=512, heads=8, d_ff=1408,
                  seq_len=512, batch=32, steps=20000, lr=1e-3, seeds=[1], extra_seeds_48=[2, 3], eval_every=1000,
                  eval_batches=64),
    "smoke": dict(depths=[12, 24, 48], datasets=["text8"], d_model=32, heads=2, d_ff=88, seq_len=32, batch=4,
                  steps=4, lr=2e-3, seeds=[1], extra_seeds_48=[2], eval_every=2, eval_batches=2),
}


def runs_of(p):
    for ds in p["datasets"]:
        for depth in p["depths"]:
            for v in VARIANTS:
                seeds = list(p["seeds"])
                if depth == 48 and v in ("block", "wav"):
                    seeds += p["extra_seeds_48"]
                for seed in seeds:
                    yield ds, depth, v, seed


def last_row(log):
    rows = list(csv.DictReader(open(log)))
    return rows[-1] if rows else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=PRESETS)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "openmp"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data"))
    ap.add_argument("--out", default=None, help="default: experiments/results/<study>")
    ap.add_argument("--datasets", default=None, help="comma-separated subset of the preset's datasets")
    a = ap.parse_args()
    p = dict(PRESETS[a.study])
    if a.datasets:
        p["datasets"] = [d for d in a.datasets.split(",") if d in p["datasets"]]
    out = a.out or os.path.join(HERE, "results", a.study)
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    results = []
    for ds, depth, v, seed in runs_of(p):
        name = f"{v}_l{depth}_{ds}_s{seed}"
        rdir = os.path.join(out, "runs", name)
        exe = os.path.join(a.build, "experiments", f"exp_{v}_l{depth}_{ds}")
        log = os.path.join(rdir, "log.csv")
        done = os.path.exists(log) and last_row(log) and int(last_row(log)["step"]) >= p["steps"]
        cmd = [exe, "train", "--d-model", str(p["d_model"]), "--heads", str(p["heads"]), "--d-ff", str(p["d_ff"]),
               "--seq-len", str(p["seq_len"]), "--batch", str(p["batch"]), "--steps", str(p["steps"]),
               "--lr", str(p["lr"]), "--seed", str(seed), "--eval-every", str(p["eval_every"]),
               "--eval-batches", str(p["eval_batches"]), "--checkpoint-every", str(p["eval_every"]),
               "--keep-checkpoints", "1", "--data-dir", a.data_dir, "--out", rdir, "--quiet"]
        wall = 0.0
        if not done:
            if any(f.startswith("ckpt_") for f in os.listdir(rdir)) if os.path.isdir(rdir) else False:
                cmd += ["--resume", "latest"]
            else:  # killed before its first checkpoint: start again (a fresh run into a run directory needs this)
                cmd += ["--overwrite"]
            print(f"[study] {name}: {' '.join(cmd[1:3])} …", flush=True)
            t0 = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
            wall = time.time() - t0
            if r.returncode != 0:
                sys.exit(f"[study] {name} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
            with open(os.path.join(rdir, "wall_seconds"), "a") as f:
                f.write(f"{wall:.1f}\n")
        rows = list(csv.DictReader(open(log)))
        vals = [float(x["val_loss"]) for x in rows if x["val_loss"]]
        walls = [float(x) for x in open(os.path.join(rdir, "wall_seconds"))] if os.path.exists(
            os.path.join(rdir, "wall_seconds")) else [wall]
        ckpts = sorted(f for f in os.listdir(rdir) if f.startswith("ckpt_"))
        params = ""
        inspect = os.path.join(a.build, "src", "wavres-inspect")
        if ckpts and os.path.exists(inspect):
            txt = subprocess.run([inspect, os.path.join(rdir, ckpts[-1])], capture_output=True, text=True,
                                 errors="replace").stdout
            for line in txt.splitlines():
                if line.strip().startswith("total"):
                    params = line.split()[1]
        results.append(dict(dataset=ds, depth=depth, variant=v, seed=seed, val=vals[-1],
                            bpc=vals[-1] / math.log(2), tps=float(rows[-1]["tokens_per_s"]), wall=sum(walls),
                            params=params, ckpt=os.path.join(rdir, ckpts[-1]) if ckpts else ""))
        write_report(out, a.study, p, results, a.build, plots=False)  # a partial study still leaves its table
    write_report(out, a.study, p, results, a.build)


def write_report(out, study, p, results, build, plots=True):
    lines = [f"# Depth study `{study}`", "",
             f"Width d_model {p['d_model']}, {p['heads']} heads, d_ff {p['d_ff']}, T {p['seq_len']}, batch {p['batch']}, "
             f"{p['steps']} steps ({p['steps'] * p['batch'] * p['seq_len']:,} tokens) per run, peak lr {p['lr']}, "
             "spec §6 schedule; identical seeds and data order across variants. Reproduce with "
             f"`experiments/study.py {study}`.", "",
             "| dataset | layers | variant | seed | val loss (nats) | bits/char | tokens/s | wall (s) | params |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['dataset']} | {r['depth']} | {r['variant']} | {r['seed']} | {r['val']:.4f} | {r['bpc']:.4f} | "
                     f"{r['tps']:.0f} | {r['wall']:.0f} | {r['params']} |")
    lines += ["", "## WAV v1 − Block AttnRes (val loss, nats; negative = WAV better)", "",
              "| dataset | layers | seeds | WAV − Block per seed | mean |", "|---|---|---|---|---|"]
    for ds in p["datasets"]:
        for depth in p["depths"]:
            b = {r["seed"]: r["val"] for r in results if r["dataset"] == ds and r["depth"] == depth and r["variant"] == "block"}
            w = {r["seed"]: r["val"] for r in results if r["dataset"] == ds and r["depth"] == depth and r["variant"] == "wav"}
            d = [w[s] - b[s] for s in sorted(b) if s in w]
            if d:
                lines.append(f"| {ds} | {depth} | {len(d)} | {', '.join(f'{x:+.4f}' for x in d)} | {sum(d) / len(d):+.4f} |")
    if not plots:
        open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")
        return
    plot = os.path.join(ROOT, "perf", "plot_routing.py")
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    lines += ["", "## Plots", ""]
    for ds in p["datasets"]:
        for depth in p["depths"]:
            dirs = [os.path.dirname(r["ckpt"]) for r in results if r["dataset"] == ds and r["depth"] == depth and r["seed"] == 1]
            png = os.path.join(out, "plots", f"curves_{ds}_l{depth}.png")
            if subprocess.run(["/usr/bin/python3", plot, "--curves", *dirs, "-o", png], capture_output=True).returncode == 0:
                lines.append(f"![{ds} {depth} layers](plots/{os.path.basename(png)})")
            for r in results:
                if r["dataset"] == ds and r["depth"] == depth and r["seed"] == 1 and r["variant"] in ("block", "wav") and r["ckpt"]:
                    hm = os.path.join(out, "plots", f"routing_{r['variant']}_l{depth}_{ds}.png")
                    if subprocess.run(["/usr/bin/python3", plot, r["ckpt"], "-o", hm], capture_output=True).returncode == 0:
                        lines.append(f"![{r['variant']} routing]( plots/{os.path.basename(hm)})".replace("( ", "("))
    open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")
    print(f"[study] wrote {os.path.join(out, 'results.md')}")


if __name__ == "__main__":
    main()
