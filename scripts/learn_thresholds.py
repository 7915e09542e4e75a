#!/usr/bin/python3
"""LATTE's trained head-wise thresholds for this project's models (issue 11, item 4).

LATTE (arXiv 2404.07519) keeps key j for query i iff its attention probability is at least
gamma_h times the row maximum, and trains gamma_h per head; LeOPArd (arXiv 2204.03227)
learns its pruning thresholds through a soft, differentiable relaxation plus a sparsity
regularizer. This script does the same for the simulator's exact rule (SEMANTICS sections
2-3), on a **frozen** model (only the L x H thresholds are trained). `--finetune-lr` also
fine-tunes the model's weights (Adam, same steps) and saves the fine-tuned model next to the
results, since the gammas then belong to it; off by default and for the published configs.

Method
------
Parameter: theta_{l,h} = -ln(gamma_{l,h}) >= 0, one per (layer, head), in logit units (nats).

Per layer, on the quantized q and k of that layer's forward pass (mechanisms.quantize, per
input and head, B bits), with e_ij = q_i . MSB_P(k_j) (mechanisms.msb_planes) and m_i the
running maximum of e over the row's reuse-buffer segments (mechanisms.segment_running_max):

    gap_ij  = (m_i - e_ij) * s_q s_k / sqrt(d)                 (no gradient: does not depend on theta)
    keep_ij = sigmoid((theta_{l,h} - gap_ij) / tau)            (soft keep, over the candidates C_i)
    P_ij    = softmax_j(exact quantized logits)_ij * keep_ij / sum_j(...)   (renormalized)
    out_i   = sum_j P_ij v_j        (v dequantized; q, k, v use a straight-through estimator
                                     for the rounding, so gradients reach earlier layers)

    loss = task loss + lambda * (sum of keep_ij over all candidates / number of candidates)

The task loss is cross-entropy (vit: the class; charlm: every next character). Adam on
theta (lr 0.15, cosine decay to a tenth), theta clamped to >= 0 after each step (gamma <= 1),
tau annealed geometrically from 1 to 0.05 nats, 60 steps (vit: 64 training images per batch;
charlm: 16 random training windows), theta starting at -ln(0.01); each run restarts the batch
sequence from --batch-seed, so a lambda's result does not depend on the others. As tau -> 0, keep_ij -> 1[gap_ij < theta] and P -> the survivor
softmax of mechanisms.SimPolicy: the hard mask is the simulator's rule.

Why the integer floor does not matter. The simulator keeps j iff m_i - e_ij <= T_h with
T_h = floor(theta sqrt(d) / (s_q s_k)). m_i - e_ij is an integer, and for an integer a and
a real x, a <= floor(x) iff a <= x. So the hard rule is exactly gap_ij <= theta: the floor
changes no decision (up to the rounding of the double that computes x), and the relaxation
needs neither the floor nor its zero derivative. The floor would only matter if theta were
shared across inputs in the integer domain; here it is shared in the logit domain, as in
the simulator, where each input's scales give its own T_h.

Evaluation (hard, on the test set): mechanisms.SimPolicy({"qk_unit": {"mode": "latte"},
"comparator": {"gamma": [[...] x H] x L}}) in the model's forward pass, with tasks.accuracy
(vit) or tasks.perplexity (charlm), and policy.filtered_ratio(). Baselines at the same
overall filtered ratio (on the test set):
- uniform: one gamma for every head, found by a secant/bisection search on theta;
- calibrated: `attnsim calibrate --target filtered_ratio=X` on traces of a few test inputs
  (exported with the exact forward pass), the per-head thetas averaged over the traces
  (= geometric mean of the gammas); X is searched so that the test-set ratio matches;
- with --calib-rel-error also `attnsim calibrate --target rel_error=E`, E searched likewise.

Command line:

    /usr/bin/python3 scripts/learn_thresholds.py --attnsim build/attnsim --publish --calib-rel-error
    /usr/bin/python3 scripts/learn_thresholds.py --quick --attnsim build/attnsim
    [--models vit,charlm] [--lambdas 0.01,0.03,...] [--steps N] [--batch-seed S] [--finetune-lr LR]

--quick: the quick models (results/quick/models, trained in seconds if missing), 10 steps,
lambdas 0 and 1, one calibration trace, 200 charlm test windows, outputs under
results/quick/learned_thresholds: what CI runs (about 10 s).
Results (JSON per model, table, plot) go to results/learned_thresholds by default;
--write-configs writes configs/latte-learned-{vit,charlm}.json; --publish writes those,
docs/img/learned_thresholds.png and the table inside docs/learned_thresholds.md (between its
table markers). --from-results rebuilds table and plot from the JSON files.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mechanisms  # noqa: E402
import models  # noqa: E402
import doc_markers  # noqa: E402
import tasks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FILES = {"vit": "vit-digits.safetensors", "charlm": "charlm-fortunes.safetensors"}
DEFAULT_LAMBDAS = {"vit": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0], "charlm": [0.03, 0.1, 0.3, 0.6, 1.0, 1.7, 3.0],
                   "quick": [0.0, 1.0]}
LATTE = {"bits": 8, "estimate_bits": 4, "entries": 4096}   # configs/latte.json's values


# --------------------------------------------------------------------------- relaxation


def estimate_gaps(qi, ki, sq, sk, cand, bits=8, planes=4, entries=4096):
    """gap_ij = (m_i - e_ij) s_q s_k / sqrt(d) in logit units (float64 [B, H, n, n]) from the
    quantized q, k (integer-valued float64) and their scales [B, H]; +inf off the candidates."""
    d = qi.shape[-1]
    est = qi @ mechanisms.msb_planes(ki, bits, planes).transpose(-1, -2)
    running = mechanisms.segment_running_max(est, cand, entries)
    gap = (running - est) * (sq * sk / math.sqrt(d))[..., None, None]
    return torch.where(cand, gap, torch.full_like(gap, math.inf))


def hard_keep(gap, theta):
    """The simulator's rule in the logit domain: keep iff gap <= theta (theta [H])."""
    return gap <= theta[None, :, None, None]


