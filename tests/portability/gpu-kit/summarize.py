#!/usr/bin/env python3
"""Writes the GPU kit's one-page report from run.sh's step logs.

    summarize.py --logs DIR --out DIR [--budget S] [--elapsed S] [--rehearsal]

Reads DIR/steps.tsv (name, status, seconds, note) and each step's log; writes OUT/summary.md (every figure and
every failure) and OUT/results.json (the same, for scripts), and OUT/train_loss.png when matplotlib is there.
Needs only the standard library (matplotlib optional).
"""
import argparse
import csv
import json
import os
import re

VARIANTS = ["prenorm", "full", "block", "wav"]


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def compare_figures(text):
    """Worst relative error per tensor group (params, grads, loss, routing) from wavres-compare's lines."""
    worst, fails, n = {}, [], 0
    for line in text.splitlines():
        m = re.match(r"^(OK|FAIL)\s+(\S+)\s.*\brel\s+(\S+)", line)
        if not m:
            continue
        n += 1
        ok, path, rel = m.group(1) == "OK", m.group(2), m.group(3)
        group = path.strip("/").split("/")[0]
        try:
            r = float(rel)
        except ValueError:
            r = None
        if r is not None and (group not in worst or r > worst[group][0]):
            worst[group] = (r, path)
        if not ok:
            fails.append(line.strip())
    tail = [l for l in text.splitlines() if l.startswith("wavres-compare:")]
    return dict(tensors=n, worst={g: dict(rel=v[0], tensor=v[1]) for g, v in worst.items()}, failures=fails,
                result=tail[-1] if tail else "")


