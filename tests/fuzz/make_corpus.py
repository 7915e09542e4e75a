#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora, tests/fuzz/corpus/<target>/ (docs/reliability.md#fuzzing).

Small valid inputs only (the bundled traces are hundreds of KB; libFuzzer wants a few KB):
- trace: `attnsim trace synth` at tiny sizes, one per dtype and per kind of optional tensor,
  plus a cross-attention trace (N != M) written here;
- config: every preset in configs/, and a few followed by NUL-separated --set arguments;
- sweep: the sweeps in configs/sweeps/ pointed at the fuzz target's own files (base.json,
  tiny.safetensors), and one with an inline base;
- exported_trace: scripts/export_trace.py's outputs on tiny models (this project's
  TinyTransformer and a torch nn.TransformerEncoder) in each dtype, with mechanism tensors
  (trees, LSH directions, Performer matrices, skim predictor and hidden states).

Also the libFuzzer dictionaries tests/fuzz/dict/<target>.dict (scripts/fuzz.sh passes them):
JSON syntax, every config key path and string value of the presets (from `attnsim config
--resolve`), the sweep file's keys and skip_if operators, the safetensors header's fields,
dtypes, tensor names and metadata keys.

Deterministic: the same attnsim and torch give the same bytes. Existing files of the same
names are replaced; other files (e.g. inputs libFuzzer added) are left alone.

usage: /usr/bin/python3 tests/fuzz/make_corpus.py --attnsim build/attnsim
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def out(target, name):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    if os.path.exists(path):
        os.remove(path)
    return path


def trace_corpus(attnsim):
    tiny = ["--layers", "2", "--heads", "2", "--tokens", "6", "--head-dim", "4"]
    cases = {
        "f16.safetensors": tiny,
        "f32-causal.safetensors": ["--layers", "1", "--heads", "2", "--tokens", "5", "--head-dim", "4",
                                   "--dtype", "f32", "--causal"],
        "bf16.safetensors": ["--layers", "1", "--heads", "1", "--tokens", "4", "--head-dim", "2", "--dtype", "bf16"],
        "i8.safetensors": tiny + ["--dtype", "i8"],
        "mechanisms.safetensors": ["--layers", "1", "--heads", "2", "--tokens", "6", "--head-dim", "4",
                                   "--trees", "2", "--lsh", "2", "--performer", "4"],
        "skim-keep.safetensors": ["--layers", "2", "--heads", "1", "--tokens", "6", "--head-dim", "4",
                                  "--skim-keep", "0.5"],
        "predictor.safetensors": ["--layers", "2", "--heads", "1", "--tokens", "5", "--head-dim", "4",
                                  "--predictor"],
    }
    for name, args in cases.items():
        subprocess.run([attnsim, "trace", "synth", "--out", out("trace", name), "--seed", "7"] + args, check=True,
                       env=dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE"), stdout=subprocess.DEVNULL)
    import numpy as np
    import safetensors_io
    rng = np.random.default_rng(7)
    cross = {f"layers.0.{p}": (rng.standard_normal((1, n, 4)).astype(np.float32), "F32")
             for p, n in (("q", 3), ("k", 5), ("v", 5))}
    safetensors_io.write(out("trace", "cross-attention.safetensors"), cross, {"model": "cross"})


def config_corpus():
    configs = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".json"))
    for f in configs:
        with open(os.path.join(ROOT, "configs", f), "rb") as src:
            text = src.read()
        with open(out("config", f), "wb") as dst:
            dst.write(text)
    with_sets = {
        "defaults+set.bin": ('{"schema": "attnsim.config/1"}', ["qk_unit.lanes=32", "comparator.gamma=0.05"]),
        "latte+set.bin": (None, ["qk_unit.bits=6", "qk_unit.estimate_bits=3", "reuse_buffer.segments=2"]),
        "encoder+set.bin": ('{"schema": "attnsim.config/1", "model": {"scope": "encoder"}}',
                            ["pipeline.overlap_gemm=true", "gemm_engine.dataflow=ws", "clock_ghz=1.5"]),
        "strings+set.bin": ('{"schema": "attnsim.config/1"}', ["qk_unit.type=bit_parallel", "energy.tech=45nm"]),
    }
    for name, (text, sets) in with_sets.items():
        if text is None:
            with open(os.path.join(ROOT, "configs", "latte.json")) as src:
                text = src.read()
        with open(out("config", name), "wb") as dst:
            dst.write(b"\0".join([text.encode()] + [s.encode() for s in sets]))


def sweep_corpus():
    d = os.path.join(ROOT, "configs", "sweeps")
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f)) as src:
            j = json.load(src)
        j["base"] = "base.json"
        if "baseline" in j:
            j["baseline"] = "base.json"
        j["traces"] = ["tiny.safetensors"]
        with open(out("sweep", f), "w") as dst:
            json.dump(j, dst, indent=2)
            dst.write("\n")
    inline = {
        "schema": "attnsim.sweep/1",
        "description": "inline base, zip and skip_if",
        "base": {"schema": "attnsim.config/1", "qk_unit": {"type": "bit_serial", "mode": "latte"}},
        "baseline": {"schema": "attnsim.config/1"},
        "set": {"qk_unit.lanes": 16},
        "traces": ["tiny.safetensors", "tiny.safetensors"],
        "grid": {"comparator.gamma": [0.01, 0.1]},
        "zip": {"qk_unit.bits": [8, 6], "qk_unit.estimate_bits": [4, 3]},
        "skip_if": [{"comparator.gamma": {">": 0.05}, "qk_unit.bits": {"==": 6}}],
    }
    with open(out("sweep", "inline.json"), "w") as dst:
        json.dump(inline, dst, indent=2)
        dst.write("\n")


