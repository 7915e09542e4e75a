#!/usr/bin/python3
"""Plots of an attnsim sweep directory (attnsim sweep / attnsim merge, docs/sweeps.md).

usage: /usr/bin/python3 scripts/plot_sweep.py DIR [--out PLOTDIR] [--x KEY] [--formats png,svg]

Reads DIR/summary.csv (and DIR/points/<hash>.json for the energy breakdown) and writes to
PLOTDIR (default DIR/plots):
  pareto_front.{png,svg}      cycles vs rel_error and energy vs rel_error; the Pareto front
                              of each trace drawn as a line, the dense baseline as a star
  speedup_over_baseline.{png,svg}  speedup and energy reduction over the baseline against the
                              first swept key (--x), one line per value of the other keys
  energy_breakdown.{png,svg}  energy per module as stacked bars, one bar per point
Only points with status ok are drawn. Needs Debian's python3-matplotlib.
"""
import argparse
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_run import energy_figure, save  # noqa: E402

METRICS = ["cycles", "energy_pj", "filtered_ratio", "exact_ratio", "rel_error", "mass_recall",
           "wall_seconds", "speedup", "energy_reduction"]
FIXED = ["hash", "role", "status", "trace"]


def read_summary(directory):
    path = os.path.join(directory, "summary.csv")
    if not os.path.exists(path):
        sys.exit(f"plot_sweep.py: {path}: missing (run attnsim sweep or attnsim merge {directory})")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        keys = [c for c in reader.fieldnames if c not in FIXED + METRICS + ["error"]]
        rows = []
        for r in reader:
            for m in METRICS:
                r[m] = float(r[m]) if r.get(m) not in (None, "") else math.nan
            rows.append(r)
    return keys, rows


def value_of(text):
    """A swept value as a number when it is one (for ordering and log axes)."""
    try:
        return float(text)
    except ValueError:
        return text


def point_label(row, keys):
    if row["role"] == "baseline":
        return "baseline"
    return " ".join(f"{k.split('.')[-1]}={row[k]}" for k in keys)


def pareto(rows, x, y):
    """Rows no other row beats on both x and y (both minimized), sorted by x."""
    front = []
    for a in rows:
        dominated = any(b[x] <= a[x] and b[y] <= a[y] and (b[x] < a[x] or b[y] < a[y]) for b in rows)
        if not dominated:
            front.append(a)
    return sorted(front, key=lambda r: (r[x], r[y]))


def pareto_figure(ok, keys):
    traces = sorted({r["trace"] for r in ok})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    color_key = keys[0] if keys else None
    for ax, (metric, scale, unit) in zip(axes, [("cycles", 1.0, "cycles"), ("energy_pj", 1e-6, "energy (uJ)")]):
        for ti, trace in enumerate(traces):
            rows = [r for r in ok if r["trace"] == trace and not math.isnan(r[metric]) and not math.isnan(r["rel_error"])]
            points = [r for r in rows if r["role"] != "baseline"]
            base = [r for r in rows if r["role"] == "baseline"]
            marker = "os^Dv<>"[ti % 7]
            if color_key and len(traces) == 1:
                values = [value_of(r[color_key]) for r in points]
                numeric = all(isinstance(v, float) for v in values)
                order = sorted(set(values), key=lambda v: (isinstance(v, str), v))
                colors = [order.index(v) for v in values]
                sc = ax.scatter([r[metric] * scale for r in points], [r["rel_error"] for r in points], c=colors,
                                cmap="viridis", marker=marker, s=28, zorder=3)
                if ax is axes[1]:
                    cbar = fig.colorbar(sc, ax=ax, ticks=range(len(order)))
                    cbar.ax.set_yticklabels([f"{v:g}" if numeric else str(v) for v in order], fontsize=7)
                    cbar.set_label(color_key)
            else:
                ax.scatter([r[metric] * scale for r in points], [r["rel_error"] for r in points], marker=marker,
                           s=28, zorder=3, label=trace)
            front = pareto(rows, metric, "rel_error")
            ax.step([r[metric] * scale for r in front], [r["rel_error"] for r in front], where="post",
                    color="crimson", lw=1.2, zorder=2, label="Pareto front" if ti == 0 else None)
            if base:
                ax.scatter([r[metric] * scale for r in base], [r["rel_error"] for r in base], marker="*", s=160,
                           color="black", zorder=4, label="dense baseline" if ti == 0 else None)
        ax.set_xlabel(unit)
        ax.set_ylabel("rel_error")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("cycles vs rel_error")
    axes[1].set_title("energy vs rel_error")
    fig.tight_layout()
    return fig


