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
import multiprocessing
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import doc_markers  # noqa: E402
import eval_mechanisms  # noqa: E402
from attnsim_runner import Runner  # noqa: E402
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


def simulate_all(setup, jobs):
    """jobs [(name, config, trace)] -> {name: stats}; configs and stats under setup.out
    (configs/, runs/)."""
    return Runner(setup.attnsim, setup.out, setup.jobs, stats_dir="runs").run(
        {name: (config, trace) for name, config, trace in jobs})


def preset(name, **overrides):
    with open(os.path.join(ROOT, "configs", name + ".json")) as f:
        config = json.load(f)
    config.pop("description", None)
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        config.setdefault(section, {})[key] = value
    return config


# ------------------------------------------------------------------------ experiments


def choose_points(records):
    """Each mechanism's operating point from the PyTorch sweep: the most savings within the
    paper's quality budget (LATTE: 0.87 accuracy points / +0.86 perplexity; LeOPArd: 0.2
    points / +0.2; Treeformer, LSH, Scatterbrain: 1 point / +1 perplexity). A mechanism
    with no point inside its budget gets its best-quality point, flagged as a miss."""
    metric = records[0]["metric"]
    base = next(r["quality"] for r in records if r["mechanism"] == "int8_dense")
    budgets = {"latte": 0.0087 if metric == "accuracy" else 0.86,
               "early_term": 0.002 if metric == "accuracy" else 0.2}
    one = 0.01 if metric == "accuracy" else 1.0
    points = {}
    for mechanism in ("latte", "early_term", "tree", "lsh", "scatterbrain", "lowrank"):
        budget = budgets.get(mechanism, one)
        chosen = best_within(records, mechanism, base, budget, metric)
        points[mechanism] = dict(chosen or fallback(records, mechanism), within_budget=chosen is not None,
                                 budget=budget)
    return metric, base, points


def fallback(records, mechanism):
    """The point with the best quality (then the most savings)."""
    pool = [r for r in records if r["mechanism"] == mechanism]
    sign = 1 if pool[0]["metric"] == "accuracy" else -1
    return max(pool, key=lambda r: (sign * r["quality"], 1 - r["kept_fraction"]))


class Variant:
    """One simulated design point: the attnsim config, the same config for SimPolicy (the
    forward pass the trace is exported from), the mechanism tensors both use."""

    def __init__(self, name, config, tensors=None, theta_logit=None, plain=False, check=True):
        self.name, self.config, self.tensors = name, config, tensors or {}
        self.theta_logit, self.plain, self.check = theta_logit, plain, check


def model_variants(model, points, tensors_by_depth, shared, learned_config):
    """The attention-scope design points of one model (README of docs/reproduction.md)."""
    lsh = {k: v for k, v in shared.items() if ".lsh." in k}
    c_lsh = points["lsh"]["setting"]
    c_sb, m_sb = points["scatterbrain"]["setting"]
    m_lr = points["lowrank"]["setting"]
    depth = points["tree"]["setting"]
    sb_tensors = eval_mechanisms.performer_prefix(shared, m_sb)
    out = [
        Variant("dense", preset("dense-baseline")),
        Variant("dense-serial", preset("latte", **{"qk_unit.mode": "dense"})),
        Variant("latte-uniform", preset("latte", **{"comparator.gamma": points["latte"]["setting"]})),
        Variant("leopard", preset("leopard"), theta_logit=points["early_term"]["setting"]),
        Variant("leopard-independent", preset("leopard", **{"qk_unit.lane_sync": "independent"}),
                theta_logit=points["early_term"]["setting"]),
        Variant("treeformer", preset("treeformer", **{"tree_engine.depth": depth}), tensors_by_depth[depth]),
        Variant("lsh", preset("scatterbrain", **{"lsh_unit.cluster_size": c_lsh, "lowrank_unit.enabled": False}),
                lsh),
        Variant("lowrank", preset("scatterbrain", **{"candidates.source": "none", "lowrank_unit.features": m_lr}),
                {k: v for k, v in eval_mechanisms.performer_prefix(shared, m_lr).items() if ".performer." in k}),
        Variant("scatterbrain", preset("scatterbrain", **{"lsh_unit.cluster_size": c_sb,
                                                          "lowrank_unit.features": m_sb}), sb_tensors),
    ]
    # Scatterbrain's parts alone at its own c and m (for the error claim), unless swept above.
    if c_sb != c_lsh:
        out.append(Variant("lsh-sb", preset("scatterbrain", **{"lsh_unit.cluster_size": c_sb,
                                                               "lowrank_unit.enabled": False}), lsh))
    if m_sb != m_lr:
        out.append(Variant("lowrank-sb", preset("scatterbrain", **{"candidates.source": "none",
                                                                   "lowrank_unit.features": m_sb}),
                           {k: v for k, v in sb_tensors.items() if ".performer." in k}))
    if learned_config:
        out.append(Variant("latte-learned", learned_config))
    return out


def encoder(config, cfg):
    config = json.loads(json.dumps(config))
    config.setdefault("model", {}).update({"scope": "encoder", "d_model": cfg.d_model, "d_ff": cfg.mlp})
    return config


