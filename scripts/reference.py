#!/usr/bin/python3
"""Independent numpy reference for attnsim's QK unit (filtering, timing, quality), the
candidate generators (tree engine, LSH unit) and the low-rank unit.

Written from /work/shared/spec/SEMANTICS.md (sections 1-5 and 7) and the project's docs
(docs/trace-format.md, docs/config.md, docs/qk_unit.md, docs/candidates.md), NOT from the
simulator's C++, so that tests/reference (scripts/check_reference.py) compares two
implementations. See docs/reference.md.

usage: /usr/bin/python3 scripts/reference.py --trace T.safetensors \
           [--config-json '{"qk_unit": {...}, ...}' | --config-json cfg.json] --out ref.json

The config may be partial (missing keys take the SEMANTICS section 6 / docs/config.md
defaults); a full resolved config (the `config` object of a stats file) works too. Keys
read: qk_unit.{type,mode,bits,estimate_bits,lanes,lane_sync,lane_width,query_block}, comparator.{gamma,margin,
theta}, reuse_buffer.entries, candidates.source, tree_engine.{depth,attention,
macs_per_stage,sort_ops_per_cycle}, lsh_unit.{rounds,cluster_size,macs_per_cycle,
sorter_width}, lowrank_unit.{enabled,features,macs_per_cycle,exps_per_cycle}. Trees, LSH
directions and Performer matrices must come from the trace (the simulator's built trees
and seeded parameters are not modelled); skim controllers must be off.
"""
import argparse
import json
import math
import os
import struct
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(f"reference.py: numpy is not importable by {sys.executable} (use /usr/bin/python3 "
             "or install python3-numpy)")

INT64_MAX = np.iinfo(np.int64).max

# SEMANTICS section 6 defaults (only the keys this reference uses).
DEFAULTS = {
    "qk_unit": {"type": "bit_serial", "mode": "latte", "bits": 8, "estimate_bits": 4,
                "lanes": 64, "lane_sync": "lockstep"},
    "comparator": {"gamma": 0.01, "theta": 0},
    "reuse_buffer": {"entries": 4096},
    "skim_controller": {"mode": "off"},
    # docs/config.md (depth, rounds and features: absent = the trace's tensors)
    "candidates": {"source": "all"},
    "tree_engine": {"attention": "tf", "macs_per_stage": 16, "sort_ops_per_cycle": 8},
    "lsh_unit": {"cluster_size": 64, "macs_per_cycle": 64, "sorter_width": 8},
    "lowrank_unit": {"enabled": False, "macs_per_cycle": 512, "exps_per_cycle": 16},
}


class ReferenceError(Exception):
    pass


# ----------------------------------------------------------------------------- trace


_NP_DTYPES = {"I8": np.int8, "U8": np.uint8, "F16": np.float16, "F32": np.float32,
              "BF16": np.uint16}