def exported_trace_corpus():
    import numpy as np
    import torch
    import torch.nn as nn
    import export_trace
    import models

    torch.manual_seed(7)
    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    cfg = models.ModelConfig(kind="charlm", d_model=8, heads=2, layers=2, mlp=16, tokens=6, classes=5)
    lm = models.TinyTransformer(cfg).eval()
    ids = torch.tensor([[1, 2, 3, 4, 0, 2]])
    d = cfg.head_dim

    def mechanisms():
        t = {}
        for l in range(cfg.layers):
            for h in range(cfg.heads):
                t[f"layers.{l}.tree.{h}.w"] = (rng.standard_normal((3, d)).astype(np.float32), "F32")
                t[f"layers.{l}.tree.{h}.b"] = (rng.standard_normal(3).astype(np.float32), "F32")
                t[f"layers.{l}.lsh.{h}.proj"] = (rng.standard_normal((2, d)).astype(np.float32), "F32")
                t[f"layers.{l}.performer.{h}.w"] = (rng.standard_normal((2, d)).astype(np.float32), "F32")
        return t

    for dtype in ("f32", "f16", "bf16", "i8"):
        export_trace.export_trace(lm, ids, out("exported_trace", f"charlm-{dtype}.safetensors"),
                                  model_name="charlm-tiny", causal=True, dtype=dtype, force=True)
    export_trace.export_trace(lm, ids, out("exported_trace", "charlm-mechanisms.safetensors"),
                              model_name="charlm-tiny", causal=True, dtype="f16", force=True,
                              extra_tensors=mechanisms(), metadata={"data": "ids 1 2 3 4 0 2"})

    skim_cfg = models.ModelConfig(kind="charlm", d_model=8, heads=2, layers=2, mlp=16, tokens=6, classes=5,
                                  skim_predictors=True)
    skim = models.TinyTransformer(skim_cfg).eval()
    extra = {k: (v, "F32") for k, v in skim.predictor_tensors().items()}
    for l in range(skim_cfg.layers):
        extra[f"layers.{l}.hidden"] = (rng.standard_normal((6, 8)).astype(np.float32), "F32")
    extra["layers.1.skim_keep"] = (np.array([1, 1, 0, 1, 1, 0], dtype=np.uint8), "U8")
    extra["layers.0.skim_keep"] = (np.ones(6, dtype=np.uint8), "U8")
    export_trace.export_trace(skim, ids, out("exported_trace", "charlm-skim.safetensors"),
                              model_name="charlm-skim-tiny", causal=False, dtype="f32", force=True,
                              extra_tensors=extra)

    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True),
                                    num_layers=1).eval()
    export_trace.export_trace(encoder, torch.randn(1, 4, 8), out("exported_trace", "mha-encoder.safetensors"),
                              model_name="nn.TransformerEncoder", dtype="bf16", force=True)


def dictionaries(attnsim):
    def entry(token):
        return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def write(target, tokens):
        d = os.path.join(HERE, "dict")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{target}.dict"), "w") as f:
            f.write(f"# libFuzzer dictionary of the {target} target; written by tests/fuzz/make_corpus.py\n")
            for t in sorted(set(tokens)):
                f.write(entry(t) + "\n")

    syntax = ["{", "}", "[", "]", ":", ",", '"', "true", "false", "null", "0", "-1", "1e309", "-1e309", "1e-300",
              "0.5", "4294967296", "18446744073709551616", "9223372036854775807", "\\u0000", "\\ud800", "\\n"]
    config = list(syntax) + ["schema", "attnsim.config/1"]
    presets = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".json"))
    for f in presets:
        text = subprocess.run([attnsim, "config", "--resolve", os.path.join(ROOT, "configs", f)], check=True,
                              capture_output=True, text=True,
                              env=dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")).stdout
        for key, value in json.loads(text).items():
            config.append(key)
            for k, v in (value.items() if isinstance(value, dict) else []):
                config += [k, f"{key}.{k}", f"{key}.{k}="]
                if isinstance(v, str) and len(v) < 40:
                    config.append(v)
            if isinstance(value, str) and len(value) < 40:
                config.append(value)
    write("config", config)
    write("sweep", config + ["attnsim.sweep/1", "description", "base", "set", "baseline", "traces", "grid", "zip",
                             "skip_if", "base.json", "tiny.safetensors", "==", "!=", "<", "<=", ">", ">=", "in"])
    trace = syntax + ["__metadata__", "dtype", "shape", "data_offsets", "F16", "BF16", "F32", "I8", "U8", "I32",
                      "F64", "model", "source", "causal", "scale.0.q", "scale.0.k", "scale.0.v", "layer.0.module",
                      "d_model", "d_ff"]
    for l in ("0", "1"):
        trace += [f"layers.{l}.{p}" for p in ("q", "k", "v", "skim_keep", "hidden")]
        trace += [f"layers.{l}.tree.0.w", f"layers.{l}.tree.0.b", f"layers.{l}.lsh.0.proj", f"layers.{l}.performer.0.w"]
        trace += [f"layers.{l}.skim_predictor.{m}.{t}" for m in ("ln1", "fc1", "ln2", "fc2") for t in ("weight", "bias")]
    write("trace", trace)
    write("exported_trace", trace + ["charlm-tiny", "true", "false", "f16", "i8", "scripts/export_trace.py (PyTorch forward hooks)"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attnsim", default=os.path.join(ROOT, "build", "attnsim"))
    args = parser.parse_args()
    trace_corpus(os.path.abspath(args.attnsim))
    config_corpus()
    sweep_corpus()
    exported_trace_corpus()
    dictionaries(os.path.abspath(args.attnsim))
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