def skim_variants(skim_models):
    """Whole-encoder design points of the skim models: each with and without its skimming."""
    out = {}
    if "transkimmer" in skim_models:
        model, meta = skim_models["transkimmer"][:2]
        on = encoder(preset("transkimmer", **{"skim_controller.source": "predictor"}), model.cfg)
        off = encoder(preset("transkimmer", **{"skim_controller.mode": "off"}), model.cfg)
        tensors = model.predictor_tensors()
        on_gemm = json.loads(json.dumps(on))
        on_gemm["skim_controller"]["predictor_unit"] = "gemm_engine"
        out["transkimmer"] = (model, meta, [Variant("tk-off", off, check=False),
                                            Variant("tk", on, tensors),
                                            Variant("tk-gemm", on_gemm, tensors)])
    if "fca" in skim_models:
        model, meta = skim_models["fca"][:2]
        keep, groups = float(meta["fca_keep"]), int(meta.get("fca_groups", 5))
        on = encoder(preset("fca", **{"skim_controller.keep": keep, "skim_controller.groups": groups}), model.cfg)
        off = encoder(preset("fca", **{"skim_controller.mode": "off"}), model.cfg)
        # FCA pools hidden states after the attention: the simulator pools the unreduced
        # trace's rows (docs/skimming.md), so the trace is the plain forward pass.
        out["fca"] = (model, meta, [Variant("fca-off", off, plain=True, check=False),
                                    Variant("fca", on, plain=True)])
    return out


def expected_counts(policy, cfg):
    """What attnsim must report on the trace of the forward pass `policy` shaped."""
    c = policy.counts
    active = []
    for l in range(cfg.layers):
        a = policy.active.get(l)  # Transkimmer: a mask over the layer's tokens
        tokens = policy.tokens.get(l) if isinstance(policy.tokens, dict) else None  # FCA: fewer tokens
        n = cfg.tokens if tokens is None else len(tokens[0])
        active.append(n if a is None else int(a[0].sum()))
    return {"candidate_keys": int(c["candidates"].sum()), "filtered_keys": int(c["filtered"].sum()),
            "active_tokens": active}


def export_variant(setup, model, name, kind, index, x, description, variant):
    """Exports the trace of input `x` under `variant` and returns (job, expected counts);
    `name` is the trace's model name."""
    tag = f"{kind}-{index}-{variant.name}"
    trace = os.path.join(setup.out, "traces", tag + ".safetensors")
    policy = mechanisms.SimPolicy(variant.config, model.cfg, variant.tensors, record=True,
                                  theta_logit=variant.theta_logit)
    if variant.plain:
        with torch.no_grad():
            model(x, policy)
        export(model, x, trace, name, variant.tensors, description=description)
    else:
        export(model, x, trace, name, {}, policy=policy, description=description)
    config = json.loads(json.dumps(variant.config))
    if variant.theta_logit is not None:
        config["comparator"]["theta"] = early_term_thetas(trace, variant.theta_logit)
    return (tag, config, trace), (expected_counts(policy, model.cfg) if variant.check else None)


def check_run(tag, stats, expected, skim):
    """The simulator against PyTorch on the same trace: the same candidates and survivors
    (or, for skimming, the same tokens per layer). Returns a list of mismatch lines."""
    if expected is None:
        return []
    if skim:
        got = stats["skim"]["active_tokens"]
        want = expected["active_tokens"]
        return [] if got == want else [f"{tag}: active tokens per layer: attnsim {got}, PyTorch {want}"]
    bad = []
    for key in ("candidate_keys", "filtered_keys"):
        if stats["filter"][key] != expected[key]:
            bad.append(f"{tag}: {key}: attnsim {stats['filter'][key]}, PyTorch {expected[key]}")
    return bad


# ------------------------------------------------------------------------ aggregating


def module_energy(stats):
    return {m: e["dynamic"] + e["static"] for m, e in stats["energy_pj"]["by_module"].items()}


def attention_macs(stats):
    """QK and AV multiply-accumulates plus the candidate generators' and low-rank unit's;
    a bit-serial QK unit's work counts as int8-MAC equivalents: one adder-tree input is one
    1-bit x B-bit product, B of them make one MAC."""
    c = stats["counters"]
    qk = c.get("qk_unit", {})
    qk_macs = qk.get("int8_macs", 0) or qk.get("adder_tree_inputs", 0) / stats["config"]["qk_unit"]["bits"]
    return (qk_macs + c.get("av_unit", {}).get("macs", 0)
            + c.get("tree_engine", {}).get("split_macs", 0) + c.get("lowrank_unit", {}).get("macs", 0)
            + c.get("lsh_unit", {}).get("projection_macs", 0))


def total_macs(stats):
    c = stats["counters"]
    return attention_macs(stats) + c.get("gemm_engine", {}).get("macs", 0) + c.get("skim_controller", {}).get("macs", 0)