class Trace:
    """Reads a safetensors trace (SEMANTICS section 1) with numpy, one tensor at a time."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ReferenceError(f"{path}: shorter than 8 bytes")
            (header_len,) = struct.unpack("<Q", raw_len)
            header_bytes = f.read(header_len)
        if len(header_bytes) != header_len:
            raise ReferenceError(f"{path}: file is shorter than its header says")
        self.header = json.loads(header_bytes.decode("utf-8"))
        self.metadata = self.header.pop("__metadata__", {}) or {}
        self.data_start = 8 + header_len
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        self.causal = self.metadata.get("causal", "false") == "true"
        self.layers = 0
        while f"layers.{self.layers}.q" in self.header:
            self.layers += 1
        if self.layers == 0:
            raise ReferenceError(f"{path}: no layers")

    def dtype(self, name):
        return self.header[name]["dtype"]

    def tensor(self, name):
        """The tensor as stored: int8 for I8, float64 for F16/F32/BF16."""
        entry = self.header[name]
        begin, end = entry["data_offsets"]
        raw = self.data[self.data_start + begin:self.data_start + end]
        dtype = entry["dtype"]
        arr = np.frombuffer(raw.tobytes(), dtype=np.dtype(_NP_DTYPES[dtype]).newbyteorder("<"))
        if dtype == "BF16":  # bfloat16 = the high 16 bits of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        arr = arr.reshape(entry["shape"])
        return arr if dtype in ("I8", "U8") else arr.astype(np.float64)

    def metadata_scale(self, layer, which):
        key = f"scale.{layer}.{which}"
        if key not in self.metadata:
            raise ReferenceError(f"{self.path}: __metadata__.{key}: missing for an I8 layer")
        return float(self.metadata[key])


# ---------------------------------------------------------------------- quantization


def quantize_head(x, bits):
    """SEMANTICS section 2 for one (layer, head, tensor): returns (int64 values, scale)."""
    qmax = 2 ** (bits - 1) - 1
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = peak / qmax if peak > 0 else 1.0
    xq = np.clip(np.rint(x / scale), -qmax, qmax)  # np.rint rounds half to even
    return xq.astype(np.int64), scale


def quantized_layer_tensor(trace, layer, which, bits):
    """Quantized [H, rows, d] int64 tensor of layer/which plus one scale per head."""
    name = f"layers.{layer}.{which}"
    stored = trace.tensor(name)
    heads = stored.shape[0]
    if trace.dtype(name) == "I8":
        meta_scale = trace.metadata_scale(layer, which)
        if bits == 8:  # used as stored (including -128), with the metadata scale
            return stored.astype(np.int64), [meta_scale] * heads
        stored = stored.astype(np.float64) * meta_scale
    values, scales = [], []
    for h in range(heads):
        xq, s = quantize_head(stored[h], bits)
        values.append(xq)
        scales.append(s)
    return np.stack(values), scales


# ---------------------------------------------------------------------------- config


def merge_config(partial):
    cfg = {section: dict(values) for section, values in DEFAULTS.items()}
    for section, values in (partial or {}).items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg


def per_head(value, layer, head, layers, heads, key):
    """A per-head config value: a number, a list of H, or a list of L lists of H."""
    if not isinstance(value, list):
        return value
    if len(value) == layers and value and isinstance(value[0], list):
        row = value[layer]
        if len(row) != heads:
            raise ReferenceError(f"config: {key}[{layer}]: expected {heads} heads, got {len(row)}")
        return row[head]
    if len(value) != heads:
        raise ReferenceError(f"config: {key}: expected {heads} values (one per head), got {len(value)}")
    return value[head]


def latte_margin(gamma, d, scale_q, scale_k):
    """T_h = floor(-ln(gamma) * sqrt(d) / (scale_q * scale_k)), saturated to int64."""
    if not (0 < gamma <= 1):
        raise ReferenceError(f"config: comparator.gamma: must be in (0, 1], got {gamma}")
    t = -math.log(gamma) * math.sqrt(d) / (scale_q * scale_k)
    if not math.isfinite(t) or t >= 2.0 ** 63:
        return int(INT64_MAX)
    return int(math.floor(t))


# ------------------------------------------------------------------------- the math


def ceil_div(a, b):
    return -(-a // b)


def msb_planes(k, bits, planes):
    """(k >> (B-planes)) << (B-planes): the first `planes` planes of two's-complement k."""
    shift = bits - planes
    return (k >> shift) << shift


def split_columns(matrix, width, fill):
    """[N, M] -> [N, ceil(M/width), width], padding the last group with `fill`."""
    n, m = matrix.shape
    groups = ceil_div(m, width)
    padded = np.full((n, groups * width), fill, dtype=matrix.dtype)
    padded[:, :m] = matrix
    return padded.reshape(n, groups, width)


def latte_keep(estimates, valid, entries, margin):
    """Keep mask of the LATTE filter with reuse-buffer segments (SEMANTICS section 3).

    The candidates are a prefix of every row (rows compacted by `compact`: C_i in key
    order), so a row's segments are the column groups [s*entries, (s+1)*entries).
    """
    lowest = np.iinfo(np.int64).min
    masked = np.where(valid, estimates, lowest)
    seg_max = split_columns(masked, entries, lowest).max(axis=2)
    running = np.maximum.accumulate(seg_max, axis=1)  # max over segments 0..s
    m_at_key = np.repeat(running, entries, axis=1)[:, :estimates.shape[1]]
    gap = m_at_key - np.where(valid, estimates, m_at_key)  # invalid keys: 0, masked below
    return valid & (gap <= margin)


def latte_cycles(valid, keep, entries, lanes, bits, planes):
    keys_seg = split_columns(valid.astype(np.int64), entries, 0).sum(axis=2)
    surv_seg = split_columns(keep.astype(np.int64), entries, 0).sum(axis=2)
    busy = int(ceil_div(keys_seg, lanes).sum()) * planes + \
        int(ceil_div(surv_seg, lanes).sum()) * (bits - planes)
    ops = int(keys_seg.sum()) * planes + int(surv_seg.sum()) * (bits - planes)
    return busy, ops


def early_term_planes(q, k, valid, bits, theta):
    """Planes processed per (row, key) and the survivor mask (LeOPArd, SEMANTICS section 3)."""
    qpos = np.where(q > 0, q, 0).sum(axis=1)  # [N]
    planes = np.full(valid.shape, bits, dtype=np.int64)
    stopped = np.zeros(valid.shape, dtype=bool)
    for b in range(1, bits + 1):
        partial = q @ msb_planes(k, bits, b).T  # p_b, exact int64
        bound = qpos * (2 ** (bits - b) - 1)  # u_b
        stop_now = (~stopped) & (partial + bound[:, None] < theta)
        planes[stop_now] = b
        stopped |= stop_now
    planes = np.where(valid, planes, 0)
    survives = valid & ~stopped
    return planes, survives


