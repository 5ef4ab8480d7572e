#!/usr/bin/python3
"""Plots for wavres runs (Debian's python3-h5py, python3-matplotlib, python3-numpy; no network).

  plot_routing.py CKPT -o OUT.png
      Heatmap of /routing/alpha_mean of a checkpoint or dump (consumers x sources, NaN = not a source of
      that consumer, left blank). Column labels are those of the first consumer with the most sources; a
      cell whose own source label differs from its column label (e.g. "partial") is annotated with it.

  plot_routing.py GEN.h5 --over-text [--consumer C] [--max-tokens N] -o OUT.png
      For the --routing-out file of `exp_... sample`: the mixer weights of consumer C (default: the output
      mixer, L) over its sources for each generated character (x axis: the characters, as generated). Without
      --over-text the file draws like a checkpoint, from its /routing/alpha_mean (mean over the tokens).

  plot_routing.py --curves RUNDIR [RUNDIR ...] -o OUT.png
      Training and validation loss against tokens from each run directory's log.csv
      (step,tokens,train_loss,val_loss,lr,tokens_per_s,grad_norm; val_loss is empty on most rows).

Exit status: 0 ok, 1 unreadable/unsuitable input, 2 bad usage.
"""
import argparse
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PROG = "plot_routing.py"
LN2 = math.log(2.0)


class InputError(Exception):
    pass


def _str(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, np.ndarray) and x.shape == ():
        return _str(x[()])
    return str(x)


# ---------------------------------------------------------------------------------------------------------------
# routing heatmap


def consumer_labels(rows, n_layer):
    L = 2 * n_layer
    out = []
    for r in range(rows):
        if r < L:
            out.append("l%d %s" % (r + 1, "attn" if r % 2 == 0 else "mlp"))
        else:
            out.append("out" if r == L else "c%d" % r)
    return out


def read_routing(path):
    import h5py

    if not os.path.isfile(path):
        raise InputError("%s: no such file" % path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError("%s: not a readable HDF5 file (%s)" % (path, str(e).splitlines()[0]))
    with f:
        cfg = f.get("/config")
        if cfg is None or "format" not in cfg.attrs:
            raise InputError("%s: not a wavres checkpoint or dump (no /config format attribute)" % path)
        fmt = _str(cfg.attrs["format"])
        if fmt not in ("wavres-checkpoint", "wavres-dump", "wavres-generation"):
            raise InputError("%s: not a wavres checkpoint or dump (/config format is %r)" % (path, fmt))
        meta = {k: _str(cfg.attrs[k]) if k in cfg.attrs else "?"
                for k in ("variant", "n_layer", "step", "block_sublayers", "d_model", "dataset")}
        meta["format"] = fmt
        if "alpha_mean" not in f.get("/routing", {}):
            raise InputError("%s: no /routing/alpha_mean (variant %s has no learned routing)" % (path, meta["variant"]))
        alpha = np.asarray(f["/routing/alpha_mean"][()], dtype=np.float64)
        if alpha.ndim != 2:
            raise InputError("%s: /routing/alpha_mean has shape %s, expected [L+1, n_max]" % (path, alpha.shape))
        labels = None
        if "source_labels" in f["/routing"]:
            ds = f["/routing/source_labels"]
            try:
                raw = ds.asstr()[()]
            except (TypeError, AttributeError):
                raw = ds[()]
            labels = np.vectorize(_str, otypes=[object])(np.asarray(raw))
            if labels.shape != alpha.shape:
                labels = None
        loss = None
        if fmt == "wavres-dump" and "loss" in f:
            loss = float(np.asarray(f["loss"][()]))
    return alpha, labels, meta, loss


def plot_heatmap(path, out):
    alpha, labels, meta, loss = read_routing(path)
    rows, cols = alpha.shape
    try:
        n_layer = int(meta["n_layer"])
    except ValueError:
        n_layer = (rows - 1) // 2
    ylabels = consumer_labels(rows, n_layer)

    # column labels: the first row having the maximum number of sources, else a generic index
    counts = (~np.isnan(alpha)).sum(axis=1)
    if labels is not None:
        lab_counts = np.array([sum(1 for s in row if s) for row in labels])
        ref = int(np.argmax(lab_counts))
        xlabels = [labels[ref, j] if labels[ref, j] else "#%d" % j for j in range(cols)]
    else:
        ref = int(np.argmax(counts))
        xlabels = ["#%d" % j for j in range(cols)]

    masked = np.ma.masked_invalid(alpha)
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad(color="white")

    w = min(40.0, max(6.5, 0.85 * cols + 3.0))
    h = min(40.0, max(4.5, 0.42 * rows + 2.2))
    fig, ax = plt.subplots(figsize=(w, h), dpi=110)
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=max(1e-6, float(np.nanmax(alpha)) if counts.any() else 1.0),
                   aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols))
    ax.set_xticklabels(xlabels, rotation=45 if cols > 6 else 0, ha="right" if cols > 6 else "center")
    ax.set_yticks(range(rows))
    ax.set_yticklabels(ylabels)
    ax.set_xlabel("source" + ("" if labels is not None else " (index; no /routing/source_labels)"))
    ax.set_ylabel("consumer")
    # light grid between cells
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)

    annotate = rows * cols <= 600
    small = cols > 12 or rows > 25
    fs = 6 if small else 8
    if annotate:
        for r in range(rows):
            for j in range(cols):
                a = alpha[r, j]
                if np.isnan(a):
                    continue
                txt = "%.2f" % a
                lab = labels[r, j] if labels is not None else ""
                if lab and lab != xlabels[j]:
                    txt = lab + "\n" + txt
                color = "white" if a < 0.55 * (im.norm.vmax or 1.0) else "black"
                ax.text(j, r, txt, ha="center", va="center", fontsize=fs, color=color)

    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("mean mixer weight α (batch mean)")
    title = "%s  n_layer=%s  step=%s" % (meta["variant"], meta["n_layer"], meta["step"])
    sub = "%s  (%s%s)" % (os.path.basename(path), meta["format"],
                          ", loss %.4f nats" % loss if loss is not None else "")
    ax.set_title(title + "\n" + sub, fontsize=11)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# routing over generated text (the --routing-out file of `sample`)