def speedup_figure(ok, keys, x_key):
    points = [r for r in ok if r["role"] != "baseline" and not math.isnan(r["speedup"])]
    if not points:
        return None
    others = [k for k in keys if k != x_key]
    groups = {}
    for r in points:
        groups.setdefault((r["trace"],) + tuple(r[k] for k in others), []).append(r)
    xs_all = [value_of(r[x_key]) for r in points]
    numeric = all(isinstance(v, float) for v in xs_all)
    categories = sorted(set(map(str, xs_all)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    traces = {r["trace"] for r in points}
    for ax, metric, title in zip(axes, ["speedup", "energy_reduction"],
                                 ["speedup over the dense baseline", "energy reduction over the dense baseline"]):
        for group, rows in sorted(groups.items(), key=lambda kv: [value_of(v) if isinstance(value_of(v), float) else 0 for v in kv[0][1:]]):
            rows = sorted(rows, key=lambda r: value_of(r[x_key]) if numeric else categories.index(r[x_key]))
            xs = [value_of(r[x_key]) if numeric else categories.index(r[x_key]) for r in rows]
            label_parts = [f"{k.split('.')[-1]}={v}" for k, v in zip(others, group[1:])]
            if len(traces) > 1:
                label_parts.insert(0, group[0])
            ax.plot(xs, [r[metric] for r in rows], marker="o", ms=4, label=" ".join(label_parts) or None)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        if numeric and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels(categories)
        ax.set_xlabel(x_key)
        ax.set_ylabel(metric + " (x)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if others or len(traces) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def energy_breakdown_figure(directory, ok, keys, limit=40):
    stats, labels = [], []
    for r in ok[:limit]:
        with open(os.path.join(directory, "points", r["hash"] + ".json")) as f:
            stats.append(json.load(f))
        labels.append(point_label(r, keys))
    title = "Energy per module" + (f" (first {limit} points)" if len(ok) > limit else "")
    return energy_figure(stats, labels, title)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="sweep directory")
    p.add_argument("--out", help="directory for the plots (default DIR/plots)")
    p.add_argument("--x", help="swept key on the x axis of the speedup plot (default: the first)")
    p.add_argument("--formats", default="png,svg", help="comma-separated formats (default png,svg)")
    a = p.parse_args(argv)
    keys, rows = read_summary(a.dir)
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        sys.exit(f"plot_sweep.py: {a.dir}: no finished points to plot")
    out = a.out or os.path.join(a.dir, "plots")
    os.makedirs(out, exist_ok=True)
    formats = a.formats.split(",")
    written = save(pareto_figure(ok, keys), os.path.join(out, "pareto"), "front", formats)
    x_key = a.x or (keys[0] if keys else None)
    if x_key and x_key not in keys:
        sys.exit(f"plot_sweep.py: --x {x_key}: not a swept key ({', '.join(keys)})")
    fig = speedup_figure(ok, keys, x_key) if x_key else None
    if fig is None:
        print("plot_sweep.py: no speedup plot (the sweep has no baseline or no swept key)", file=sys.stderr)
    else:
        written += save(fig, os.path.join(out, "speedup"), "over_baseline", formats)
    written += save(energy_breakdown_figure(a.dir, ok, keys), os.path.join(out, "energy"), "breakdown", formats)
    for w in written:
        print(w)


if __name__ == "__main__":
    main(sys.argv[1:])