def soft_keep(gap, theta, tau):
    """sigmoid((theta - gap) / tau), 0 off the candidates (gap = +inf)."""
    return torch.sigmoid((theta[None, :, None, None] - gap) / tau)


def ste_dequantize(x, xi, scale):
    """Forward: the dequantized integers; backward: identity to x (straight-through)."""
    x64 = x.double()
    return x64 + (xi * scale[..., None, None] - x64).detach()


class SoftThresholdPolicy(models.Policy):
    """The relaxed LATTE filter (module docstring) as a models.Policy. theta: [L, H] tensor
    (a Parameter when learning). Accumulates, per forward pass, the soft keep sum (with
    gradient), the hard keep count and the candidate count, for the regularizer and logs;
    record=True also keeps each layer's soft keep and gaps (detached, [B, H, n, n])."""

    def __init__(self, model_cfg, theta, tau, bits=8, planes=4, entries=4096, record=False):
        self.model_cfg = model_cfg
        self.record = record
        self.theta = theta
        self.tau = tau
        self.bits, self.planes, self.entries = bits, planes, entries
        self.reset()

    def reset(self):
        self.soft_sum = 0.0
        self.hard_kept = 0
        self.candidates = 0
        self.per_head_soft = torch.zeros(self.model_cfg.layers, self.model_cfg.heads, dtype=torch.float64)
        self.keeps, self.gaps = {}, {}

    def attend(self, q, k, v, layer, causal, active):
        if active is not None:
            raise ValueError("SoftThresholdPolicy: token skimming is not modelled")
        B, H, n, d = q.shape
        with torch.no_grad():
            qi, sq = mechanisms.quantize(q.detach(), self.bits)
            ki, sk = mechanisms.quantize(k.detach(), self.bits)
            vi, sv = mechanisms.quantize(v.detach(), self.bits)
            cand = torch.ones(n, n, dtype=torch.bool)
            if causal:
                cand = torch.tril(cand)
            cand = cand.expand(B, H, n, n)
            gap = estimate_gaps(qi, ki, sq, sk, cand, self.bits, self.planes, self.entries)
        theta = self.theta[layer].double()
        z = (theta[None, :, None, None] - gap) / self.tau        # -inf off the candidates
        keep = torch.sigmoid(z)
        qd, kd, vd = ste_dequantize(q, qi, sq), ste_dequantize(k, ki, sk), ste_dequantize(v, vi, sv)
        logits = qd @ kd.transpose(-1, -2) / math.sqrt(d)
        logits = logits.masked_fill(~cand, -math.inf) + F.logsigmoid(z.masked_fill(~cand, 0.0))
        probs = torch.softmax(logits, dim=-1)                     # = p * keep / sum(p * keep)
        self.soft_sum = self.soft_sum + keep.sum()
        self.per_head_soft[layer] += keep.detach().sum(dim=(0, 2, 3))
        self.hard_kept += int(hard_keep(gap, theta.detach()).sum())
        self.candidates += int(cand.sum())
        if self.record:
            self.keeps[layer] = keep.detach().clone()
            self.gaps[layer] = gap.clone()
        return (probs @ vd).to(q.dtype)

    def keep_fraction(self):
        return self.soft_sum / max(self.candidates, 1)


# ------------------------------------------------------------------------------ data


