#!/usr/bin/python3
"""Accuracy in the loop: each mechanism inside the model's own forward pass, with the
simulator's rules (scripts/mechanisms.py SimPolicy), against what it saves.

usage: /usr/bin/python3 scripts/eval_mechanisms.py [--quick] [--models-dir DIR] [--out results/eval]
           [--only latte,early_term,tree,lsh,lowrank,scatterbrain,skim]

For the digits ViT (test accuracy, 360 images) and the fortunes character LM (test
perplexity; a fixed evenly spaced subset of the test windows, the same for every point:
`--windows`, default 256 of 1082) it evaluates:

| mechanism | swept | savings reported |
|---|---|---|
| int8 dense (the accelerator without approximation) | - | - |
| LATTE (`qk_unit.mode = latte`) | one uniform gamma | filtered ratio |
| LeOPArd (`early_term`) | a logit threshold tau, as each input's integer theta | filtered ratio |
| Treeformer TF (`candidates.source = tree`) | depth D, trees built from training keys | candidate fraction, attention MACs |
| LSH sparse (`lsh`) | cluster size c, 2 rounds | candidate fraction |
| Performer low-rank (`none` + low-rank) | features m | attention memory |
| Scatterbrain (`lsh` + low-rank) | c and m together | attention memory |
| Transkimmer, FCA | the trained skim models (scripts/train_skim.py), if present | skim ratio |

Definitions (per head, summed over layers, heads and test inputs):
- filtered ratio = keys the comparator dropped / candidates (SEMANTICS section 3);
- candidate fraction = candidates / keys the queries may see (causal: j <= i);
- attention MACs = QK and AV multiply-accumulates: 2 d per kept key, plus for trees the
  routing (D d per query and per key) and for the low-rank unit what the simulator's
  low-rank unit counts (docs/candidates.md): a = (m/2) d + d + m d + m per query and per
  key (features, squared norm, summaries or projection) and m + d per kept key (the
  correction); relative to dense (2 d per visible key);
- attention memory = entries held for the attention matrix: dense N x M (causal: visible
  pairs); sparse: |support|; low-rank: (N + M) m feature values + m d + m summary values;
  Scatterbrain: both. Reported as the fraction of dense.

Mechanism parameters (trees, LSH directions, Performer matrices) are built once per model
with mechanisms.mechanism_tensors (trees from the keys of 32 training inputs; seeded
Gaussian directions and matrices), so the same tensors go into the exported traces the
simulator runs. Output: `<out>/<model>.json` (one record per point) and a markdown table on
stdout.
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mechanisms  # noqa: E402
import models  # noqa: E402
import tasks  # noqa: E402
import train_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEPS = {
    "latte": [0.001, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7],
    "early_term": [-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0],
    "tree": [1, 2, 3, 4],
    "lsh": [8, 16, 32],
    "lowrank": [8, 16, 32, 64],
    "scatterbrain": [(8, 8), (16, 16), (16, 32), (32, 32)],
}
QUICK_SWEEPS = {"latte": [0.01, 0.3], "early_term": [0.0, 1.0], "tree": [1, 2], "lsh": [16],
                "lowrank": [16], "scatterbrain": [(16, 16)]}
LSH_ROUNDS = 2
SPARSE_FEATURES = 64  # the largest sweep value: one Performer matrix per head serves all m <= 64


class KeyRecorder(models.Policy):
    """Float attention that keeps each layer's keys (for building trees)."""

    def __init__(self):
        self.keys = {}

    def attend(self, q, k, v, layer, causal, active):
        self.keys.setdefault(layer, []).append(k.detach())
        return models.float_attention(q, k, v, causal, active)


def training_inputs(model, count, seed=1):
    g = torch.Generator().manual_seed(seed)
    if model.cfg.kind == "vit":
        data = tasks.Digits()
        idx = torch.randperm(len(data.train_x), generator=g)[:count]
        return data.train_x[idx]
    data = tasks.Fortunes()
    n = model.cfg.tokens
    starts = torch.randint(0, len(data.train) - n - 1, (count,), generator=g)
    return torch.stack([data.train[s:s + n] for s in starts.tolist()])


def sample_keys(model, count=32):
    """{layer: [H, count x N, d]} keys of `count` training inputs (float)."""
    rec = KeyRecorder()
    with torch.no_grad():
        model(training_inputs(model, count), rec)
    return {l: torch.cat(ks).transpose(0, 1).reshape(model.cfg.heads, -1, model.cfg.head_dim).numpy()
            for l, ks in rec.keys.items()}