def aggregate(runs):
    """{variant: summed stats} over the inputs of one model. `runs`: {variant: [stats]}."""
    out = {}
    for variant, stats_list in runs.items():
        agg = {"inputs": len(stats_list), "cycles": 0, "energy_pj": 0.0, "energy_by_module": {},
               "candidate_keys": 0, "filtered_keys": 0, "attention_macs": 0, "total_macs": 0,
               "rel_error": [], "mass_recall": [],
               "active_tokens": stats_list[0].get("skim", {}).get("active_tokens", [])}
        for s in stats_list:
            agg["cycles"] += s["cycles"]["total"]
            agg["energy_pj"] += s["energy_pj"]["total"]
            for m, e in module_energy(s).items():
                agg["energy_by_module"][m] = agg["energy_by_module"].get(m, 0.0) + e
            agg["candidate_keys"] += s["filter"]["candidate_keys"]
            agg["filtered_keys"] += s["filter"]["filtered_keys"]
            agg["attention_macs"] += attention_macs(s)
            agg["total_macs"] += total_macs(s)
            if "rel_error" in s.get("quality", {}):
                agg["rel_error"].append(s["quality"]["rel_error"])
                agg["mass_recall"].append(s["quality"]["mass_recall"])
        agg["filtered_ratio"] = agg["filtered_keys"] / agg["candidate_keys"] if agg["candidate_keys"] else 0.0
        agg["rel_error"] = float(np.mean(agg["rel_error"])) if agg["rel_error"] else None
        agg["mass_recall"] = float(np.mean(agg["mass_recall"])) if agg["mass_recall"] else None
        out[variant] = agg
    return out


# ------------------------------------------------------------------------ steps


LEARNED = {"vit": "configs/latte-learned-vit.json", "charlm": "configs/latte-learned-charlm-budget.json"}


def learned_config_path(setup, kind):
    """The learned LATTE gammas for `kind`: the committed configs (scripts/learn_thresholds.py,
    about 30 min, not rerun here) or, in quick mode, those of the quick models."""
    if setup.quick:
        return os.path.join(ROOT, "results/quick/learned_thresholds", f"latte-learned-{kind}.json")
    return os.path.join(ROOT, LEARNED[kind])


def load_config(path):
    with open(path) as f:
        config = json.load(f)
    config.pop("description", None)
    return config


def evaluate(kind, models_dir, quick, windows, learned_path):
    """Step 3 for one model, in its own process: eval_mechanisms' sweep plus the learned
    gammas, each in the model's forward pass on the test set."""
    tasks.setup_torch()
    result = eval_mechanisms.evaluate_model(kind, models_dir, quick, windows,
                                            ["latte", "early_term", "tree", "lsh", "lowrank", "scatterbrain", "skim"],
                                            log=lambda *_: None)
    model, _ = models.load(train_models.model_path(kind, models_dir))
    data = tasks.Digits() if kind == "vit" else tasks.Fortunes()
    ev = eval_mechanisms.Evaluator(model, data, windows)
    rec = ev.point("latte_learned", os.path.relpath(learned_path, ROOT), load_config(learned_path))
    result["records"].append(rec)
    return kind, result


def quality_of(records, mechanism, setting):
    for r in records:
        if r["mechanism"] == mechanism and r["setting"] == setting:
            return r
    return None


