#!/usr/bin/python3
"""One command from data to the paper comparison (docs/reproduction.md).

usage: scripts/reproduce.sh [--quick] [--jobs N]   (this file does the work)

Steps, each printing one progress line:
  1. train the models, or reuse the cached weights (scripts/train_models.py);
  2. the Transkimmer and FCA models (scripts/train_skim.py) and the learned LATTE
     thresholds (scripts/learn_thresholds.py), cached likewise;
  3. accuracy in the loop: every mechanism in the model's forward pass
     (scripts/eval_mechanisms.py);
  4. export traces of test inputs (scripts/export_trace.py), with the mechanism tensors
     the PyTorch side used, and choose each mechanism's operating point from step 3;
  5. simulate every (config, trace) pair with `attnsim run`, in parallel;
  6. plots (docs/img/reproduction_*.png) and the tables of docs/reproduction.md (the part
     between the `reproduce:begin` and `reproduce:end` markers is rewritten).

--quick: the cut-down models, fewer test inputs and points, everything under
results/quick/ (docs untouched): the chain CI runs so that it keeps working.
"""
import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import eval_mechanisms  # noqa: E402
import export_trace  # noqa: E402
import mechanisms  # noqa: E402
import models  # noqa: E402
import tasks  # noqa: E402
import train_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Progress:
    def __init__(self, steps):
        self.steps, self.done, self.start = steps, 0, time.time()

    def step(self, text):
        self.done += 1
        print(f"[{self.done}/{self.steps}] {text} ({time.time() - self.start:.0f} s so far)", flush=True)


class Setup:
    def __init__(self, quick, jobs, attnsim):
        self.quick = quick
        self.jobs = jobs
        self.attnsim = attnsim
        self.models_dir = os.path.join(ROOT, "results/quick/models" if quick else "workloads/models")
        self.out = os.path.join(ROOT, "results/quick/reproduce" if quick else "results/reproduce")
        self.inputs = {"vit": 3, "charlm": 2} if quick else {"vit": 8, "charlm": 4}
        self.windows = 32 if quick else 256
        os.makedirs(os.path.join(self.out, "traces"), exist_ok=True)
        os.makedirs(os.path.join(self.out, "runs"), exist_ok=True)
        os.makedirs(os.path.join(self.out, "configs"), exist_ok=True)


# ------------------------------------------------------------------ operating points


def best_within(records, mechanism, baseline, budget, metric):
    """The record of `mechanism` with the most savings whose quality loss stays within
    `budget` (accuracy points lost, or perplexity added) of `baseline`."""
    pool = [r for r in records if r["mechanism"] == mechanism]
    ok = [r for r in pool if (baseline - r["quality"] <= budget if metric == "accuracy"
                              else r["quality"] - baseline <= budget)]
    if not ok:
        return None
    return max(ok, key=lambda r: (1 - r["kept_fraction"], r["quality"] if metric == "accuracy" else -r["quality"]))


def quality_loss(metric, baseline, value):
    return baseline - value if metric == "accuracy" else value - baseline


# ------------------------------------------------------------------------ exporting


def test_inputs(model, count):
    """`count` test inputs spread over the test set, as (batch of one, description)."""
    if model.cfg.kind == "vit":
        data = tasks.Digits()
        ids = np.linspace(0, len(data.test_x) - 1, count).round().astype(int)
        return [(data.test_x[i:i + 1], f"digits test image {i}") for i in ids]
    data = tasks.Fortunes()
    windows = tasks.test_windows(data.test, model.cfg.tokens)
    ids = np.linspace(0, len(windows) - 1, count).round().astype(int)
    return [(windows[i:i + 1, :-1], f"fortunes test window {i}") for i in ids]


def export(model, inputs, path, name, tensors, policy=None, description=""):
    """One F32 trace of `inputs` (the forward pass `policy` shapes, if given) carrying
    `tensors` ({name: float array}) and what the policy recorded."""
    extra = {k: (v, "F32") for k, v in tensors.items()}

    def carried():
        out = dict(extra)
        if policy is not None:
            out.update(policy.trace_tensors(0))
        return out
    run = (lambda x: model(x, policy)) if policy is not None else None
    with torch.no_grad():
        export_trace.export_trace(model, inputs, path, model_name=name, causal=model.cfg.causal, dtype="f32",
                                  force=True, extra_tensors=carried, run=run, metadata={"data": description})


def early_term_thetas(trace_path, tau, bits=8):
    """comparator.theta [L][H] for one trace: ceil(tau sqrt(d) / (s_q s_k)) with the scales
    the simulator computes on that trace (SEMANTICS section 2)."""
    import safetensors_io
    tensors, _ = safetensors_io.read(trace_path)
    out, l = [], 0
    while f"layers.{l}.q" in tensors:
        q = torch.from_numpy(tensors[f"layers.{l}.q"].astype(np.float32))[None]
        k = torch.from_numpy(tensors[f"layers.{l}.k"].astype(np.float32))[None]
        _, sq = mechanisms.quantize(q, bits)
        _, sk = mechanisms.quantize(k, bits)
        theta = mechanisms.early_term_theta(tau, q.shape[-1], sq[0], sk[0])
        out.append([int(t) for t in theta.tolist()])
        l += 1
    return out


# ------------------------------------------------------------------------ simulating


