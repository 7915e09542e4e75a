#!/usr/bin/python3
"""Cross-check attnsim's QK unit against the independent numpy reference (scripts/reference.py).

Generates small random traces with `attnsim trace synth` (F16, F32, BF16, I8; causal or
not; N not a multiple of the lane count; several d), runs a matrix of configs through
`attnsim run` and through the reference, and requires, per trace and config:
  - identical candidate_keys and filtered_keys per (layer, head) and in total,
  - identical cycles.by_module.qk_unit.busy and counters.qk_unit.bitplane_ops
    (int8_macs for bit_parallel),
  - exact_ratio, rel_error and mass_recall per (layer, head), and quality.rel_error /
    quality.mass_recall, within 1e-6 relative (1e-9 absolute near zero),
  - the resolved config echoed by the simulator holds every override we passed;
and, on traces carrying trees, LSH directions and Performer matrices (GEN_TRACES) with
every candidate source and the low-rank unit (generator_matrix): filter.candidates_per_query
overall and per (layer, head), mass_recall null for TC, and the busy cycles and counters
of tree_engine, lsh_unit and lowrank_unit (absent when not configured).
Prints one table line per run and exits 1 on any mismatch (with the exact field).
See docs/reference.md.

usage: /usr/bin/python3 scripts/check_reference.py --attnsim build/attnsim [--keep DIR] [-v]
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:  # fail loudly: a missing numpy must not look like a pass or a skip
    print("check_reference.py: FAIL: numpy is not importable by "
          f"{sys.executable}; install python3-numpy (Debian) to run the reference check",
          file=sys.stderr)
    sys.exit(1)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402  (the module next to this script)

REL_TOL = 1e-6
ABS_TOL = 1e-9

# name, synth options.  N is never a multiple of 7 or 64.
TRACES = [
    ("f16_full", dict(layers=2, heads=3, tokens=37, head_dim=16, seed=11, dtype="f16", causal=False)),
    ("f32_causal", dict(layers=1, heads=4, tokens=50, head_dim=24, seed=12, dtype="f32", causal=True)),
    ("bf16_causal", dict(layers=2, heads=2, tokens=71, head_dim=8, seed=13, dtype="bf16", causal=True)),
    ("i8_full", dict(layers=1, heads=3, tokens=45, head_dim=32, seed=14, dtype="i8", causal=False)),
    ("i8_causal", dict(layers=2, heads=2, tokens=29, head_dim=12, seed=15, dtype="i8", causal=True)),
    ("f16_d5_long", dict(layers=1, heads=2, tokens=131, head_dim=5, seed=16, dtype="f16", causal=False)),
    ("f32_d1", dict(layers=1, heads=2, tokens=9, head_dim=1, seed=17, dtype="f32", causal=True)),
    ("hand_f32", dict(handmade=True, layers=1, heads=3, seed=18, dtype="f32", causal=False)),
    ("hand_i8", dict(handmade=True, layers=1, heads=2, seed=19, dtype="i8", causal=True)),
]

# Candidate generators and the low-rank unit (docs/candidates.md): traces that carry trees
# (--trees D), LSH directions (--lsh R) and Performer matrices (--performer m), checked
# with generator_matrix. N is never a multiple of the lane counts, cluster sizes or unit
# widths used there.
GEN = dict(generators=True)
GEN_TRACES = [
    ("gen_f16", dict(GEN, layers=2, heads=2, tokens=53, head_dim=16, seed=21, dtype="f16",
                     causal=False, trees=3, lsh=2, performer=8)),
    ("gen_f32_causal", dict(GEN, layers=1, heads=3, tokens=61, head_dim=12, seed=22, dtype="f32",
                            causal=True, trees=2, lsh=3, performer=6)),
    ("gen_i8_causal", dict(GEN, layers=2, heads=2, tokens=47, head_dim=20, seed=23, dtype="i8",
                           causal=True, trees=4, lsh=1, performer=10)),
    ("gen_i8", dict(GEN, layers=1, heads=3, tokens=38, head_dim=7, seed=24, dtype="i8",
                    causal=False, trees=1, lsh=2, performer=4)),
    # temperature 0.1: q ten times larger, peaked rows and large feature norms
    ("gen_bf16_sharp", dict(GEN, layers=1, heads=2, tokens=89, head_dim=5, seed=25, dtype="bf16",
                            causal=True, trees=3, lsh=4, performer=12, temperature=0.1)),
    ("gen_hand_n13m7", dict(GEN, handmade=True, layers=1, heads=3, seed=26, dtype="f32",
                            causal=False, queries=13, keys=7, head_dim=6, trees=2, lsh=2,
                            performer=8)),
    ("gen_hand_n5m12", dict(GEN, handmade=True, layers=1, heads=3, seed=27, dtype="f32",
                            causal=False, queries=5, keys=12, head_dim=6, trees=3, lsh=3,
                            performer=4)),
    ("gen_hand_causal", dict(GEN, handmade=True, layers=1, heads=3, seed=28, dtype="f32",
                             causal=True, queries=19, keys=19, head_dim=6, trees=2, lsh=2,
                             performer=6, key_norms=(0.05, 80.0))),
    # Causal head 1 with key norms shrinking along the sequence: early keys' log-features
    # lie far (> 745) below the later ones', so a causal prefix must keep its own shifts
    # (the simulator once used the head's, and those prefix sums underflowed).
    ("gen_hand_shrinking", dict(GEN, handmade=True, layers=1, heads=3, seed=29, dtype="f32",
                                causal=True, queries=11, keys=11, head_dim=6, trees=2, lsh=2,
                                performer=8, key_norms=(80.0, 0.02))),
]



def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer (docs/trace-format.md), for the hand-made edge traces."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int8): "I8"}
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def handmade(path, opts):
    """Edge cases synth does not produce (SEMANTICS sections 1-3):
    cross-attention (N != M, non-causal), a head of tiny values (the LATTE margin
    saturates: every key kept), an all-zero q head (scale 1, all scores tie), values on
    exact .5 ties of the B = 4 grid (round half to even), and I8 data with -128."""
    rng = np.random.default_rng(opts["seed"])
    if opts["dtype"] == "f32":
        n, m, d = 6, 11, 4
        q = rng.standard_normal((3, n, d)).astype(np.float32)
        k = rng.standard_normal((3, m, d)).astype(np.float32)
        v = rng.standard_normal((3, m, d)).astype(np.float32)
        q[0] *= np.float32(1e-18)
        k[0] *= np.float32(1e-18)
        q[1] = 0.0
        grid = np.array([3.5, 0.25, 0.75, -1.25, 1.0, -0.25, 2.5, -3.5], dtype=np.float32)
        q[2] = rng.choice(grid, size=(n, d))
        k[2] = rng.choice(grid, size=(m, d))
        q[2, 0, 0], k[2, 0, 0] = 3.5, -3.5  # pin max|x| so that x/scale lands on .5 ties
        write_safetensors(path, {"layers.0.q": q, "layers.0.k": k, "layers.0.v": v},
                          {"model": "handmade", "causal": "false"})
    else:
        h, n, d = 2, 13, 6
        t = {f"layers.0.{w}": rng.integers(-128, 128, size=(h, n, d)).astype(np.int8) for w in "qkv"}
        t["layers.0.k"][0, 3, :] = -128
        write_safetensors(path, t, {"model": "handmade", "causal": "true", "scale.0.q": "0.031",
                                    "scale.0.k": "0.0123", "scale.0.v": "0.5"})


def handmade_generators(path, opts):
    """Trees, LSH directions and a Performer matrix on edges synth does not produce:
    cross-attention (N != M) or causal self-attention; head 0 plain Gaussian; head 1 of
    large norms (scores and log-features far beyond exp's range: the low-rank combination
    must be evaluated stably), with key norms from key_norms[0] to key_norms[1] along the
    sequence; head 2 with exact ties: coordinates 0 and 1 equal in half of the rows and
    split node 0 / LSH direction 0 equal to e_0 - e_1 (w . x + b exactly 0: not < 0, so
    right; equal projections: ranks by index)."""
    rng = np.random.default_rng(opts["seed"])
    n, m, d, heads = opts["queries"], opts["keys"], opts["head_dim"], opts["heads"]
    q = rng.standard_normal((heads, n, d)).astype(np.float32)
    k = rng.standard_normal((heads, m, d)).astype(np.float32)
    v = rng.standard_normal((heads, m, d)).astype(np.float32)
    q[1] *= np.float32(40.0)
    k[1] *= np.geomspace(*opts.get("key_norms", (40.0, 40.0)), m).astype(np.float32)[:, None]
    q[2, ::2, 1] = q[2, ::2, 0]
    k[2, ::2, 1] = k[2, ::2, 0]
    nodes = 2 ** opts["trees"] - 1
    t = {"layers.0.q": q, "layers.0.k": k, "layers.0.v": v}
    tie = np.zeros(d, dtype=np.float32)
    tie[0], tie[1] = 1.0, -1.0
    for h in range(heads):
        w = rng.standard_normal((nodes, d)).astype(np.float32)
        b = (0.3 * rng.standard_normal(nodes)).astype(np.float32)
        proj = rng.standard_normal((opts["lsh"], d)).astype(np.float32)
        if h == 2:
            w[0], b[0], proj[0] = tie, 0.0, tie
        t[f"layers.0.tree.{h}.w"], t[f"layers.0.tree.{h}.b"] = w, b
        t[f"layers.0.lsh.{h}.proj"] = proj
        t[f"layers.0.performer.{h}.w"] = rng.standard_normal(
            (opts["performer"] // 2, d)).astype(np.float32)
    write_safetensors(path, t, {"model": "handmade", "causal": "true" if opts["causal"] else "false"})


def synth(attnsim, path, opts):
    if opts.get("handmade"):
        return (handmade_generators if opts.get("generators") else handmade)(path, opts)
    cmd = [attnsim, "trace", "synth", "--out", path, "--layers", str(opts["layers"]),
           "--heads", str(opts["heads"]), "--tokens", str(opts["tokens"]),
           "--head-dim", str(opts["head_dim"]), "--seed", str(opts["seed"]),
           "--dtype", opts["dtype"]]
    if opts["causal"]:
        cmd.append("--causal")
    for option in ("trees", "lsh", "performer", "temperature"):
        if option in opts:
            cmd += [f"--{option}", str(opts[option])]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def head_scores(trace_path, bits):
    """Exact integer scores per (layer, head), to place early_term thresholds inside the
    score range (so that keys stop at different planes)."""
    trace = reference.Trace(trace_path)
    out = []
    for layer in range(trace.layers):
        q, _ = reference.quantized_layer_tensor(trace, layer, "q", bits)
        k, _ = reference.quantized_layer_tensor(trace, layer, "k", bits)
        out.append([q[h] @ k[h].T for h in range(q.shape[0])])
    return out


def config_matrix(trace_path, opts):
    """(label, override dict) pairs: the config space of issue 3 item 6."""
    layers, heads = opts["layers"], opts["heads"]
    per_head_gamma = [[0.001, 0.05, 0.3, 1.0][h % 4] for h in range(heads)]
    per_layer_gamma = [[[0.5, 0.02, 0.2][(l + h) % 3] for h in range(heads)] for l in range(layers)]
    configs = []

    def add(label, **sections):
        configs.append((label, sections))

    # Dense: bit-serial for several B and L, bit-parallel.
    for bits, lanes in ((8, 64), (4, 7), (12, 1)):
        add(f"dense B={bits} L={lanes}", qk_unit=dict(mode="dense", bits=bits, lanes=lanes))
    for lanes in (1, 7, 64):
        add(f"bit_parallel L={lanes}", qk_unit=dict(type="bit_parallel", mode="dense", lanes=lanes))

    # LATTE: B x P x L, gamma shapes, margins, segment sizes, lane sync.
    rotation = 0
    for bits in (4, 8, 12):
        for planes in sorted({1, 3, bits // 2}):
            for lanes in (1, 7, 64):
                gamma = [0.01, per_head_gamma, per_layer_gamma][rotation % 3]
                entries = [5, 4096][(rotation // 3) % 2]
                sync = ["lockstep", "independent"][rotation % 2]
                rotation += 1
                label = (f"latte B={bits} P={planes} L={lanes} E={entries} {sync[:4]} "
                         f"gamma={'scalar' if not isinstance(gamma, list) else 'list'}")
                add(label, qk_unit=dict(mode="latte", bits=bits, estimate_bits=planes,
                                        lanes=lanes, lane_sync=sync),
                    comparator=dict(gamma=gamma), reuse_buffer=dict(entries=entries))
    # Edges: B = 2, P = B (no pass 2), B = 16, one-key segments, more lanes than keys.
    add("latte B=2 P=1 L=3 E=1", qk_unit=dict(mode="latte", bits=2, estimate_bits=1, lanes=3),
        comparator=dict(gamma=0.2), reuse_buffer=dict(entries=1))
    add("latte B=8 P=8 L=7 E=5", qk_unit=dict(mode="latte", bits=8, estimate_bits=8, lanes=7),
        reuse_buffer=dict(entries=5))
    add("latte B=16 P=5 L=1000 E=13", qk_unit=dict(mode="latte", bits=16, estimate_bits=5,
                                                   lanes=1000), reuse_buffer=dict(entries=13))
    add("dense B=16 L=1000", qk_unit=dict(mode="dense", bits=16, lanes=1000))
    add("early_term B=2 theta=0 L=3 inde", qk_unit=dict(mode="early_term", bits=2, estimate_bits=1,
                                                         lanes=3, lane_sync="independent"))
    add("early_term B=16 theta=0 L=5 lock", qk_unit=dict(mode="early_term", bits=16, lanes=5))
    # Lane width W < d: ceil(d / W) cycles per plane (W = 5 and 7 divide no head dimension
    # of the test traces evenly; W = 1000 is wider than any).
    add("dense W=5 L=7", qk_unit=dict(mode="dense", lanes=7, lane_width=5))
    add("bit_parallel W=7 L=3", qk_unit=dict(type="bit_parallel", mode="dense", lanes=3, lane_width=7))
    add("latte W=7 L=7 E=5", qk_unit=dict(mode="latte", lanes=7, lane_width=7), reuse_buffer=dict(entries=5))
    add("early_term W=5 L=3 inde", qk_unit=dict(mode="early_term", lanes=3, lane_sync="independent", lane_width=5))
    add("latte W=1000", qk_unit=dict(mode="latte", lanes=64, lane_width=1000))
    # Query blocks: the union of the block's rows (causal traces: rows of different lengths).
    add("dense Qb=3 L=7", qk_unit=dict(mode="dense", lanes=7, query_block=3))
    add("bit_parallel Qb=4 L=3 W=5", qk_unit=dict(type="bit_parallel", mode="dense", lanes=3, query_block=4,
                                                  lane_width=5))
    add("latte Qb=2 L=7 E=5", qk_unit=dict(mode="latte", lanes=7, query_block=2), reuse_buffer=dict(entries=5))
    add("latte Qb=5 L=3 E=4096 g=0.2", qk_unit=dict(mode="latte", lanes=3, query_block=5),
        comparator=dict(gamma=0.2))
    add("early_term Qb=3 L=4 lock", qk_unit=dict(mode="early_term", lanes=4, query_block=3))
    add("early_term Qb=2 L=3 inde", qk_unit=dict(mode="early_term", lanes=3, lane_sync="independent",
                                                 query_block=2))
    # Invalid per SEMANTICS section 4 / docs/config.md cross-field rules: both must refuse.
    add("invalid: bit_parallel with latte", qk_unit=dict(type="bit_parallel", mode="latte"))
    add("invalid: estimate_bits > bits", qk_unit=dict(mode="latte", bits=4, estimate_bits=5))
    add("latte gamma=1 E=5", qk_unit=dict(mode="latte", lanes=7),
        comparator=dict(gamma=1.0), reuse_buffer=dict(entries=5))
    for margin in (0, 300, 20000):
        add(f"latte margin={margin} E=5", qk_unit=dict(mode="latte", lanes=7),
            comparator=dict(margin=margin), reuse_buffer=dict(entries=5))
    add("latte margin=per-head E=4096", qk_unit=dict(mode="latte", lanes=64),
        comparator=dict(margin=[[0, 150, 2000, 90000][h % 4] for h in range(heads)]))

    # early_term: thresholds around the score distribution (keys stop at many planes),
    # one that never stops, one that stops every key after plane 1 (rows with no survivor).
    for bits in (8, 4):
        scores = head_scores(trace_path, bits)
        all_scores = np.concatenate([s.ravel() for layer in scores for s in layer])
        thetas = {
            "p50": int(np.percentile(all_scores, 50)),
            "p90": int(np.percentile(all_scores, 90)),
            "p99": int(np.percentile(all_scores, 99)),
            "never": -10 ** 9,
            "huge": 2 ** 31 - 1,  # above every u_1 here: every key stops after plane 1
        }
        per_head_theta = [int(np.percentile(scores[0][h], 75)) for h in range(heads)]
        per_layer_theta = [[int(np.percentile(scores[l][h], [60, 95][(l + h) % 2]))
                            for h in range(heads)] for l in range(layers)]
        for name, theta in list(thetas.items()) + [("per-head", per_head_theta),
                                                   ("per-layer", per_layer_theta)]:
            for lanes, sync in ((7, "lockstep"), (7, "independent"), (1, "lockstep"),
                                (64, "independent"), (64, "lockstep")):
                if bits == 4 and lanes != 7:
                    continue
                add(f"early_term B={bits} theta={name} L={lanes} {sync[:4]}",
                    qk_unit=dict(mode="early_term", bits=bits, lanes=lanes, lane_sync=sync),
                    comparator=dict(theta=theta))
    return configs


def generator_matrix(trace_path, opts):
    """(label, override dict) pairs for the candidate generators and the low-rank unit
    (docs/candidates.md): every source on the QK unit's modes, small lane counts and odd
    unit widths (so that every ceil() of the timing rules matters)."""
    heads = opts["heads"]
    n = opts.get("tokens", opts.get("queries"))
    depth, rounds, features = opts["trees"], opts["lsh"], opts["performer"]
    scores = np.concatenate([s.ravel() for layer in head_scores(trace_path, 8) for s in layer])
    scores4 = np.concatenate([s.ravel() for layer in head_scores(trace_path, 4) for s in layer])
    p50, p90 = int(np.percentile(scores, 50)), int(np.percentile(scores4, 90))
    per_head_gamma = [[0.002, 0.1, 0.5][h % 3] for h in range(heads)]
    configs = []

    def add(label, source, qk=None, **sections):
        sections = dict(sections, candidates=dict(source=source))
        if qk:
            sections["qk_unit"] = qk
        configs.append((label, sections))

    tree = lambda **kw: dict(dict(macs_per_stage=5, sort_ops_per_cycle=3), **kw)  # noqa: E731
    lsh = lambda c, **kw: dict(dict(cluster_size=c, macs_per_cycle=13, sorter_width=3), **kw)  # noqa: E731
    lowrank = lambda mpc, epc, **kw: dict(enabled=True, macs_per_cycle=mpc, exps_per_cycle=epc, **kw)  # noqa: E731

    # Treeformer TF: the QK unit on the leaf's keys in every mode.
    add("tree dense L=7", "tree", dict(mode="dense", lanes=7), tree_engine=tree())
    add("tree latte E=3 L=3 g=0.05", "tree", dict(mode="latte", lanes=3),
        comparator=dict(gamma=0.05), reuse_buffer=dict(entries=3),
        tree_engine=tree(macs_per_stage=3, sort_ops_per_cycle=5))
    add("tree latte E=4096 L=64 g/head inde D=trace", "tree",
        dict(mode="latte", lanes=64, lane_sync="independent"),
        comparator=dict(gamma=per_head_gamma), tree_engine=tree(depth=depth, macs_per_stage=16))
    add("tree latte B=4 P=2 E=2 L=2", "tree", dict(mode="latte", bits=4, estimate_bits=2, lanes=2),
        reuse_buffer=dict(entries=2), tree_engine=tree(sort_ops_per_cycle=1))
    add("tree early_term p50 L=5 lock", "tree", dict(mode="early_term", lanes=5),
        comparator=dict(theta=p50), tree_engine=tree())
    add("tree early_term B=4 p90 L=3 inde", "tree",
        dict(mode="early_term", bits=4, lanes=3, lane_sync="independent"),
        comparator=dict(theta=p90), tree_engine=tree(macs_per_stage=1))
    add("tree bit_parallel L=5", "tree", dict(type="bit_parallel", mode="dense", lanes=5),
        tree_engine=tree(macs_per_stage=7, sort_ops_per_cycle=2))
    add("tree latte Qb=3 E=3 L=2", "tree", dict(mode="latte", lanes=2, query_block=3),
        reuse_buffer=dict(entries=3), tree_engine=tree())
    add("lsh c=7 early_term Qb=4 L=3 inde", "lsh",
        dict(mode="early_term", lanes=3, lane_sync="independent", query_block=4),
        comparator=dict(theta=p50), lsh_unit=lsh(7))
    # Treeformer TC (no QK work; path nodes as candidates).
    add("tree tc mps=7", "tree", tree_engine=tree(attention="tc", macs_per_stage=7))
    add("tree tc B=12 mps=1", "tree", dict(bits=12, estimate_bits=6),
        tree_engine=tree(attention="tc", macs_per_stage=1))
    # LSH: cluster sizes that do not divide N, c = 1, c > N.
    add("lsh c=7 dense L=7", "lsh", dict(mode="dense", lanes=7), lsh_unit=lsh(7))
    add("lsh c=10 latte E=3 L=2 g=0.2", "lsh", dict(mode="latte", lanes=2),
        comparator=dict(gamma=0.2), reuse_buffer=dict(entries=3),
        lsh_unit=lsh(10, macs_per_cycle=1, sorter_width=5))
    add("lsh c=1 early_term p50 L=4 inde", "lsh",
        dict(mode="early_term", lanes=4, lane_sync="independent"),
        comparator=dict(theta=p50), lsh_unit=lsh(1, sorter_width=2))
    add("lsh c>N dense L=64 R=trace", "lsh", dict(mode="dense"),
        lsh_unit=lsh(n + 3, rounds=rounds, sorter_width=1))
    # Low-rank unit on every source.
    add("lsh c=6 latte E=5 L=3 + lowrank", "lsh", dict(mode="latte", lanes=3),
        reuse_buffer=dict(entries=5), lsh_unit=lsh(6), lowrank_unit=lowrank(37, 5))
    add("lsh c=9 early_term p50 L=7 + lowrank", "lsh", dict(mode="early_term", lanes=7),
        comparator=dict(theta=p50), lsh_unit=lsh(9, sorter_width=4),
        lowrank_unit=lowrank(1000, 1))
    add("none + lowrank m=trace", "none", lowrank_unit=lowrank(100, 3, features=features))
    add("none + lowrank mpc=1 epc=7", "none", lowrank_unit=lowrank(1, 7))
    add("all latte E=5 L=7 + lowrank", "all", dict(mode="latte", lanes=7),
        reuse_buffer=dict(entries=5), lowrank_unit=lowrank(37, 5))
    add("all dense L=3 + lowrank (exact)", "all", dict(mode="dense", lanes=3),
        lowrank_unit=lowrank(513, 17))
    add("tree latte E=3 L=3 + lowrank", "tree", dict(mode="latte", lanes=3),
        reuse_buffer=dict(entries=3), tree_engine=tree(), lowrank_unit=lowrank(29, 3))
    add("tree bit_parallel L=2 + lowrank", "tree", dict(type="bit_parallel", mode="dense", lanes=2),
        tree_engine=tree(), lowrank_unit=lowrank(64, 16))
    # Config errors of docs/candidates.md: both sides must refuse.
    add("invalid: none without lowrank", "none")
    add("invalid: tc with lowrank", "tree", tree_engine=dict(attention="tc"),
        lowrank_unit=dict(enabled=True))
    add("invalid: depth != trace", "tree", tree_engine=dict(depth=depth + 1))
    add("invalid: rounds != trace", "lsh", lsh_unit=dict(rounds=rounds + 1))
    add("invalid: features != trace", "none", lowrank_unit=dict(enabled=True, features=features + 2))
    add("invalid: cluster_size 0", "lsh", lsh_unit=dict(cluster_size=0))
    return configs


def set_args(overrides):
    args = []
    for section, values in overrides.items():
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            args += ["--set", f"{section}.{key}={text}"]
    return args


def run_attnsim(attnsim, trace_path, overrides, out_path, threads):
    cmd = [attnsim, "run", "--trace", trace_path, "--out", out_path, "--quiet",
           "--threads", str(threads)] + set_args(overrides)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        return None, f"cannot run {attnsim}: {exc}"
    if proc.returncode != 0:
        return None, f"attnsim run failed ({proc.returncode}): {proc.stderr.strip()} [{' '.join(cmd)}]"
    with open(out_path) as f:
        return json.load(f), None


def close(a, b):
    return abs(a - b) <= max(ABS_TOL, REL_TOL * max(abs(a), abs(b)))


def compare(stats, ref, overrides):
    """List of mismatch messages (empty when the simulator agrees with the reference)."""
    problems = []

    for section, values in overrides.items():
        for key, value in values.items():
            echoed = stats.get("config", {}).get(section, {}).get(key)
            if echoed != value:
                problems.append(f"config.{section}.{key}: simulator echoed {echoed!r}, we set {value!r}")

    def check_int(path, got, want):
        if got != want:
            problems.append(f"{path}: attnsim {got} != reference {want}")

    def check_float(path, got, want):
        if want is None:  # mass_recall of TC heads
            if got is not None:
                problems.append(f"{path}: attnsim {got!r} != reference null")
            return
        if got is None or not close(got, want):
            problems.append(f"{path}: attnsim {got!r} != reference {want!r} (tol {REL_TOL} rel)")

    sf, rf = stats["filter"], ref["filter"]
    check_int("filter.candidate_keys", sf.get("candidate_keys"), rf["candidate_keys"])
    check_int("filter.filtered_keys", sf.get("filtered_keys"), rf["filtered_keys"])
    check_float("filter.exact_ratio", sf.get("exact_ratio"), rf["exact_ratio"])
    if len(sf.get("by_layer", [])) != len(rf["by_layer"]):
        problems.append(f"filter.by_layer: {len(sf.get('by_layer', []))} layers, reference {len(rf['by_layer'])}")
    for l, (sl, rl) in enumerate(zip(sf.get("by_layer", []), rf["by_layer"])):
        check_int(f"filter.by_layer[{l}].candidate_keys", sl.get("candidate_keys"), rl["candidate_keys"])
        check_int(f"filter.by_layer[{l}].filtered_keys", sl.get("filtered_keys"), rl["filtered_keys"])
        for key in ("filtered_ratio", "exact_ratio"):
            check_float(f"filter.by_layer[{l}].{key}", sl.get(key), rl[key])
        if len(sl.get("by_head", [])) != len(rl["by_head"]):
            problems.append(f"filter.by_layer[{l}].by_head: wrong head count")
        for h, (sh, rh) in enumerate(zip(sl.get("by_head", []), rl["by_head"])):
            p = f"filter.by_layer[{l}].by_head[{h}]"
            check_int(f"{p}.candidate_keys", sh.get("candidate_keys"), rh["candidate_keys"])
            check_int(f"{p}.filtered_keys", sh.get("filtered_keys"), rh["filtered_keys"])
            for key in ("filtered_ratio", "exact_ratio", "rel_error", "mass_recall"):
                check_float(f"{p}.{key}", sh.get(key), rh[key])

    busy = stats["cycles"]["by_module"].get("qk_unit", {}).get("busy")
    check_int("cycles.by_module.qk_unit.busy", busy, ref["cycles"]["by_module"]["qk_unit"]["busy"])
    counters = stats.get("counters", {}).get("qk_unit", {})
    rc = ref["counters"]["qk_unit"]
    check_int("counters.qk_unit.bitplane_ops", counters.get("bitplane_ops", 0), rc["bitplane_ops"])
    check_int("counters.qk_unit.int8_macs", counters.get("int8_macs", 0), rc["int8_macs"])
    check_int("counters.qk_unit.adder_tree_inputs", counters.get("adder_tree_inputs", 0),
              rc["adder_tree_inputs"])
    for key in ("rel_error", "mass_recall"):
        check_float(f"quality.{key}", stats.get("quality", {}).get(key), ref["quality"][key])

    def check_candidates_per_query(path, got, want):
        if want is None:
            if got is not None:
                problems.append(f"{path}: attnsim reports it with candidates.source 'all'")
            return
        if got is None:
            problems.append(f"{path}: missing in attnsim's stats")
            return
        check_float(f"{path}.mean", got.get("mean"), want["mean"])
        check_int(f"{path}.max", got.get("max"), want["max"])
        bins = [(b.get("from"), b.get("to"), b.get("count")) for b in got.get("histogram", [])]
        want_bins = [(b["from"], b["to"], b["count"]) for b in want["histogram"]]
        if bins != want_bins:
            problems.append(f"{path}.histogram: attnsim {bins} != reference {want_bins}")

    check_candidates_per_query("filter.candidates_per_query", sf.get("candidates_per_query"),
                               rf.get("candidates_per_query"))
    for l, (sl, rl) in enumerate(zip(sf.get("by_layer", []), rf["by_layer"])):
        for h, (sh, rh) in enumerate(zip(sl.get("by_head", []), rl["by_head"])):
            check_candidates_per_query(f"filter.by_layer[{l}].by_head[{h}].candidates_per_query",
                                       sh.get("candidates_per_query"), rh.get("candidates_per_query"))

    # The generators' and the low-rank unit's busy cycles and counters; a unit the config
    # does not use must not appear (SEMANTICS section 7).
    for name in reference.MODULES:
        got_busy = stats["cycles"]["by_module"].get(name, {}).get("busy")
        if name not in ref["cycles"]["by_module"]:
            if got_busy is not None:
                problems.append(f"cycles.by_module.{name}: present, the config does not use it")
            continue
        check_int(f"cycles.by_module.{name}.busy", got_busy, ref["cycles"]["by_module"][name]["busy"])
        got, want = stats.get("counters", {}).get(name, {}), ref["counters"][name]
        for key in sorted(set(got) | set(want)):
            check_int(f"counters.{name}.{key}", got.get(key, 0), want.get(key, 0))
    return problems


def check_rejected(stats, error, ref, label):
    """Configs that SEMANTICS/docs make invalid: both sides must refuse them."""
    problems = []
    if error is None:
        problems.append("attnsim accepted a config the docs call invalid")
    elif "failed (3)" not in error:  # the exit code of a config error (docs/reliability.md)
        problems.append(f"attnsim did not fail cleanly with a config error: {error}")
    if ref is not None:
        problems.append("reference accepted a config the docs call invalid")
    return problems


def reference_cli_matches(trace_path, overrides, in_process, workdir):
    """Runs scripts/reference.py as a command once per trace: the CLI must give what the
    in-process call gave (the matrix uses the in-process call for speed)."""
    out = os.path.join(workdir, "ref_cli.json")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.py")
    proc = subprocess.run([sys.executable, script, "--trace", trace_path,
                           "--config-json", json.dumps(overrides), "--out", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        return f"reference.py failed: {proc.stderr.strip()}"
    with open(out) as f:
        cli = json.load(f)
    return None if cli == json.loads(json.dumps(in_process)) else "reference.py CLI output differs from the in-process result"


def main():
    parser = argparse.ArgumentParser(description="attnsim vs scripts/reference.py")
    parser.add_argument("--attnsim", required=True, help="path of the built attnsim binary")
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = parser.parse_args()

    start = time.time()
    workdir = args.keep or tempfile.mkdtemp(prefix="attnsim_ref_")
    os.makedirs(workdir, exist_ok=True)
    failures, runs = [], 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    print(f"{'trace':<14} {'config':<50} {'filtered':>14} {'qk busy':>9} {'planes':>8} "
          f"{'rel_error':>10} {'recall':>8}  result")
    traces = TRACES + GEN_TRACES
    for trace_name, opts in traces:
        trace_path = os.path.join(workdir, f"{trace_name}.safetensors")
        synth(args.attnsim, trace_path, opts)
        configs = (generator_matrix if opts.get("generators") else config_matrix)(trace_path, opts)
        futures = [pool.submit(run_attnsim, args.attnsim, trace_path, overrides,
                               os.path.join(workdir, f"{trace_name}_{i}.json"),
                               # results must not depend on the thread count
                               1 + i % 2)
                   for i, (_, overrides) in enumerate(configs)]
        for i, ((label, overrides), future) in enumerate(zip(configs, futures)):
            runs += 1
            try:
                ref = reference.run_reference(trace_path, overrides)
            except reference.ReferenceError as exc:
                ref = None
                ref_error = str(exc)
            stats, error = future.result()
            if label.startswith("invalid"):
                problems = check_rejected(stats, error, ref, label)
                ok = not problems
                print(f"{trace_name:<14} {label:<50} {'rejected by both' if ok else 'MISMATCH':>14}")
                for p in problems:
                    failures.append(f"{trace_name} [{label}]: {p}")
                    print(f"    {p}")
                continue
            if ref is None:
                problems = [f"reference rejected the config: {ref_error}"]
            else:
                problems = [error] if error else compare(stats, ref, overrides)
            if problems and ref is None:
                failures += [f"{trace_name} [{label}]: {p}" for p in problems]
                print(f"{trace_name:<14} {label:<50} MISMATCH\n    {problems[0]}")
                continue
            if i == 0:
                cli_problem = reference_cli_matches(trace_path, overrides, ref, workdir)
                if cli_problem:
                    problems.append(cli_problem)
            f = ref["filter"]
            ok = not problems
            recall = ref["quality"]["mass_recall"]
            recall = "null" if recall is None else f"{recall:.4f}"
            if args.verbose or not ok or i % 8 == 0:
                print(f"{trace_name:<14} {label:<50} {f['filtered_keys']:>6}/{f['candidate_keys']:<7} "
                      f"{ref['cycles']['by_module']['qk_unit']['busy']:>9} "
                      f"{ref['counters']['qk_unit']['bitplane_ops']:>8} "
                      f"{ref['quality']['rel_error']:>10.3g} {recall:>8}  "
                      f"{'ok' if ok else 'MISMATCH'}")
            for p in problems:
                message = f"{trace_name} [{label}]: {p}"
                failures.append(message)
                print(f"    {p}")
    pool.shutdown()

    elapsed = time.time() - start
    if failures:
        print(f"\nFAIL: {len(failures)} mismatches in {runs} runs ({elapsed:.1f} s); "
              f"work directory {workdir}", file=sys.stderr)
        for message in failures[:40]:
            print(f"  {message}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nOK: {runs} runs on {len(traces)} traces agree with the reference ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
