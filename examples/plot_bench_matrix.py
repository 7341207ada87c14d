#!/usr/bin/python3
"""The plot and the tables of a benchmark matrix (examples/bench_matrix.sh --out DIR).

    plot_bench_matrix.py DIR

Reads DIR/matrix.csv ('#' lines describing the run, then the column names, then one row per
Open MPI variant x width x size: the variant and qtopo_bench's --csv columns) and writes
  DIR/speedup.png   one panel per width: speedup (the variant's time / qtopo's time, same
                    run) against the buffer size, both on log axes, one line per variant
  DIR/README.md     how the run was made and how to repeat it, the speedup table and the
                    times and errors behind it
"""

import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"tuned": "tuned default", "ring": "tuned ring", "han": "han"}


def human(nbytes):
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale and nbytes % scale == 0:
            return "%d%s" % (nbytes // scale, unit)
    return str(nbytes)


def label(variant):
    return LABELS.get(variant, variant)


def read_matrix(path):
    """The '#' lines (without '# ') and the rows as dicts, in file order."""
    comments, lines = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                comments.append(line[1:].strip())
            elif line.strip():
                lines.append(line)
    rows = list(csv.DictReader(lines))
    for r in rows:
        r["bytes"] = int(r["bytes"])
        r["bits"] = int(r["bits"])
        for k in ("qtopo_us", "ompi_us", "speedup", "max_rel_err"):
            r[k] = float(r[k])
    return comments, rows


def ordered(values):
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def plot(out, rows):
    widths = ordered(r["bits"] for r in rows)
    variants = ordered(r["variant"] for r in rows)
    sizes = sorted({r["bytes"] for r in rows})
    speedups = [r["speedup"] for r in rows if r["speedup"] > 0]
    lo, hi = min(speedups + [1.0]), max(speedups + [1.0])
    ncols = min(3, len(widths))
    nrows = (len(widths) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 0.4 + 3.3 * nrows),
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(widths):]:
        ax.set_visible(False)
    for ax, bits in zip(axes.flat, widths):
        for variant in variants:
            pts = sorted((r["bytes"], r["speedup"]) for r in rows
                         if r["bits"] == bits and r["variant"] == variant)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        label="vs " + label(variant))
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([human(s) for s in sizes], fontsize=8)
        ax.minorticks_off()
        ax.set_ylim(lo / 1.3, hi * 1.3)
        ax.set_title("%d bits%s" % (bits, " (lossless)" if bits == 32 else ""), fontsize=10)
        ax.set_xlabel("buffer size (fp32 bytes)")
        ax.grid(alpha=0.3, which="both")
    for row in axes:
        row[0].set_ylabel("speedup (Open MPI time / qtopo time)")
    steps = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    if hi / lo > 8:
        steps = (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
    ticks = [t for t in steps if lo / 1.3 <= t <= hi * 1.3]
    axes[0][0].set_yticks(ticks)
    axes[0][0].set_yticklabels(["%g×" % t for t in ticks])
    legend = {}
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend),
               fontsize=9)
    fig.tight_layout(rect=(0, 0.35 / (0.4 + 3.3 * nrows), 1, 1))
    fig.savefig(os.path.join(out, "speedup.png"), dpi=110)
    plt.close(fig)


def table(rows, cell):
    """Markdown: one line per width x size, one column per variant, cell(row) in each."""
    variants = ordered(r["variant"] for r in rows)
    by_key = {(r["bits"], r["bytes"], r["variant"]): r for r in rows}
    keys = ordered((r["bits"], r["bytes"]) for r in rows)
    keys.sort(key=lambda k: (-k[0], k[1]))
    lines = ["| bits | size | " + " | ".join(label(v) for v in variants) + " |",
             "|---|---|" + "---|" * len(variants)]
    for bits, nbytes in keys:
        cells = [cell(by_key[bits, nbytes, v]) if (bits, nbytes, v) in by_key else "–"
                 for v in variants]
        lines.append("| %d | %s | %s |" % (bits, human(nbytes), " | ".join(cells)))
    return lines


def write_readme(out, comments, rows):
    run = [c for c in comments if not c.startswith(("run:", "failed:"))]
    command = next((c[len("command: "):] for c in comments if c.startswith("command: ")), "")
    failed = [c for c in comments if c.startswith("failed:")]
    text = ["# Benchmark matrix: %s" % os.path.basename(os.path.normpath(out)), ""]
    text += ["Made by `examples/bench_matrix.sh` (see the README's *Benchmarks*):", ""]
    text += ["    " + c for c in run]
    text += ["", "Run it again (from the top of the tree, after `make`):", "",
             "    " + command, "",
             "Plot and tables again from `matrix.csv`:", "",
             "    examples/bench_matrix.sh --plot-only --out %s" % out, ""]
    if failed:
        text += ["Runs that failed (their variant's remaining widths were skipped):", ""]
        text += ["* " + c for c in failed] + [""]
    text += ["![speedup vs size](speedup.png)", "",
             "Speedup: each Open MPI variant's time / qtopo's time, measured side by side in "
             "the same run (`>1` = qtopo faster):", ""]
    text += table(rows, lambda r: "%.2f×" % r["speedup"])
    text += ["", "Times in ms per call, qtopo / the variant (each run times qtopo again):", ""]
    text += table(rows, lambda r: "%.3g / %.3g" % (r["qtopo_us"] / 1e3, r["ompi_us"] / 1e3))
    text += ["", "Max relative error of qtopo's result (max |error| / max |exact sum|) and "
             "what ran (`qtopo` lossless, `q-<bits>` quantized, `prev` handed on, `mixed`):",
             ""]
    text += table(rows, lambda r: "%.2g %s" % (r["max_rel_err"], r["ran"]))
    text += ["", "The runs' exact command lines:", ""]
    text += ["    " + c[len("run: "):] for c in comments if c.startswith("run: ")]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(text) + "\n")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = sys.argv[1]
    comments, rows = read_matrix(os.path.join(out, "matrix.csv"))
    if not rows:
        print("plot_bench_matrix: no rows in %s/matrix.csv" % out, file=sys.stderr)
        return 1
    plot(out, rows)
    write_readme(out, comments, rows)
    print("plot_bench_matrix: wrote %s/speedup.png and %s/README.md" % (out, out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