def lockstep_cycles(planes, lanes):
    """Sum over tiles of `lanes` consecutive candidates of the tile's largest plane count."""
    return int(split_columns(planes, lanes, 0).max(axis=2).sum())


def independent_cycles(planes, valid, lanes):
    """Per row, makespan of: each key (in order) to the lane that frees first, lowest index
    on ties. Summed over rows. Vectorized over rows, loop over keys."""
    n, m = planes.shape
    lanes_used = min(lanes, m)
    free = np.zeros((n, lanes_used), dtype=np.int64)
    rows = np.arange(n)
    for j in range(m):
        lane = np.argmin(free, axis=1)  # first minimum = lowest index on ties
        free[rows, lane] += np.where(valid[:, j], planes[:, j], 0)
    return int(free.max(axis=1).sum())


def softmax_rows(logits, mask):
    """Row softmax over mask; rows with no key give all-zero probabilities."""
    masked = np.where(mask, logits, -np.inf)
    row_max = masked.max(axis=1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.where(mask, np.exp(masked - row_max), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


# -------------------------------------------------------------- candidate generators
# docs/candidates.md and SEMANTICS sections 1 and 5. Only the mechanism tensors that the
# trace carries are modelled: trees built by the simulator and seeded directions or
# feature matrices come from its C++ PRNG and are covered by its unit tests instead.


def index_order_dot(x, w):
    """[n, d] x [k, d] -> [n, k] float64 dot products summed in index order t = 0..d-1."""
    acc = np.zeros((x.shape[0], w.shape[0]))
    for t in range(x.shape[1]):
        acc = acc + x[:, t, None] * w[None, :, t]
    return acc


def tree_paths(x, w, b, depth):
    """Heap node of every row of x at levels 0..D (column D is its leaf): node n sends x
    left (child 2n + 1) iff w_n . x + b_n < 0, the dot product summed in index order."""
    splits = index_order_dot(x, w) + b[None, :]
    rows = np.arange(x.shape[0])
    node = np.zeros(x.shape[0], dtype=np.int64)
    path = [node]
    for _ in range(depth):
        node = 2 * node + np.where(splits[rows, node] < 0, 1, 2)
        path.append(node)
    return np.stack(path, axis=1)


def tree_engine_cost(n, m, d, depth, te, attended=None):
    """Busy cycles and counters of one head on the tree engine (TF, or TC with
    `attended` path nodes)."""
    counters = {"split_macs": (m + n) * depth * d, "node_reads": (m + n) * depth * (d + 1),
                "node_writes": (2 ** depth - 1) * (d + 1)}
    mps, ops = te["macs_per_stage"], te["sort_ops_per_cycle"]
    if attended is None:
        t = ceil_div(d, mps)
        busy = (m + n + depth - 1) * t + 2 * ceil_div(m, ops) + ceil_div(2 ** depth, ops)
        counters["sort_ops"] = 2 * m + 2 ** depth
    else:  # D + 1 stages, a proportionate flow shop of M keys then N queries
        t_k, t_q = ceil_div(3 * d, mps), ceil_div(2 * d, mps)
        busy = m * t_k + n * t_q + depth * max(t_k, t_q)
        counters.update({"accumulate_adds": m * (depth + 1) * 2 * d, "score_macs": d * attended,
                         "divides": 2 * attended, "node_sum_reads": d * attended})
    return {"busy": int(busy), "counters": counters}


def tc_attention(qf, kf, vf, path_q, path_k, visible, d):
    """Treeformer TC: query i attends, with one softmax, to the nodes of its path that some
    key it may see reached; a node stands for the mean key and value of those keys.
    Returns the outputs and the [n, D + 1] mask of attended path nodes."""
    n, levels = path_q.shape
    logits = np.zeros((n, levels))
    vbar = np.zeros((n, levels, vf.shape[1]))
    attended = np.zeros((n, levels), dtype=bool)
    for level in range(levels):
        member = (visible & (path_k[None, :, level] == path_q[:, level, None])).astype(np.float64)
        count = member.sum(axis=1)
        attended[:, level] = count > 0
        denom = np.where(count > 0, count, 1.0)[:, None]
        kbar = (member @ kf) / denom
        vbar[:, level] = (member @ vf) / denom
        logits[:, level] = (qf * kbar).sum(axis=1) / math.sqrt(d)
    p = softmax_rows(logits, attended)
    return np.einsum("nl,nlv->nv", p, vbar), attended


def sort_cost(n, width):
    """(cycles, element-passes) of the LSH unit's merge sort of n elements."""
    if n < 2:
        return 0, 0
    passes = (n - 1).bit_length()  # ceil(log2 n)
    return ceil_div(n, width) * passes, n * passes


def lsh_clusters(projections, cluster_size):
    """Cluster index = rank / c of every item, ranks by (projection, index)."""
    order = np.argsort(projections, kind="stable")
    rank = np.empty(len(projections), dtype=np.int64)
    rank[order] = np.arange(len(projections))
    return rank // cluster_size


def lsh_candidates(qf, kf, proj, visible, lsh):
    """Candidate mask and LSH-unit cost of one head (directions proj [R, d])."""
    c, width = lsh["cluster_size"], lsh["sorter_width"]
    n, m = qf.shape[0], kf.shape[0]
    rounds, d = proj.shape
    proj_q, proj_k = index_order_dot(qf, proj), index_order_dot(kf, proj)
    key_clusters = ceil_div(m, c)
    sizes = np.array([min(c, m - i * c) for i in range(key_clusters)], dtype=np.int64)
    cand = np.zeros((n, m), dtype=bool)
    reads = np.zeros(n, dtype=np.int64)  # u_i: keys read from the query's key clusters
    busy = ceil_div(rounds * (n + m) * d, lsh["macs_per_cycle"])
    sort_ops = 0
    for r in range(rounds):
        cq, ck = lsh_clusters(proj_q[:, r], c), lsh_clusters(proj_k[:, r], c)
        cand |= cq[:, None] == ck[None, :]
        for size in [n, m] + sizes.tolist():
            cycles, ops = sort_cost(size, width)
            busy += cycles
            sort_ops += ops
        reads += np.where(cq < key_clusters, sizes[np.minimum(cq, key_clusters - 1)], 0)
    busy += int(ceil_div(reads, width).sum())
    counters = {"projection_macs": rounds * (n + m) * d, "sort_ops": sort_ops,
                "merge_ops": int(reads.sum()), "direction_writes": rounds * d}
    return cand & visible, {"busy": int(busy), "counters": counters}


def performer_log_features(x, w, d):
    """log phi(x), phi(x) = exp([W x', -W x'] - |x'|^2 / 2) / sqrt(m), x' = x d^(-1/4)."""
    xs = x * d ** -0.25
    proj = xs @ w.T
    base = -0.5 * (xs * xs).sum(axis=1, keepdims=True) - 0.5 * math.log(2 * w.shape[0])
    return np.concatenate([proj, -proj], axis=1) + base


def log_kernel(log_phi_q, log_phi_k):
    """log(phi_i . phi_j) of every (query, key) pair, a log-sum-exp over the features."""
    t = log_phi_q[:, None, :] + log_phi_k[None, :, :]
    top = t.max(axis=2)
    return top + np.log(np.exp(t - top[..., None]).sum(axis=2))


def lowrank_output(logits, keep, visible, log_kappa, values):
    """Scatterbrain's combination (SEMANTICS section 5). Because K_i is a subset of the
    visible keys, sum_{K_i} (e - phi.phi) v + phi_i . sum_visible phi_j v_j equals
    sum_{K_i} e v + sum_{visible \ K_i} phi_i.phi_j v_j (likewise the denominator): a
    softmax over the visible keys of log-weights s_ij (survivors) or log(phi_i.phi_j)
    (every other key). No cancellation, nothing overflows."""
    log_weights = np.where(keep, logits, log_kappa)
    return softmax_rows(log_weights, visible) @ values


def lowrank_cost(n, m, d, features, survivors, causal, lr):
    """Busy cycles (key side + query side) and counters of one head on the low-rank unit."""
    a = (features // 2) * d + d + features * d + features
    mpc, epc = lr["macs_per_cycle"], lr["exps_per_cycle"]
    key_macs, key_exps = (0, 0) if causal else (m * a, m * features)
    busy = max(ceil_div(key_macs, mpc), ceil_div(key_exps, epc))
    row_macs = a + survivors * (features + d) + (a if causal else 0)
    row_exps = features * (2 if causal else 1)
    busy += int(np.maximum(ceil_div(row_macs, mpc), ceil_div(row_exps, epc)).sum())
    counters = {"macs": int(key_macs + row_macs.sum()), "exps": int(key_exps + n * row_exps),
                "divides": d * n}
    return {"busy": int(busy), "counters": counters}


def candidates_histogram(counts):
    """filter.candidates_per_query: mean, max and power-of-two bins [0,0], [1,1], [2,3],
    [4,7], ... up to the bin of the maximum."""
    counts = np.asarray(counts, dtype=np.int64)
    top = int(counts.max()) if counts.size else 0
    bins = [(0, 0)]
    while bins[-1][1] < top:
        low = bins[-1][1] + 1
        bins.append((low, 2 * low - 1))
    return {"mean": float(counts.sum()) / counts.size if counts.size else 0.0, "max": top,
            "histogram": [{"from": lo, "to": hi, "count": int(((counts >= lo) & (counts <= hi)).sum())}
                          for lo, hi in bins]}


# ------------------------------------------------------------------------ the QK unit


def compact(cand):
    """Left-align every row's candidates, in key order: ([n, W] key columns, [n, W] valid
    mask), W = max |C_i| (at least 1). The QK unit's segments and tiles are then column
    groups of the compacted rows."""
    counts = cand.sum(axis=1)
    width = max(1, int(counts.max()) if counts.size else 1)
    cols = np.argsort(~cand, axis=1, kind="stable")[:, :width]
    return cols, np.arange(width)[None, :] < counts[:, None]


def block_busy(cols, valid, keep_c, planes_c, cfg, m):
    """QK busy cycles with query blocks of Qb rows (docs/qk_unit.md "Query blocks"): each
    block streams the union of its rows' candidates (dense), of their k-th segments and of
    those segments' survivors (latte), or each key with the most planes any row ran
    (early_term); before the lane-width factor."""
    qk = cfg["qk_unit"]
    qb, lanes, bits, planes_p = qk.get("query_block", 1), qk["lanes"], qk["bits"], qk["estimate_bits"]
    entries = cfg["reuse_buffer"]["entries"]
    n = cols.shape[0]
    busy = 0
    for r0 in range(0, n, qb):
        rows = range(r0, min(n, r0 + qb))
        if qk["mode"] == "dense":
            union = {int(cols[r, j]) for r in rows for j in range(cols.shape[1]) if valid[r, j]}
            busy += -(-len(union) // lanes) * (1 if qk["type"] == "bit_parallel" else bits)
        elif qk["mode"] == "latte":
            width = cols.shape[1]
            for begin in range(0, width, entries):
                seg = range(begin, min(width, begin + entries))
                union = {int(cols[r, j]) for r in rows for j in seg if valid[r, j]}
                kept = {int(cols[r, j]) for r in rows for j in seg if valid[r, j] and keep_c[r, j]}
                busy += -(-len(union) // lanes) * planes_p + -(-len(kept) // lanes) * (bits - planes_p)
        else:
            most = {}
            for r in rows:
                for j in range(cols.shape[1]):
                    if valid[r, j]:
                        key = int(cols[r, j])
                        most[key] = max(most.get(key, 0), int(planes_c[r, j]))
            key_planes = np.array([most[key] for key in sorted(most)], dtype=np.int64)[None, :]
            if key_planes.size == 0:
                continue
            if qk["lane_sync"] == "lockstep":
                busy += lockstep_cycles(key_planes, lanes)
            else:
                busy += independent_cycles(key_planes, np.ones_like(key_planes, dtype=bool), lanes)
    return busy


def qk_unit_rows(q, k, cand, scales, cfg, per_head_values):
    """The QK unit on the candidate set C_i of every row (SEMANTICS sections 3 and 4):
    the keep mask [n, m] and the unit's busy cycles, counters and exact-key count."""
    qk = cfg["qk_unit"]
    bits, planes_p, lanes = qk["bits"], qk["estimate_bits"], qk["lanes"]
    mode, unit_type, lane_sync = qk["mode"], qk["type"], qk["lane_sync"]
    d = q.shape[1]
    entries = cfg["reuse_buffer"]["entries"]
    cols, valid = compact(cand)
    rows = np.broadcast_to(np.arange(q.shape[0])[:, None], cols.shape)
    counts = valid.sum(axis=1)
    candidates = int(counts.sum())

    def gather(matrix):
        return np.take_along_axis(matrix, cols, axis=1)

    # docs/qk_unit.md: a lane takes W = qk_unit.lane_width elements per cycle (absent or
    # null: d), so a d-wide bit-plane or dot product takes c = ceil(d / W) cycles and every
    # busy figure below is multiplied by c.
    width = qk.get("lane_width") or d
    plane_cycles = -(-d // width)
    result = {"bitplane_ops": 0, "int8_macs": 0, "adder_tree_inputs": 0}
    if unit_type == "bit_parallel":
        if mode != "dense":
            raise ReferenceError("config: qk_unit.type: bit_parallel supports only mode dense")
        keep_c = valid
        result["busy"] = int(ceil_div(counts, lanes).sum())
        result["int8_macs"] = candidates * d
        exact_keys = candidates
    elif mode == "dense":
        keep_c = valid
        result["busy"] = int(ceil_div(counts, lanes).sum()) * bits
        result["bitplane_ops"] = candidates * bits
        exact_keys = candidates
    elif mode == "latte":
        margin = per_head_values["margin"]
        if margin is None:
            margin = latte_margin(per_head_values["gamma"], d, scales[0], scales[1])
        estimates = gather(q @ msb_planes(k, bits, planes_p).T)
        keep_c = latte_keep(estimates, valid, entries, margin)
        result["busy"], result["bitplane_ops"] = latte_cycles(valid, keep_c, entries, lanes, bits,
                                                              planes_p)
        exact_keys = int(keep_c.sum())
        result["margin"] = int(margin)
    elif mode == "early_term":
        planes, survives = early_term_planes(q, k, cand, bits, per_head_values["theta"])
        planes = np.where(valid, gather(planes), 0)
        keep_c = valid & gather(survives)
        if lane_sync == "lockstep":
            result["busy"] = lockstep_cycles(planes, lanes)
        else:
            result["busy"] = independent_cycles(planes, valid, lanes)
        result["bitplane_ops"] = int(planes.sum())
        # A key that went through all B planes has its exact score (kept or not).
        exact_keys = int((valid & (planes == bits)).sum())
    else:
        raise ReferenceError(f"config: qk_unit.mode: unknown mode {mode!r}")
    if qk.get("query_block", 1) > 1:
        result["busy"] = block_busy(cols, valid, keep_c, planes if mode == "early_term" else None, cfg,
                                    k.shape[0])
    result["busy"] *= plane_cycles
    result["adder_tree_inputs"] = result["bitplane_ops"] * d  # d inputs per plane op
    result["exact_keys"] = exact_keys
    keep = np.zeros(cand.shape, dtype=bool)
    keep[rows[valid], cols[valid]] = keep_c[valid]
    return keep, result


# ------------------------------------------------------------------------ one head


def simulate_head(q, k, v, scales, cfg, per_head_values, causal, mech):
    """All reference numbers of one (layer, head). q, k, v are int64 [rows, d]; mech holds
    the head's trace tensors the config uses (tree_w/tree_b, lsh, performer)."""
    n, d = q.shape
    m = k.shape[0]
    scale_q, scale_k, scale_v = scales
    source = cfg["candidates"]["source"]
    lowrank = cfg["lowrank_unit"]["enabled"]
    tc = source == "tree" and cfg["tree_engine"]["attention"] == "tc"

    visible = (np.arange(m)[None, :] <= np.arange(n)[:, None]) if causal \
        else np.ones((n, m), dtype=bool)
    # Routing, projections and features use the dequantized q and k in float64.
    qf, kf = q.astype(np.float64) * scale_q, k.astype(np.float64) * scale_k
    values = v.astype(np.float64) * scale_v
    logits = (q @ k.T).astype(np.float64) * (scale_q * scale_k / math.sqrt(d))
    exact_p = softmax_rows(logits, visible)
    modules = {}

    if source == "tree":
        depth = (mech["tree_w"].shape[0] + 1).bit_length() - 1  # 2^D - 1 rows
        path_q = tree_paths(qf, mech["tree_w"], mech["tree_b"], depth)
        path_k = tree_paths(kf, mech["tree_w"], mech["tree_b"], depth)
        cand = visible & (path_q[:, -1:] == path_k[None, :, -1])
    elif source == "lsh":
        cand, modules["lsh_unit"] = lsh_candidates(qf, kf, mech["lsh"], visible, cfg["lsh_unit"])
    elif source == "none":
        cand = np.zeros((n, m), dtype=bool)
    elif source == "all":
        cand = visible
    else:
        raise ReferenceError(f"config: candidates.source: unknown source {source!r}")

    if tc:
        out_approx, attended = tc_attention(qf, kf, values, path_q, path_k, visible, d)
        row_counts = attended.sum(axis=1)
        result = {"busy": 0, "bitplane_ops": 0, "int8_macs": 0, "adder_tree_inputs": 0,
                  "exact_keys": 0}
        keep_count, mass_recall = 0, None
        modules["tree_engine"] = tree_engine_cost(n, m, d, depth, cfg["tree_engine"],
                                                  attended=int(row_counts.sum()))
    else:
        keep, result = qk_unit_rows(q, k, cand, scales, cfg, per_head_values)
        row_counts = cand.sum(axis=1)
        keep_count = int(keep.sum())
        if lowrank:
            log_phi_q = performer_log_features(qf, mech["performer"], d)
            log_phi_k = performer_log_features(kf, mech["performer"], d)
            out_approx = lowrank_output(logits, keep, visible, log_kernel(log_phi_q, log_phi_k),
                                        values)
            modules["lowrank_unit"] = lowrank_cost(n, m, d, 2 * mech["performer"].shape[0],
                                                   keep.sum(axis=1), causal, cfg["lowrank_unit"])
        else:
            out_approx = softmax_rows(logits, keep) @ values
        mass_recall = float(np.where(keep, exact_p, 0.0).sum(axis=1).mean())
        if source == "tree":
            modules["tree_engine"] = tree_engine_cost(n, m, d, depth, cfg["tree_engine"])

    # Quality (SEMANTICS section 3): float64, dequantized q, k, v, exact over visible keys.
    out_exact = exact_p @ values
    norm_exact = np.linalg.norm(out_exact)
    rel_error = float(np.linalg.norm(out_approx - out_exact) / norm_exact) if norm_exact > 0 else 0.0

    candidates = int(row_counts.sum())
    visible_count = n * (n + 1) // 2 if causal else n * m
    filtered = 0 if tc else candidates - keep_count
    result.update({
        "candidate_keys": candidates,
        "filtered_keys": filtered,
        "filtered_ratio": filtered / candidates if candidates else 0.0,
        "exact_ratio": result["exact_keys"] / visible_count,
        "rel_error": rel_error,
        "mass_recall": mass_recall,
        "modules": modules,
    })
    if source != "all":
        result["candidates_per_query"] = candidates_histogram(row_counts)
        result["row_candidates"] = row_counts  # for the overall histogram; not in the JSON
    return result


# ------------------------------------------------------------------------ the trace


def layer_summary(layer_heads, n, m, causal):
    cand = sum(r["candidate_keys"] for r in layer_heads)
    filtered = sum(r["filtered_keys"] for r in layer_heads)
    exact = sum(r["exact_keys"] for r in layer_heads)
    visible = (n * (n + 1) // 2 if causal else n * m) * len(layer_heads)
    return {"candidate_keys": cand, "filtered_keys": filtered,
            "filtered_ratio": filtered / cand if cand else 0.0,
            "exact_ratio": exact / visible, "by_head": layer_heads}


def trace_size(trace, cfg, section, key, tensors, rows_to_size, what):
    """The size (depth, rounds, features) of the trace's mechanism tensors, all alike, and
    equal to an explicit config value. tensors: the [rows, d] tensor names."""
    sizes = set()
    for name in tensors:
        if name not in trace.header:
            raise ReferenceError(f"{trace.path}: {name}: missing (the reference models only "
                                 f"{what} from the trace)")
        sizes.add(rows_to_size(trace.header[name]["shape"][0]))
    if len(sizes) != 1:
        raise ReferenceError(f"{trace.path}: {what} of different sizes {sorted(sizes)}")
    size = sizes.pop()
    explicit = cfg[section].get(key)
    if explicit is not None and explicit != size:
        raise ReferenceError(f"config: {section}.{key}: {explicit}, the trace's {what} give {size}")
    return size


def check_generators(trace, cfg, heads_of_layer):
    """Config rules of docs/candidates.md ('Config errors') and the trace tensors needed."""
    source = cfg["candidates"]["source"]
    lowrank = cfg["lowrank_unit"]["enabled"]
    every = [(l, h) for l in range(trace.layers) for h in range(heads_of_layer[l])]
    if source == "none" and not lowrank:
        raise ReferenceError("config: candidates.source: 'none' needs lowrank_unit.enabled")
    if source == "tree":
        if cfg["tree_engine"]["attention"] not in ("tf", "tc"):
            raise ReferenceError("config: tree_engine.attention: must be tf or tc")
        if cfg["tree_engine"]["attention"] == "tc" and lowrank:
            raise ReferenceError("config: tree_engine.attention: tc does not compose with the "
                                 "low-rank unit")
        trace_size(trace, cfg, "tree_engine", "depth",
                   [f"layers.{l}.tree.{h}.{t}" for l, h in every for t in "wb"],
                   lambda rows: (rows + 1).bit_length() - 1, "trees")
    if source == "lsh":
        if cfg["lsh_unit"]["cluster_size"] < 1:
            raise ReferenceError("config: lsh_unit.cluster_size: must be >= 1")
        trace_size(trace, cfg, "lsh_unit", "rounds", [f"layers.{l}.lsh.{h}.proj" for l, h in every],
                   lambda rows: rows, "LSH directions")
    if lowrank:
        features = cfg["lowrank_unit"].get("features")
        if features is not None and features % 2:
            raise ReferenceError("config: lowrank_unit.features: must be even")
        trace_size(trace, cfg, "lowrank_unit", "features",
                   [f"layers.{l}.performer.{h}.w" for l, h in every],
                   lambda rows: 2 * rows, "Performer matrices")


def mechanism_tensors(trace, cfg, layer, head):
    """The trace tensors of (layer, head) that the configured generators use."""
    mech = {}
    if cfg["candidates"]["source"] == "tree":
        mech["tree_w"] = trace.tensor(f"layers.{layer}.tree.{head}.w")
        mech["tree_b"] = trace.tensor(f"layers.{layer}.tree.{head}.b")
    if cfg["candidates"]["source"] == "lsh":
        mech["lsh"] = trace.tensor(f"layers.{layer}.lsh.{head}.proj")
    if cfg["lowrank_unit"]["enabled"]:
        mech["performer"] = trace.tensor(f"layers.{layer}.performer.{head}.w")
    return mech


MODULES = ("tree_engine", "lsh_unit", "lowrank_unit")


def run_reference(trace_path, partial_config):
    cfg = merge_config(partial_config)
    if cfg.get("skim_controller", {}).get("mode", "off") != "off":
        raise ReferenceError("config: skim_controller.mode: the reference models only 'off'")
    qk = cfg["qk_unit"]
    if not (1 <= qk["estimate_bits"] <= qk["bits"]):
        raise ReferenceError("config: qk_unit.estimate_bits: must be in 1..bits")
    trace = Trace(trace_path)
    check_generators(trace, cfg, [trace.header[f"layers.{l}.q"]["shape"][0]
                                  for l in range(trace.layers)])
    comparator = cfg["comparator"]
    by_layer = []
    totals = {"candidate_keys": 0, "filtered_keys": 0, "exact_keys": 0, "visible": 0,
              "busy": 0, "bitplane_ops": 0, "int8_macs": 0, "adder_tree_inputs": 0}
    modules = {}
    head_rel, head_recall, row_candidates = [], [], []
    for layer in range(trace.layers):
        q, sq = quantized_layer_tensor(trace, layer, "q", qk["bits"])
        k, sk = quantized_layer_tensor(trace, layer, "k", qk["bits"])
        v, sv = quantized_layer_tensor(trace, layer, "v", qk["bits"])
        heads = q.shape[0]
        layer_heads = []
        for h in range(heads):
            values = {
                "gamma": per_head(comparator.get("gamma", 0.01), layer, h, trace.layers, heads,
                                  "comparator.gamma"),
                "margin": (per_head(comparator["margin"], layer, h, trace.layers, heads,
                                    "comparator.margin")
                           if comparator.get("margin") is not None else None),
                "theta": per_head(comparator.get("theta", 0), layer, h, trace.layers, heads,
                                  "comparator.theta"),
            }
            r = simulate_head(q[h], k[h], v[h], (sq[h], sk[h], sv[h]), cfg, values, trace.causal,
                              mechanism_tensors(trace, cfg, layer, h))
            if "row_candidates" in r:
                row_candidates.append(r.pop("row_candidates"))
            layer_heads.append(r)
            for key in ("candidate_keys", "filtered_keys", "exact_keys", "busy",
                        "bitplane_ops", "int8_macs", "adder_tree_inputs"):
                totals[key] += r[key]
            for name, unit in r["modules"].items():
                total = modules.setdefault(name, {"busy": 0, "counters": {}})
                total["busy"] += unit["busy"]
                for counter, value in unit["counters"].items():
                    total["counters"][counter] = total["counters"].get(counter, 0) + int(value)
            n, m = q.shape[1], k.shape[1]
            totals["visible"] += n * (n + 1) // 2 if trace.causal else n * m
            head_rel.append(r["rel_error"])
            if r["mass_recall"] is not None:
                head_recall.append(r["mass_recall"])
        by_layer.append(layer_summary(layer_heads, q.shape[1], k.shape[1], trace.causal))
    cand = totals["candidate_keys"]
    result = {
        "schema": "attnsim.reference/1",
        "trace": trace_path,
        "config": cfg,
        "filter": {
            "candidate_keys": cand,
            "filtered_keys": totals["filtered_keys"],
            "filtered_ratio": totals["filtered_keys"] / cand if cand else 0.0,
            "exact_keys": totals["exact_keys"],
            "exact_ratio": totals["exact_keys"] / totals["visible"],
            "by_layer": by_layer,
        },
        "cycles": {"by_module": {"qk_unit": {"busy": totals["busy"]}}},
        "counters": {"qk_unit": {"bitplane_ops": totals["bitplane_ops"],
                                 "int8_macs": totals["int8_macs"],
                                 "adder_tree_inputs": totals["adder_tree_inputs"]}},
        # mass_recall is null when no head has one (TC heads)
        "quality": {"rel_error": float(np.mean(head_rel)),
                    "mass_recall": float(np.mean(head_recall)) if head_recall else None},
    }
    for name, unit in modules.items():
        result["cycles"]["by_module"][name] = {"busy": unit["busy"]}
        result["counters"][name] = unit["counters"]
    if row_candidates:
        result["filter"]["candidates_per_query"] = candidates_histogram(np.concatenate(row_candidates))
    return result


def load_config_arg(text):
    if text is None:
        return {}
    if text.lstrip().startswith("{"):
        return json.loads(text)
    with open(text) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--config-json", help="config JSON text or a file (partial is fine)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        result = run_reference(args.trace, load_config_arg(args.config_json))
    except (ReferenceError, OSError, KeyError, ValueError) as exc:
        print(f"reference.py: {exc}", file=sys.stderr)
        return 2
    tmp = f"{args.out}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
