#!/usr/bin/python3
"""Check a wavres dump (docs/checkpoint-layout.md) against an independent float64 autograd reference.

    check_dump.py DUMP.h5 [--loss-rtol 1e-5] [--grad-rtol 1e-3] [--alpha-atol 1e-5]

The reference model (perf/wavres_torch.py) is built in float64 from /config, loaded with the dump's
/params, and run on /batch/tokens; its loss, gradients and mixer weights are compared with the dump's.

Relative error of a tensor: max|dump - ref| / max(max|ref|, 1e-30), i.e. the worst element error
scaled by the tensor's largest reference magnitude (not element-wise, so tiny entries do not dominate).
The loss uses the same definition on the scalar. alpha_mean is compared in absolute terms, and its NaN
padding pattern must be identical.

Exit status: 0 all checks pass, 1 some check failed, 2 the input cannot be read or does not describe a
model the reference can build (one-line error). Last line: "check_dump: N passed, M failed".
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "perf"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import wavres_torch as wt  # noqa: E402


class Unreadable(Exception):
    pass


def rel_err(dump, ref):
    """max|a-b| / max(max|ref|, 1e-30); NaN/Inf anywhere gives inf so the check fails."""
    dump = np.asarray(dump, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    max_ref = float(np.max(np.abs(ref))) if ref.size else 0.0
    if ref.size == 0:
        return 0.0, max_ref
    diff = np.abs(dump - ref)
    if not np.all(np.isfinite(diff)):
        return math.inf, max_ref
    return float(np.max(diff)) / max(max_ref, 1e-30), max_ref


def shape_str(shape):
    return "[" + ",".join(str(int(s)) for s in shape) + "]"


def load_reference(path):
    """Reads the dump and computes the float64 reference. Raises Unreadable with a one-line reason."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001  (h5py raises OSError, but be robust to anything)
        raise Unreadable(f"cannot open {path}: {e}")
    with f:
        if "config" not in f:
            raise Unreadable("missing /config")
        try:
            cfg = wt.Config.from_h5(f)
        except KeyError as e:
            raise Unreadable(f"/config lacks attribute {e}")
        except ValueError as e:
            raise Unreadable(f"/config: {e}")
        for need in ("params", "batch/tokens", "loss", "grads"):
            if need not in f:
                raise Unreadable(f"missing /{need}")
        tokens = np.asarray(f["batch/tokens"][()])
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise Unreadable(f"/batch/tokens has shape {tokens.shape}, expected [B, T+1]")
        T = tokens.shape[1] - 1
        if T > cfg.seq_len:
            raise Unreadable(f"/batch/tokens has T={T} > seq_len={cfg.seq_len}")
        if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
            raise Unreadable(f"/batch/tokens outside [0, {cfg.vocab_size})")
        loss_dump = float(np.asarray(f["loss"][()]).reshape(-1)[0])

        torch.manual_seed(0)
        model = wt.WavresModel(cfg).double()
        try:
            extra_params = wt.load_params_from_h5(model, f)
        except (KeyError, ValueError) as e:
            raise Unreadable(str(e).strip("'\""))

        param_paths = set(wt._dataset_paths(f["params"]))
        grads_dump = {p: np.asarray(f["grads"][p][()]) for p in wt._dataset_paths(f["grads"])}
        alpha_dump = np.asarray(f["routing/alpha_mean"][()]) if "routing/alpha_mean" in f else None
        labels_dump = None
        if "routing/source_labels" in f:
            labels_dump = [[x.decode() if isinstance(x, bytes) else str(x) for x in row]
                           for row in np.asarray(f["routing/source_labels"][()])]

    inp = torch.from_numpy(tokens[:, :-1].astype(np.int64))
    tgt = torch.from_numpy(tokens[:, 1:].astype(np.int64))
    loss, alpha, labels = model.loss_and_alpha(inp, tgt)
    loss.backward()
    grads_ref = {p: t.grad.detach().numpy() for p, t in model.named_tensors().items()}
    return dict(cfg=cfg, B=tokens.shape[0], T=T, loss_dump=loss_dump, loss_ref=loss.item(),
                param_paths=param_paths, extra_params=extra_params, grads_dump=grads_dump,
                grads_ref=grads_ref, alpha_dump=alpha_dump,
                alpha_ref=None if alpha is None else alpha.numpy(), labels_ref=labels,
                labels_dump=labels_dump)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--loss-rtol", type=float, default=1e-5)
    ap.add_argument("--grad-rtol", type=float, default=1e-3)
    ap.add_argument("--alpha-atol", type=float, default=1e-5)
    args = ap.parse_args(argv)

    try:
        r = load_reference(args.dump)
    except Unreadable as e:
        print(f"check_dump: {args.dump}: {e}")
        return 2

    cfg = r["cfg"]
    print(f"check_dump: {args.dump}: variant={cfg.variant} n_layer={cfg.n_layer} "
          f"S={cfg.block_sublayers} d_model={cfg.d_model} n_head={cfg.n_head} d_ff={cfg.d_ff} "
          f"V={cfg.vocab_size} B={r['B']} T={r['T']}")
    passed = failed = 0

    def report(ok, line):
        nonlocal passed, failed
        print(f"{line}  {'OK' if ok else 'FAIL'}")
        if ok:
            passed += 1
        else:
            failed += 1

    for p in r["extra_params"]:
        report(False, f"params/{p:<34} not a parameter of this variant")

    grads_dump, grads_ref = r["grads_dump"], r["grads_ref"]
    # /grads must mirror /params exactly (and the reference's own parameter set).
    for p in sorted(set(grads_ref) | set(grads_dump) | r["param_paths"]):
        name = f"grads/{p}"
        if p not in grads_dump:
            report(False, f"{name:<40} missing from /grads")
            continue
        if p not in grads_ref or p not in r["param_paths"]:
            report(False, f"{name:<40} has no matching /params tensor")
            continue
        d, ref = grads_dump[p], grads_ref[p]
        if d.shape != ref.shape:
            report(False, f"{name:<40} shape {shape_str(d.shape)}, expected {shape_str(ref.shape)}")
            continue
        err, max_ref = rel_err(d, ref)
        report(err <= args.grad_rtol,
               f"{name:<40} {shape_str(ref.shape):<12} max|ref|={max_ref:.4e} rel_err={err:.3e}")

    err, _ = rel_err(r["loss_dump"], r["loss_ref"])
    report(err <= args.loss_rtol,
           f"{'loss':<40} dump={r['loss_dump']:.10g} ref={r['loss_ref']:.10g} rel_err={err:.3e}")

    if cfg.routed:
        a_dump, a_ref = r["alpha_dump"], r["alpha_ref"]
        name = "routing/alpha_mean"
        if a_dump is None:
            report(False, f"{name:<40} missing (required for routed variants)")
        elif a_dump.shape != a_ref.shape:
            report(False, f"{name:<40} shape {shape_str(a_dump.shape)}, expected {shape_str(a_ref.shape)}")
        else:
            a_dump = a_dump.astype(np.float64)
            same_nan = bool(np.array_equal(np.isnan(a_dump), np.isnan(a_ref)))
            valid = ~np.isnan(a_ref)
            diff = np.abs(a_dump[valid] - a_ref[valid])
            max_abs = float(diff.max()) if diff.size else 0.0
            if not np.all(np.isfinite(diff)):
                max_abs = math.inf
            report(same_nan and max_abs <= args.alpha_atol,
                   f"{name:<40} {shape_str(a_ref.shape):<12} max_abs_err={max_abs:.3e} "
                   f"nan_pattern={'same' if same_nan else 'DIFFERENT'}")
        # Labels are informational only: the layout gives examples, not a complete pinned naming.
        if r["labels_dump"] is not None:
            ref_rows = [row + [""] * (a_ref.shape[1] - len(row)) for row in r["labels_ref"]]
            dump_rows = [[s for s in row] for row in r["labels_dump"]]
            if [[s for s in row if s] for row in dump_rows] != [[s for s in row if s] for row in ref_rows]:
                print(f"note: routing/source_labels differ from the reference's naming "
                      f"(first consumer row: dump {dump_rows[0]} vs ref {ref_rows[0]})")

    print(f"check_dump: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