def boost_result(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for l in reversed(lines):
        if "No errors detected" in l or "failure" in l.lower() and "detected" in l:
            return l
    return lines[-1] if lines else "(no output)"


def fmt_ms(s):
    return f"{1e3 * s:.1f} ms" if s is not None else "—"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=int, default=0)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--rehearsal", action="store_true")
    a = ap.parse_args()

    steps = []
    with open(os.path.join(a.logs, "steps.tsv")) as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) >= 3:
                steps.append(dict(name=row[0], status=row[1], seconds=float(row[2] or 0),
                                  note=row[3] if len(row) > 3 else ""))
    log = {s["name"]: read(os.path.join(a.logs, s["name"] + ".log")) for s in steps}
    machine = read(os.path.join(a.out, "machine.txt"))
    res = dict(rehearsal=a.rehearsal, budget_s=a.budget, elapsed_s=a.elapsed, steps=steps, bench={}, torch={},
               compare={}, tests={}, train=None)

    for s in steps:
        n, t = s["name"], log.get(s["name"], "")
        if n.startswith("bench_") and s["status"] == "ok":
            res["bench"][n[len("bench_"):]] = last_json(t)
        elif n.startswith("torch_") and s["status"] == "ok":
            res["torch"][n[len("torch_"):]] = last_json(t)
        elif n.startswith("compare_"):
            res["compare"][n[len("compare_"):]] = compare_figures(t)
        elif n.startswith("test_"):
            res["tests"][n] = dict(status=s["status"], result=boost_result(t) if t else s["note"])

    train_csv = os.path.join(a.out, "train_log.csv")
    if os.path.exists(train_csv):
        with open(train_csv) as f:
            rows = list(csv.DictReader(f))
        if rows:
            def col(r, *names):
                for k in names:
                    if k in r and r[k] not in ("", "nan"):
                        try:
                            return float(r[k])
                        except ValueError:
                            pass
                return None
            vals = [(col(r, "step"), col(r, "val_loss")) for r in rows if col(r, "val_loss") is not None]
            res["train"] = dict(steps=col(rows[-1], "step"), train_loss=col(rows[-1], "train_loss", "loss"),
                                first_train_loss=col(rows[0], "train_loss", "loss"),
                                val=vals[-1] if vals else None,
                                tokens_per_s=col(rows[-1], "tokens_per_s", "tok_per_s"))
            try:
                import matplotlib
                matplotlib.use("Agg")
                import matplotlib.pyplot as plt
                fig, ax = plt.subplots(figsize=(6, 3.5))
                xs = [col(r, "step") for r in rows]
                ax.plot(xs, [col(r, "train_loss", "loss") for r in rows], label="train")
                if vals:
                    ax.plot([v[0] for v in vals], [v[1] for v in vals], "o-", label="validation")
                ax.set_xlabel("step")
                ax.set_ylabel("loss (nats)")
                ax.set_title("exp_wav_l48_text8, paper width, 90 s on the GPU")
                ax.legend()
                fig.tight_layout()
                fig.savefig(os.path.join(a.out, "train_loss.png"), dpi=100)
            except Exception as e:  # matplotlib is optional
                res["train"]["plot"] = f"not drawn: {e}"

    # ---- summary.md --------------------------------------------------------------------------------------------
    bad = [s for s in steps if s["status"] in ("failed", "timeout")]
    skipped = [s for s in steps if s["status"] in ("skipped", "no GPU")]
    L = []
    L.append("# wavres GPU kit: " + ("rehearsal (no GPU)" if a.rehearsal else "results"))
    L.append("")
    L.append(f"{len(steps)} steps in {a.elapsed} s (budget {a.budget} s): "
             f"{sum(s['status'] == 'ok' for s in steps)} ok, {len(bad)} failed or timed out, "
             f"{len(skipped)} not run.")
    L.append("")
    L.append("## Machine")
    L.append("```")
    L.extend(machine.strip().splitlines()[:14])
    L.append("```")
    if bad:
        L.append("")
        L.append("## Failures")
        for s in bad:
            tail = [l for l in log.get(s["name"], "").splitlines() if l.strip()][-6:]
            L.append(f"- **{s['name']}**: {s['status']} ({s['note']}, {s['seconds']:.0f} s)")
            for l in tail:
                L.append(f"    {l[:200]}")
    L.append("")
    L.append("## Correctness")
    for n, t in res["tests"].items():
        L.append(f"- `{n}`: {t['status']} — {t['result']}")
    if res["compare"]:
        L.append("")
        L.append("| dump | tensors | worst rel. params | worst rel. grads | loss | routing | result |")
        L.append("|---|---|---|---|---|---|---|")
        for k, c in res["compare"].items():
            w = c["worst"]
            g = lambda key: f"{w[key]['rel']:.2e}" if key in w else "—"
            L.append(f"| {k} | {c['tensors']} | {g('params')} | {g('grads')} | {g('loss')} | {g('routing')} | "
                     f"{c['result'].replace('wavres-compare: ', '')} |")
    L.append("")
    L.append("## Speed")
    if res["bench"] or res["torch"]:
        L.append("| variant | layers | shape | wavres step | tokens/s | device MiB | torch eager | torch.compile | "
                 "wavres / eager |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for l in (12, 48):
            for v in VARIANTS:
                b = res["bench"].get(f"{v}_l{l}")
                e = res["torch"].get(f"eager_{v}_l{l}")
                c = res["torch"].get(f"compile_{v}_l{l}")
                if not (b or e or c):
                    continue
                shape = (f"D{b['d_model']} T{b['seq_len']} B{b['batch']}" if b else
                         f"D{(e or c)['d_model']} T{(e or c)['seq_len']} B{(e or c)['batch']}")
                ratio = f"{e['median_step_s'] / b['median_step_s']:.2f}× faster" if b and e else "—"
                ours = (f"{fmt_ms(b['median_step_s'])} | {b['tokens_per_s']:.0f} | {b['device_mib']:.0f}" if b
                        else "— | — | —")
                L.append(f"| {v} | {l} | {shape} | {ours} | {fmt_ms(e and e['median_step_s'])} | "
                         f"{fmt_ms(c and c['median_step_s'])} | {ratio} |")
        tf = res["bench"].get("wav_l48_tf32")
        base = res["bench"].get("wav_l48")
        if tf:
            L.append("")
            L.append(f"WAV v1, 48 layers, TF32 gemms (--gemm-precision tf32): {fmt_ms(tf['median_step_s'])}"
                     + (f" against {fmt_ms(base['median_step_s'])} in FP32" if base else ""))
        for k, b in res["bench"].items():
            if b and b.get("top_kernels"):
                L.append("")
                L.append(f"Top kernels, bench_{k} (one profiled step, fenced per kernel: "
                         f"{1e3 * b['profiled_step_s']:.1f} ms):")
                L.append("")
                for kk in b["top_kernels"]:
                    L.append(f"- `{kk['name']}` {kk['ms']:.2f} ms, {kk['calls']} calls")
    else:
        L.append("No GPU figures (no GPU on this machine)." if a.rehearsal or not res["bench"] else "")
    cpu = res["torch"].get("cpu_rehearsal")
    if cpu:
        L.append("")
        L.append(f"PyTorch baseline on the CPU (rehearsal): torch {cpu['torch_version']}, {cpu['variant']} "
                 f"{cpu['n_layer']} layers, median step {fmt_ms(cpu['median_step_s'])}, final loss "
                 f"{cpu['final_loss']:.4f}")
    if res["train"]:
        t = res["train"]
        L.append("")
        L.append("## Training (exp_wav_l48_text8, paper width, 90 s)")
        L.append(f"steps {t['steps']:.0f}; train loss {t['first_train_loss']} → {t['train_loss']}; "
                 f"last validation {t['val']}; tokens/s {t['tokens_per_s']}. Curve: train_loss.png, "
                 f"train_log.csv.")
    if skipped:
        L.append("")
        L.append("## Not run")
        L.append(", ".join(f"{s['name']} ({s['status']})" for s in skipped))
    L.append("")
    L.append("## Steps")
    L.append("| step | status | seconds | note |")
    L.append("|---|---|---|---|")
    for s in steps:
        L.append(f"| {s['name']} | {s['status']} | {s['seconds']:.1f} | {s['note']} |")
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
