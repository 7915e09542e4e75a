"""attnsim's mechanisms inside a PyTorch model's forward pass, with the simulator's rules.

`SimPolicy(config, model_cfg, tensors)` is a scripts/models.py Policy built from an attnsim
config (the same JSON keys as `attnsim run`, partial configs take SEMANTICS section 6
defaults). In every layer it does what the simulated accelerator does to that layer's
q, k, v (SEMANTICS sections 2, 3 and 5; docs/qk_unit.md, docs/candidates.md,
docs/skimming.md), batched over the inputs:

- quantization per (input, head, tensor) over the layer's active tokens: scale =
  max|x| / (2^(B-1) - 1), round half to even, in float64;
- candidates C_i: the keys query i may see (causal: j <= i; skimmed tokens are neither
  query nor key), narrowed by the tree (`candidates.source = "tree"`, TF attention) or
  the LSH clusters (`"lsh"`), or none (`"none"`, low-rank only);
- the QK unit's survivors among C_i: `dense` keeps all; `latte` keeps key j iff
  m_i - e_ij <= T_h, e_ij = q_i . MSB_P(k_j) and m_i the running maximum over the
  reuse-buffer segments processed so far, T_h = floor(-ln(gamma_h) sqrt(d) / (s_q s_k));
  `early_term` keeps j iff s_ij >= theta_h (a key that stops early has a bound below
  theta_h, so it could not have reached it);
- softmax over the survivors' exact integer scores times s_q s_k / sqrt(d), output P.V with
  the dequantized V; with the low-rank unit the Scatterbrain combination of SEMANTICS
  section 5 instead; a row with no survivor outputs zeros;
- Transkimmer (`skim_controller.mode = "transkimmer"`, `source = "predictor"`): before each
  layer the skim predictor (LayerNorm, Linear, LayerNorm, GELU, Linear; float64, eps 1e-5,
  exact GELU) on the hidden states entering the layer; a token is kept iff
  logit_keep > logit_skim, token 0 always, masks cumulative; a skimmed token's hidden state
  passes through unchanged to the output;
- FCA (`skim_controller.mode = "fca"`): after a layer's attention, score_j = sum_i Abar_ij -
  Abar_jj over the head-mean of the accelerator's probabilities; token 0 and the R - 1 best
  others stay (R = ceil(keep x n) or the layer's entry of a keep list), the tail is pooled
  into min(C, t) contiguous groups, each the softmax-weighted (within the group) average of
  its members' hidden states; the FFN and later layers run on the shorter sequence.

Mechanism parameters come from `tensors`, a dict named like the trace tensors
(`layers.{l}.tree.{h}.w` / `.b`, `layers.{l}.lsh.{h}.proj`, `layers.{l}.performer.{h}.w`,
`layers.{l}.skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias}`), so that the exported trace
carries exactly what the PyTorch side used and `attnsim run` on it sees the same
(`mechanism_tensors` makes seeded or built ones). Routing and hashing use the dequantized
q and k in float64 with dot products summed in index order, like the simulator, so the
candidate sets agree key for key (tests/scripts/mechanisms_test.py checks every mask
against `attnsim run --masks`).

Counters (`self.counts`, per layer and head, summed over the inputs): candidates,
filtered, active queries. `record=True` also keeps, per layer, the mask codes of
`attnsim run --masks` (0 not a candidate, 1 filtered, 2 kept) [B, H, n, n], each row's
original token id [B, n] (-1 for an FCA coarse token), the active-token mask [B, n]
(Transkimmer; None when every token is active), and with Transkimmer the hidden states
entering each layer and the predictor's keep decisions (what the trace carries).
"""
import math

import numpy as np
import torch

DEFAULTS = {
    "qk_unit": {"mode": "latte", "bits": 8, "estimate_bits": 4},
    "comparator": {"gamma": 0.01, "theta": 0},
    "reuse_buffer": {"entries": 4096},
    "candidates": {"source": "all"},
    "tree_engine": {"attention": "tf"},
    "lsh_unit": {"cluster_size": 64},
    "lowrank_unit": {"enabled": False},
    "skim_controller": {"mode": "off", "source": "trace", "keep": 0.5, "groups": 5},
}
INT64_MAX = 2 ** 63 - 1


