#!/usr/bin/python3
"""Independent numpy reference for attnsim's QK unit (filtering, timing, quality).

Written from /work/shared/spec/SEMANTICS.md (sections 1-4 and 7) and the project's docs
(docs/trace-format.md, docs/config.md, docs/qk_unit.md), NOT from the simulator's C++,
so that tests/reference (scripts/check_reference.py) compares two implementations.
See docs/reference.md.

usage: /usr/bin/python3 scripts/reference.py --trace T.safetensors \
           [--config-json '{"qk_unit": {...}, ...}' | --config-json cfg.json] --out ref.json

The config may be partial (missing keys take the SEMANTICS section 6 defaults); a full
resolved config (the `config` object of a stats file) works too. Only the QK-unit keys
matter: qk_unit.{type,mode,bits,estimate_bits,lanes,lane_sync}, comparator.{gamma,
margin,theta}, reuse_buffer.entries. Skim controllers are not modelled (they must be off).
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

    Candidates are a prefix of the key axis (all keys, or 0..i), so a row's segments are
    the key-index groups [s*entries, (s+1)*entries).
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


# ------------------------------------------------------------------------ one head


def simulate_head(q, k, v, scales, cfg, per_head_values, causal):
    """All reference numbers of one (layer, head). q, k, v are int64 [rows, d]."""
    qk = cfg["qk_unit"]
    bits, planes_p, lanes = qk["bits"], qk["estimate_bits"], qk["lanes"]
    mode, unit_type, lane_sync = qk["mode"], qk["type"], qk["lane_sync"]
    n, d = q.shape
    m = k.shape[0]
    scale_q, scale_k, scale_v = scales

    key_idx = np.arange(m)[None, :]
    valid = (key_idx <= np.arange(n)[:, None]) if causal else np.ones((n, m), dtype=bool)
    candidates = int(valid.sum())
    rows_keys = valid.sum(axis=1)
    scores = q @ k.T  # exact integer scores s_ij

    result = {"bitplane_ops": 0, "int8_macs": 0, "adder_tree_inputs": 0}
    if unit_type == "bit_parallel":
        if mode != "dense":
            raise ReferenceError("config: qk_unit.type: bit_parallel supports only mode dense")
        keep = valid
        result["busy"] = int(ceil_div(rows_keys, lanes).sum())
        result["int8_macs"] = candidates * d
        exact_keys = candidates
    elif mode == "dense":
        keep = valid
        result["busy"] = int(ceil_div(rows_keys, lanes).sum()) * bits
        result["bitplane_ops"] = candidates * bits
        exact_keys = candidates
    elif mode == "latte":
        margin = per_head_values["margin"]
        if margin is None:
            margin = latte_margin(per_head_values["gamma"], d, scale_q, scale_k)
        estimates = q @ msb_planes(k, bits, planes_p).T
        keep = latte_keep(estimates, valid, cfg["reuse_buffer"]["entries"], margin)
        result["busy"], result["bitplane_ops"] = latte_cycles(
            valid, keep, cfg["reuse_buffer"]["entries"], lanes, bits, planes_p)
        exact_keys = int(keep.sum())
        result["margin"] = int(margin)
    elif mode == "early_term":
        planes, keep = early_term_planes(q, k, valid, bits, per_head_values["theta"])
        if lane_sync == "lockstep":
            result["busy"] = lockstep_cycles(planes, lanes)
        else:
            result["busy"] = independent_cycles(planes, valid, lanes)
        result["bitplane_ops"] = int(planes.sum())
        # A key that went through all B planes has its exact score (kept or not).
        exact_keys = int((valid & (planes == bits)).sum())
        result["survivors_exact_keys"] = int(keep.sum())
    else:
        raise ReferenceError(f"config: qk_unit.mode: unknown mode {mode!r}")

    result["adder_tree_inputs"] = result["bitplane_ops"] * d  # d inputs per plane op

    # Quality (SEMANTICS section 3): float64, dequantized q, k, v.
    logit_scale = scale_q * scale_k / math.sqrt(d)
    logits = scores.astype(np.float64) * logit_scale
    values = v.astype(np.float64) * scale_v
    exact_p = softmax_rows(logits, valid)
    approx_p = softmax_rows(logits, keep)
    out_exact = exact_p @ values
    out_approx = approx_p @ values
    norm_exact = np.linalg.norm(out_exact)
    rel_error = float(np.linalg.norm(out_approx - out_exact) / norm_exact) if norm_exact > 0 else 0.0
    mass_recall = float(np.where(keep, exact_p, 0.0).sum(axis=1).mean())

    visible = n * (n + 1) // 2 if causal else n * m
    filtered = candidates - int(keep.sum())
    result.update({
        "candidate_keys": candidates,
        "filtered_keys": filtered,
        "filtered_ratio": filtered / candidates if candidates else 0.0,
        "exact_keys": exact_keys,
        "exact_ratio": exact_keys / visible,
        "rel_error": rel_error,
        "mass_recall": mass_recall,
    })
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


def run_reference(trace_path, partial_config):
    cfg = merge_config(partial_config)
    if cfg.get("skim_controller", {}).get("mode", "off") != "off":
        raise ReferenceError("config: skim_controller.mode: the reference models only 'off'")
    qk = cfg["qk_unit"]
    if not (1 <= qk["estimate_bits"] <= qk["bits"]):
        raise ReferenceError("config: qk_unit.estimate_bits: must be in 1..bits")
    trace = Trace(trace_path)
    comparator = cfg["comparator"]
    by_layer = []
    totals = {"candidate_keys": 0, "filtered_keys": 0, "exact_keys": 0, "visible": 0,
              "busy": 0, "bitplane_ops": 0, "int8_macs": 0, "adder_tree_inputs": 0}
    head_rel, head_recall = [], []
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
            r = simulate_head(q[h], k[h], v[h], (sq[h], sk[h], sv[h]), cfg, values, trace.causal)
            layer_heads.append(r)
            for key in ("candidate_keys", "filtered_keys", "exact_keys", "busy",
                        "bitplane_ops", "int8_macs", "adder_tree_inputs"):
                totals[key] += r[key]
            n, m = q.shape[1], k.shape[1]
            totals["visible"] += n * (n + 1) // 2 if trace.causal else n * m
            head_rel.append(r["rel_error"])
            head_recall.append(r["mass_recall"])
        by_layer.append(layer_summary(layer_heads, q.shape[1], k.shape[1], trace.causal))
    cand = totals["candidate_keys"]
    return {
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
        "quality": {"rel_error": float(np.mean(head_rel)),
                    "mass_recall": float(np.mean(head_recall))},
    }


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