def char_label(b):
    if b == 32:
        return "␣"  # open box: a visible space
    if 32 < b < 127:
        return chr(b)
    return "\\x%02x" % b


def plot_over_text(path, out, consumer, max_tokens):
    import h5py

    _, labels, meta, _ = read_routing(path)
    if meta["format"] != "wavres-generation":
        raise InputError("%s: --over-text needs the --routing-out file of `sample` (format is %s)"
                         % (path, meta["format"]))
    with h5py.File(path, "r") as f:
        alpha = np.asarray(f["/routing/alpha"][()], dtype=np.float64)  # [tokens, L+1, n_max]
        text = bytes(np.asarray(f["/generation/text"][()], dtype=np.uint8))
    n, rows, _ = alpha.shape
    c = rows - 1 if consumer is None else consumer
    if not 0 <= c < rows:
        raise InputError("%s: --consumer must be in [0, %d], got %d" % (path, rows - 1, c))
    n = min(n, max_tokens)
    a = alpha[:n, c, :]
    cols = [j for j in range(a.shape[1]) if not np.all(np.isnan(a[:, j]))]
    a = a[:, cols].T  # sources x tokens
    ylab = [labels[c, j] if labels is not None and labels[c, j] else "#%d" % j for j in cols]
    w = min(60.0, max(6.5, 0.16 * n + 2.5))
    h = min(30.0, max(3.0, 0.35 * len(cols) + 1.8))
    fig, ax = plt.subplots(figsize=(w, h), dpi=110)
    im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_xticklabels([char_label(b) for b in text[:n]], fontsize=7, family="monospace")
    ax.set_yticks(range(len(cols)))
    ax.set_yticklabels(ylab)
    ax.set_xlabel("generated character")
    ax.set_ylabel("source")
    name = consumer_labels(rows, (rows - 1) // 2)[c]
    ax.set_title("%s  n_layer=%s  step=%s: mixer weights of consumer %s per generated character"
                 % (meta["variant"], meta["n_layer"], meta["step"], name), fontsize=10)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    cb.set_label("α")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# loss curves


def _float(s):
    s = (s or "").strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_log(rundir):
    path = rundir if os.path.isfile(rundir) else os.path.join(rundir, "log.csv")
    if not os.path.isfile(path):
        raise InputError("%s: no log.csv" % rundir)
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"step", "tokens", "train_loss", "val_loss"}
            if reader.fieldnames is None or not need.issubset(reader.fieldnames):
                raise InputError("%s: not a wavres log.csv (columns %s, need %s)"
                                 % (path, reader.fieldnames, ",".join(sorted(need))))
            by_step = {}
            for row in reader:
                step = _float(row.get("step"))
                tok = _float(row.get("tokens"))
                if step is None or tok is None:
                    continue
                by_step[int(step)] = (tok, _float(row.get("train_loss")), _float(row.get("val_loss")))
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror or e))
    # a resumed run appends; a later row for the same step supersedes the earlier one
    steps = sorted(by_step)
    tok = np.array([by_step[s][0] for s in steps], dtype=np.float64)
    tr = np.array([np.nan if by_step[s][1] is None else by_step[s][1] for s in steps], dtype=np.float64)
    va = np.array([np.nan if by_step[s][2] is None else by_step[s][2] for s in steps], dtype=np.float64)
    return tok, tr, va


