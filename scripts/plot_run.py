#!/usr/bin/python3
"""Plots of attnsim stats files (schema attnsim.stats/1).

usage: /usr/bin/python3 scripts/plot_run.py STATS.json [MORE.json ...] [--prefix P] [--labels a,b]
                                           [--formats png,svg]

Writes
  P_energy.{png,svg}    energy per module as stacked bars, one bar per stats file
                        (static energy hatched on top of each module's dynamic energy)
  P_filtered.{png,svg}  filtered_ratio per layer and head as a heatmap, one per stats file

P defaults to the first stats file without its .json. Needs Debian's python3-matplotlib.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# One colour per module, stable across plots (SEMANTICS §7 module names).
MODULE_ORDER = ["dram", "sram", "qk_unit", "comparator", "reuse_buffer", "softmax", "av_unit",
                "skim_controller", "tree_engine", "lsh_unit", "lowrank_unit", "gemm_engine"]


def module_colors():
    cmap = plt.get_cmap("tab20")
    return {m: cmap(i % 20) for i, m in enumerate(MODULE_ORDER)}


def load_stats(path):
    with open(path) as f:
        stats = json.load(f)
    if stats.get("schema") != "attnsim.stats/1":
        sys.exit(f"plot_run.py: {path}: not an attnsim.stats/1 file")
    return stats


def modules_of(all_stats):
    present = set()
    for s in all_stats:
        present.update(s.get("energy_pj", {}).get("by_module", {}).keys())
    ordered = [m for m in MODULE_ORDER if m in present]
    return ordered + sorted(present - set(ordered))


def save(fig, prefix, name, formats):
    written = []
    for fmt in formats:
        path = f"{prefix}_{name}.{fmt}"
        # No date in the SVG metadata: the same stats give the same file.
        meta = {"Date": None} if fmt == "svg" else None
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata=meta)
        written.append(path)
    plt.close(fig)
    return written


def energy_figure(all_stats, labels, title="Energy per module"):
    """Stacked bars: one bar per run, one segment per module (dynamic, then static hatched), in uJ."""
    colors = module_colors()
    modules = modules_of(all_stats)
    width = max(4.0, 0.55 * len(all_stats) + 2.5)
    fig, ax = plt.subplots(figsize=(width, 4.2))
    bottoms = [0.0] * len(all_stats)
    xs = list(range(len(all_stats)))
    for m in modules:
        for part, hatch in (("dynamic", None), ("static", "///")):
            heights = [s["energy_pj"]["by_module"].get(m, {}).get(part, 0.0) / 1e6 for s in all_stats]
            ax.bar(xs, heights, bottom=bottoms, color=colors.get(m, "grey"), hatch=hatch,
                   edgecolor="white", linewidth=0.4, label=m if part == "dynamic" else None)
            bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center",
                       fontsize=8)
    ax.set_ylabel("energy (uJ)")
    ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    handles, names = handles[::-1], names[::-1]  # top of the stack first, as drawn
    handles.append(matplotlib.patches.Patch(facecolor="white", edgecolor="black", hatch="///"))
    names.append("static (hatched)")
    ax.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def filtered_matrix(stats):
    layers = stats["filter"]["by_layer"]
    return [[h["filtered_ratio"] for h in layer["by_head"]] for layer in layers]


def filtered_figure(all_stats, labels):
    n = len(all_stats)
    fig, axes = plt.subplots(1, n, figsize=(max(4.0, 3.6 * n), 3.6), squeeze=False)
    image = None
    for ax, stats, label in zip(axes[0], all_stats, labels):
        m = filtered_matrix(stats)
        image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        layers, heads = len(m), len(m[0]) if m else 0
        if layers * heads <= 144:
            for l in range(layers):
                for h in range(heads):
                    ax.text(h, l, f"{m[l][h]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if m[l][h] < 0.6 else "black")
        ax.set_xticks(range(heads))
        ax.set_yticks(range(layers))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"{label}: filtered {stats['filter']['filtered_ratio']:.1%}", fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="filtered_ratio", shrink=0.9)
    return fig


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stats", nargs="+", help="stats JSON files (attnsim run --out)")
    p.add_argument("--prefix", help="output path prefix (default: the first stats file without .json)")
    p.add_argument("--labels", help="comma-separated bar labels (default: file names)")
    p.add_argument("--formats", default="png,svg", help="comma-separated formats (default png,svg)")
    a = p.parse_args(argv)
    all_stats = [load_stats(path) for path in a.stats]
    labels = a.labels.split(",") if a.labels else [os.path.splitext(os.path.basename(s))[0] for s in a.stats]
    if len(labels) != len(all_stats):
        sys.exit("plot_run.py: --labels needs one label per stats file")
    prefix = a.prefix or os.path.splitext(a.stats[0])[0]
    formats = a.formats.split(",")
    written = save(energy_figure(all_stats, labels), prefix, "energy", formats)
    written += save(filtered_figure(all_stats, labels), prefix, "filtered", formats)
    for w in written:
        print(w)


if __name__ == "__main__":
    main(sys.argv[1:])
