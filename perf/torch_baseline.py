#!/usr/bin/python3
"""PyTorch step-time baseline (CPU, or --device cuda [--compile] on the GPU machine) for the wavres variants, using the reference model.

    torch_baseline.py --variant V --n-layer N [--block S] [--d-model 256] [--heads 4] [--d-ff 704]
                      [--seq-len 256] [--batch 16] [--steps 10] [--warmup-steps 2] [--threads 2]
                      [--data FILE] [--vocab 27] [--seed 0] [--json] [--device cuda] [--compile]
    torch_baseline.py --from-dump DUMP.h5 [--threads 2] [--json]

Training mode runs --warmup-steps untimed steps, then --steps timed steps; a step is forward +
backward + clip + AdamW (spec §6, lr schedule over all warmup+timed steps). Batches are random windows
of --data (byte-level; the vocabulary is the sorted set of bytes in the file, which overrides --vocab)
or uniformly random tokens in [0, --vocab) without --data. Reports the median timed step and
tokens/s = batch·seq_len / median.

--from-dump mode loads /config, /params and /batch/tokens from a dump and prints the float32 loss the
reference computes on them next to the dump's /loss, to show both implementations agree.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import wavres_torch as wt  # noqa: E402


def parse(argv):
    ap = argparse.ArgumentParser(description="PyTorch CPU step-time baseline for wavres")
    ap.add_argument("--variant", choices=wt.VARIANTS)
    ap.add_argument("--n-layer", type=int)
    ap.add_argument("--block", type=int, default=None, help="S in sublayers (default per spec §4)")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=704)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup-steps", type=int, default=2, help="untimed steps before the timed ones")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None)
    ap.add_argument("--vocab", type=int, default=27)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on the GPU machine")
    ap.add_argument("--compile", action="store_true", help="train through torch.compile(model) (PyTorch >= 2)")
    ap.add_argument("--from-dump", default=None, metavar="DUMP.h5")
    args = ap.parse_args(argv)
    if args.from_dump is None and (args.variant is None or args.n_layer is None):
        ap.error("--variant and --n-layer are required (unless --from-dump)")
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    return args


def from_dump(args):
    import h5py

    with h5py.File(args.from_dump, "r") as f:
        cfg = wt.Config.from_h5(f)
        model = wt.WavresModel(cfg)  # float32, as the C++ trains
        wt.load_params_from_h5(model, f)
        tokens = torch.from_numpy(np.asarray(f["batch/tokens"][()]).astype(np.int64))
        loss_dump = float(np.asarray(f["loss"][()]).reshape(-1)[0])
    with torch.no_grad():
        loss = model(tokens[:, :-1], tokens[:, 1:]).item()
    rel = abs(loss - loss_dump) / max(abs(loss_dump), 1e-30)
    res = dict(mode="from_dump", dump=args.from_dump, variant=cfg.variant, n_layer=cfg.n_layer,
               torch_loss_f32=loss, dump_loss=loss_dump, rel_diff=rel, torch_version=torch.__version__,
               threads=torch.get_num_threads())
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{cfg.variant} n_layer={cfg.n_layer}: torch float32 loss {loss:.8f}, dump loss "
              f"{loss_dump:.8f}, relative difference {rel:.2e}")
    return 0


def placement():
    """Where this process's threads may run, as the kernel enforces it (/proc/self/task/*/status), and the
    OpenMP variables that chose it; the same fields perf/bench_step.cpp reports for wavres."""
    masks = []
    for tid in sorted(os.listdir("/proc/self/task"), key=int):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                masks += [line.split()[1] for line in f if line.startswith("Cpus_allowed_list:")]
        except OSError:  # the thread ended meanwhile
            pass
    cpus = set()
    for m in masks:
        for part in m.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    bind, places = os.environ.get("OMP_PROC_BIND", "unset"), os.environ.get("OMP_PLACES", "unset")
    return dict(omp_proc_bind=bind, omp_places=places, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"),
                gomp_spincount=os.environ.get("GOMP_SPINCOUNT", "unset"),
                distinct_cpus=len(cpus),
                placement=f"OMP_PROC_BIND={bind} OMP_PLACES={places}: {len(masks)} threads (all of the "
                          f"process's) on CPUs {' | '.join(masks)}")


def batches(args, vocab_size, gen):
    """Infinite (inputs, targets) stream: random windows of the data file, or random tokens."""
    B, T = args.batch, args.seq_len
    if args.data:
        raw = np.frombuffer(open(args.data, "rb").read(), dtype=np.uint8)
        vocab = np.unique(raw)
        lut = np.zeros(256, dtype=np.int64)
        lut[vocab] = np.arange(len(vocab))
        ids = torch.from_numpy(lut[raw])
        if len(ids) < T + 2:
            raise SystemExit(f"--data {args.data}: too short for seq_len {T}")
        while True:
            starts = torch.randint(0, len(ids) - T - 1, (B,), generator=gen)
            w = torch.stack([ids[s: s + T + 1] for s in starts.tolist()])
            yield w[:, :-1], w[:, 1:]
    while True:
        w = torch.randint(0, vocab_size, (B, T + 1), generator=gen)
        yield w[:, :-1], w[:, 1:]


def train(args):
    vocab = args.vocab
    if args.data:
        vocab = len(np.unique(np.frombuffer(open(args.data, "rb").read(), dtype=np.uint8)))
    try:
        cfg = wt.Config(args.variant, args.n_layer, args.block, args.d_model, args.heads, args.d_ff,
                        vocab, args.seq_len)
    except ValueError as e:
        raise SystemExit(f"torch_baseline: {e}")
    dev = torch.device(args.device)
    model = wt.WavresModel(cfg, seed=args.seed).to(dev)
    opt = wt.make_optimizer(model)
    if args.compile:
        if not hasattr(torch, "compile"):
            raise SystemExit(f"torch_baseline: --compile needs PyTorch >= 2, this is {torch.__version__}")
        step_model = torch.compile(model)  # same parameters; the optimizer keeps updating them
    else:
        step_model = model
    gen = torch.Generator().manual_seed(args.seed + 1)
    stream = batches(args, vocab, gen)
    total = args.warmup_steps + args.steps
    times, losses = [], []
    for step in range(total):
        x, y = next(stream)  # batch prep and the host-to-device copy are outside the timed region
        x, y = x.to(dev), y.to(dev)
        t0 = time.perf_counter()
        loss, _ = wt.train_step(step_model, opt, x, y, wt.lr_at(step, total))  # .item() synchronises
        dt = time.perf_counter() - t0
        losses.append(loss)
        if step >= args.warmup_steps:
            times.append(dt)
    med = statistics.median(times)
    res = dict(variant=cfg.variant, n_layer=cfg.n_layer, block_sublayers=cfg.block_sublayers,
               d_model=cfg.d_model, n_head=cfg.n_head, d_ff=cfg.d_ff, vocab_size=cfg.vocab_size,
               seq_len=cfg.seq_len, batch=args.batch, timed_steps=args.steps,
               warmup_steps=args.warmup_steps, median_step_s=med,
               tokens_per_s=args.batch * cfg.seq_len / med, final_loss=losses[-1],
               n_params=sum(p.numel() for p in model.parameters()),
               torch_version=torch.__version__, threads=torch.get_num_threads(), device=args.device,
               compiled=args.compile, **placement())
    if args.device.startswith("cuda"):  # FP32 matmuls stay FP32 unless TF32 is allowed (off by default)
        res.update(peak_device_mib=torch.cuda.max_memory_allocated() / 2**20,
                   tf32=bool(torch.backends.cuda.matmul.allow_tf32), gpu=torch.cuda.get_device_name())
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{cfg.variant} n_layer={cfg.n_layer} S={cfg.block_sublayers} d_model={cfg.d_model} "
              f"T={cfg.seq_len} B={args.batch} threads={res['threads']}: median step "
              f"{med * 1e3:.1f} ms over {args.steps} steps, {res['tokens_per_s']:.0f} tokens/s, "
              f"last loss {losses[-1]:.4f} (torch {torch.__version__})\n  placement: {res['placement']}")
    return 0


def main(argv=None):
    args = parse(argv)
    torch.set_num_threads(args.threads)
    return from_dump(args) if args.from_dump else train(args)


if __name__ == "__main__":
    sys.exit(main())
