#!/usr/bin/python3
"""Exports a PyTorch model's attention as an attnsim trace (SEMANTICS section 1).

As a module:

    from export_trace import export_trace
    export_trace(model, inputs, "t.safetensors", model_name="my-model", causal=False, dtype="f32")

runs `model(inputs)` once (no backward pass) with hooks on every attention module
it recognizes, captures each layer's per-head Q, K and V right after their projections
(before the softmax), and writes one trace: `layers.{l}.q|k|v` [H, N, d], layers numbered
in the order the modules ran (a module that runs twice gives two layers). The batch must
hold one sequence (a trace is one input). Metadata: `model`, `source`, `causal`, `dtype`,
`torch`, `layer.{l}.module` (the module's name in the model) and, for I8, the
quantization scales `scale.{l}.q|k|v` (one per layer and tensor over all heads,
max|x| / 127, values rounded half to even: the simulator's SEMANTICS section 2 rule).
Anything in `metadata=` is added (e.g. `data`, the input's description).

Recognized attention modules (adapters, tried in this order):

| adapter | modules | where q, k, v are taken |
|---|---|---|
| `qkv_linear` | this project's `models.Attention`; modules laid out like Hugging Face `BertSelfAttention` and `ViTSelfAttention`: Linear children `query`, `key`, `value` and attributes `num_attention_heads`, `attention_head_size` | outputs of the three Linear layers |
| `gpt2` | modules laid out like Hugging Face `GPT2Attention`: a fused `c_attn` projection (Conv1D or Linear, out = [q | k | v]), `num_heads` and `head_dim` (or `split_size`) | the output of `c_attn`, split in three |
| `multihead` | `torch.nn.MultiheadAttention` (also inside `nn.TransformerEncoderLayer` / `DecoderLayer`; batched either way, or one unbatched [N, D] sequence) | its inputs, projected with its own `in_proj_weight`/`in_proj_bias` (or `q/k/v_proj_weight`) exactly as its forward does |

PyTorch's fused fast path: in eval mode `nn.TransformerEncoderLayer` may skip its
`self_attn` module altogether (`torch._transformer_encoder_layer_fwd`), so no hook would
see it. The exporter runs the model with autograd recording enabled and the attention
modules' parameters requiring gradients, which is one of the conditions under which
PyTorch takes the ordinary path (values are the same; no backward pass is run), and then
checks that every recognized module ran: one that did not is an error, never a silently
shorter trace.

Mechanism tensors a model carries (Transkimmer `skim_keep` and predictor weights and
hidden states, Treeformer trees, LSH directions, Performer matrices) are written too:
those passed as `extra_tensors={name: (array, dtype)}` (or a callable returning that dict,
called after the forward pass: e.g. scripts/mechanisms.py's `SimPolicy.trace_tensors`) and
those returned by the model's `attnsim_tensors()` method after the forward pass, if it has
one (they win over extra_tensors of the same name).

Errors (ExportError, a one-line message naming the file and the tensor or module): no
attention module found, a recognized module that did not run (a fused fast path), a
batch of more than one sequence, a captured tensor with NaN or Inf or a value the dtype
cannot hold (F16 max 65504), an output path that exists without force=True (--force),
an unwritable path or missing directory. A failed export leaves no file.

Command line: exports this project's trained models (scripts/train_models.py) on one
test input:

    /usr/bin/python3 scripts/export_trace.py --model workloads/models/vit-digits.safetensors \\
        --sample 0 --out t.safetensors [--dtype f16] [--force]
"""
import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import safetensors_io  # noqa: E402

DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16", "i8": "I8"}
SOURCE = "scripts/export_trace.py (PyTorch forward hooks)"


class ExportError(Exception):
    pass


# -------------------------------------------------------------------------- adapters