class MechanismError(Exception):
    pass


def merge_config(partial):
    cfg = {section: dict(values) for section, values in DEFAULTS.items()}
    for section, values in (partial or {}).items():
        if section == "schema":
            continue
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg


def per_head_table(value, layers, heads, key):
    """A per-head config value (number, list of H, or list of L lists of H) -> [L][H] list."""
    if not isinstance(value, list):
        return [[value] * heads for _ in range(layers)]
    if value and isinstance(value[0], list):
        if len(value) != layers or any(len(row) != heads for row in value):
            raise MechanismError(f"config: {key}: expected {layers} lists of {heads} values")
        return [list(row) for row in value]
    if len(value) != heads:
        raise MechanismError(f"config: {key}: expected {heads} values (one per head), got {len(value)}")
    return [list(value) for _ in range(layers)]


# ------------------------------------------------------------------------ arithmetic


def quantize(x, bits, active=None):
    """SEMANTICS section 2 per (input, head): x [B, H, N, d] float -> (integer-valued float64
    [B, H, N, d], scale float64 [B, H]); the max is over the active rows only."""
    qmax = float(2 ** (bits - 1) - 1)
    x64 = x.double()
    mag = x64.abs()
    if active is not None:
        mag = mag * active[:, None, :, None]
    peak = mag.amax(dim=(2, 3))
    scale = torch.where(peak > 0, peak / qmax, torch.ones_like(peak))
    q = torch.clamp(torch.round(x64 / scale[..., None, None]), -qmax, qmax)
    return q, scale


def msb_planes(k, bits, planes):
    """(k >> (B-P)) << (B-P) on integer-valued float64: floor division keeps the sign rule."""
    step = float(2 ** (bits - planes))
    return torch.floor(k / step) * step


def latte_margin(gamma, d, sq, sk):
    """T_h = floor(-ln(gamma) sqrt(d) / (s_q s_k)) per input, saturated; float64 [B]."""
    t = (-math.log(gamma) * math.sqrt(d)) / (sq * sk)
    return torch.where(torch.isfinite(t) & (t < 2.0 ** 63), torch.floor(t), torch.full_like(t, float(INT64_MAX)))


def early_term_theta(tau, d, sq, sk):
    """The integer LeOPArd threshold of a logit threshold tau: ceil(tau sqrt(d) / (s_q s_k)),
    so that s_ij >= theta iff the logit s_ij s_q s_k / sqrt(d) >= tau (up to rounding)."""
    return torch.ceil(float(tau) * math.sqrt(d) / (sq * sk))


