#!/usr/bin/python3
"""The memory-system sweep of docs/memory.md, on the BERT-base-shaped benchmark trace.

usage: /usr/bin/python3 scripts/memory_sweep.py [--attnsim build/attnsim] [--jobs N]
           [--trace results/bench/bert-base.safetensors] [--out results/memory] [--no-docs]

Design points (every one an `attnsim run` with quality off: the memory knobs change no
filter decision, so quality is that of the same config without them):
- dense: the bit-serial LATTE unit with every key (`configs/latte.json`, qk_unit.mode =
  dense) and the bit-parallel baseline (`configs/dense-baseline.json`);
- LATTE: `configs/latte.json`;
each at query blocks Qb = 1, 2, 4, 8 with the same lanes (L = 64) and with the same adder
trees (Qb x L = 64), and LATTE with the reuse buffer's ports unlimited, 2 or 1 per bank
(16 banks, the default, and 64); at L = 64 also dense and LATTE with the K buffer's ports
(sram.ports = 1 on 64 and 16 banks). Writes <out>/points/<name>.json (stats), <out>/table.md,
docs/img/memory_sweep.png and the part of docs/memory.md between the `memory:begin` and
`memory:end` markers (not with --no-docs).
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import doc_markers  # noqa: E402
BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"
QB = [1, 2, 4, 8]
PORTS = [None, 2, 1]


def points():
    """[(name, config file, {key: value})]."""
    out = []
    for qb in QB:
        for lanes, family in ((64, "L64"), (64 // qb, "trees64")):
            if family == "trees64" and qb == 1:
                continue  # the same point as L64
            base = {"qk_unit.query_block": qb, "qk_unit.lanes": lanes}
            out.append((f"dense-serial-{family}-qb{qb}", "configs/latte.json", dict(base, **{"qk_unit.mode": "dense"})))
            for ports in PORTS:
                for banks in (16, 64):
                    if ports is None and banks == 64:
                        continue  # unlimited ports: the banks do not matter
                    sets = dict(base, **{"reuse_buffer.banks": banks})
                    if ports is not None:
                        sets["reuse_buffer.ports"] = ports
                    tag = "unl" if ports is None else f"p{ports}b{banks}"
                    out.append((f"latte-{family}-qb{qb}-{tag}", "configs/latte.json", sets))
            # The K buffer's ports (sram.ports; the default 64 banks, and 16), reuse ports unlimited.
            if family == "L64":
                for banks, mapping in ((64, "row"), (16, "row"), (64, "striped")):
                    ksets = dict(base, **{"sram.ports": 1, "sram.banks": banks})
                    tag = f"k1b{banks}" + ("s" if mapping == "striped" else "")
                    if mapping == "striped":
                        ksets["sram.mapping"] = '"striped"'
                    out.append((f"latte-{family}-qb{qb}-{tag}", "configs/latte.json", ksets))
                    out.append((f"dense-serial-{family}-qb{qb}-{tag}", "configs/latte.json",
                                dict(ksets, **{"qk_unit.mode": "dense"})))
            # The skewed mapping on the default banks with one port.
            out.append((f"latte-{family}-qb{qb}-p1b16s", "configs/latte.json",
                        dict(base, **{"reuse_buffer.banks": 16, "reuse_buffer.ports": 1,
                                      "reuse_buffer.mapping": "skewed"})))
    for qb in QB:
        out.append((f"dense-parallel-qb{qb}", "configs/dense-baseline.json", {"qk_unit.query_block": qb}))
    return out


def run(attnsim, trace, out_dir, point):
    name, config, sets = point
    path = os.path.join(out_dir, "points", name + ".json")
    cmd = [attnsim, "run", "--config", os.path.join(ROOT, config), "--trace", trace, "--out", path, "-q",
           "-j", "1", "--set", "quality.enabled=false"]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    done = subprocess.run(cmd, capture_output=True, text=True)  # always: the binary may have changed
    if done.returncode != 0:
        raise SystemExit(f"memory_sweep: {name}: {done.stderr.strip()}")
    with open(path) as f:
        return name, json.load(f)


def summary(stats):
    c, e = stats["cycles"], stats["energy_pj"]
    by = c["by_module"]
    return {"cycles": c["total"], "qk_busy": by["qk_unit"]["busy"], "qk_stall": by["qk_unit"]["stall"],
            "reuse_busy": by.get("reuse_buffer", {}).get("busy", 0),
            "sram_reads": stats["counters"]["sram"]["read_words"],
            "energy_uj": e["total"] / 1e6,
            "sram_uj": (e["by_module"]["sram"]["dynamic"] + e["by_module"]["sram"]["static"]) / 1e6}


def table(results):
    rows = ["| design point | Qb | L | reuse ports | K-buffer ports | cycles | QK busy | QK stall | SRAM reads (words) | "
            "SRAM energy (uJ) | energy (uJ) | LATTE speed-up over dense (same Qb, L, K ports) |", "|" + "---|" * 12]
    for name, (config, sets) in sorted(results["meta"].items(), key=lambda kv: order_key(kv[0])):
        s = results["summary"][name]
        qb, lanes = sets.get("qk_unit.query_block", 1), sets.get("qk_unit.lanes", 64 if "parallel" not in name else 8)
        kports = f"{sets['sram.ports']} x {sets['sram.banks']} banks" if "sram.ports" in sets else "unlimited"
        if sets.get("sram.mapping") == '"striped"':
            kports += ", striped"
        if name.startswith("latte"):
            family = name.split("-")[1]
            ksuffix = "-" + name.split("-")[-1] if "sram.ports" in sets else ""
            dense = results["summary"][f"dense-serial-{family if qb > 1 else 'L64'}-qb{qb}{ksuffix}"]
            versus = f"{dense['cycles'] / s['cycles']:.2f}x"
            ports = "unlimited" if "reuse_buffer.ports" not in sets else f"{sets['reuse_buffer.ports']} x {sets['reuse_buffer.banks']} banks"
            if sets.get("reuse_buffer.mapping") == "skewed":
                ports += ", skewed"
            label = "LATTE"
        else:
            versus, ports = "", ""
            label = "dense bit-parallel" if "parallel" in name else "dense bit-serial"
        rows.append(f"| {label} | {qb} | {lanes} | {ports} | {kports} | {s['cycles']} | {s['qk_busy']} | {s['qk_stall']} | "
                    f"{s['sram_reads']} | {s['sram_uj']:.1f} | {s['energy_uj']:.1f} | {versus} |")
    return "\n".join(rows)


def order_key(name):
    kind = 0 if name.startswith("dense-parallel") else 1 if name.startswith("dense-serial") else 2
    parts = name.split("-")
    qb = int([p for p in parts if p.startswith("qb")][0][2:])
    family = 0 if "L64" in name else 1
    port_rank = {"unl": 0, "p2b16": 1, "p2b64": 2, "p1b16": 3, "p1b64": 4, "p1b16s": 5, "k1b64": 6,
                 "k1b16": 7, "k1b64s": 8}.get(parts[-1], 0)
    return (kind, family, qb, port_rank)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = results["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2))
    for ax, family, title in ((axes[0], "L64", "same lanes (L = 64, Qb adder trees each)"),
                              (axes[1], "trees64", "same adder trees (Qb x L = 64)")):
        def series(prefix, suffix=""):
            out = []
            for qb in QB:
                fam = "L64" if qb == 1 else family
                out.append(s[f"{prefix}-{fam}-qb{qb}{suffix}"]["cycles"] / 1e6)
            return out
        ax.plot(QB, series("dense-serial"), "k--o", label="dense bit-serial")
        if family == "L64":
            ax.plot(QB, series("dense-serial", "-k1b16"), "k:x", label="dense bit-serial, K buffer 1 port x 16 banks")
            ax.plot(QB, series("latte", "-k1b16"), "-x", label="LATTE, K buffer 1 port x 16 banks")
        for tag, style, label in (("unl", "-o", "LATTE, reuse ports unlimited"),
                                  ("p2b16", "-s", "LATTE, 2 ports x 16 banks"),
                                  ("p1b16", "-^", "LATTE, 1 port x 16 banks"),
                                  ("p1b64", "-v", "LATTE, 1 port x 64 banks"),
                                  ("p1b16s", "-D", "LATTE, 1 port x 16 banks, skewed")):
            ax.plot(QB, series("latte", "-" + tag), style, label=label)
        ax.plot(QB, [s[f"dense-parallel-qb{qb}"]["cycles"] / 1e6 for qb in QB], ":", color="gray",
                label="dense bit-parallel (L = 8)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(QB)
        ax.set_xticklabels([str(q) for q in QB])
        ax.set_xlabel("query block Qb")
        ax.set_ylabel("cycles (millions)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_docs(text):
    doc = os.path.join(ROOT, "docs", "memory.md")
    with open(doc) as f:
        new = doc_markers.splice(f.read(), BEGIN, END, text)
    if new is None:
        raise SystemExit(f"memory_sweep: {doc}: no {BEGIN} / {END} markers")
    doc_markers.write_atomically(doc, new)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--attnsim", default=os.path.join(ROOT, "build", "attnsim"))
    p.add_argument("--trace", default=os.path.join(ROOT, "results", "bench", "bert-base.safetensors"))
    p.add_argument("--out", default=os.path.join(ROOT, "results", "memory"))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-docs", action="store_true", help="write only under --out")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if not os.path.exists(args.trace):  # the benchmark's trace (scripts/bench.sh)
        done = subprocess.run([args.attnsim, "trace", "synth", "--out", args.trace, "--layers", "12", "--heads", "12",
                               "--tokens", "512", "--head-dim", "64", "--seed", "7", "--skim-keep", "0.9",
                               "--model", "bert-base-shaped"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"memory_sweep: {args.trace}: {done.stderr.strip()}")
    os.makedirs(os.path.join(args.out, "points"), exist_ok=True)
    pts = points()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        stats = dict(pool.map(lambda pt: run(args.attnsim, args.trace, args.out, pt), pts))
    results = {"meta": {name: (config, sets) for name, config, sets in pts},
               "summary": {name: summary(s) for name, s in stats.items()}}
    md = table(results)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    if not args.no_docs:
        plot(results, os.path.join(ROOT, "docs", "img", "memory_sweep.png"))
        write_docs(f"_Generated by `scripts/memory_sweep.py` ({len(pts)} runs of "
                   f"`{os.path.relpath(args.trace, ROOT)}`, quality off); do not edit between the markers._\n\n"
                   "![cycles against the query block](img/memory_sweep.png)\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