def variant_records(records, points, learned_name):
    """The PyTorch test-set record behind each simulated variant (None when not evaluated)."""
    c_sb, m_sb = points["scatterbrain"]["setting"]
    return {"dense": quality_of(records, "int8_dense", None),
            "dense-serial": quality_of(records, "int8_dense", None),
            "latte-uniform": points["latte"], "latte-learned": quality_of(records, "latte_learned", learned_name),
            "leopard": points["early_term"], "leopard-independent": points["early_term"], "treeformer": points["tree"], "lsh": points["lsh"],
            "lsh-sb": quality_of(records, "lsh", c_sb), "lowrank": points["lowrank"],
            "lowrank-sb": quality_of(records, "lowrank", m_sb), "scatterbrain": points["scatterbrain"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="cut-down models and points, outputs under results/quick")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: all cores)")
    p.add_argument("--attnsim", default=os.path.join(ROOT, "build", "attnsim"))
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if not os.access(args.attnsim, os.X_OK):
        p.error(f"{args.attnsim}: no attnsim binary (build first: scripts/reproduce.sh does)")
    tasks.setup_torch()
    setup = Setup(args.quick, args.jobs, os.path.abspath(args.attnsim))
    progress = Progress(6)
    kinds = ("vit", "charlm")

    base_models = {k: train_models.ensure_model(k, setup.models_dir, quick=args.quick, log=lambda *_: None)
                   for k in kinds}
    trained = [k for k in kinds if base_models[k][3]]
    progress.step(f"models: {', '.join(os.path.relpath(base_models[k][2], ROOT) for k in kinds)} "
                  f"({'trained ' + ', '.join(trained) if trained else 'cached'})")

    import train_skim
    skim_models = train_skim.ensure_skim_models(setup.models_dir, quick=args.quick, log=lambda *_: None)
    if args.quick:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/learn_thresholds.py"), "--quick",
                               "--attnsim", setup.attnsim], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"reproduce: learn_thresholds.py --quick failed: {done.stderr.strip()[-500:]}")
    learned = {k: learned_config_path(setup, k) for k in kinds}
    for k, path in learned.items():
        if not os.path.exists(path):
            raise SystemExit(f"reproduce: {path}: learned thresholds missing (scripts/learn_thresholds.py --publish)")
    progress.step("skim models " + ", ".join(f"{k} ({'trained' if v[3] else 'cached'})" for k, v in skim_models.items())
                  + "; learned thresholds " + ", ".join(os.path.relpath(v, ROOT) for v in learned.values()))

    # spawn, not fork: torch's thread pools cannot be set up again in a forked child
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(args.jobs, 2),
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(evaluate, k, setup.models_dir, args.quick, setup.windows, learned[k]) for k in kinds]
        evals = dict(f.result() for f in futures)
    for k in kinds:
        with open(os.path.join(setup.out, f"eval-{k}.json"), "w") as f:
            json.dump(evals[k], f, indent=1)
    seconds = ", ".join(f"{k} {evals[k]['seconds']} s" for k in kinds)
    progress.step(f"accuracy in the loop: {sum(len(e['records']) for e in evals.values())} points ({seconds})")

    jobs, expected, context, bundle = [], {}, {}, {}
    for kind in kinds:
        model = base_models[kind][0]
        records = evals[kind]["records"]
        metric, base, points = choose_points(records)
        keys = eval_mechanisms.sample_keys(model)
        by_depth = {points["tree"]["setting"]: mechanisms.mechanism_tensors(model, keys, depth=points["tree"]["setting"])}
        shared = mechanisms.mechanism_tensors(model, rounds=eval_mechanisms.LSH_ROUNDS,
                                              features=eval_mechanisms.SPARSE_FEATURES)
        variants = model_variants(model, points, by_depth, shared, load_config(learned[kind]))
        inputs = test_inputs(model, setup.inputs[kind])
        for i, (x, description) in enumerate(inputs):
            for v in variants:
                job, want = export_variant(setup, model, train_models.NAMES[kind], kind, i, x, description, v)
                jobs.append(job)
                expected[job[0]] = (want, False)
        c_sb, m_sb = points["scatterbrain"]["setting"]
        bundle[kind] = {**by_depth[points["tree"]["setting"]], **eval_mechanisms.performer_prefix(shared, m_sb)}
        settings = {"tree_engine.depth": points["tree"]["setting"], "lsh_unit.rounds": eval_mechanisms.LSH_ROUNDS,
                    "lsh_unit.cluster_size": c_sb, "lowrank_unit.features": m_sb,
                    "comparator.gamma": points["latte"]["setting"]}
        context[kind] = {"metric": metric, "base": base, "points": points, "variants": [v.name for v in variants],
                         "settings": settings,
                         "records": variant_records(records, points, os.path.relpath(learned[kind], ROOT)),
                         "learned": os.path.relpath(learned[kind], ROOT), "inputs": [d for _, d in inputs]}
    for skim, (model, meta, variants) in skim_variants(skim_models).items():
        inputs = test_inputs(model, setup.inputs["vit"])
        for i, (x, description) in enumerate(inputs):
            for v in variants:
                job, want = export_variant(setup, model, meta.get("model", skim), skim, i, x, description, v)
                jobs.append(job)
                expected[job[0]] = (want, True)
        context[skim] = {"meta": meta, "variants": [v.name for v in variants], "inputs": [d for _, d in inputs],
                         "record": next((r for r in evals["vit"]["records"] if r["mechanism"] == skim), None),
                         "model_file": os.path.relpath(skim_models[skim][2], ROOT)}
    bundled = [] if args.quick else bundle_traces(context, base_models, skim_models, bundle)
    progress.step(f"exported {len(jobs)} traces (each test input under each design point's forward pass)"
                  + (f"; bundled {', '.join(os.path.relpath(b, ROOT) for b in bundled)}" if bundled else ""))

    stats = simulate_all(setup, jobs)
    mismatches = [line for tag, s in stats.items() for line in check_run(tag, s, *expected[tag])]
    checked = sum(1 for want, _ in expected.values() if want is not None)
    progress.step(f"simulated {len(stats)} runs; attnsim and PyTorch agree on {checked - len(mismatches)} "
                  f"of {checked} checked runs")

    summary = {"quick": args.quick, "context": context, "aggregates": {}}
    for group in context:
        runs = {}
        for tag, s in sorted(stats.items()):
            g, _, rest = tag.partition("-")
            if g == group:
                runs.setdefault(rest.split("-", 1)[1], []).append(s)
        summary["aggregates"][group] = aggregate(runs)
    with open(os.path.join(setup.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    report = write_report(setup, summary)
    progress.step(f"plots and tables: {', '.join(os.path.relpath(x, ROOT) for x in report)}")
    if mismatches:
        print("\n".join(mismatches[:20]), file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------ bundled traces


def bundle_traces(context, base_models, skim_models, points_tensors):
    """workloads/<model>.safetensors: test input 0 of each model (F16, the plain forward
    pass) with the mechanism tensors of the operating points chosen here (trees, LSH
    directions, Performer matrices; the Transkimmer predictor and hidden states), so that the
    presets run on real models without this chain (commands in docs/reproduction.md)."""
    written = []
    for kind, tensors in points_tensors.items():
        model = base_models[kind][0]
        x, description = test_inputs(model, 1)[0]
        path = os.path.join(ROOT, "workloads", train_models.NAMES[kind] + ".safetensors")
        with torch.no_grad():
            export_trace.export_trace(model, x, path, model_name=train_models.NAMES[kind], causal=model.cfg.causal,
                                      dtype="f16", force=True,
                                      extra_tensors={k: (v, "F32") for k, v in tensors.items()},
                                      metadata={"data": description, "model_file": os.path.basename(base_models[kind][2]),
                                                "operating_points": json.dumps(context[kind]["settings"])})
        written.append(path)
    if "transkimmer" in skim_models:
        model, meta = skim_models["transkimmer"][:2]
        x, description = test_inputs(model, 1)[0]
        policy = mechanisms.SimPolicy(TRANSKIMMER_POLICY, model.cfg, model.predictor_tensors(), record=True)
        path = os.path.join(ROOT, "workloads", "vit-digits-transkimmer.safetensors")
        with torch.no_grad():
            export_trace.export_trace(model, x, path, model_name=meta.get("model", "vit-digits-transkimmer"),
                                      dtype="f16", force=True, run=lambda inputs: model(inputs, policy),
                                      extra_tensors=lambda: policy.trace_tensors(0),
                                      metadata={"data": description,
                                                "model_file": os.path.basename(skim_models["transkimmer"][2])})
        written.append(path)
    return written


TRANSKIMMER_POLICY = {"qk_unit": {"mode": "dense"}, "skim_controller": {"mode": "transkimmer", "source": "predictor"}}


# ------------------------------------------------------------------------ report


BEGIN, END = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"
LABELS = {"dense": "dense baseline (bit-parallel, every key)", "dense-serial": "bit-serial LATTE unit, every key",
          "latte-uniform": "LATTE, one gamma", "latte-learned": "LATTE, learned per-head gammas",
          "leopard": "LeOPArd early termination (lock-step lanes)",
          "leopard-independent": "LeOPArd early termination (independent lanes)", "treeformer": "Treeformer TF trees", "lsh": "LSH sparse",
          "lsh-sb": "LSH sparse (Scatterbrain's c)", "lowrank": "Performer low-rank",
          "lowrank-sb": "Performer low-rank (Scatterbrain's m)", "scatterbrain": "Scatterbrain sparse + low-rank"}


def fmt_q(metric, value):
    return f"{100 * value:.2f} %" if metric == "accuracy" else f"{value:.3f}"


def fmt_loss(metric, base, value):
    return (f"{100 * (value - base):+.2f} points" if metric == "accuracy" else f"{value - base:+.3f}")


def pct(x):
    return f"{100 * x:.1f} %"


def ratio(a, b):
    return a / b if b else float("nan")


def setting_text(kind, ctx, variant):
    pts = ctx["points"]
    if variant == "latte-uniform":
        return f"gamma {pts['latte']['setting']:g}"
    if variant in ("leopard", "leopard-independent"):
        return f"tau {pts['early_term']['setting']:g} (logits)"
    if variant == "treeformer":
        return f"depth {pts['tree']['setting']}"
    if variant == "lsh":
        return f"c {pts['lsh']['setting']}, 2 rounds"
    if variant == "lsh-sb":
        return f"c {pts['scatterbrain']['setting'][0]}, 2 rounds"
    if variant == "lowrank":
        return f"m {pts['lowrank']['setting']}"
    if variant == "lowrank-sb":
        return f"m {pts['scatterbrain']['setting'][1]}"
    if variant == "scatterbrain":
        c, m = pts["scatterbrain"]["setting"]
        return f"c {c}, m {m}"
    if variant == "latte-learned":
        return f"`{ctx['learned']}`"
    return ""


def budget_note(ctx, mechanism):
    p = ctx["points"][mechanism]
    return "" if p["within_budget"] else " (no swept point within the budget: the best-quality one)"


def command(setup, tag):
    rel = os.path.relpath(setup.out, ROOT)
    return f"`build/attnsim run --config {rel}/configs/{tag}.json --trace {rel}/traces/{tag}.safetensors`"


def claims(setup, summary):
    """One row per seed claim: (claim, paper, measured, on what, command)."""
    agg, ctx = summary["aggregates"], summary["context"]
    rows = []
    for kind, paper, claim in (("vit", "85.16 % of keys filtered at a 0.87 % accuracy drop (vision)", "LATTE, vision"),
                               ("charlm", "89.91 % of keys filtered at +0.86 perplexity (language)",
                                "LATTE, language")):
        c, a = ctx[kind], agg[kind]
        learned, uniform = c["records"]["latte-learned"], c["points"]["latte"]
        text = (f"learned gammas: {pct(learned['filtered_ratio'])} filtered on the test set, "
                f"{c['metric']} {fmt_q(c['metric'], learned['quality'])} ({fmt_loss(c['metric'], c['base'], learned['quality'])} "
                f"vs 8-bit attention, every key: {fmt_q(c['metric'], c['base'])}); attnsim on {a['latte-learned']['inputs']} "
                f"exported test inputs: {pct(a['latte-learned']['filtered_ratio'])} filtered, "
                f"{ratio(a['dense-serial']['cycles'], a['latte-learned']['cycles']):.2f}x fewer cycles and "
                f"{ratio(a['dense-serial']['energy_pj'], a['latte-learned']['energy_pj']):.2f}x less energy than the same "
                f"bit-serial unit keeping every key ({ratio(a['dense']['cycles'], a['latte-learned']['cycles']):.2f}x / "
                f"{ratio(a['dense']['energy_pj'], a['latte-learned']['energy_pj']):.2f}x vs the bit-parallel dense baseline). "
                f"One gamma for all heads ({setting_text(kind, c, 'latte-uniform')}): {pct(uniform['filtered_ratio'])} at "
                f"{fmt_loss(c['metric'], c['base'], uniform['quality'])}{budget_note(c, 'latte')}")
        rows.append((claim, paper, text, f"{train_models.NAMES[kind]}, `{c['learned']}`",
                     command(setup, f"{kind}-0-latte-learned")))
    c, a = ctx["vit"], agg["vit"]
    lp = c["points"]["early_term"]
    text = (f"{setting_text('vit', c, 'leopard')}: {pct(lp['filtered_ratio'])} filtered, accuracy "
            f"{fmt_q('accuracy', lp['quality'])} ({fmt_loss('accuracy', c['base'], lp['quality'])}){budget_note(c, 'early_term')}; "
            f"attnsim: {ratio(a['dense']['cycles'], a['leopard']['cycles']):.2f}x speed-up and "
            f"{ratio(a['dense']['energy_pj'], a['leopard']['energy_pj']):.2f}x less energy vs the bit-parallel dense "
            f"baseline ({ratio(a['dense-serial']['cycles'], a['leopard']['cycles']):.2f}x / "
            f"{ratio(a['dense-serial']['energy_pj'], a['leopard']['energy_pj']):.2f}x vs bit-serial without termination; "
            f"independent lanes: {ratio(a['dense']['cycles'], a['leopard-independent']['cycles']):.2f}x / "
            f"{ratio(a['dense']['energy_pj'], a['leopard-independent']['energy_pj']):.2f}x vs the dense baseline); "
            f"language model: {pct(ctx['charlm']['points']['early_term']['filtered_ratio'])} filtered at "
            f"{fmt_loss('perplexity', ctx['charlm']['base'], ctx['charlm']['points']['early_term']['quality'])} perplexity"
            f"{budget_note(ctx['charlm'], 'early_term')}, "
            f"{ratio(agg['charlm']['dense']['cycles'], agg['charlm']['leopard']['cycles']):.2f}x / "
            f"{ratio(agg['charlm']['dense']['energy_pj'], agg['charlm']['leopard']['energy_pj']):.2f}x")
    rows.append(("LeOPArd", "1.9x speed-up, 3.9x energy reduction, < 0.2 % accuracy loss", text,
                 "vit-digits, `configs/leopard.json` with theta from tau", command(setup, "vit-0-leopard")))
    base_acc = c["base"]
    for skim, paper, label in (("transkimmer", "10.97x fewer FLOPs than BERT-base, < 1 % accuracy loss (GLUE)",
                                "Transkimmer"),
                               ("fca", "about 2x fewer FLOPs than BERT, < 1 % loss (GLUE, RACE)", "FCA")):
        if skim not in ctx:
            continue
        s, a = ctx[skim], agg[skim]
        on, off = a["tk" if skim == "transkimmer" else "fca"], a["tk-off" if skim == "transkimmer" else "fca-off"]
        rec = s["record"]
        gemm = a.get("tk-gemm")
        text = (f"attnsim, whole encoder on {on['inputs']} test images: {ratio(off['total_macs'], on['total_macs']):.2f}x "
                f"fewer MACs (predictor and pooling included), {ratio(off['cycles'], on['cycles']):.2f}x fewer cycles, "
                f"{ratio(off['energy_pj'], on['energy_pj']):.2f}x less energy"
                + (f" (predictor on the GEMM engine instead of the controller's 64 MACs: "
                   f"{ratio(off['cycles'], gemm['cycles']):.2f}x fewer cycles, "
                   f"{ratio(off['energy_pj'], gemm['energy_pj']):.2f}x less energy)" if gemm else "") + "; accuracy "
                f"{fmt_q('accuracy', rec['quality']) if rec else 'n/a'} vs {fmt_q('accuracy', base_acc)} for the model "
                f"without skimming" + (f" ({fmt_loss('accuracy', base_acc, rec['quality'])})" if rec else ""))
        rows.append((label, paper, text, f"{s['meta'].get('model', skim)} (`{s['model_file']}`), "
                     f"`configs/{'transkimmer' if skim == 'transkimmer' else 'fca'}.json`, encoder scope",
                     command(setup, f"{skim}-0-{'tk' if skim == 'transkimmer' else 'fca'}")))
    for kind in ("vit", "charlm"):
        c, a = ctx[kind], agg[kind]
        tp = c["points"]["tree"]
        text = (f"{setting_text(kind, c, 'treeformer')}: {pct(tp['candidate_fraction'])} of the keys are candidates, "
                f"{c['metric']} {fmt_q(c['metric'], tp['quality'])} ({fmt_loss(c['metric'], c['base'], tp['quality'])})"
                f"{budget_note(c, 'tree')}; attnsim: {ratio(a['dense']['attention_macs'], a['treeformer']['attention_macs']):.2f}x "
                f"fewer attention MACs (routing included), {ratio(a['dense']['cycles'], a['treeformer']['cycles']):.2f}x "
                f"fewer cycles")
        rows.append((f"Treeformer ({kind})", "about 30x fewer attention FLOPs at near-baseline accuracy", text,
                     f"{train_models.NAMES[kind]}, `configs/treeformer.json`", command(setup, f"{kind}-0-treeformer")))
    for kind in ("vit", "charlm"):
        c, a = ctx[kind], agg[kind]
        sb = a["scatterbrain"]["rel_error"]
        sp = a.get("lsh-sb", a["lsh"])["rel_error"]
        lr = a.get("lowrank-sb", a["lowrank"])["rel_error"]
        text = (f"attention output error (attnsim `rel_error`, mean over inputs) at {setting_text(kind, c, 'scatterbrain')}: "
                f"{sb:.3f} vs {sp:.3f} sparse alone ({ratio(sp, sb):.2f}x) and {lr:.3f} low-rank alone ({ratio(lr, sb):.2f}x)")
        rows.append((f"Scatterbrain error ({kind})", "2.1x lower approximation error than the baselines", text,
                     f"{train_models.NAMES[kind]}, `configs/scatterbrain.json`", command(setup, f"{kind}-0-scatterbrain")))
    c = ctx["vit"]
    sp = c["points"]["scatterbrain"]
    paper_n, paper_c, paper_m, paper_d = 3136, 24, 24, 64
    paper_mem = (paper_n * paper_c * 2 + 2 * paper_n * paper_m + paper_m * paper_d + paper_m) / paper_n ** 2
    mem = sp["attention_memory_fraction"]
    mem_text = (f"{pct(1 - mem)} less attention memory than dense" if mem <= 1
                else f"{mem:.2f}x the attention memory of dense (more, not less)")
    text = (f"{setting_text('vit', c, 'scatterbrain')} at N = 65: {mem_text}, accuracy {fmt_q('accuracy', sp['quality'])} "
            f"({fmt_loss('accuracy', c['base'], sp['quality'])}){budget_note(c, 'scatterbrain')}; the same count at the "
            f"paper's T2T-ViT size (N = 3136, c = 24, 2 rounds, m = 24, d = 64, at most c keys per round): "
            f"{pct(1 - paper_mem)} less")
    rows.append(("Scatterbrain memory", "98 % less attention memory for about 1 % accuracy drop (T2T-ViT)", text,
                 "vit-digits, `configs/scatterbrain.json`", command(setup, "vit-0-scatterbrain")))
    return rows


def detail_table(kind, ctx, agg):
    metric = ctx["metric"]
    head = (f"| design point | setting | test {metric} (PyTorch) | candidates filtered | scores kept | cycles | "
            f"speed-up | energy (uJ) | energy reduction | attention MACs | rel_error |")
    lines = [head, "|" + "---|" * 11]
    dense = agg["dense"]
    for v in ctx["variants"]:
        a, rec = agg[v], ctx["records"].get(v)
        macs = f"{ratio(a['attention_macs'], dense['attention_macs']):.3f}"
        kept = pct(ratio(a["candidate_keys"] - a["filtered_keys"], dense["candidate_keys"]))
        rel = f"{a['rel_error']:.4f}" if a["rel_error"] is not None else "n/a"
        lines.append(f"| {LABELS[v]} | {setting_text(kind, ctx, v)} | "
                     f"{fmt_q(metric, rec['quality']) if rec else 'n/a'} | {pct(a['filtered_ratio'])} | {kept} | {a['cycles']} | "
                     f"{ratio(dense['cycles'], a['cycles']):.2f}x | {a['energy_pj'] / 1e6:.2f} | "
                     f"{ratio(dense['energy_pj'], a['energy_pj']):.2f}x | {macs} | {rel} |")
    return "\n".join(lines)


def skim_table(ctx, agg):
    lines = ["| model | skimming | test accuracy (PyTorch) | tokens per layer (attnsim, input 0) | MACs | cycles | "
             "energy (uJ) |", "|" + "---|" * 7]
    for skim in ("transkimmer", "fca"):
        if skim not in ctx:
            continue
        for v in ctx[skim]["variants"]:
            a = agg[skim][v]
            rec = ctx[skim]["record"] if not v.endswith("off") else None
            mode = "off" if v.endswith("off") else ("on, predictor on the GEMM engine" if v.endswith("gemm") else "on")
            lines.append(f"| {ctx[skim]['meta'].get('model', skim)} | {mode} | "
                         f"{fmt_q('accuracy', rec['quality']) if rec else '-'} | {' / '.join(map(str, a['active_tokens'])) or 'all'} | "
                         f"{a['total_macs']} | {a['cycles']} | {a['energy_pj'] / 1e6:.2f} |")
    return "\n".join(lines)


MECHANISM_STYLE = {"latte": ("LATTE, one gamma", "o-"), "early_term": ("LeOPArd early termination", "s-"),
                   "tree": ("Treeformer TF (depth)", "^-"), "lsh": ("LSH sparse (c)", "v-"),
                   "lowrank": ("Performer low-rank (m)", "x-"), "scatterbrain": ("Scatterbrain (c, m)", "D-")}


def plot_quality(path, evals):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind in zip(axes, ("vit", "charlm")):
        records = evals[kind]["records"]
        base = next(r["quality"] for r in records if r["mechanism"] == "int8_dense")
        metric = records[-1]["metric"]
        for mech, (label, style) in MECHANISM_STYLE.items():
            pts = sorted(((1 - r["kept_fraction"], r["quality"]) for r in records if r["mechanism"] == mech))
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, [100 * y if metric == "accuracy" else y for y in ys], style, label=label, ms=4)
        for mech, marker, label in (("latte_learned", "*", "LATTE, learned gammas"),
                                    ("transkimmer", "P", "Transkimmer (trained)"), ("fca", "X", "FCA (trained)")):
            for r in records:
                if r["mechanism"] == mech:
                    ax.plot(1 - r["kept_fraction"], 100 * r["quality"] if metric == "accuracy" else r["quality"],
                            marker, ms=12, label=label)
        ax.axhline(100 * base if metric == "accuracy" else base, color="gray", lw=0.8, ls="--",
                   label="8-bit attention, every key")
        ax.set_xlabel("fraction of attention scores not computed exactly (1 - kept / visible)")
        ax.set_ylabel("test accuracy (%)" if metric == "accuracy" else "test perplexity")
        ax.set_title("vit-digits (ViT, 8x8 digits)" if kind == "vit" else "charlm-fortunes (causal character LM)")
        if metric == "perplexity":
            ax.set_ylim(base - 0.5, max(20.0, base + 6))
        else:
            ax.set_ylim(30, 100)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_energy(path, summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, kind in zip(axes, ("vit", "charlm")):
        agg, variants = summary["aggregates"][kind], summary["context"][kind]["variants"]
        dense = agg["dense"]["energy_pj"]
        modules = sorted({m for v in variants for m in agg[v]["energy_by_module"]},
                         key=lambda m: -sum(agg[v]["energy_by_module"].get(m, 0) for v in variants))
        bottom = np.zeros(len(variants))
        for m in modules:
            vals = np.array([agg[v]["energy_by_module"].get(m, 0.0) / dense for v in variants])
            ax.bar(range(len(variants)), vals, bottom=bottom, label=m)
            bottom += vals
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("energy / dense baseline")
        ax.set_title(f"{train_models.NAMES[kind]}: energy by module (attnsim, summed over inputs)")
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def generated_markdown(setup, summary, images):
    ctx = summary["context"]
    out = [f"_Generated by `scripts/reproduce.sh{' --quick' if setup.quick else ''}`; do not edit between the markers._",
           "", "### The claims", "",
           "| claim | paper | attnsim measured | model, config | one run of it |", "|---|---|---|---|---|"]
    for row in claims(setup, summary):
        out.append("| " + " | ".join(x.replace("|", "/") for x in row) + " |")
    out += ["", f"![quality vs savings]({images[0]})", "", f"![energy by module]({images[1]})", ""]
    for kind in ("vit", "charlm"):
        c = ctx[kind]
        out += [f"### {train_models.NAMES[kind]}: every design point", "",
                f"Test {c['metric']}: PyTorch forward pass under the simulator's rules on the whole test set"
                + (f" ({setup.windows} windows)" if kind == "charlm" else " (360 images)") +
                f". attnsim columns: summed over {len(c['inputs'])} exported test inputs "
                f"({', '.join(c['inputs'][:3])}{', ...' if len(c['inputs']) > 3 else ''}), each traced under its own "
                "design point's forward pass; speed-up and energy reduction against the dense baseline.", "",
                detail_table(kind, c, summary["aggregates"][kind]), ""]
    if "transkimmer" in ctx or "fca" in ctx:
        out += ["### Token skimming, whole encoder", "", skim_table(ctx, summary["aggregates"]), ""]
    return "\n".join(out)


def write_report(setup, summary):
    """Plots and the markdown; full mode writes docs/, quick mode results/quick/reproduce/."""
    if setup.quick:
        img_dir, doc, rel = setup.out, os.path.join(setup.out, "reproduction.md"), ""
    else:
        img_dir, doc, rel = os.path.join(ROOT, "docs", "img"), os.path.join(ROOT, "docs", "reproduction.md"), "img/"
    evals = {}
    for kind in ("vit", "charlm"):
        with open(os.path.join(setup.out, f"eval-{kind}.json")) as f:
            evals[kind] = json.load(f)
    q_path, e_path = os.path.join(img_dir, "reproduction_quality.png"), os.path.join(img_dir, "reproduction_energy.png")
    plot_quality(q_path, evals)
    plot_energy(e_path, summary)
    text = generated_markdown(setup, summary, [rel + "reproduction_quality.png", rel + "reproduction_energy.png"])
    if os.path.exists(doc):
        with open(doc) as f:
            text = doc_markers.splice(f.read(), BEGIN, END, text) or text
    elif not setup.quick:
        text = f"# Reproducing the papers\n\n{BEGIN}\n{text}\n{END}\n"
    doc_markers.write_atomically(doc, text + ("" if text.endswith("\n") else "\n"))
    return [doc, q_path, e_path]


if __name__ == "__main__":
    sys.exit(main())