def heads_first(x, heads, what):
    """[B, N, H*d] -> [H, N, d] for a batch of one sequence."""
    if x.dim() != 3:
        raise ExportError(f"{what}: expected [batch, tokens, features], got shape {list(x.shape)}")
    if x.shape[0] != 1:
        raise ExportError(f"{what}: batch of {x.shape[0]} sequences; a trace holds one (pass a batch of 1)")
    b, n, features = x.shape
    if features % heads:
        raise ExportError(f"{what}: {features} features do not split into {heads} heads")
    return x[0].reshape(n, heads, features // heads).transpose(0, 1).contiguous()


class Capture:
    """The q, k, v of one call of one attention module."""

    def __init__(self, module_name):
        self.module = module_name
        self.parts = {}

    def complete(self):
        return all(p in self.parts for p in "qkv")


class QkvLinearAdapter:
    name = "qkv_linear"

    @staticmethod
    def matches(module):
        return (all(isinstance(getattr(module, c, None), nn.Module) for c in ("query", "key", "value"))
                and hasattr(module, "num_attention_heads"))

    @staticmethod
    def attach(module, module_name, recorder):
        heads = int(module.num_attention_heads)
        handles = []
        for part, child in (("q", module.query), ("k", module.key), ("v", module.value)):
            def hook(_mod, _inputs, output, part=part):
                recorder.record(module, module_name, part, heads_first(output.detach(), heads, module_name))
            handles.append(child.register_forward_hook(hook))
        return handles


class Gpt2Adapter:
    name = "gpt2"

    @staticmethod
    def matches(module):
        return isinstance(getattr(module, "c_attn", None), nn.Module) and hasattr(module, "num_heads")

    @staticmethod
    def attach(module, module_name, recorder):
        heads = int(module.num_heads)

        def hook(_mod, _inputs, output):
            width = output.shape[-1] // 3
            split = int(getattr(module, "split_size", width))
            if 3 * split != output.shape[-1]:
                raise ExportError(f"{module_name}.c_attn: output width {output.shape[-1]} is not 3 x split_size {split}")
            q, k, v = output.detach().split(split, dim=-1)
            for part, x in (("q", q), ("k", k), ("v", v)):
                recorder.record(module, module_name, part, heads_first(x, heads, module_name))
        return [module.c_attn.register_forward_hook(hook)]


class MultiheadAdapter:
    name = "multihead"

    @staticmethod
    def matches(module):
        return isinstance(module, nn.MultiheadAttention)

    @staticmethod
    def projections(module, query, key, value):
        """q, k, v after the in-projection, as MultiheadAttention.forward computes them."""
        if module._qkv_same_embed_dim:
            w_q, w_k, w_v = module.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
        b_q = b_k = b_v = None
        if module.in_proj_bias is not None:
            b_q, b_k, b_v = module.in_proj_bias.chunk(3)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    @staticmethod
    def attach(module, module_name, recorder):
        original = module.forward
        heads = int(module.num_heads)

        def forward(query, key, value, *args, **kwargs):
            with torch.no_grad():
                q, k, v = MultiheadAdapter.projections(module, query, key, value)
            if query.dim() == 2:  # one unbatched sequence [N, D], which the module accepts
                q, k, v = (x.unsqueeze(0) for x in (q, k, v))
            elif not module.batch_first:  # [N, B, D] -> [B, N, D]
                q, k, v = (x.transpose(0, 1) for x in (q, k, v))
            for part, x in (("q", q), ("k", k), ("v", v)):
                recorder.record(module, module_name, part, heads_first(x.detach(), heads, module_name))
            return original(query, key, value, *args, **kwargs)

        module.forward = forward  # an instance attribute: also sees keyword-argument calls

        class Restore:
            def remove(self):
                del module.forward
        return [Restore()]


ADAPTERS = (QkvLinearAdapter, Gpt2Adapter, MultiheadAdapter)


def find_attention(model):
    """[(name, module, adapter)] of every recognized attention module (outermost wins)."""
    found, claimed = [], []
    for name, module in model.named_modules():
        if any(name.startswith(c + ".") for c in claimed):
            continue
        for adapter in ADAPTERS:
            if adapter.matches(module):
                found.append((name or "<model>", module, adapter))
                claimed.append(name)
                break
    return found


class Recorder:
    """Collects captures in the order the modules run; one layer per call."""

    def __init__(self):
        self.layers = []
        self.open = {}  # id(module) -> Capture being filled
        self.ran = set()

    def record(self, module, module_name, part, tensor):
        capture = self.open.get(id(module))
        if capture is None or part in capture.parts:
            capture = Capture(module_name)
            self.open[id(module)] = capture
            self.layers.append(capture)
        capture.parts[part] = tensor.float().cpu()
        self.ran.add(id(module))


@contextlib.contextmanager
def ordinary_path(modules):
    """Autograd on and the attention parameters requiring grad: PyTorch's fused fast paths
    (TransformerEncoderLayer, MultiheadAttention in eval) are then not taken."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


# --------------------------------------------------------------------------- writing


def quantize_i8(x):
    """One scale over the whole tensor: max|x| / 127 (1 if all zero), round half to even."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    return np.clip(np.rint(x.astype(np.float64) / scale), -127, 127).astype(np.int8), scale


def check_finite(path, name, module, array):
    if not np.all(np.isfinite(array)):
        raise ExportError(f"{path}: tensor {name} (module {module}): holds NaN or Inf")


def layer_tensors(captures, dtype, path):
    """{name: (array, dtype)} and metadata for the captured layers."""
    tensors, metadata = {}, {}
    for l, capture in enumerate(captures):
        metadata[f"layer.{l}.module"] = capture.module
        for part in "qkv":
            name = f"layers.{l}.{part}"
            array = capture.parts[part].numpy()
            check_finite(path, name, capture.module, array)
            if dtype == "I8":
                values, scale = quantize_i8(array)
                tensors[name] = (values, "I8")
                metadata[f"scale.{l}.{part}"] = repr(float(scale))
            else:
                tensors[name] = (array, dtype)
    return tensors, metadata


def run_hooked(model, inputs, run=None):
    found = find_attention(model)
    if not found:
        raise ExportError(f"{type(model).__name__}: no attention module found (recognized: "
                          + ", ".join(a.name for a in ADAPTERS) + "; see scripts/export_trace.py)")
    recorder = Recorder()
    handles = []
    try:
        for name, module, adapter in found:
            handles += adapter.attach(module, name, recorder)
        with ordinary_path([m for _, m, _ in found]):
            (run or model)(inputs)
    finally:
        for h in handles:
            h.remove()
    missed = [name for name, module, _ in found if id(module) not in recorder.ran]
    if missed:
        raise ExportError(f"attention module {missed[0]} did not run its Python forward "
                          "(a fused fast path, or not used by this input); no trace written")
    for capture in recorder.layers:
        if not capture.complete():
            missing = [p for p in "qkv" if p not in capture.parts]
            raise ExportError(f"attention module {capture.module}: its {', '.join(missing)} projection never ran")
    return recorder.layers


def export_trace(model, inputs, path, *, model_name, causal=False, dtype="f32", force=False,
                 extra_tensors=None, metadata=None, run=None):
    """Runs model(inputs) under hooks and writes one trace; returns the captured layers'
    {name: float32 numpy array} (before any dtype conversion).

    run: a callable used instead of `model` (e.g. `lambda x: model(x, policy)` to export
    the forward pass a mechanism shapes); extra_tensors: {name: (array, dtype)}, or a
    callable returning it, called after the forward pass (e.g. what a policy recorded)."""
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if os.path.exists(path) and not force:
        raise ExportError(f"{path}: exists (use --force / force=True to overwrite)")
    try:
        captures = run_hooked(model, inputs, run)
    except ExportError as e:  # name the file too
        raise ExportError(f"{path}: {e}") from None
    tensors, meta = layer_tensors(captures, DTYPES[dtype], path)
    carried = dict((extra_tensors() if callable(extra_tensors) else extra_tensors) or {})
    if hasattr(model, "attnsim_tensors"):
        carried.update(model.attnsim_tensors())
    for name, (array, tdtype) in carried.items():
        array = np.asarray(array.detach().cpu().numpy() if torch.is_tensor(array) else array)
        if np.issubdtype(array.dtype, np.floating):
            check_finite(path, name, "extra tensors", array)
        tensors[name] = (array, tdtype)
    meta.update({"model": model_name, "source": SOURCE, "causal": "true" if causal else "false",
                 "dtype": dtype, "torch": torch.__version__})
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    try:
        safetensors_io.write(path, tensors, meta, force=force)
    except safetensors_io.SafetensorsError as e:
        raise ExportError(f"{path}: {e}" if not str(e).startswith(path) else str(e)) from None
    except OSError as e:
        raise ExportError(f"{path}: {e.strerror}") from None
    return {f"layers.{l}.{p}": c.parts[p].numpy() for l, c in enumerate(captures) for p in "qkv"}


# ------------------------------------------------------------------- command line


def sample_input(model, sample, windows_from="test"):
    """The test input `sample` of one of this project's models, as a batch of one, and its
    description."""
    import tasks
    if model.cfg.kind == "vit":
        data = tasks.Digits()
        if not 0 <= sample < len(data.test_x):
            raise ExportError(f"--sample {sample}: the digits test set has {len(data.test_x)} images")
        return data.test_x[sample:sample + 1], f"digits test image {sample} (label {int(data.test_y[sample])})"
    data = tasks.Fortunes()
    windows = tasks.test_windows(data.test, model.cfg.tokens)
    if not 0 <= sample < len(windows):
        raise ExportError(f"--sample {sample}: the fortunes test text has {len(windows)} windows")
    return windows[sample:sample + 1, :-1], f"fortunes test window {sample} ({model.cfg.tokens} characters)"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export one of this project's models on one test input "
                                     "as an attnsim trace (see the module docstring for the Python API).")
    parser.add_argument("--model", required=True, help="a model file written by scripts/train_models.py")
    parser.add_argument("--sample", type=int, default=0, help="test image (vit) or test window (charlm) index")
    parser.add_argument("--out", required=True, help="trace to write (safetensors)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    import datasets
    import models
    import tasks
    tasks.setup_torch()
    try:
        if os.path.exists(args.out) and not args.force:  # before loading the model and the data
            raise ExportError(f"{args.out}: exists (use --force to overwrite)")
        model, meta = models.load(args.model)
        inputs, description = sample_input(model, args.sample)
        layers = export_trace(model, inputs, args.out, model_name=meta.get("model", os.path.basename(args.model)),
                     causal=model.cfg.causal, dtype=args.dtype, force=args.force,
                     metadata={"data": description, "model_file": os.path.basename(args.model)})
    except (ExportError, safetensors_io.SafetensorsError, datasets.DataError) as e:
        print(f"export_trace.py: {e}", file=sys.stderr)
        return 2
    h, n, d = layers["layers.0.q"].shape
    print(f"wrote {args.out}: {len(layers) // 3} layers x {h} heads, N = {n}, d = {d} ({description})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
