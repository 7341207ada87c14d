#!/usr/bin/python3
"""Tables and plots from the logs of run_experiments.sh.

    plot_results.py DIR [--target ACC]

Reads DIR/logs/<setting>.log (qtopo_train output) and writes
  DIR/results.csv         one row per measurement point (eval and epoch lines)
  DIR/summary.md          per setting: final accuracy, its difference to the best Open MPI
                          run, training time, time split per epoch, time to the target
                          accuracy and the speed-up over the best Open MPI run
  DIR/acc_vs_epoch.png    test accuracy vs epoch (fraction of the run), one panel per group
  DIR/acc_vs_time.png     test accuracy vs training time, one panel per group
  DIR/time_split.png      stacked bars: compute / communication / coding per epoch (Fig. 4)
The target accuracy defaults to the final accuracy of the best Open MPI run minus one point
("best" = the one with the shorter training time).
"""

import csv
import glob
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GROUPS = [("ompi", "Open MPI"), ("ratio", "share of 8-bit calls (Fig. 3)"),
          ("bits", "bit width, nearest"), ("ef", "bit width + error feedback"),
          ("rounding", "stochastic rounding")]
KV = re.compile(r"(\w+)=([-0-9.e+a-f]+)")


def group_of(name):
    for prefix, group in (("ompi-", "ompi"), ("ratio-", "ratio"), ("bits-", "bits"),
                          ("ef-", "ef"), ("stoch-", "rounding")):
        if name.startswith(prefix):
            return group
    return "other"


def parse(path):
    """Points (step, train_s, test_acc), per-epoch values and the final line of one log."""
    run = {"points": [], "epochs": [], "final": None, "steps_per_epoch": 1}
    done = 0
    with open(path, errors="replace") as f:
        for line in f:
            kv = dict(KV.findall(line))
            if line.startswith("qtopo_train:"):
                run["steps_per_epoch"] = int(re.search(r"steps/epoch=(\d+)", line).group(1))
            elif line.startswith("epoch 0 "):
                run["points"].append((0, 0.0, float(kv["test_acc"])))
            elif line.startswith("eval "):
                run["points"].append((int(kv["step"]), float(kv["train_s"]),
                                      float(kv["test_acc"])))
            elif line.startswith("epoch "):
                done += int(kv["steps"])
                run["epochs"].append({k: float(v) for k, v in kv.items()})
                run["points"].append((done, float(kv["train_s"]), float(kv["test_acc"])))
            elif line.startswith("final "):
                run["final"] = {k: float(v) for k, v in kv.items()}
    return run


def time_to(run, target):
    for step, secs, acc in run["points"]:
        if acc >= target:
            return secs
    return None


def main():
    out = sys.argv[1]
    target = None
    if "--target" in sys.argv:
        target = float(sys.argv[sys.argv.index("--target") + 1])
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "logs", "*.log"))):
        name = os.path.basename(path)[:-4]
        run = parse(path)
        if run["final"] is not None:
            runs[name] = run
    if not runs:
        print("plot_results: no finished runs in %s/logs" % out)
        return 1
    ompi = [n for n in runs if group_of(n) == "ompi"]
    best = min(ompi, key=lambda n: runs[n]["final"]["seconds"]) if ompi else None
    if target is None and best:
        target = runs[best]["final"]["test_acc"] - 0.01
    write_csv(out, runs)
    write_summary(out, runs, best, target)
    plot_curves(out, runs, "acc_vs_epoch.png", epoch_axis=True)
    plot_curves(out, runs, "acc_vs_time.png", epoch_axis=False)
    plot_split(out, runs)
    return 0


def write_csv(out, runs):
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "group", "step", "train_s", "test_acc"])
        for name, run in sorted(runs.items()):
            for step, secs, acc in run["points"]:
                w.writerow([name, group_of(name), step, "%.3f" % secs, "%.4f" % acc])


def split(run):
    """Mean per epoch: compute, communication (allreduce minus coding), coding seconds."""
    ep = run["epochs"]
    n = max(len(ep), 1)
    comp = sum(e["compute_s"] for e in ep) / n
    coding = sum(e["coding_s"] for e in ep) / n
    comm = sum(e["allreduce_s"] for e in ep) / n - coding
    return comp, comm, coding


def order_key(name):
    groups = [g for g, _ in GROUPS]
    g = group_of(name)
    return (groups.index(g) if g in groups else 99, ORDER_HINT.get(name, 50), name)


ORDER_HINT = {"bits-32": 0, "bits-16": 1, "bits-8": 2, "bits-4": 3, "bits-2": 4, "bits-1": 5,
              "ef-16": 1, "ef-8": 2, "ef-4": 3, "ef-2": 4, "ef-1": 5,
              "stoch-8": 2, "stoch-4": 3, "stoch-2": 4}


def write_summary(out, runs, best, target):
    ref = runs[best]["final"] if best else None
    ref_t = time_to(runs[best], target) if best else None
    lines = ["| setting | final test acc | vs %s (points) | train s | per epoch: compute / "
             "comm / coding s | time to %.4f (s) | speed-up vs %s |" % (best, target or 0, best),
             "|---|---|---|---|---|---|---|"]
    for name in sorted(runs, key=order_key):
        f = runs[name]["final"]
        comp, comm, coding = split(runs[name])
        t = time_to(runs[name], target) if target else None
        diff = "%+.2f" % (100 * (f["test_acc"] - ref["test_acc"])) if ref else "-"
        speed = "%.2fx" % (ref_t / t) if t and ref_t else "-"
        lines.append("| %s | %.4f | %s | %.1f | %.2f / %.2f / %.2f | %s | %s |" % (
            name, f["test_acc"], diff, f["seconds"], comp, comm, coding,
            "%.1f" % t if t else "not reached", speed))
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot_curves(out, runs, fname, epoch_axis):
    present = [(g, title) for g, title in GROUPS if any(group_of(n) == g for n in runs)]
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.8), squeeze=False)
    refs = [n for n in runs if group_of(n) == "ompi"]
    for ax, (g, title) in zip(axes[0], present):
        names = sorted([n for n in runs if group_of(n) == g], key=order_key)
        if g != "ompi":
            names = refs + names
        for n in names:
            pts = runs[n]["points"]
            spe = runs[n]["steps_per_epoch"]
            xs = [p[0] / spe if epoch_axis else p[1] for p in pts]
            style = "--" if group_of(n) == "ompi" and g != "ompi" else "-"
            ax.plot(xs, [p[2] for p in pts], style, marker=".", label=n)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch" if epoch_axis else "training time (s)")
        ax.set_ylabel("test accuracy")
        lo = min(p[2] for n in names for p in runs[n]["points"][1:]) if names else 0
        ax.set_ylim(max(0.0, lo - 0.02), None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, fname), dpi=110)
    plt.close(fig)


def plot_split(out, runs):
    names = sorted(runs, key=order_key)
    parts = [split(runs[n]) for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    bottom = [0.0] * len(names)
    for k, (label, color) in enumerate([("compute", "tab:blue"),
                                        ("communication", "tab:orange"),
                                        ("coding (qtopo)", "tab:green")]):
        vals = [p[k] for p in parts]
        ax.bar(names, vals, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("seconds per epoch (mean over ranks)")
    ax.set_title("time split of an epoch")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "time_split.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