class Task:
    """Training batches, task loss and the hard test metric of one model kind."""

    def __init__(self, model, seed=0, test_windows=None, batch_seed=0):
        self.model = model
        self.kind = model.cfg.kind
        self.test_windows = test_windows
        self.seed = batch_seed
        self.reseed()
        self.data = tasks.Digits(seed) if self.kind == "vit" else tasks.Fortunes(seed)   # the models' split

    def reseed(self, seed=None):
        """Restarts the batch sequence (each learning run sees the same batches)."""
        self.generator = torch.Generator().manual_seed(self.seed if seed is None else seed)

    def batch(self, size):
        if self.kind == "vit":
            idx = torch.randint(0, len(self.data.train_x), (size,), generator=self.generator)
            return self.data.train_x[idx], self.data.train_y[idx]
        n = self.model.cfg.tokens
        starts = torch.randint(0, len(self.data.train) - n - 1, (size,), generator=self.generator)
        chunk = torch.stack([self.data.train[s:s + n + 1] for s in starts.tolist()])
        return chunk[:, :-1], chunk[:, 1:]

    def loss(self, logits, target):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    def metric_name(self):
        return "accuracy" if self.kind == "vit" else "perplexity"

    def evaluate(self, policy=None):
        if self.kind == "vit":
            return tasks.accuracy(self.model, self.data, policy)
        return tasks.perplexity(self.model, self.data.test, policy, windows=self.test_windows)

    def test_input(self, sample):
        """Test input `sample` as a batch of one (export_trace's input)."""
        if self.kind == "vit":
            return self.data.test_x[sample:sample + 1]
        windows = tasks.test_windows(self.data.test, self.model.cfg.tokens)
        return windows[sample:sample + 1, :-1]


# -------------------------------------------------------------------------- learning