def segment_running_max(e, cand, entries):
    """For every candidate (b, h, i, j): the maximum of e over the candidates of row i in
    reuse-buffer segments 0..s(j), segments being `entries` consecutive candidates."""
    rank = torch.cumsum(cand.to(torch.int64), dim=-1) - 1
    seg = torch.where(cand, rank // entries, torch.zeros_like(rank))
    n_seg = int(seg.max()) + 1 if cand.any() else 1
    if n_seg == 1:
        row_max = torch.where(cand, e, torch.full_like(e, -math.inf)).amax(dim=-1, keepdim=True)
        return row_max.expand_as(e)
    masked = torch.where(cand, e, torch.full_like(e, -math.inf))
    seg_max = torch.full(e.shape[:-1] + (n_seg,), -math.inf, dtype=e.dtype)
    seg_max = seg_max.scatter_reduce(-1, seg, masked, reduce="amax")
    running = torch.cummax(seg_max, dim=-1).values
    return torch.gather(running, -1, seg)


def index_order_dot(x, w):
    """[..., n, d] x [r, d] -> [..., n, r], float64, summed in index order t = 0..d-1 (the
    simulator's dot_in_order), so that routing and hashing decisions agree bit for bit."""
    acc = torch.zeros(x.shape[:-1] + (w.shape[0],), dtype=torch.float64)
    for t in range(x.shape[-1]):
        acc = acc + x[..., t, None] * w[:, t]
    return acc


def sequential_sum(x):
    """Sum over the last axis in index order (a cumulative sum's last element), as the
    simulator's loops add, so that near-ties are decided the same way."""
    return torch.cumsum(x, dim=-1)[..., -1]


def survivor_softmax(exact, keep, c):
    """The softmax unit: over the survivors' exact integer scores, exp(c (s - max)) / sum
    with the sum in key order and multiplied by its inverse; rows without survivors 0."""
    low = torch.full_like(exact, -math.inf)
    top = torch.where(keep, exact, low).amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = torch.where(keep, torch.exp(c[..., None, None] * (exact - top)), torch.zeros_like(exact))
    total = sequential_sum(weights)[..., None]
    return weights * torch.where(total > 0, 1.0 / total, torch.zeros_like(total))


def fca_scores(probs):
    """score_j = sum_i Abar_ij - Abar_jj, Abar = sum over heads (in order) of probs / H,
    sums in the simulator's order. probs [B, H, n, n] -> [B, n]."""
    heads = probs.shape[1]
    abar = torch.zeros_like(probs[:, 0])
    for h in range(heads):
        abar = abar + (1.0 / heads) * probs[:, h]
    score = sequential_sum(abar.transpose(-1, -2))
    return score - torch.diagonal(abar, dim1=-2, dim2=-1)


def sequential_layer_norm(x, weight, bias, eps=1e-5):
    d = x.shape[-1]
    mean = sequential_sum(x) / d
    centered = x - mean[..., None]
    var = sequential_sum(centered * centered) / d
    inv = 1.0 / torch.sqrt(var + eps)
    return centered * inv[..., None] * weight.double() + bias.double()


def sequential_linear(x, weight, bias):
    """y_o = b_o + sum_i w_oi x_i, added in index order from the bias."""
    w = weight.double()
    acc = bias.double().expand(x.shape[:-1] + (w.shape[0],)).clone()
    for i in range(w.shape[1]):
        acc = acc + x[..., i, None] * w[:, i]
    return acc


# ---------------------------------------------------------------- candidate generators


def tree_leaves(x, w, b, depth):
    """Leaf (heap index) of every row of x [..., n, d]: node n sends x left iff w_n.x + b_n < 0."""
    splits = index_order_dot(x, w) + b
    node = torch.zeros(x.shape[:-1], dtype=torch.int64)
    for _ in range(depth):
        go_left = torch.gather(splits, -1, node[..., None])[..., 0] < 0
        node = 2 * node + torch.where(go_left, 1, 2)
    return node


def lsh_clusters(x, direction, cluster_size, active):
    """Cluster index of every row [B, n] on one direction: a stable sort of the active rows'
    projections (ties: lower index) cut into clusters of `cluster_size`; inactive rows get -1."""
    proj = index_order_dot(x, direction[None])[..., 0]
    if active is not None:
        proj = torch.where(active, proj, torch.full_like(proj, math.inf))
    order = torch.sort(proj, dim=-1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(proj.shape[-1]).expand_as(order))
    cluster = rank // cluster_size
    if active is not None:
        cluster = torch.where(active, cluster, torch.full_like(cluster, -1))
    return cluster


# ----------------------------------------------------------------------- low-rank unit


def performer_log_features(x, w):
    """log phi(x) for x [..., n, d] (dequantized, float64) and W [m/2, d]:
    phi(x) = exp([W x', -W x'] - |x'|^2 / 2) / sqrt(m), x' = x d^(-1/4)."""
    d = x.shape[-1]
    xs = x * d ** -0.25
    wx = xs @ w.T
    half = (xs * xs).sum(-1, keepdim=True) / 2
    m = 2 * w.shape[0]
    return torch.cat([wx, -wx], dim=-1) - half - 0.5 * math.log(m)


def scatterbrain_output(logits, keep, visible, log_phi_q, log_phi_k, v):
    """SEMANTICS section 5 combination, per row with one common factor divided out:
    o_i = (sum_{K_i} (e_ij - k_ij) v_j + sum_vis k_ij v_j) / (sum_{K_i} (e_ij - k_ij) + sum_vis k_ij),
    k_ij = phi_i . phi_j, e_ij = exp(logit_ij)."""
    a = log_phi_q.amax(dim=-1, keepdim=True)                # [.., n, 1]
    bk = log_phi_k.amax(dim=(-2, -1), keepdim=True)         # [.., 1, 1]
    kernel = torch.exp(log_phi_q - a) @ torch.exp(log_phi_k - bk).transpose(-1, -2)  # k_ij e^{-(a_i + b)}
    top = torch.where(keep, logits, torch.full_like(logits, -math.inf)).amax(dim=-1, keepdim=True)
    shift = torch.maximum(a + bk, torch.where(torch.isfinite(top), top, a + bk))
    kernel = kernel * torch.exp(a + bk - shift)
    exact = torch.where(keep, torch.exp(logits - shift), torch.zeros_like(logits))
    weights = torch.where(keep, exact - kernel, torch.zeros_like(kernel)) + torch.where(visible, kernel, torch.zeros_like(kernel))
    total = weights.sum(dim=-1, keepdim=True)
    out = (weights @ v) / torch.where(total != 0, total, torch.ones_like(total))
    return torch.where(total != 0, out, torch.zeros_like(out))


# ------------------------------------------------------------------------ mechanism tensors


def seeded_gaussian(rows, d, seed, layer, head, purpose):
    rng = np.random.default_rng([seed, layer, head, purpose])
    return rng.standard_normal((rows, d)).astype(np.float32)


def build_tree(keys, depth):
    """A depth-D tree through medians of principal directions (float64 numpy):
    node n splits its keys [m, d] at the median of their projection on the keys' first
    principal component; w_n = that direction, b_n = -median, so w_n.x + b_n < 0 goes left.
    Returns (w [2^D-1, d], b [2^D-1]) float32. An empty node gets w = e_0, b = 0."""
    nodes = 2 ** depth - 1
    d = keys.shape[1]
    w = np.zeros((nodes, d), dtype=np.float64)
    b = np.zeros(nodes, dtype=np.float64)
    members = {0: keys.astype(np.float64)}
    for n in range(nodes):
        x = members.pop(n)
        if len(x) < 2:
            direction = np.eye(d)[0]
        else:
            centered = x - x.mean(axis=0)
            _, _, vt = np.linalg.svd(centered, full_matrices=False)
            direction = vt[0]
        proj = x @ direction if len(x) else np.zeros(0)
        median = float(np.median(proj)) if len(x) else 0.0
        w[n], b[n] = direction, -median
        if 2 * n + 1 < nodes:
            members[2 * n + 1] = x[proj + b[n] < 0]
            members[2 * n + 2] = x[proj + b[n] >= 0]
    return w.astype(np.float32), b.astype(np.float32)


def mechanism_tensors(model, sample_keys=None, *, depth=None, rounds=None, features=None, seed=0):
    """Trace-named mechanism tensors for a model: trees built (build_tree) from `sample_keys`
    ({layer: [H, M, d] float keys pooled over inputs}), seeded Gaussian LSH directions [R, d]
    and Performer matrices [m/2, d]. Only those asked for (depth / rounds / features)."""
    cfg = model.cfg
    out = {}
    for l in range(cfg.layers):
        for h in range(cfg.heads):
            if depth:
                if sample_keys is None:
                    raise MechanismError("trees need sample keys to be built from")
                w, b = build_tree(np.asarray(sample_keys[l][h]), depth)
                out[f"layers.{l}.tree.{h}.w"], out[f"layers.{l}.tree.{h}.b"] = w, b
            if rounds:
                out[f"layers.{l}.lsh.{h}.proj"] = seeded_gaussian(rounds, cfg.head_dim, seed, l, h, 1)
            if features:
                out[f"layers.{l}.performer.{h}.w"] = seeded_gaussian(features // 2, cfg.head_dim, seed, l, h, 2)
    return out


# ------------------------------------------------------------------------------- policy


class SimPolicy:
    """A scripts/models.py Policy applying the simulator's rules (module docstring)."""

    def __init__(self, config, model_cfg, tensors=None, record=False, theta_logit=None):
        self.cfg = merge_config(config)
        self.model_cfg = model_cfg
        self.tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in (tensors or {}).items()}
        self.record = record
        L, H = model_cfg.layers, model_cfg.heads
        qk = self.cfg["qk_unit"]
        self.mode = qk["mode"]
        if self.mode not in ("dense", "latte", "early_term"):
            raise MechanismError(f"config: qk_unit.mode: {self.mode!r} is not dense, latte or early_term")
        self.bits, self.planes = int(qk["bits"]), int(qk["estimate_bits"])
        comp = self.cfg["comparator"]
        self.margin = per_head_table(comp["margin"], L, H, "comparator.margin") if "margin" in comp else None
        self.gamma = per_head_table(comp["gamma"], L, H, "comparator.gamma")
        self.theta = per_head_table(comp["theta"], L, H, "comparator.theta")
        # Evaluation only (not a simulator key): LeOPArd's threshold as a logit, turned into
        # the integer theta_h = ceil(tau sqrt(d) / (s_q s_k)) of each input, which is what a
        # config for that input's trace would hold (early_term_theta gives it).
        self.theta_logit = None if theta_logit is None else per_head_table(theta_logit, L, H, "theta_logit")
        self.entries = int(self.cfg["reuse_buffer"]["entries"])
        self.source = self.cfg["candidates"]["source"]
        if self.source not in ("all", "tree", "lsh", "none"):
            raise MechanismError(f"config: candidates.source: {self.source!r} is not all, tree, lsh or none")
        if self.source == "tree" and self.cfg["tree_engine"].get("attention", "tf") != "tf":
            raise MechanismError("config: tree_engine.attention: only tf is modelled in PyTorch")
        self.lowrank = bool(self.cfg["lowrank_unit"]["enabled"])
        if self.source == "none" and not self.lowrank:
            raise MechanismError("config: candidates.source none needs lowrank_unit.enabled")
        skim = self.cfg["skim_controller"]
        self.skim = skim["mode"]
        if self.skim == "transkimmer" and skim.get("source", "trace") != "predictor":
            raise MechanismError("config: skim_controller.source: the model runs its predictor (use \"predictor\")")
        self.need_tensors()
        self.counts = {k: np.zeros((L, H), dtype=np.int64) for k in ("candidates", "filtered", "queries")}
        self.masks, self.tokens, self.active, self.hidden, self.skim_keep = {}, {}, {}, {}, {}
        self._probs = None
        self._ids = None

    def need_tensors(self):
        c = self.model_cfg
        wanted = []
        for l in range(c.layers):
            for h in range(c.heads):
                if self.source == "tree":
                    wanted += [f"layers.{l}.tree.{h}.w", f"layers.{l}.tree.{h}.b"]
                if self.source == "lsh":
                    wanted.append(f"layers.{l}.lsh.{h}.proj")
                if self.lowrank:
                    wanted.append(f"layers.{l}.performer.{h}.w")
            if self.skim == "transkimmer":
                wanted += [f"layers.{l}.skim_predictor.{p}.{t}" for p in ("ln1", "fc1", "ln2", "fc2")
                           for t in ("weight", "bias")]
        missing = [w for w in wanted if w not in self.tensors]
        if missing:
            raise MechanismError(f"mechanism tensor {missing[0]}: missing (see mechanisms.mechanism_tensors)")

    # -- skimming -----------------------------------------------------------------------

    def before_layer(self, h, layer, active):
        b, n, _ = h.shape
        if layer == 0:
            self._ids = torch.arange(n).expand(b, n).clone()
        if self.skim != "transkimmer":
            return active
        t = self.tensors
        p = f"layers.{layer}.skim_predictor."
        x = h.detach().double()
        a = sequential_layer_norm(x, t[p + "ln1.weight"], t[p + "ln1.bias"])
        a = sequential_linear(a, t[p + "fc1.weight"], t[p + "fc1.bias"])
        a = sequential_layer_norm(a, t[p + "ln2.weight"], t[p + "ln2.bias"])
        a = 0.5 * a * (1.0 + torch.erf(a / math.sqrt(2.0)))  # exact GELU
        logits = sequential_linear(a, t[p + "fc2.weight"], t[p + "fc2.bias"])
        keep = logits[..., 1] > logits[..., 0]
        keep[:, 0] = True
        new_active = keep if active is None else active & keep
        if self.record:
            self.hidden[layer] = h.detach().float().clone()
            self.skim_keep[layer] = keep.clone()
        return new_active

    def after_attention(self, h, layer, active):
        if self.skim != "fca" or layer == self.model_cfg.layers - 1:
            return h, active
        if active is not None:
            raise MechanismError("FCA after Transkimmer is not modelled")
        score = fca_scores(self._probs)  # [B, n]
        n = score.shape[-1]
        r = fca_keep_count(self.cfg["skim_controller"]["keep"], layer, n)
        groups = int(self.cfg["skim_controller"]["groups"])
        rows, ids = [], []
        for bi in range(h.shape[0]):
            fine, tail = fca_select(score[bi], r)
            parts = [h[bi, fine]]
            ids.append(torch.cat([self._ids[bi, fine], torch.full((min(groups, len(tail)),), -1)]))
            for members in split_groups(tail, groups):
                w = torch.softmax(score[bi, members], dim=0).to(h.dtype)
                parts.append((w[:, None] * h[bi, members]).sum(dim=0, keepdim=True))
            rows.append(torch.cat(parts))
        self._ids = torch.stack(ids)
        return torch.stack(rows), None

    # -- attention ----------------------------------------------------------------------

    def attend(self, q, k, v, layer, causal, active):
        B, H, n, d = q.shape
        qi, sq = quantize(q, self.bits, active)
        ki, sk = quantize(k, self.bits, active)
        vi, sv = quantize(v, self.bits, active)
        visible = torch.ones(n, n, dtype=torch.bool)
        if causal:
            visible = torch.tril(visible)
        visible = visible.expand(B, H, n, n)
        if active is not None:
            visible = visible & active[:, None, None, :] & active[:, None, :, None]
        cand = self.candidates(qi * sq[..., None, None], ki * sk[..., None, None], visible, layer, active)
        exact = qi @ ki.transpose(-1, -2)  # integer-valued float64, exact below 2^53
        keep = self.survivors(qi, ki, sq, sk, exact, cand, layer)
        logits = exact * (sq * sk / math.sqrt(d))[..., None, None]
        vdeq = vi * sv[..., None, None]
        if self.lowrank:
            log_q = self.features(qi * sq[..., None, None], layer)
            log_k = self.features(ki * sk[..., None, None], layer)
            out = scatterbrain_output(logits, keep, visible, log_q, log_k, vdeq)
            probs = None
        else:
            probs = survivor_softmax(exact, keep, sq * sk / math.sqrt(d))
            out = probs @ vdeq
        if self.skim == "fca":
            if probs is None:
                raise MechanismError("FCA with the low-rank unit is not modelled")
            self._probs = probs
        self.count(layer, cand, keep, active)
        if self.record:
            self.masks[layer] = (cand.to(torch.uint8) + keep.to(torch.uint8)).clone()
            self.tokens[layer] = self._ids.clone()
            self.active[layer] = None if active is None else active.clone()
        return out.to(q.dtype)

    def candidates(self, qd, kd, visible, layer, active):
        if self.source == "all":
            return visible
        if self.source == "none":
            return torch.zeros_like(visible)
        H = qd.shape[1]
        cand = torch.zeros_like(visible)
        for h in range(H):
            if self.source == "tree":
                w = self.tensors[f"layers.{layer}.tree.{h}.w"].double()
                b = self.tensors[f"layers.{layer}.tree.{h}.b"].double()
                depth = int(round(math.log2(w.shape[0] + 1)))
                lq = tree_leaves(qd[:, h], w, b, depth)
                lk = tree_leaves(kd[:, h], w, b, depth)
                cand[:, h] = lq[:, :, None] == lk[:, None, :]
            else:
                proj = self.tensors[f"layers.{layer}.lsh.{h}.proj"].double()
                c = int(self.cfg["lsh_unit"]["cluster_size"])
                hit = torch.zeros_like(visible[:, h])
                for r in range(proj.shape[0]):
                    cq = lsh_clusters(qd[:, h], proj[r], c, active)
                    ck = lsh_clusters(kd[:, h], proj[r], c, active)
                    hit |= (cq[:, :, None] == ck[:, None, :]) & (cq[:, :, None] >= 0)
                cand[:, h] = hit
        return cand & visible

    def survivors(self, qi, ki, sq, sk, exact, cand, layer):
        if self.mode == "dense":
            return cand
        H = qi.shape[1]
        if self.mode == "early_term":
            if self.theta_logit is not None:
                theta = torch.stack([early_term_theta(self.theta_logit[layer][h], qi.shape[-1], sq[:, h], sk[:, h])
                                     for h in range(H)], dim=1)  # [B, H]
                return cand & (exact >= theta[..., None, None])
            theta = torch.tensor([float(self.theta[layer][h]) for h in range(H)], dtype=torch.float64)
            return cand & (exact >= theta[None, :, None, None])
        est = qi @ msb_planes(ki, self.bits, self.planes).transpose(-1, -2)
        if self.margin is not None:
            margin = torch.tensor([float(self.margin[layer][h]) for h in range(H)], dtype=torch.float64)
            margin = margin[None, :].expand(qi.shape[0], H)
        else:
            d = qi.shape[-1]
            margin = torch.stack([latte_margin(float(self.gamma[layer][h]), d, sq[:, h], sk[:, h])
                                  for h in range(H)], dim=1)
        running = segment_running_max(est, cand, self.entries)
        return cand & (running - est <= margin[..., None, None])

    def features(self, x, layer):
        H = x.shape[1]
        return torch.stack([performer_log_features(x[:, h], self.tensors[f"layers.{layer}.performer.{h}.w"].double())
                            for h in range(H)], dim=1)

    def count(self, layer, cand, keep, active):
        c = self.counts
        batch, n = cand.shape[0], cand.shape[-1]
        c["candidates"][layer] += cand.sum(dim=(0, 2, 3)).numpy()
        c["filtered"][layer] += (cand & ~keep).sum(dim=(0, 2, 3)).numpy()
        c["queries"][layer] += batch * n if active is None else int(active.sum())

    # -- summaries ----------------------------------------------------------------------

    def trace_tensors(self, sample=0):
        """What the trace of input `sample` must carry for `attnsim run` to skim as this
        forward pass did: per layer the hidden states entering it (F32) and the predictor's
        keep decisions (U8); with the predictor's weights (SimPolicy.tensors) the simulator
        recomputes the same decisions (skim_controller.source "predictor") or reads them
        (source "trace"). Needs record=True."""
        out = {}
        for layer, hidden in self.hidden.items():
            out[f"layers.{layer}.hidden"] = (hidden[sample].numpy(), "F32")
            out[f"layers.{layer}.skim_keep"] = (self.skim_keep[layer][sample].numpy().astype("uint8"), "U8")
        for name, t in self.tensors.items():
            if ".skim_predictor." in name or ".tree." in name or ".lsh." in name or ".performer." in name:
                out[name] = (t.numpy(), "F32")
        return out

    def filtered_ratio(self):
        cand = int(self.counts["candidates"].sum())
        return int(self.counts["filtered"].sum()) / cand if cand else 0.0


def fca_keep_count(rule, layer, n):
    """R for FCA: a fraction f -> ceil(f n - 1e-9) (at least 1); a list -> its layer entry."""
    if isinstance(rule, list):
        if layer >= len(rule):
            raise MechanismError(f"config: skim_controller.keep: no entry for layer {layer}")
        return max(1, min(int(rule[layer]), n))
    return max(1, min(n, math.ceil(float(rule) * n - 1e-9)))


def fca_select(score, r):
    """(fine ids in position order, tail ids in position order): 0 and the r - 1 best others
    (highest score, ties to the lower index)."""
    n = score.shape[0]
    if r >= n:
        return list(range(n)), []
    others = sorted(range(1, n), key=lambda j: (-float(score[j]), j))[:max(r, 1) - 1]
    fine = sorted([0] + others)
    chosen = set(fine)
    return fine, [j for j in range(n) if j not in chosen]


def split_groups(tail, groups):
    """min(groups, t) contiguous groups, sizes differing by at most one, larger first."""
    t = len(tail)
    if t == 0:
        return []
    parts = min(groups, t)
    sizes = [t // parts + (1 if g < t % parts else 0) for g in range(parts)]
    out, start = [], 0
    for s in sizes:
        out.append(tail[start:start + s])
        start += s
    return out
