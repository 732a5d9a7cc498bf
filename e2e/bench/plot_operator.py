#!/usr/bin/python3
"""Plots the operator benchmark's results.json (e2e/bench/operator): cold start time and RSS
against the number of clusters N (log x), ours beside the controller-runtime reference, one
line per operator and replicas value.

    plot_operator.py results.json operator.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"ours": "tab:blue", "reference": "tab:orange"}
LABEL = {"ours": "memcached-operator (C++)", "reference": "controller-runtime reference"}


def series(medians, field):
    """{(operator, replicas): [(n, value), ...]} from the medians."""
    out = {}
    for key, ops in medians.items():
        fields = dict(part.split("=") for part in key.split())
        n, replicas = int(fields["N"]), int(fields["replicas"])
        for op, fig in ops.items():
            out.setdefault((op, replicas), []).append((n, fig[field]))
    return {k: sorted(v) for k, v in out.items()}


def main(src, dst):
    with open(src) as f:
        res = json.load(f)
    medians = res["medians"]
    panels = [
        ("cold_start_children_s", "operator start → every child exists (s)"),
        ("cold_start_available_s", "operator start → every cluster Available (s)"),
        ("idle_rss_mb", f"RSS {res['config']['idle_s']:.0f} s after start (MB)"),
        ("peak_rss_available_mb", "peak RSS over the cold start (MB)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (field, title) in zip(axes.flat, panels):
        for (op, replicas), points in sorted(series(medians, field).items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", color=STYLE.get(op), linestyle="-" if replicas == 0 else "--",
                    label=f"{LABEL.get(op, op)}, replicas {replicas}")
        ax.set_xscale("log")
        ns = sorted({n for pts in series(medians, field).values() for n, _ in pts})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("clusters (N)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Operator benchmark: medians of {res['config']['runs']} run(s) per point")
    fig.tight_layout()
    fig.savefig(dst, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