def run_attnsim(setup, job):
    """job: (name, config dict, trace path) -> stats dict (or raises with attnsim's message)."""
    name, config, trace = job
    cfg_path = os.path.join(setup.out, "configs", name + ".json")
    out_path = os.path.join(setup.out, "runs", name + ".json")
    with open(cfg_path, "w") as f:
        json.dump(config, f, indent=1)
    done = subprocess.run([setup.attnsim, "run", "--config", cfg_path, "--trace", trace, "--out", out_path,
                           "-q", "-j", "1"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"attnsim run {name}: {done.stderr.strip()}")
    with open(out_path) as f:
        return json.load(f)


def simulate_all(setup, jobs):
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=setup.jobs) as pool:
        futures = {pool.submit(run_attnsim, setup, job): job[0] for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
    return results


def preset(name, **overrides):
    with open(os.path.join(ROOT, "configs", name + ".json")) as f:
        config = json.load(f)
    config.pop("description", None)
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        config.setdefault(section, {})[key] = value
    return config


# ------------------------------------------------------------------------ experiments


def choose_points(records, kind):
    """Each mechanism's operating point from the PyTorch sweep: the most savings within the
    paper's quality budget (LATTE: 0.87 accuracy points / +0.86 perplexity; LeOPArd: 0.2
    points; Treeformer, Scatterbrain and the LSH part: 1 point / +1 perplexity)."""
    metric = records[0]["metric"]
    base = next(r["quality"] for r in records if r["mechanism"] == "int8_dense")
    latte_budget = 0.0087 if metric == "accuracy" else 0.86
    small = 0.002 if metric == "accuracy" else 0.2
    one = 0.01 if metric == "accuracy" else 1.0
    return metric, base, {
        "latte": best_within(records, "latte", base, latte_budget, metric),
        "early_term": best_within(records, "early_term", base, small, metric),
        "tree": best_within(records, "tree", base, one, metric),
        "lsh": best_within(records, "lsh", base, one, metric),
        "scatterbrain": best_within(records, "scatterbrain", base, one, metric),
    }


def fallback(records, mechanism):
    """The point with the best quality when none meets the budget (reported as a miss)."""
    pool = [r for r in records if r["mechanism"] == mechanism]
    metric = pool[0]["metric"]
    return max(pool, key=lambda r: r["quality"] if metric == "accuracy" else -r["quality"])


def jobs_for_model(setup, kind, model, points, records, learned_config):
    """Exports the traces of `kind` and returns the simulation jobs [(name, config, trace)]
    and what each job stands for."""
    depth = (points["tree"] or fallback(records, "tree"))["setting"]
    sb = points["scatterbrain"] or fallback(records, "scatterbrain")
    cluster, features = sb["setting"]
    lsh_only = points["lsh"] or fallback(records, "lsh")
    keys = eval_mechanisms.sample_keys(model)
    tensors = mechanisms.mechanism_tensors(model, keys, depth=depth, rounds=eval_mechanisms.LSH_ROUNDS,
                                           features=eval_mechanisms.SPARSE_FEATURES)
    tensors = eval_mechanisms.performer_prefix(tensors, features)
    latte = points["latte"] or fallback(records, "latte")
    early = points["early_term"] or fallback(records, "early_term")
    jobs = []
    for i, (x, description) in enumerate(test_inputs(model, setup.inputs[kind])):
        trace = os.path.join(setup.out, "traces", f"{kind}-{i}.safetensors")
        export(model, x, trace, train_models.NAMES[kind], tensors, description=description)
        tag = f"{kind}-{i}"
        jobs += [
            (f"{tag}-dense", preset("dense-baseline"), trace),
            (f"{tag}-dense-serial", preset("latte", **{"qk_unit.mode": "dense"}), trace),
            (f"{tag}-latte-uniform", preset("latte", **{"comparator.gamma": latte["setting"]}), trace),
            (f"{tag}-leopard", preset("leopard", **{"comparator.theta": early_term_thetas(trace, early["setting"])}), trace),
            (f"{tag}-treeformer", preset("treeformer", **{"tree_engine.depth": depth}), trace),
            (f"{tag}-lsh", preset("scatterbrain", **{"lsh_unit.cluster_size": lsh_only["setting"],
                                                     "lowrank_unit.enabled": False,
                                                     "lowrank_unit.features": None}), trace),
            (f"{tag}-lsh-sb", preset("scatterbrain", **{"lsh_unit.cluster_size": cluster,
                                                        "lowrank_unit.enabled": False,
                                                        "lowrank_unit.features": None}), trace),
            (f"{tag}-lowrank", preset("scatterbrain", **{"candidates.source": "none",
                                                         "lowrank_unit.features": features}), trace),
            (f"{tag}-scatterbrain", preset("scatterbrain", **{"lsh_unit.cluster_size": cluster,
                                                              "lowrank_unit.features": features}), trace),
        ]
        if learned_config:
            jobs.append((f"{tag}-latte-learned", learned_config, trace))
    for _, config, _ in jobs:  # None removes a key (features then come from the trace)
        for section in list(config.values()):
            if isinstance(section, dict):
                for key in [k for k, v in section.items() if v is None]:
                    del section[key]
    return jobs, {"depth": depth, "cluster_size": cluster, "features": features, "lsh_cluster": lsh_only["setting"],
                  "latte_gamma": latte["setting"], "early_term_tau": early["setting"]}