def run_names(rundirs):
    names = [os.path.basename(os.path.normpath(d)) or d for d in rundirs]
    names = [n[:-len(".csv")] if n.endswith(".csv") else n for n in names]
    if len(set(names)) < len(names):  # ambiguous: fall back to the paths as given
        names = [os.path.normpath(d) for d in rundirs]
    return names


def smooth(y, window):
    if window <= 1 or len(y) < 3:
        return y
    ok = ~np.isnan(y)
    yy = np.where(ok, y, 0.0)
    k = np.ones(window)
    num = np.convolve(yy, k, mode="same")
    den = np.convolve(ok.astype(np.float64), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def plot_curves(rundirs, out):
    runs = [read_log(d) for d in rundirs]
    names = run_names(rundirs)
    if all(len(t) == 0 for t, _, _ in runs):
        raise InputError("no rows in any log.csv")
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    from matplotlib.lines import Line2D

    handles = []
    for i, ((tok, tr, va), name) in enumerate(zip(runs, names)):
        c = colors[i % len(colors)]
        has_tr = bool(np.any(~np.isnan(tr)))
        if has_tr:
            ax.plot(tok, tr, color=c, alpha=0.25, linewidth=0.7)
            window = max(1, len(tok) // 60)
            if window > 1:
                ax.plot(tok, smooth(tr, window), color=c, linewidth=1.1, linestyle="--")
        vm = ~np.isnan(va)
        if vm.any():
            ax.plot(tok[vm], va[vm], color=c, linewidth=2.0, marker="o", markersize=3.5)
        last = ""
        if vm.any():
            last = "  (val %.4f)" % va[vm][-1]
        handles.append(Line2D([0], [0], color=c, linewidth=2.5, label=name + last))
    handles.append(Line2D([0], [0], color="0.3", linewidth=2.0, marker="o", markersize=3.5, label="validation"))
    handles.append(Line2D([0], [0], color="0.3", linewidth=1.1, linestyle="--", label="train (smoothed)"))
    handles.append(Line2D([0], [0], color="0.3", linewidth=0.7, alpha=0.4, label="train (per step)"))
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats)   [bits/char = nats / ln 2]")
    sec = ax.secondary_yaxis("right", functions=(lambda x: x / LN2, lambda x: x * LN2))
    sec.set_ylabel("bits/char")
    # zoom on the informative range: ignore the first 2% of each run when choosing the y limits
    lo, hi = [], []
    for tok, tr, va in runs:
        if len(tok) == 0:
            continue
        cut = tok[0] + 0.02 * (tok[-1] - tok[0])
        sel = np.concatenate([tr[tok >= cut], va[tok >= cut]])
        sel = sel[~np.isnan(sel)]
        if len(sel):
            lo.append(np.min(sel))
            hi.append(np.percentile(sel, 99.5))
    if lo:
        y0, y1 = min(lo), max(hi)
        margin = 0.05 * max(y1 - y0, 1e-3)
        ax.set_ylim(y0 - margin, y1 + margin)
    ax.grid(True, color="0.9")
    ax.set_title("training and validation loss")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv):
    p = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s CKPT -o OUT.png\n       %(prog)s GEN.h5 --over-text [--consumer C] -o OUT.png\n"
              "       %(prog)s --curves RUNDIR [RUNDIR ...] -o OUT.png",
        description="Routing heatmap of a wavres checkpoint/dump, or loss curves of run directories.")
    p.add_argument("inputs", nargs="+", metavar="CKPT|RUNDIR")
    p.add_argument("--curves", action="store_true", help="plot loss curves from RUNDIR/log.csv")
    p.add_argument("--over-text", action="store_true",
                   help="per generated character, from the --routing-out file of `sample`")
    p.add_argument("--consumer", type=int, default=None, metavar="C",
                   help="with --over-text: consumer index (0 = sublayer 1, L = output; default L)")
    p.add_argument("--max-tokens", type=int, default=200, metavar="N",
                   help="with --over-text: the first N generated characters (default 200)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.png")
    a = p.parse_args(argv)
    if not a.curves and len(a.inputs) != 1:
        p.error("the heatmap takes exactly one CKPT (use --curves for run directories)")
    if a.curves and a.over_text:
        p.error("--curves and --over-text exclude each other")
    if a.max_tokens < 1:
        p.error("--max-tokens must be at least 1")
    try:
        if a.curves:
            plot_curves(a.inputs, a.out)
        elif a.over_text:
            plot_over_text(a.inputs[0], a.out, a.consumer, a.max_tokens)
        else:
            plot_heatmap(a.inputs[0], a.out)
    except InputError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: %s: %s" % (PROG, e.filename or a.out, e.strerror or e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