def learn(model, task, lam, *, steps=60, batch=64, lr=0.05, tau_start=1.0, tau_end=0.05,
          theta_init=None, finetune_lr=0.0, lr_floor=0.1, log=None):
    """Learns theta [L, H] (and, with finetune_lr > 0, the model's weights) for one lambda.
    Returns (theta numpy [L, H], history list of dicts, seconds)."""
    cfg = model.cfg
    torch.manual_seed(0)
    task.reseed()
    if theta_init is None:
        theta_init = -math.log(0.01)
    theta = torch.nn.Parameter(torch.full((cfg.layers, cfg.heads), float(theta_init), dtype=torch.float64))
    params = [{"params": [theta], "lr": lr}]
    for p in model.parameters():
        p.requires_grad_(finetune_lr > 0)
    if finetune_lr > 0:
        params.append({"params": list(model.parameters()), "lr": finetune_lr})
    opt = torch.optim.Adam(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_floor + (1 - lr_floor) * 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    policy = SoftThresholdPolicy(cfg, theta, tau_start, LATTE["bits"], LATTE["estimate_bits"], LATTE["entries"])
    history = []
    start = time.time()
    model.train(finetune_lr > 0)
    for step in range(steps):
        frac = step / max(steps - 1, 1)
        policy.tau = tau_start * (tau_end / tau_start) ** frac
        x, y = task.batch(batch)
        policy.reset()
        task_loss = task.loss(model(x, policy), y)
        keep = policy.keep_fraction()
        loss = task_loss + lam * keep
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            theta.clamp_(min=0.0)
        row = {"step": step + 1, "tau": policy.tau, "task_loss": float(task_loss), "soft_keep": float(keep),
               "hard_filtered": 1.0 - policy.hard_kept / max(policy.candidates, 1)}
        history.append(row)
        if log and (step + 1) % max(steps // 5, 1) == 0:
            log(f"    step {step + 1}/{steps}: tau {policy.tau:.3g} task {row['task_loss']:.4f} "
                f"soft keep {row['soft_keep']:.4f} hard filtered {row['hard_filtered']:.4f}")
    seconds = time.time() - start
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return theta.detach().numpy().copy(), history, seconds


def gammas_from_theta(theta):
    """[L][H] list of gamma = exp(-theta) (theta 0 -> gamma 1)."""
    return [[float(math.exp(-t)) for t in row] for row in np.asarray(theta)]


def latte_config(gamma, description=None):
    """configs/latte.json with comparator.gamma replaced (a number or an L x H list)."""
    with open(os.path.join(ROOT, "configs", "latte.json")) as f:
        cfg = json.load(f)
    cfg["comparator"]["gamma"] = gamma
    if description:
        cfg["description"] = description
    return cfg


def sim_policy(gamma, model_cfg, record=False):
    return mechanisms.SimPolicy({"qk_unit": {"mode": "latte", "bits": LATTE["bits"],
                                             "estimate_bits": LATTE["estimate_bits"]},
                                 "comparator": {"gamma": gamma},
                                 "reuse_buffer": {"entries": LATTE["entries"]}}, model_cfg, record=record)


def hard_evaluate(task, gamma):
    """(quality, overall filtered ratio, per-head filtered ratio [L][H]) on the test set."""
    policy = sim_policy(gamma, task.model.cfg)
    quality = task.evaluate(policy)
    c = policy.counts
    per_head = (c["filtered"] / np.maximum(c["candidates"], 1)).tolist()
    return quality, policy.filtered_ratio(), per_head


# ------------------------------------------------------------------------- baselines


def match_ratio(evaluate, target, x0, x1, lo, hi, increasing=True, tol=0.002, max_evals=10, log=None):
    """Finds x in [lo, hi] with evaluate(x)[0] (a filtered ratio, monotone in x: non-decreasing
    if `increasing`) within `tol` of target: secant steps from the guesses x0, x1, falling back
    to bisection of the known bracket. Returns (x, ratio, payload) closest to target."""
    tried = []
    a, b = lo, hi          # the bracket: ratio(a) side below target, ratio(b) side above (if increasing)
    xs = [min(max(x0, lo), hi), min(max(x1, lo), hi)]
    while len(tried) < max_evals:
        if len(tried) < 2:
            x = xs[len(tried)]
        else:
            (xa, fa), (xb, fb) = [(t[0], t[1] - target) for t in tried[-2:]]
            x = xb - fb * (xb - xa) / (fb - fa) if fb != fa else 0.5 * (a + b)
            if not (min(a, b) < x < max(a, b)):
                x = 0.5 * (a + b)
        ratio, payload = evaluate(x)
        tried.append((x, ratio, payload))
        if log:
            log(f"      x {x:.6g}: filtered {ratio:.4f} (target {target:.4f})")
        if abs(ratio - target) <= tol:
            break
        if (ratio < target) == increasing:
            a = x
        else:
            b = x
        if abs(a - b) < 1e-9:
            break
    return min(tried, key=lambda t: abs(t[1] - target))


def uniform_at(task, target, theta_guess, theta_hi=30.0, tol=0.002, log=None):
    """One gamma for every head reaching the test-set filtered ratio `target` (search on
    theta = -ln gamma, the ratio falls as theta grows)."""
    def evaluate(theta):
        gamma = math.exp(-theta)
        quality, ratio, _ = hard_evaluate(task, gamma)
        return ratio, (gamma, quality)
    theta, ratio, (gamma, quality) = match_ratio(evaluate, target, theta_guess, theta_guess + 0.3, 0.0, theta_hi,
                                                 increasing=False, tol=tol, log=log)
    return {"gamma": gamma, "theta": theta, "filtered_ratio": ratio, "quality": quality}


def calibration_samples(task, count):
    """`count` test inputs evenly spaced over the test set (count 1: input 0)."""
    n = len(task.data.test_x) if task.kind == "vit" else len(tasks.test_windows(task.data.test, task.model.cfg.tokens))
    return sorted({int(i) for i in np.linspace(0, n - 1, count).round()}) if count > 1 else [0]


def export_plain_traces(task, samples, directory, name):
    """Traces of test inputs `samples` from the exact (float) forward pass."""
    import export_trace
    paths = []
    for s in samples:
        path = os.path.join(directory, f"{name}-test{s}.safetensors")
        export_trace.export_trace(task.model, task.test_input(s), path, model_name=name,
                                  causal=task.model.cfg.causal, dtype="f32", force=True)
        paths.append(path)
    return paths


def run_calibrate(attnsim, trace, target, directory, metric="filtered_ratio"):
    """`attnsim calibrate --target <metric>=target` on one trace -> gamma [L][H]."""
    out = os.path.join(directory, "calibrated.json")
    cmd = [attnsim, "calibrate", "--config", os.path.join(ROOT, "configs", "latte.json"), "--trace", trace,
           "--target", f"{metric}={target:.8g}", "--out", out, "--quiet", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE"))
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    with open(out) as f:
        return json.load(f)["comparator"]["gamma"]


def calibrated_gamma(attnsim, traces, target, directory, metric="filtered_ratio"):
    """Per-head gamma from calibrating each trace; thetas averaged over the traces."""
    thetas = [-np.log(np.asarray(run_calibrate(attnsim, t, target, directory, metric), dtype=np.float64))
              for t in traces]
    return gammas_from_theta(np.mean(thetas, axis=0))


def calibrated_at(task, attnsim, traces, target, directory, tol=0.002, log=None):
    """Calibrated gammas whose test-set filtered ratio matches `target`: a search over the
    calibration target X (the ratio asked of `attnsim calibrate` on the traces), starting
    from the naive X = target, which is reported too."""
    def evaluate(x):
        gamma = calibrated_gamma(attnsim, traces, x, directory)
        quality, ratio, _ = hard_evaluate(task, gamma)
        return ratio, (gamma, quality)

    naive_ratio, (naive_gamma, naive_quality) = evaluate(target)
    naive = {"calibration_target": target, "gamma": naive_gamma, "filtered_ratio": naive_ratio,
             "quality": naive_quality}
    if abs(naive_ratio - target) <= tol:
        x, ratio, gamma, quality = target, naive_ratio, naive_gamma, naive_quality
    else:
        cache = {target: (naive_ratio, (naive_gamma, naive_quality))}
        x1 = min(max(target + (target - naive_ratio), 0.001), 0.999)
        x, ratio, (gamma, quality) = match_ratio(lambda v: cache[v] if v in cache else evaluate(v), target,
                                                 target, x1, 0.001, 0.999, increasing=True, tol=tol, log=log)
    return {"calibration_target": x, "gamma": gamma, "filtered_ratio": ratio, "quality": quality, "naive": naive}


def calibrated_rel_error_at(task, attnsim, traces, target, directory, tol=0.002, log=None):
    """`attnsim calibrate --target rel_error=E` (every head's output error on the traces at
    most E), E searched (in log10) so that the test-set filtered ratio matches `target`."""
    def evaluate(x):
        gamma = calibrated_gamma(attnsim, traces, 10.0 ** x, directory, "rel_error")
        quality, ratio, _ = hard_evaluate(task, gamma)
        return ratio, (gamma, quality)

    x, ratio, (gamma, quality) = match_ratio(evaluate, target, math.log10(0.03), math.log10(0.1), -5.0,
                                             math.log10(0.99), increasing=True, tol=tol, log=log)
    return {"rel_error_target": 10.0 ** x, "gamma": gamma, "filtered_ratio": ratio, "quality": quality}


# ------------------------------------------------------------------- attnsim checking


def attnsim_counts(attnsim, config_path, trace, directory):
    """`attnsim run` -> (filtered [L, H], candidates [L, H], overall ratio)."""
    out = os.path.join(directory, "stats.json")
    cmd = [attnsim, "run", "-q", "-j", "1", "--config", config_path, "--trace", trace, "--out", out]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE"))
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    with open(out) as f:
        stats = json.load(f)
    layers = stats["filter"]["by_layer"]
    filtered = np.array([[h["filtered_keys"] for h in layer["by_head"]] for layer in layers], dtype=np.int64)
    cands = np.array([[h["candidate_keys"] for h in layer["by_head"]] for layer in layers], dtype=np.int64)
    return filtered, cands, stats["filter"]["filtered_ratio"]


def check_config_on_trace(task, attnsim, config_path, sample, directory, name):
    """Exports test input `sample` through SimPolicy's forward pass with the config's gammas
    (so each layer's q, k are what SimPolicy saw), runs attnsim on it and compares counts."""
    import export_trace
    with open(config_path) as f:
        gamma = json.load(f)["comparator"]["gamma"]
    policy = sim_policy(gamma, task.model.cfg)
    trace = os.path.join(directory, f"{name}-latte-test{sample}.safetensors")
    export_trace.export_trace(task.model, task.test_input(sample), trace, model_name=name,
                              causal=task.model.cfg.causal, dtype="f32", force=True,
                              run=lambda x: task.model(x, policy))
    filtered, cands, ratio = attnsim_counts(attnsim, config_path, trace, directory)
    return {"trace": trace, "attnsim_filtered": filtered.tolist(), "attnsim_candidates": cands.tolist(),
            "attnsim_ratio": ratio, "sim_filtered": policy.counts["filtered"].tolist(),
            "sim_candidates": policy.counts["candidates"].tolist(), "sim_ratio": policy.filtered_ratio(),
            "equal": bool(np.array_equal(filtered, policy.counts["filtered"])
                          and np.array_equal(cands, policy.counts["candidates"]))}


def write_config(path, gamma, description):
    cfg = latte_config(gamma, description)
    tmp = path + ".tmp.json"
    text = json.dumps(cfg, indent=2)
    # one line per layer's list of gammas
    text = re.sub(r"\[\s+([-0-9.e+]+(?:,\s+[-0-9.e+]+)*)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- driver


def load_model(kind, quick, log=print):
    if quick:
        import train_models
        model, meta, path, trained = train_models.ensure_model(kind, os.path.join(ROOT, "results/quick/models"),
                                                               quick=True, log=lambda *_: None)
        return model, meta, path
    path = os.path.join(ROOT, "workloads", "models", MODEL_FILES[kind])
    model, meta = models.load(path)
    return model, meta, path


def fmt_quality(kind, q):
    return f"{100 * q:.2f} %" if kind == "vit" else f"{q:.3f}"


def run_model(kind, args, log=print):
    """Everything for one model: baselines, the lambda sweep and its comparisons."""
    model, meta, path = load_model(kind, args.quick)
    for p in model.parameters():
        p.requires_grad_(False)
    name = meta.get("model", kind)
    task = Task(model, test_windows=args.test_windows, batch_seed=args.batch_seed)
    res = {"model": name, "model_file": os.path.relpath(path, ROOT), "kind": kind,
           "metric": task.metric_name(), "config": {k: getattr(args, k) for k in
           ("steps", "batch", "lr", "tau_start", "tau_end", "theta_init", "finetune_lr", "calib_samples",
            "test_windows", "batch_seed")}}
    log(f"{kind}: {res['model_file']} ({model.cfg.layers} layers x {model.cfg.heads} heads, "
        f"d {model.cfg.head_dim}, N {model.cfg.tokens})")
    t = time.time()
    res["dense_float"] = task.evaluate()
    q, r, _ = hard_evaluate(task, 1e-300)   # every key kept: quantization only
    res["quantized_keep_all"] = {"quality": q, "filtered_ratio": r}
    q, r, _ = hard_evaluate(task, 0.01)
    res["latte_default"] = {"gamma": 0.01, "quality": q, "filtered_ratio": r}
    log(f"  float {fmt_quality(kind, res['dense_float'])}, 8-bit keep-all "
        f"{fmt_quality(kind, res['quantized_keep_all']['quality'])}"
        f" -> gamma 0.01 {fmt_quality(kind, res['latte_default']['quality'])} at filtered "
        f"{res['latte_default']['filtered_ratio']:.4f} ({time.time() - t:.0f} s)")
    tmp = tempfile.mkdtemp(prefix="learn_thresholds.")
    samples = calibration_samples(task, args.calib_samples)
    res["calibration_inputs"] = samples
    traces = export_plain_traces(task, samples, tmp, name) if args.attnsim else []
    res["points"] = []
    for lam in args.lambdas:
        if args.finetune_lr > 0:
            model, _, _ = load_model(kind, args.quick)
            task.model = model
        log(f"  lambda {lam:g}: learning {model.cfg.layers * model.cfg.heads} thresholds")
        theta, history, seconds = learn(model, task, lam, steps=args.steps, batch=args.batch, lr=args.lr,
                                        tau_start=args.tau_start, tau_end=args.tau_end,
                                        theta_init=args.theta_init, finetune_lr=args.finetune_lr, log=log)
        gamma = gammas_from_theta(theta)
        quality, ratio, per_head = hard_evaluate(task, gamma)
        if args.finetune_lr > 0 and args.attnsim:   # the calibration traces of the fine-tuned model
            traces = export_plain_traces(task, samples, tmp, name)
        point = {"lambda": lam, "train_seconds": seconds, "theta": theta.tolist(), "gamma": gamma,
                 "learned": {"quality": quality, "filtered_ratio": ratio, "per_head_filtered": per_head},
                 "history": history}
        log(f"    learned ({seconds:.1f} s): {fmt_quality(kind, quality)} at filtered {ratio:.4f}")
        if args.finetune_lr > 0:   # the gammas belong to this model: keep it
            tuned = os.path.join(args.out_dir, f"{kind}-finetuned-lambda{lam:g}.safetensors")
            models.save(model, tuned, {"model": name + "-finetuned", "finetuned_from": res["model_file"],
                                       "finetune_lr": repr(args.finetune_lr), "lambda": repr(lam),
                                       "gamma": json.dumps(gamma)})
            point["finetuned_model"] = os.path.relpath(tuned, ROOT)
            point["finetuned_dense_quality"] = task.evaluate()
            log(f"    fine-tuned model {point['finetuned_model']}: {fmt_quality(kind, point['finetuned_dense_quality'])}"
                " without filtering")
        if not args.no_compare:
            u = uniform_at(task, ratio, float(np.mean(theta)), tol=args.tol)
            point["uniform"] = u
            log(f"    uniform gamma {u['gamma']:.4g}: {fmt_quality(kind, u['quality'])} at filtered "
                f"{u['filtered_ratio']:.4f}")
            if args.attnsim:
                c = calibrated_at(task, args.attnsim, traces, ratio, tmp, tol=args.tol)
                point["calibrated"] = c
                log(f"    calibrated (X {c['calibration_target']:.4f}): {fmt_quality(kind, c['quality'])} at "
                    f"filtered {c['filtered_ratio']:.4f}; naive X = ratio: "
                    f"{fmt_quality(kind, c['naive']['quality'])} at {c['naive']['filtered_ratio']:.4f}")
                if args.calib_rel_error:
                    c = calibrated_rel_error_at(task, args.attnsim, traces, ratio, tmp, tol=args.tol)
                    point["calibrated_rel_error"] = c
                    log(f"    calibrated rel_error <= {c['rel_error_target']:.4g}: {fmt_quality(kind, c['quality'])} "
                        f"at filtered {c['filtered_ratio']:.4f}")
        res["points"].append(point)
    return res, task, tmp


def select_point(res, max_drop):
    """The point with the most filtering whose learned quality is within `max_drop` of the
    8-bit keep-all quality (vit: absolute accuracy; charlm: relative perplexity)."""
    base = res["quantized_keep_all"]["quality"]
    ok = []
    for p in res["points"]:
        q = p["learned"]["quality"]
        drop = (base - q) if res["kind"] == "vit" else (q / base - 1.0)
        if drop <= max_drop:
            ok.append(p)
    pool = ok or res["points"]
    return max(pool, key=lambda p: p["learned"]["filtered_ratio"]) if ok else \
        min(pool, key=lambda p: p["learned"]["filtered_ratio"])


def markdown_table(results):
    lines = []
    for res in results:
        kind = res["kind"]
        metric = "accuracy" if kind == "vit" else "perplexity"
        lines += [f"### {res['model']} ({res['model_file']})", "",
                  f"float: {fmt_quality(kind, res['dense_float'])}; 8-bit, every key kept: "
                  f"{fmt_quality(kind, res['quantized_keep_all']['quality'])}; uniform gamma 0.01: "
                  f"{fmt_quality(kind, res['latte_default']['quality'])} at filtered ratio "
                  f"{res['latte_default']['filtered_ratio']:.4f}.", "",
                  f"| lambda | method | gammas source | filtered ratio | {metric} |",
                  "|---|---|---|---|---|"]
        for p in res["points"]:
            lam = f"{p['lambda']:g}"
            lines.append(f"| {lam} | learned | trained per head ({p['train_seconds']:.1f} s) | "
                         f"{p['learned']['filtered_ratio']:.4f} | {fmt_quality(kind, p['learned']['quality'])} |")
            if "uniform" in p:
                u = p["uniform"]
                lines.append(f"| {lam} | uniform | one gamma = {u['gamma']:.4g} (search) | "
                             f"{u['filtered_ratio']:.4f} | {fmt_quality(kind, u['quality'])} |")
            if "calibrated" in p:
                c = p["calibrated"]
                lines.append(f"| {lam} | calibrated | attnsim calibrate, X = {c['calibration_target']:.4f} | "
                             f"{c['filtered_ratio']:.4f} | {fmt_quality(kind, c['quality'])} |")
                n = c["naive"]
                lines.append(f"| {lam} | calibrated (X = ratio) | attnsim calibrate, X = "
                             f"{n['calibration_target']:.4f} | {n['filtered_ratio']:.4f} | "
                             f"{fmt_quality(kind, n['quality'])} |")
            if "calibrated_rel_error" in p:
                c = p["calibrated_rel_error"]
                lines.append(f"| {lam} | calibrated (rel_error) | attnsim calibrate, rel_error = "
                             f"{c['rel_error_target']:.4g} | {c['filtered_ratio']:.4f} | "
                             f"{fmt_quality(kind, c['quality'])} |")
        lines.append("")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
    for ax, res in zip(axes[0], results):
        kind = res["kind"]
        scale = 100.0 if kind == "vit" else 1.0
        series = [("learned", "learned per head", "o-"), ("uniform", "uniform gamma", "s--"),
                  ("calibrated", "attnsim calibrate (filtered_ratio)", "^:"),
                  ("calibrated_rel_error", "attnsim calibrate (rel_error)", "v-.")]
        for key, label, style in series:
            pts = sorted((p[key]["filtered_ratio"], p[key]["quality"] * scale) for p in res["points"] if key in p)
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], style, label=label, markersize=5)
        base = res["quantized_keep_all"]["quality"] * scale
        ax.axhline(base, color="gray", lw=0.8, ls="-.", label="8-bit, all keys kept")
        ax.set_xlabel("filtered-key ratio (test set, SimPolicy)")
        ax.set_ylabel("test accuracy (%)" if kind == "vit" else "test perplexity (lower is better)")
        ax.set_title(res["model"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_selected_config(res, args):
    """configs/latte-learned-<kind>.json (--write-configs; else in --out-dir) from the sweep
    point select_point picks; records the choice in res. Returns the path."""
    kind = res["kind"]
    drop = args.max_drop if args.max_drop is not None else (0.01 if kind == "vit" else 0.05)
    chosen = select_point(res, drop)
    res["selected_lambda"] = chosen["lambda"]
    rule = (f"at most {100 * drop:g} accuracy points below" if kind == "vit"
            else f"perplexity at most {100 * drop:g} % above")
    cfg_dir = os.path.join(ROOT, "configs") if args.write_configs else args.out_dir
    path = os.path.join(cfg_dir, f"latte-learned-{kind}.json")
    model_text = (f"the fine-tuned {chosen['finetuned_model']}" if "finetuned_model" in chosen
                  else "the frozen model")
    desc = (f"LATTE (arXiv 2404.07519) with per-head thresholds learned for {res['model']} "
            f"({res['model_file']}) by scripts/learn_thresholds.py on {model_text}: comparator.gamma[l][h] = "
            f"exp(-theta_lh), lambda {chosen['lambda']:g}, the sweep point with the most filtering whose test "
            f"{res['metric']} is {rule} 8-bit attention with every key kept. On the test set (SimPolicy) it "
            f"filters {chosen['learned']['filtered_ratio']:.4f} of the keys at {res['metric']} "
            f"{fmt_quality(kind, chosen['learned']['quality'])} (all keys: "
            f"{fmt_quality(kind, res['quantized_keep_all']['quality'])}); docs/learned_thresholds.md. "
            "Everything else as configs/latte.json.")
    write_config(path, chosen["gamma"], desc)
    res["config_path"] = os.path.relpath(path, ROOT)
    return path


def parse_args(argv):
    p = argparse.ArgumentParser(description="Learn LATTE's per-head thresholds (see the module docstring).")
    p.add_argument("--quick", action="store_true", help="quick models, few steps (CI)")
    p.add_argument("--models", default="vit,charlm")
    p.add_argument("--lambdas", help="comma-separated regularizer weights")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float, default=0.15, help="Adam learning rate of theta (nats per step; cosine "
                   "decay to a tenth)")
    p.add_argument("--tau-start", type=float, default=1.0)
    p.add_argument("--tau-end", type=float, default=0.05)
    p.add_argument("--theta-init", type=float, default=-math.log(0.01), help="initial -ln(gamma) (default gamma 0.01)")
    p.add_argument("--batch-seed", type=int, default=0, help="seed of the training batches' order")
    p.add_argument("--finetune-lr", type=float, default=0.0, help="also fine-tune the model's weights (default off)")
    p.add_argument("--calib-samples", type=int, default=4, help="test inputs exported for attnsim calibrate")
    p.add_argument("--calib-rel-error", action="store_true",
                   help="also the baseline `attnsim calibrate --target rel_error=E`, E searched to match the ratio")
    p.add_argument("--test-windows", type=int, help="charlm: evenly spaced test windows (default all)")
    p.add_argument("--tol", type=float, default=0.002, help="filtered-ratio tolerance of the baseline searches")
    p.add_argument("--attnsim", help="attnsim binary (calibrated baseline and config check)")
    p.add_argument("--no-compare", action="store_true", help="skip the uniform and calibrated baselines")
    p.add_argument("--max-drop", type=float, help="selection of the config's point (vit: accuracy, "
                   "charlm: relative perplexity; default 0.01 / 0.05)")
    p.add_argument("--out-dir", help="results directory")
    p.add_argument("--from-results", action="store_true",
                   help="no learning: rebuild the table and plot from the JSON files in --out-dir")
    p.add_argument("--write-configs", action="store_true", help="write configs/latte-learned-<kind>.json")
    p.add_argument("--plot", help="PNG path (full mode default docs/img/learned_thresholds.png with --publish)")
    p.add_argument("--table", help="markdown table path")
    p.add_argument("--publish", action="store_true",
                   help="write the plot, table and configs to docs/ and configs/ (full mode)")
    args = p.parse_args(argv)
    q = args.quick
    args.lambdas = [float(x) for x in args.lambdas.split(",")] if args.lambdas else None
    args.steps = args.steps or (10 if q else 60)
    args.batch = args.batch or (32 if q else None)
    if q:
        args.calib_samples = min(args.calib_samples, 1)
        args.test_windows = args.test_windows or 200
        args.tol = max(args.tol, 0.005)
    args.out_dir = args.out_dir or os.path.join(ROOT, "results", "quick" if q else "", "learned_thresholds")
    if args.calib_samples < 1:
        p.error("--calib-samples must be at least 1")
    if args.publish:
        if q:
            p.error("--publish writes the docs from the full models; not with --quick")
        args.write_configs = True
        args.plot = args.plot or os.path.join(ROOT, "docs", "img", "learned_thresholds.png")
        args.table = args.table or os.path.join(ROOT, "docs", "learned_thresholds.md")
    return args


def main(argv=None):
    args = parse_args(argv)
    tasks.setup_torch()
    os.makedirs(args.out_dir, exist_ok=True)
    if args.from_results:
        results = []
        for kind in args.models.split(","):
            with open(os.path.join(args.out_dir, f"{kind}.json")) as f:
                results.append(json.load(f))
            if args.write_configs:
                print(f"wrote {os.path.relpath(write_selected_config(results[-1], args), ROOT)} "
                      f"(lambda {results[-1]['selected_lambda']:g})")
        return report(results, args)
    results = []
    for kind in args.models.split(","):
        batch = args.batch or (64 if kind == "vit" else 16)
        lambdas = args.lambdas or DEFAULT_LAMBDAS["quick" if args.quick else kind]
        a = argparse.Namespace(**{**vars(args), "batch": batch, "lambdas": lambdas})
        res, task, tmp = run_model(kind, a)
        cfg_path = write_selected_config(res, args)
        print(f"  wrote {res['config_path']} (lambda {res['selected_lambda']:g})")
        if args.attnsim:
            check = check_config_on_trace(task, args.attnsim, cfg_path, 0, tmp, res["model"])
            res["attnsim_check"] = {k: v for k, v in check.items() if k != "trace"}
            print(f"  attnsim run on test input 0 (SimPolicy-shaped trace): filtered ratio "
                  f"{check['attnsim_ratio']:.6f}, SimPolicy {check['sim_ratio']:.6f}, per-head counts "
                  f"{'equal' if check['equal'] else 'DIFFER'}")
        with open(os.path.join(args.out_dir, f"{kind}.json"), "w") as f:
            json.dump(res, f, indent=1)
        results.append(res)
    return report(results, args)


TABLE_BEGIN, TABLE_END = "<!-- learn_thresholds table begin -->", "<!-- learn_thresholds table end -->"


def write_table(path, table):
    """Writes the table; into an existing file that has the markers, between them only."""
    text = table + "\n"
    if os.path.exists(path):
        with open(path) as f:
            text = doc_markers.splice(f.read(), TABLE_BEGIN, TABLE_END, table) or text
    with open(path, "w") as f:
        f.write(text)


def report(results, args):
    table = markdown_table(results)
    print(table)
    write_table(args.table or os.path.join(args.out_dir, "table.md"), table)
    if args.plot or not args.quick:
        plot(results, args.plot or os.path.join(args.out_dir, "learned_thresholds.png"))
    failed = [r["kind"] for r in results if "attnsim_check" in r and not r["attnsim_check"]["equal"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