def model_tensors(model, max_depth, keys=None):
    """Trees of every depth up to max_depth (keyed by depth), LSH directions, Performer W."""
    keys = keys if keys is not None else sample_keys(model)
    per_depth = {D: mechanisms.mechanism_tensors(model, keys, depth=D) for D in range(1, max_depth + 1)}
    shared = mechanisms.mechanism_tensors(model, rounds=LSH_ROUNDS, features=SPARSE_FEATURES)
    return per_depth, shared


def performer_prefix(tensors, features):
    """The first m/2 rows of each Performer matrix: m features from the shared W."""
    return {k: (v[:features // 2] if ".performer." in k else v) for k, v in tensors.items()}


class Evaluator:
    def __init__(self, model, data, windows):
        self.model, self.data, self.windows = model, data, windows
        self.kind = model.cfg.kind

    def quality(self, policy=None):
        if self.kind == "vit":
            return tasks.accuracy(self.model, self.data, policy)
        return tasks.perplexity(self.model, self.data.test, policy, windows=self.windows)

    def point(self, mechanism, setting, config, tensors=None, **policy_args):
        cfg = self.model.cfg
        start = time.time()
        policy = mechanisms.SimPolicy(config, cfg, tensors, **policy_args)
        quality = self.quality(policy)
        c = policy.counts
        inputs = len(self.data.test_x) if self.kind == "vit" else min(self.windows, (len(self.data.test) - 1) // cfg.tokens)
        n, d, m = cfg.tokens, cfg.head_dim, (config.get("lowrank_unit", {}).get("features", 0)
                                              if config.get("lowrank_unit", {}).get("enabled") else 0)
        visible = inputs * cfg.layers * cfg.heads * (n * (n + 1) // 2 if cfg.causal else n * n)
        candidates, filtered = int(c["candidates"].sum()), int(c["filtered"].sum())
        kept = candidates - filtered
        macs = 2 * d * kept
        depth = setting if mechanism == "tree" else 0
        macs += inputs * cfg.layers * cfg.heads * 2 * n * depth * d
        if m:  # the low-rank unit's count (docs/candidates.md): a per query and per key, m + d per kept key
            a = (m // 2) * d + d + m * d + m
            macs += inputs * cfg.layers * cfg.heads * 2 * n * a + kept * (m + d)
        memory = kept  # sparse or dense: the scores held
        if m:
            memory += inputs * cfg.layers * cfg.heads * (2 * n * m + m * d + m)
        record = {"mechanism": mechanism, "setting": setting, "config": config,
                  "quality": quality, "metric": "accuracy" if self.kind == "vit" else "perplexity",
                  "filtered_ratio": filtered / candidates if candidates else 0.0,
                  "candidate_fraction": candidates / visible, "kept_fraction": kept / visible,
                  "attention_macs_fraction": macs / (2 * d * visible),
                  "attention_memory_fraction": memory / visible,
                  "queries": c["queries"].sum(axis=1).tolist(), "inputs": inputs,
                  "seconds": round(time.time() - start, 2)}
        return record


def evaluate_model(kind, models_dir, quick, windows, only, log=print):
    path = train_models.model_path(kind, models_dir)
    model, meta = models.load(path)
    data = tasks.Digits() if kind == "vit" else tasks.Fortunes()
    ev = Evaluator(model, data, windows)
    sweeps = QUICK_SWEEPS if quick else SWEEPS
    records = []

    def add(rec):
        records.append(rec)
        log(f"  {kind} {rec['mechanism']:<12} {str(rec['setting']):<10} {rec['metric']} {rec['quality']:.4f}  "
            f"filtered {rec['filtered_ratio']:.3f}  candidates {rec['candidate_fraction']:.3f}  "
            f"MACs {rec['attention_macs_fraction']:.3f}  ({rec['seconds']} s)")

    start = time.time()
    float_quality = ev.quality()
    records.append({"mechanism": "float", "setting": None, "quality": float_quality,
                    "metric": "accuracy" if kind == "vit" else "perplexity"})
    log(f"  {kind} float attention: {float_quality:.4f}")
    add(ev.point("int8_dense", None, {"qk_unit": {"mode": "dense"}}))
    if "latte" in only:
        for g in sweeps["latte"]:
            add(ev.point("latte", g, {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": g}}))
    if "early_term" in only:
        for tau in sweeps["early_term"]:
            add(ev.point("early_term", tau, {"qk_unit": {"mode": "early_term"}}, theta_logit=tau))
    needs_tensors = {"tree", "lsh", "lowrank", "scatterbrain"} & set(only)
    if needs_tensors:
        per_depth, shared = model_tensors(model, max(sweeps["tree"]))
    if "tree" in only:
        for D in sweeps["tree"]:
            add(ev.point("tree", D, {"qk_unit": {"mode": "dense"}, "candidates": {"source": "tree"},
                                     "tree_engine": {"depth": D}}, per_depth[D]))
    if "lsh" in only:
        for c in sweeps["lsh"]:
            add(ev.point("lsh", c, {"qk_unit": {"mode": "dense"}, "candidates": {"source": "lsh"},
                                    "lsh_unit": {"rounds": LSH_ROUNDS, "cluster_size": c}}, shared))
    if "lowrank" in only:
        for m in sweeps["lowrank"]:
            add(ev.point("lowrank", m, {"qk_unit": {"mode": "dense"}, "candidates": {"source": "none"},
                                        "lowrank_unit": {"enabled": True, "features": m}},
                         performer_prefix(shared, m)))
    if "scatterbrain" in only:
        for c, m in sweeps["scatterbrain"]:
            add(ev.point("scatterbrain", [c, m], {"qk_unit": {"mode": "dense"}, "candidates": {"source": "lsh"},
                                                  "lsh_unit": {"rounds": LSH_ROUNDS, "cluster_size": c},
                                                  "lowrank_unit": {"enabled": True, "features": m}},
                         performer_prefix(shared, m)))
    if "skim" in only and kind == "vit":
        records += skim_points(models_dir, data, windows, add)
    return {"model": kind, "model_file": os.path.relpath(path, ROOT), "model_metadata": meta,
            "windows": windows if kind == "charlm" else None, "records": records,
            "seconds": round(time.time() - start, 1)}


def skim_points(models_dir, data, windows, add):
    """Transkimmer and FCA points from the skim models, when scripts/train_skim.py made them."""
    out = []
    for name, config in (("transkimmer", {"qk_unit": {"mode": "dense"},
                                          "skim_controller": {"mode": "transkimmer", "source": "predictor"}}),
                         ("fca", None)):
        path = os.path.join(models_dir, f"vit-digits-{name}.safetensors")
        if not os.path.exists(path):
            continue
        model, meta = models.load(path)
        if config is None:
            keep, groups = float(meta.get("fca_keep", 0.5)), int(meta.get("fca_groups", 5))
            config = {"qk_unit": {"mode": "dense"}, "skim_controller": {"mode": "fca", "keep": keep, "groups": groups}}
        ev = Evaluator(model, data, windows)
        rec = ev.point(name, os.path.basename(path), config, model.predictor_tensors())
        add(rec)
    return out


def markdown(result):
    rows = ["| mechanism | setting | %s | filtered | candidates | attention MACs | attention memory |" % result["records"][0]["metric"],
            "|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        if r["mechanism"] == "float":
            rows.append(f"| float attention | | {r['quality']:.4f} | | | | |")
            continue
        rows.append(f"| {r['mechanism']} | {r['setting'] if r['setting'] is not None else ''} | {r['quality']:.4f} | "
                    f"{r['filtered_ratio']:.3f} | {r['candidate_fraction']:.3f} | {r['attention_macs_fraction']:.3f} | "
                    f"{r['attention_memory_fraction']:.3f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="quick models and a few points (CI)")
    parser.add_argument("--models-dir", help="default workloads/models (results/quick/models with --quick)")
    parser.add_argument("--out", default=None, help="directory for <model>.json (default results/eval)")
    parser.add_argument("--windows", type=int, default=None, help="charlm test windows (default 256; 32 with --quick)")
    parser.add_argument("--only", default="latte,early_term,tree,lsh,lowrank,scatterbrain,skim")
    parser.add_argument("--models", default="vit,charlm")
    args = parser.parse_args(argv)
    tasks.setup_torch()
    models_dir = args.models_dir or os.path.join(ROOT, "results/quick/models" if args.quick else "workloads/models")
    out = args.out or os.path.join(ROOT, "results/quick/eval" if args.quick else "results/eval")
    windows = args.windows or (32 if args.quick else 256)
    os.makedirs(out, exist_ok=True)
    only = set(args.only.split(","))
    for kind in args.models.split(","):
        if not os.path.exists(train_models.model_path(kind, models_dir)):
            print(f"eval_mechanisms.py: {train_models.model_path(kind, models_dir)}: missing "
                  f"(run scripts/train_models.py{' --quick' if args.quick else ''})", file=sys.stderr)
            return 2
        result = evaluate_model(kind, models_dir, args.quick, windows, only)
        with open(os.path.join(out, f"{kind}.json"), "w") as f:
            json.dump(result, f, indent=1)
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
