"""Tests of scripts/export_trace.py, the PyTorch trace exporter (issue 11, item 1).

1. Adapters: tiny random modules laid out like Hugging Face's BertSelfAttention,
   GPT2Attention (with its Conv1D) and ViTSelfAttention, torch.nn.MultiheadAttention alone
   and inside nn.TransformerEncoder (PyTorch's fused fast path), and this project's
   models.TinyTransformer. For each: the layers in forward order, shapes [H, N, d], the
   metadata, and q, k, v against the per-head projections computed here from the weights
   (float64, heads sliced by hand) on the inputs this test's own pre-hooks saw.
2. Round trips through the simulator's reader (`attnsim trace dump`), dtype by dtype:
   F32 exact, F16 and BF16 rounded to nearest even (computed here independently), I8
   quantized with the metadata scales; `attnsim trace info --json` and `attnsim run`.
3. Mechanism tensors (extra_tensors, a model's attnsim_tensors()) and `attnsim run` on
   Treeformer trees, LSH directions and Performer matrices carried by an exported trace.
4. Bad input: one-line ExportErrors naming the file or module, and no file left behind;
   the command line's exit status and message.

Every test class derives from ExportCase and is one ctest entry, export_trace_test:<Class>
(tests/scripts/CMakeLists.txt finds them by `class <Name>(ExportCase):`).

usage: ATTNSIM=build/attnsim /usr/bin/python3 tests/scripts/export_trace_test.py [Class ...]
"""
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import warnings
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import export_trace  # noqa: E402
import models  # noqa: E402
import safetensors_io  # noqa: E402

ATTNSIM = os.environ.get("ATTNSIM", os.path.join(ROOT, "build", "attnsim"))
PYTHON = "/usr/bin/python3"
EXPORT_SCRIPT = os.path.join(ROOT, "scripts", "export_trace.py")
torch.set_num_threads(1)

# Float32 projections against the float64 reference computed here.
RTOL, ATOL = 1e-5, 1e-5


# ------------------------------------------------------------------------------------------
# Modules laid out like Hugging Face transformers' (4.x; `transformers` is not installed
# here): the same child names, attributes and forward arithmetic as BertSelfAttention,
# GPT2Attention, ViTSelfAttention and pytorch_utils.Conv1D and the models around them,
# trimmed of what the exporter never sees (dropout, head masks, caches, cross-attention).


class BertSelfAttention(nn.Module):
    """transformers.models.bert.modeling_bert.BertSelfAttention (also ViTSelfAttention)."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.num_attention_heads = heads
        self.attention_head_size = hidden // heads
        self.all_head_size = heads * self.attention_head_size
        self.query = nn.Linear(hidden, self.all_head_size)
        self.key = nn.Linear(hidden, self.all_head_size)
        self.value = nn.Linear(hidden, self.all_head_size)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None):
        query = self.transpose_for_scores(self.query(hidden_states))
        key = self.transpose_for_scores(self.key(hidden_states))
        value = self.transpose_for_scores(self.value(hidden_states))
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            scores = scores + attention_mask
        context = torch.softmax(scores, dim=-1) @ value
        context = context.permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.all_head_size,))


ViTSelfAttention = BertSelfAttention  # HF's two classes have the same layout and forward


class BertSelfOutput(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads)
        self.output = BertSelfOutput(hidden)

    def forward(self, hidden_states):
        return self.output(self.self(hidden_states), hidden_states)


class BertLayer(nn.Module):
    def __init__(self, hidden, heads, intermediate):
        super().__init__()
        self.attention = BertAttention(hidden, heads)
        self.intermediate = nn.Sequential(nn.Linear(hidden, intermediate), nn.GELU())
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden)

    def forward(self, hidden_states):
        attention = self.attention(hidden_states)
        return self.output_norm(self.output(self.intermediate(attention)) + attention)


class BertEncoder(nn.Module):
    def __init__(self, hidden, heads, intermediate, layers, order=None):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))
        # The layers' call order (e.g. [1, 0], or [0, 0] for an ALBERT-like shared layer).
        self.order = list(order) if order is not None else list(range(layers))

    def forward(self, hidden_states):
        for i in self.order:
            hidden_states = self.layer[i](hidden_states)
        return hidden_states


class BertModel(nn.Module):
    """Token, position and token-type embeddings, LayerNorm, then the encoder."""

    def __init__(self, vocab=50, hidden=16, heads=2, intermediate=32, layers=2, positions=32, order=None):
        super().__init__()
        self.embeddings = nn.ModuleDict({
            "word_embeddings": nn.Embedding(vocab, hidden),
            "position_embeddings": nn.Embedding(positions, hidden),
            "token_type_embeddings": nn.Embedding(2, hidden),
            "LayerNorm": nn.LayerNorm(hidden)})
        self.encoder = BertEncoder(hidden, heads, intermediate, layers, order)

    def forward(self, input_ids):
        e = self.embeddings
        positions = torch.arange(input_ids.shape[1])[None]
        h = e["word_embeddings"](input_ids) + e["position_embeddings"](positions) + \
            e["token_type_embeddings"](torch.zeros_like(input_ids))
        return self.encoder(e["LayerNorm"](h))


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: a linear layer with its weight transposed,
    [in, out], out = x @ W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2Attention(nn.Module):
    """transformers.models.gpt2.modeling_gpt2.GPT2Attention (self-attention, causal)."""

    def __init__(self, embed_dim, heads, positions=32):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = heads
        self.head_dim = embed_dim // heads
        self.split_size = embed_dim
        self.register_buffer("bias", torch.tril(torch.ones(positions, positions, dtype=torch.bool))[None, None])
        self.c_attn = Conv1D(3 * embed_dim, embed_dim)
        self.c_proj = Conv1D(embed_dim, embed_dim)

    def _split_heads(self, x):
        return x.view(x.size()[:-1] + (self.num_heads, self.head_dim)).permute(0, 2, 1, 3)

    def forward(self, hidden_states):
        query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        weights = query @ key.transpose(-1, -2) / math.sqrt(self.head_dim)
        n = query.size(-2)
        weights = weights.masked_fill(~self.bias[:, :, :n, :n], torch.finfo(weights.dtype).min)
        out = torch.softmax(weights, dim=-1) @ value
        out = out.permute(0, 2, 1, 3).contiguous()
        return self.c_proj(out.view(out.size()[:-2] + (self.embed_dim,)))


class GPT2Block(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden)
        self.attn = GPT2Attention(hidden, heads)
        self.ln_2 = nn.LayerNorm(hidden)
        self.mlp = nn.ModuleDict({"c_fc": Conv1D(4 * hidden, hidden), "c_proj": Conv1D(hidden, 4 * hidden)})

    def forward(self, h):
        h = h + self.attn(self.ln_1(h))
        return h + self.mlp["c_proj"](torch.nn.functional.gelu(self.mlp["c_fc"](self.ln_2(h))))


class GPT2Model(nn.Module):
    def __init__(self, vocab=50, hidden=16, heads=4, layers=2, positions=32):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(positions, hidden)
        self.h = nn.ModuleList(GPT2Block(hidden, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)

    def forward(self, input_ids):
        h = self.wte(input_ids) + self.wpe(torch.arange(input_ids.shape[1])[None])
        for block in self.h:
            h = block(h)
        return self.ln_f(h)


class ViTPatchEmbeddings(nn.Module):
    def __init__(self, channels, hidden, patch):
        super().__init__()
        self.projection = nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)

    def forward(self, pixel_values):
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class ViTAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.attention = ViTSelfAttention(hidden, heads)
        self.output = nn.ModuleDict({"dense": nn.Linear(hidden, hidden)})

    def forward(self, hidden_states):
        return self.output["dense"](self.attention(hidden_states))


class ViTLayer(nn.Module):
    def __init__(self, hidden, heads, intermediate):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(hidden)
        self.attention = ViTAttention(hidden, heads)
        self.layernorm_after = nn.LayerNorm(hidden)
        self.intermediate = nn.Sequential(nn.Linear(hidden, intermediate), nn.GELU())
        self.output = nn.Linear(intermediate, hidden)

    def forward(self, h):
        h = h + self.attention(self.layernorm_before(h))
        return h + self.output(self.intermediate(self.layernorm_after(h)))


class ViTModel(nn.Module):
    """[CLS] + patch embeddings (Conv2d, kernel = stride = patch) + positions, layers, LayerNorm."""

    def __init__(self, image=8, patch=2, channels=3, hidden=16, heads=2, intermediate=32, layers=2):
        super().__init__()
        patches = (image // patch) ** 2
        self.embeddings = nn.Module()
        self.embeddings.cls_token = nn.Parameter(torch.randn(1, 1, hidden))
        self.embeddings.patch_embeddings = ViTPatchEmbeddings(channels, hidden, patch)
        self.embeddings.position_embeddings = nn.Parameter(torch.randn(1, patches + 1, hidden))
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(ViTLayer(hidden, heads, intermediate) for _ in range(layers))
        self.layernorm = nn.LayerNorm(hidden)

    def forward(self, pixel_values):
        e = self.embeddings
        patches = e.patch_embeddings(pixel_values)
        h = torch.cat([e.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1) + e.position_embeddings
        for layer in self.encoder.layer:
            h = layer(h)
        return self.layernorm(h)


def randomize_biases(model, seed):
    """Initial biases are zero or tiny: random ones, so that a lost bias shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


# ------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def saved_inputs(model, predicate):
    """[(module name, first positional input)] of every call of the modules `predicate`
    selects, in call order: this test's own forward pre-hooks, independent of the
    exporter's hooks."""
    calls, handles = [], []
    for name, module in model.named_modules():
        if predicate(module):
            handles.append(module.register_forward_pre_hook(
                lambda _m, args, name=name: calls.append((name, args[0].detach().clone()))))
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def per_head(y, heads):
    """[N, H*d] float64 -> [H, N, d]: head h is features h*d .. (h+1)*d - 1, sliced by hand."""
    d = y.shape[1] // heads
    return np.stack([y[:, h * d:(h + 1) * d] for h in range(heads)])


def linear64(x, weight, bias):
    """x [N, in] W^T + b in float64 (nn.Linear's weight is [out, in])."""
    x = x.detach().double().numpy()
    y = x @ weight.detach().double().numpy().T
    return y if bias is None else y + bias.detach().double().numpy()


def bf16_round(x):
    """float32 -> the nearest bfloat16 (ties to even), as float64, by integer arithmetic on
    the bit patterns (finite inputs)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)
    upper, lower = bits >> 16, bits & 0xFFFF
    up = (lower > 0x8000) | ((lower == 0x8000) & ((upper & 1) == 1))
    return ((upper + up) << 16).astype(np.uint32).view(np.float32).astype(np.float64)


def quantize_reference(x):
    """SEMANTICS section 2 over a whole layer tensor: scale = max|x| / 127 (1 if all zero),
    round_half_even(x / scale) (Python's round) clamped to +-127."""
    x64 = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x64)))
    scale = peak / 127 if peak > 0 else 1.0
    q = np.array([max(-127, min(127, round(v / scale))) for v in x64.ravel()], dtype=np.int64)
    return q.reshape(x64.shape), scale


def attnsim(*args, check=True):
    done = subprocess.run([ATTNSIM, *args], capture_output=True, text=True,
                          env=dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE"))
    if check and done.returncode != 0:
        raise AssertionError(f"attnsim {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def dump(path, tensor):
    """(values as the simulator's reader decodes them, float64 or int64, shaped; dtype)."""
    done = attnsim("trace", "dump", path, tensor, check=False)
    if done.returncode != 0 and "unknown subcommand" in done.stderr:
        raise unittest.SkipTest("this attnsim has no `trace dump` (branch masks)")
    if done.returncode != 0:
        raise AssertionError(f"attnsim trace dump {path} {tensor}: {done.stderr.strip()}")
    j = json.loads(done.stdout)
    assert j["tensor"] == tensor, j["tensor"]
    integral = j["dtype"] in ("I8", "U8")
    values = np.array(j["values"], dtype=np.int64 if integral else np.float64)
    return values.reshape(j["shape"]), j["dtype"]


class ExportCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="export_trace_test.")
        self.addCleanup(shutil.rmtree, self.tmp)

    def path(self, name="t.safetensors"):
        return os.path.join(self.tmp, name)

    def export(self, model, inputs, name="t.safetensors", **kwargs):
        """(path, the exporter's returned layers, the file's tensors, its metadata)."""
        kwargs.setdefault("model_name", "tiny")
        path = self.path(name)
        layers = export_trace.export_trace(model, inputs, path, **kwargs)
        tensors, meta = safetensors_io.read(path)
        return path, layers, tensors, meta

    def check_trace(self, layers, tensors, meta, modules, expected, causal=False):
        """modules: the module name of each layer, in order; expected: [(q, k, v)] float64
        [H, N, d] per layer, computed by the test."""
        count = len(modules)
        self.assertEqual(len(expected), count)
        names = {f"layers.{l}.{p}" for l in range(count) for p in "qkv"}
        self.assertEqual(set(layers), names)
        self.assertEqual({n for n in tensors if n.startswith("layers.")}, names)
        self.assertEqual([meta.get(f"layer.{l}.module") for l in range(count)], list(modules))
        self.assertNotIn(f"layer.{count}.module", meta)
        self.assertEqual(meta["causal"], "true" if causal else "false")
        self.assertEqual(meta["source"], export_trace.SOURCE)
        self.assertEqual(meta["torch"], torch.__version__)
        for l, parts in enumerate(expected):
            for p, ref in zip("qkv", parts):
                name = f"layers.{l}.{p}"
                got = layers[name]
                self.assertEqual(got.dtype, np.float32, name)
                self.assertEqual(got.shape, ref.shape, name)
                np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL, err_msg=name)
                if meta["dtype"] == "f32":  # the file holds exactly what was captured
                    np.testing.assert_array_equal(tensors[name], got, err_msg=name)

    def assert_dir_holds(self, *names, directory=None):
        self.assertEqual(sorted(os.listdir(directory or self.tmp)), sorted(names))


def bert_reference(model, calls):
    """(module names, [(q, k, v)]) from the inputs of each BertSelfAttention call."""
    modules = dict(model.named_modules())
    out = []
    for name, x in calls:
        m = modules[name]
        out.append(tuple(per_head(linear64(x[0], lin.weight, lin.bias), m.num_attention_heads)
                         for lin in (m.query, m.key, m.value)))
    return [name for name, _ in calls], out


# ------------------------------------------------------------------------------ adapters


class BertLike(ExportCase):
    """qkv_linear adapter on a BERT-like encoder: Linear query/key/value children."""

    def model(self, **kwargs):
        torch.manual_seed(1)
        return randomize_biases(BertModel(**kwargs), 2).eval()

    def test_two_layers(self):
        model = self.model()
        ids = torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(3))
        with saved_inputs(model, lambda m: isinstance(m, BertSelfAttention)) as calls:
            _, layers, tensors, meta = self.export(model, ids, model_name="bert-like", dtype="f32")
        names, expected = bert_reference(model, calls)
        self.assertEqual(names, ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"])
        self.check_trace(layers, tensors, meta, names, expected)
        self.assertEqual(layers["layers.0.q"].shape, (2, 7, 8))  # [H, N, d]
        self.assertEqual(meta["model"], "bert-like")
        self.assertEqual(meta["dtype"], "f32")

    def test_forward_order_not_declaration_order(self):
        model = self.model(layers=3, order=[2, 0, 1])
        ids = torch.randint(0, 50, (1, 5), generator=torch.Generator().manual_seed(4))
        with saved_inputs(model, lambda m: isinstance(m, BertSelfAttention)) as calls:
            _, layers, tensors, meta = self.export(model, ids, dtype="f32")
        names, expected = bert_reference(model, calls)
        self.assertEqual(names, [f"encoder.layer.{i}.attention.self" for i in (2, 0, 1)])
        self.check_trace(layers, tensors, meta, names, expected)

    def test_module_called_twice_gives_two_layers(self):
        model = self.model(layers=1, order=[0, 0])  # ALBERT-like: one layer's weights, run twice
        ids = torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(5))
        with saved_inputs(model, lambda m: isinstance(m, BertSelfAttention)) as calls:
            _, layers, tensors, meta = self.export(model, ids, dtype="f32")
        names, expected = bert_reference(model, calls)
        self.assertEqual(names, ["encoder.layer.0.attention.self"] * 2)
        self.check_trace(layers, tensors, meta, names, expected)
        self.assertFalse(np.allclose(layers["layers.0.q"], layers["layers.1.q"]))  # two inputs, two layers

    def test_hooks_removed(self):
        model = self.model()
        ids = torch.randint(0, 50, (1, 4))
        self.export(model, ids)
        for m in model.modules():
            self.assertEqual(len(m._forward_hooks), 0, type(m).__name__)


class Gpt2Like(ExportCase):
    """gpt2 adapter: a fused Conv1D c_attn, split in q | k | v."""

    def test_two_blocks_causal(self):
        torch.manual_seed(6)
        model = randomize_biases(GPT2Model(hidden=16, heads=4, layers=2), 7).eval()
        ids = torch.randint(0, 50, (1, 9), generator=torch.Generator().manual_seed(8))
        with saved_inputs(model, lambda m: isinstance(m, GPT2Attention)) as calls:
            _, layers, tensors, meta = self.export(model, ids, model_name="gpt2-like", causal=True, dtype="f32")
        modules = dict(model.named_modules())
        expected = []
        for name, x in calls:
            m = modules[name]
            w = m.c_attn.weight.detach().double().numpy()  # [D, 3D]: out = x @ W + b
            y = x[0].double().numpy() @ w + m.c_attn.bias.detach().double().numpy()
            d = m.embed_dim
            expected.append(tuple(per_head(y[:, i * d:(i + 1) * d], m.num_heads) for i in range(3)))
        names = [name for name, _ in calls]
        self.assertEqual(names, ["h.0.attn", "h.1.attn"])
        self.check_trace(layers, tensors, meta, names, expected, causal=True)
        self.assertEqual(layers["layers.1.k"].shape, (4, 9, 4))
        self.assertEqual(meta["model"], "gpt2-like")


class VitLike(ExportCase):
    """qkv_linear adapter inside a ViT-like model: [CLS] + patch embedding."""

    def test_two_layers_with_patch_embedding(self):
        torch.manual_seed(9)
        model = randomize_biases(ViTModel(image=8, patch=2, channels=3, hidden=16, heads=2, layers=2), 10).eval()
        pixels = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(11))
        with saved_inputs(model, lambda m: isinstance(m, ViTSelfAttention)) as calls:
            _, layers, tensors, meta = self.export(model, pixels, model_name="vit-like", dtype="f32")
        names, expected = bert_reference(model, calls)
        self.assertEqual(names, ["encoder.layer.0.attention.attention", "encoder.layer.1.attention.attention"])
        self.check_trace(layers, tensors, meta, names, expected)
        self.assertEqual(layers["layers.0.v"].shape, (2, 17, 8))  # 16 patches + [CLS]


# torch.nn.MultiheadAttention wrapped the ways models call it.
class SelfAttend(nn.Module):
    def __init__(self, mha, keywords=False):
        super().__init__()
        self.attn = mha
        self.keywords = keywords

    def forward(self, x):
        if self.keywords:
            return self.attn(query=x, key=x, value=x, need_weights=False)[0]
        return self.attn(x, x, x, need_weights=False)[0]


class CrossAttend(nn.Module):
    def __init__(self, mha, keys, values):
        super().__init__()
        self.attn = mha
        self.keys, self.values = keys, values

    def forward(self, x):
        return self.attn(x, self.keys, self.values, need_weights=False)[0]


def mha_reference(mha, query, key, value):
    """q, k, v [H, N|M, d] of a MultiheadAttention: its in_proj_weight split here by rows
    (or its separate q/k/v_proj_weight), inputs [tokens, D] of the one sequence."""
    d = mha.embed_dim
    b = mha.in_proj_bias
    biases = (None, None, None) if b is None else (b[:d], b[d:2 * d], b[2 * d:])
    if mha._qkv_same_embed_dim:
        w = mha.in_proj_weight
        weights = (w[:d], w[d:2 * d], w[2 * d:])
    else:
        weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
    return tuple(per_head(linear64(x, wt, bias), mha.num_heads)
                 for x, wt, bias in zip((query, key, value), weights, biases))


class MultiheadAttention(ExportCase):
    """multihead adapter: nn.MultiheadAttention, alone and in nn.TransformerEncoder."""

    def mha(self, seed, **kwargs):
        torch.manual_seed(seed)
        mha = nn.MultiheadAttention(16, 4, **kwargs)
        return randomize_biases(mha, seed + 1).eval()

    def test_batch_first_false(self):
        mha = self.mha(12)
        x = torch.randn(6, 1, 16)  # [N, B, D]
        _, layers, tensors, meta = self.export(SelfAttend(mha), x, dtype="f32")
        self.check_trace(layers, tensors, meta, ["attn"], [mha_reference(mha, x[:, 0], x[:, 0], x[:, 0])])
        self.assertEqual(layers["layers.0.q"].shape, (4, 6, 4))

    def test_batch_first_true(self):
        mha = self.mha(13, batch_first=True)
        x = torch.randn(1, 5, 16)  # [B, N, D]
        _, layers, tensors, meta = self.export(SelfAttend(mha), x, dtype="f32")
        self.check_trace(layers, tensors, meta, ["attn"], [mha_reference(mha, x[0], x[0], x[0])])

    def test_keyword_arguments(self):
        mha = self.mha(14, batch_first=True)
        x = torch.randn(1, 5, 16)
        _, layers, tensors, meta = self.export(SelfAttend(mha, keywords=True), x, dtype="f32")
        self.check_trace(layers, tensors, meta, ["attn"], [mha_reference(mha, x[0], x[0], x[0])])

    def test_module_itself_with_run(self):
        mha = self.mha(15)
        x = torch.randn(4, 1, 16)
        _, layers, tensors, meta = self.export(mha, x, dtype="f32", run=lambda t: mha(t, t, t))
        self.check_trace(layers, tensors, meta, ["<model>"], [mha_reference(mha, x[:, 0], x[:, 0], x[:, 0])])

    def test_unbatched_input(self):
        mha = self.mha(16)
        x = torch.randn(5, 16)  # [N, D]: MultiheadAttention accepts one unbatched sequence
        _, layers, tensors, meta = self.export(SelfAttend(mha), x, dtype="f32")
        self.check_trace(layers, tensors, meta, ["attn"], [mha_reference(mha, x, x, x)])

    def test_cross_attention_separate_projections(self):
        mha = self.mha(17, kdim=12, vdim=10, batch_first=True)  # q/k/v_proj_weight, not in_proj_weight
        self.assertFalse(mha._qkv_same_embed_dim)
        keys, values = torch.randn(1, 7, 12), torch.randn(1, 7, 10)
        x = torch.randn(1, 3, 16)
        _, layers, tensors, meta = self.export(CrossAttend(mha, keys, values), x, dtype="f32")
        self.check_trace(layers, tensors, meta, ["attn"], [mha_reference(mha, x[0], keys[0], values[0])])
        self.assertEqual(layers["layers.0.q"].shape, (4, 3, 4))
        self.assertEqual(layers["layers.0.k"].shape, (4, 7, 4))

    def encoder(self):
        torch.manual_seed(18)
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, dropout=0.0, batch_first=True)
        encoder = randomize_biases(nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), 19)
        return encoder.eval()

    def test_transformer_encoder_fast_path(self):
        encoder = self.encoder()
        for p in encoder.parameters():
            p.requires_grad_(False)  # a frozen model, as for inference
        x = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(20))
        is_mha = lambda m: isinstance(m, nn.MultiheadAttention)  # noqa: E731
        # Without the exporter, eval + no_grad takes the fused path: self_attn never runs.
        with saved_inputs(encoder, is_mha) as calls, torch.no_grad():
            fused = encoder(x)
        self.assertEqual(calls, [])
        with saved_inputs(encoder, is_mha) as calls, torch.no_grad():
            _, layers, tensors, meta = self.export(encoder, x, dtype="f32")
        names = [name for name, _ in calls]
        self.assertEqual(names, ["layers.0.self_attn", "layers.1.self_attn"])
        modules = dict(encoder.named_modules())
        expected = [mha_reference(modules[n], h[0], h[0], h[0]) for n, h in calls]
        self.check_trace(layers, tensors, meta, names, expected)
        self.assertTrue(all(not p.requires_grad for p in encoder.parameters()))  # flags restored
        # The ordinary path computed the same function as the fused one.
        with torch.no_grad():
            np.testing.assert_allclose(encoder(x).numpy(), fused.numpy(), rtol=1e-4, atol=1e-5)

    def test_without_the_guard_the_fast_path_is_an_error(self):
        encoder = self.encoder()
        x = torch.randn(1, 6, 16)
        path = self.path()
        with mock.patch.object(export_trace, "ordinary_path", lambda modules: contextlib.nullcontext()), \
                torch.no_grad(), self.assertRaises(export_trace.ExportError) as raised:
            export_trace.export_trace(encoder, x, path, model_name="tiny")
        message = str(raised.exception)
        self.assertIn("layers.0.self_attn", message)
        self.assertIn("fast path", message)
        self.assertNotIn("\n", message)
        self.assert_dir_holds()
        for m in encoder.modules():  # the adapter's forward wrapper is gone
            self.assertNotIn("forward", m.__dict__)


class ProjectModels(ExportCase):
    """qkv_linear adapter on scripts/models.py TinyTransformer (vit and charlm)."""

    def model(self, kind, seed):
        torch.manual_seed(seed)
        cfg = models.ModelConfig(kind=kind, d_model=16, heads=2, layers=2, mlp=32,
                                 tokens=65 if kind == "vit" else 12, classes=10 if kind == "vit" else 96)
        return randomize_biases(models.TinyTransformer(cfg), seed + 1).eval()

    def check(self, model, inputs, tokens):
        with saved_inputs(model, lambda m: isinstance(m, models.Attention)) as calls:
            _, layers, tensors, meta = self.export(model, inputs, model_name=model.cfg.kind,
                                                   causal=model.cfg.causal, dtype="f32")
        names, expected = bert_reference(model, calls)
        self.assertEqual(names, ["blocks.0.attention", "blocks.1.attention"])
        self.check_trace(layers, tensors, meta, names, expected, causal=model.cfg.causal)
        self.assertEqual(layers["layers.1.q"].shape, (2, tokens, 8))

    def test_vit(self):
        model = self.model("vit", 21)
        self.check(model, torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(22)), 65)

    def test_charlm(self):
        model = self.model("charlm", 23)
        self.check(model, torch.randint(0, 96, (1, 12), generator=torch.Generator().manual_seed(24)), 12)


# ----------------------------------------------------------------------------- round trip

# Values whose rounding is a tie: F16 (10 mantissa bits) and BF16 (7) halfway cases on
# both sides of even, I8 halves at scale 1 (max |x| = 127).
TIES = [127.0, 2.5, 3.5, -2.5, 0.5, -0.5, 1.5, -126.5,
        1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 + 2 ** -10, 0.0, -1.0]
# k of layer 0 is TIES for every token: head h, feature j holds TIES[8 h + j].


class RoundTrip(ExportCase):
    """Exported files read back by the simulator (attnsim trace dump / info / run)."""

    def export_model(self, dtype):
        torch.manual_seed(25)
        model = randomize_biases(BertModel(hidden=16, heads=2, layers=2), 26).eval()
        attention = model.encoder.layer[0].attention.self
        with torch.no_grad():
            attention.key.weight.zero_()  # every token's k is the vector of ties
            attention.key.bias.copy_(torch.tensor(TIES))
            layer1 = model.encoder.layer[1].attention.self
            layer1.value.weight.zero_()  # an all-zero tensor: I8 scale 1
            layer1.value.bias.zero_()
        ids = torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(27))
        return self.export(model, ids, name=f"{dtype}.safetensors", dtype=dtype)

    def each_layer_tensor(self, layers):
        for l in range(2):
            for p in "qkv":
                yield l, p, f"layers.{l}.{p}", layers[f"layers.{l}.{p}"]

    def test_f32(self):
        path, layers, _, meta = self.export_model("f32")
        self.assertEqual(meta["dtype"], "f32")
        for _, _, name, hooked in self.each_layer_tensor(layers):
            values, dtype = dump(path, name)
            self.assertEqual(dtype, "F32")
            np.testing.assert_array_equal(values, hooked.astype(np.float64), err_msg=name)

    def test_f16(self):
        path, layers, _, meta = self.export_model("f16")
        self.assertEqual(meta["dtype"], "f16")
        for _, _, name, hooked in self.each_layer_tensor(layers):
            values, dtype = dump(path, name)
            self.assertEqual(dtype, "F16")
            np.testing.assert_array_equal(values, hooked.astype(np.float16).astype(np.float64), err_msg=name)
        k, _ = dump(path, "layers.0.k")  # TIES[11:14], ties to even
        self.assertEqual(list(k[1, 0, 3:6]), [1.0, 1 + 2 ** -9, 2.0])

    def test_bf16(self):
        path, layers, _, meta = self.export_model("bf16")
        self.assertEqual(meta["dtype"], "bf16")
        for _, _, name, hooked in self.each_layer_tensor(layers):
            values, dtype = dump(path, name)
            self.assertEqual(dtype, "BF16")
            expected = bf16_round(hooked)
            np.testing.assert_array_equal(values, expected, err_msg=name)
            np.testing.assert_array_equal(expected, torch.from_numpy(hooked).bfloat16().double().numpy())
        k, _ = dump(path, "layers.0.k")
        self.assertEqual(list(k[1, 0, :3]), [1.0, 1 + 2 ** -6, -1.0])  # TIES[8:11]: ties to even

    def test_i8(self):
        path, layers, _, meta = self.export_model("i8")
        self.assertEqual(meta["dtype"], "i8")
        for l, p, name, hooked in self.each_layer_tensor(layers):
            values, dtype = dump(path, name)
            self.assertEqual(dtype, "I8")
            expected, scale = quantize_reference(hooked)
            np.testing.assert_array_equal(values, expected, err_msg=name)
            self.assertEqual(float(meta[f"scale.{l}.{p}"]), scale, name)
        k, _ = dump(path, "layers.0.k")  # scale 1: halves to even
        self.assertEqual(float(meta["scale.0.k"]), 1.0)
        self.assertEqual(list(k[0, 0]), [127, 2, 4, -2, 0, 0, 2, -126])
        self.assertEqual(float(meta["scale.1.v"]), 1.0)  # all zero
        self.assertEqual(int(np.abs(dump(path, "layers.1.v")[0]).max()), 0)

    def test_info_and_run(self):
        path, layers, _, _ = self.export_model("f16")
        info = json.loads(attnsim("trace", "info", "--json", path).stdout)
        self.assertEqual(info["model"], "tiny")
        self.assertFalse(info["causal"])
        self.assertEqual([(e["index"], e["heads"], e["n"], e["m"], e["d"], e["dtype"]) for e in info["layers"]],
                         [(l, 2, 6, 6, 8, "F16") for l in range(2)])
        stats = self.path("stats.json")
        attnsim("run", "--trace", path, "--out", stats, "-q", "-j", "1")
        with open(stats) as f:
            s = json.load(f)
        self.assertGreater(s["cycles"]["total"], 0)
        self.assertEqual(len(s["filter"]["by_layer"]), 2)

    def test_info_other_dtypes(self):
        for dtype, name in (("bf16", "BF16"), ("i8", "I8")):
            path, _, _, _ = self.export_model(dtype)
            info = json.loads(attnsim("trace", "info", "--json", path).stdout)
            self.assertEqual({e["dtype"] for e in info["layers"]}, {name})


# ---------------------------------------------------------------------------- mechanisms

DEPTH, ROUNDS, FEATURES = 2, 3, 8


def mechanism_tensors(layers, heads, d, seed):
    """Treeformer trees (depth 2), LSH directions (3 rounds), Performer matrices (8 features)."""
    rng = np.random.default_rng(seed)
    out = {}
    for l in range(layers):
        for h in range(heads):
            nodes = 2 ** DEPTH - 1
            out[f"layers.{l}.tree.{h}.w"] = (rng.standard_normal((nodes, d)).astype(np.float32), "F32")
            out[f"layers.{l}.tree.{h}.b"] = (rng.standard_normal(nodes).astype(np.float32), "F32")
            out[f"layers.{l}.lsh.{h}.proj"] = (rng.standard_normal((ROUNDS, d)).astype(np.float32), "F32")
            out[f"layers.{l}.performer.{h}.w"] = (rng.standard_normal((FEATURES // 2, d)).astype(np.float32), "F32")
    return out


class BertWithMechanisms(BertModel):
    """A model carrying its mechanism tensors, handed out by attnsim_tensors() after the
    forward pass (the hidden states it saw, and the trees, directions and matrices)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = None

    def forward(self, input_ids):
        self.seen = self.embeddings["word_embeddings"](input_ids)[0].detach()
        return super().forward(input_ids)

    def attnsim_tensors(self):
        assert self.seen is not None, "attnsim_tensors called before the forward pass"
        out = {"layers.0.hidden": (self.seen, "F32")}  # a torch tensor
        out.update(mechanism_tensors(2, 2, 8, 28))
        return out


class MechanismTensors(ExportCase):
    def model(self, cls=BertModel):
        torch.manual_seed(29)
        return randomize_biases(cls(hidden=16, heads=2, layers=2), 30).eval()

    def ids(self, n=16):
        return torch.randint(0, 50, (1, n), generator=torch.Generator().manual_seed(31))

    def test_extra_tensors_dict(self):
        keep = np.array([1, 1, 0, 1, 0, 1], dtype=np.uint8)
        hidden = np.random.default_rng(32).standard_normal((6, 16))  # float64 in, F32 out
        extra = {"layers.1.skim_keep": (keep, "U8"), "layers.1.hidden": (hidden, "F32"),
                 "layers.0.hidden": (torch.ones(6, 16), "F16")}
        _, _, tensors, _ = self.export(self.model(), self.ids(6), extra_tensors=extra)
        self.assertEqual(tensors["layers.1.skim_keep"].dtype, np.uint8)
        np.testing.assert_array_equal(tensors["layers.1.skim_keep"], keep)
        self.assertEqual(tensors["layers.1.hidden"].dtype, np.float32)
        np.testing.assert_array_equal(tensors["layers.1.hidden"], hidden.astype(np.float32))
        self.assertEqual(tensors["layers.0.hidden"].dtype, np.float16)
        self.assertEqual(tensors["layers.0.hidden"].shape, (6, 16))

    def test_extra_tensors_callable_after_forward(self):
        model = self.model()
        ran = []
        model.encoder.register_forward_hook(lambda *_: ran.append(True))

        def extra():
            self.assertEqual(ran, [True])  # called after the forward pass
            return mechanism_tensors(2, 2, 8, 33)

        _, _, tensors, _ = self.export(model, self.ids(), extra_tensors=extra)
        self.check_mechanism_tensors(tensors, mechanism_tensors(2, 2, 8, 33))

    def check_mechanism_tensors(self, tensors, expected):
        for name, (array, _) in expected.items():
            self.assertEqual(tensors[name].dtype, np.float32, name)
            np.testing.assert_array_equal(tensors[name], array, err_msg=name)
        self.assertEqual(tensors["layers.1.tree.1.w"].shape, (2 ** DEPTH - 1, 8))
        self.assertEqual(tensors["layers.1.tree.1.b"].shape, (2 ** DEPTH - 1,))
        self.assertEqual(tensors["layers.0.lsh.1.proj"].shape, (ROUNDS, 8))
        self.assertEqual(tensors["layers.1.performer.0.w"].shape, (FEATURES // 2, 8))

    def test_model_attnsim_tensors(self):
        model = self.model(BertWithMechanisms)
        extra = {"layers.1.skim_keep": (np.ones(16, dtype=np.uint8), "U8"),
                 "layers.0.lsh.0.proj": (np.zeros((1, 8)), "F32")}  # the model's own wins
        path, _, tensors, _ = self.export(model, self.ids(), extra_tensors=extra)
        self.check_mechanism_tensors(tensors, mechanism_tensors(2, 2, 8, 28))
        np.testing.assert_array_equal(tensors["layers.0.hidden"], model.seen.numpy())
        self.assertEqual(tensors["layers.1.skim_keep"].shape, (16,))  # both sources written
        self.run_mechanisms(path)

    def run_mechanisms(self, path):
        """The simulator takes the trees, directions and matrices from the trace."""
        def run(*sets):
            stats = self.path("s.json")
            args = ["run", "--trace", path, "--out", stats, "-q", "-j", "1"]
            for s in sets:
                args += ["--set", s]
            attnsim(*args)
            with open(stats) as f:
                s = json.load(f)
            os.unlink(stats)
            return s

        tree = run("candidates.source=tree")
        self.assertEqual(tree["config_from_trace"], {"tree_engine.depth": DEPTH})
        lsh = run("candidates.source=lsh", "lowrank_unit.enabled=true")
        self.assertEqual(lsh["config_from_trace"], {"lsh_unit.rounds": ROUNDS, "lowrank_unit.features": FEATURES})
        self.assertGreater(lsh["counters"]["lowrank_unit"]["macs"], 0)
        # A config that disagrees with the trace's depth is refused: the trees are used.
        bad = attnsim("run", "--trace", path, "--out", self.path("bad.json"), "-q",
                      "--set", "candidates.source=tree", "--set", f"tree_engine.depth={DEPTH + 1}", check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("tree", bad.stderr)

    def test_nan_in_extra_tensor(self):
        extra = {"layers.0.lsh.0.proj": (np.array([[np.nan, 1.0]]), "F32")}
        path = self.path()
        with self.assertRaises(export_trace.ExportError) as raised:
            export_trace.export_trace(self.model(), self.ids(4), path, model_name="tiny", extra_tensors=extra)
        self.assertIn(path, str(raised.exception))
        self.assertIn("layers.0.lsh.0.proj", str(raised.exception))
        self.assert_dir_holds()


# ----------------------------------------------------------------------------- bad input


class BadInput(ExportCase):
    """Each failure: one ExportError line naming the file or module; no file left."""

    def bert(self):
        torch.manual_seed(34)
        return BertModel(hidden=16, heads=2, layers=2).eval()

    def fails(self, model, inputs, *needles, path=None, **kwargs):
        path = path or self.path()
        kwargs.setdefault("model_name", "tiny")
        with self.assertRaises(export_trace.ExportError) as raised:
            export_trace.export_trace(model, inputs, path, **kwargs)
        message = str(raised.exception)
        self.assertNotIn("\n", message)
        for needle in needles:
            self.assertIn(needle, message)
        self.assertFalse(os.path.exists(path))
        for m in model.modules():
            self.assertEqual(len(m._forward_hooks), 0)
        return message

    def test_no_attention_module(self):
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        path = self.path()
        self.fails(model, torch.randn(1, 3, 4), "Sequential", "no attention module", path, path=path)
        self.assert_dir_holds()

    def test_batch_of_two(self):
        path = self.path()
        self.fails(self.bert(), torch.randint(0, 50, (2, 5)), "encoder.layer.0.attention.self", "batch of 2",
                   path, path=path)
        self.assert_dir_holds()

    def test_batch_of_two_multihead(self):
        mha = nn.MultiheadAttention(8, 2).eval()
        self.fails(SelfAttend(mha), torch.randn(5, 2, 8), "attn", "batch of 2")
        self.assertNotIn("forward", mha.__dict__)
        self.assert_dir_holds()

    def test_nan_in_value_projection(self):
        model = self.bert()
        with torch.no_grad():
            model.encoder.layer[1].attention.self.value.bias[3] = float("nan")
        path = self.path()
        message = self.fails(model, torch.randint(0, 50, (1, 5)), path, "layers.1.v",
                             "encoder.layer.1.attention.self", "NaN", path=path)
        self.assertNotIn("layers.1.q", message)
        self.assert_dir_holds()

    def test_f16_overflow(self):
        model = self.bert()
        with torch.no_grad():
            model.encoder.layer[0].attention.self.query.bias.fill_(1e5)  # beyond F16's 65504
        path = self.path()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the error is the one line, without a numpy warning before it
            self.fails(model, torch.randint(0, 50, (1, 5)), path, "layers.0.q", "F16", path=path, dtype="f16")
        self.assert_dir_holds()

    def test_existing_output_untouched(self):
        path = self.path()
        with open(path, "wb") as f:
            f.write(b"not a trace, and must stay so")
        before = os.stat(path)
        with self.assertRaises(export_trace.ExportError) as raised:
            export_trace.export_trace(self.bert(), torch.randint(0, 50, (1, 5)), path, model_name="tiny")
        self.assertIn(path, str(raised.exception))
        self.assertIn("exists", str(raised.exception))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"not a trace, and must stay so")
        self.assertEqual(os.stat(path).st_mtime_ns, before.st_mtime_ns)
        self.assert_dir_holds("t.safetensors")
        # force=True overwrites it with a trace.
        export_trace.export_trace(self.bert(), torch.randint(0, 50, (1, 5)), path, model_name="tiny", force=True)
        tensors, _ = safetensors_io.read(path)
        self.assertIn("layers.1.v", tensors)
        self.assert_dir_holds("t.safetensors")

    def test_missing_directory(self):
        path = os.path.join(self.tmp, "missing", "t.safetensors")
        self.fails(self.bert(), torch.randint(0, 50, (1, 5)), path, "does not exist", path=path)
        self.assert_dir_holds()

    def test_unknown_dtype(self):
        self.fails(self.bert(), torch.randint(0, 50, (1, 5)), "f64", dtype="f64")
        self.assert_dir_holds()


class CommandLine(ExportCase):
    """scripts/export_trace.py as a program: one line on stderr and status 2 on error."""

    def model_file(self):
        torch.manual_seed(35)
        cfg = models.ModelConfig(kind="vit", d_model=16, heads=2, layers=2, mlp=32)
        path = self.path("m.safetensors")
        models.save(models.TinyTransformer(cfg).eval(), path, {"model": "tiny-vit"})
        return path

    def cli(self, *args):
        return subprocess.run([PYTHON, EXPORT_SCRIPT, *args], capture_output=True, text=True, cwd=self.tmp)

    def assert_one_line_error(self, done, *needles):
        self.assertEqual(done.returncode, 2, done.stderr)
        lines = done.stderr.splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertTrue(lines[0].startswith("export_trace.py: "), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertEqual(done.stdout, "")

    def test_existing_output(self):
        model = self.model_file()
        out = self.path("exists.safetensors")
        with open(out, "wb") as f:
            f.write(b"keep me")
        done = self.cli("--model", model, "--out", out)
        self.assert_one_line_error(done, out, "exists")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"keep me")

    def test_missing_model(self):
        missing = self.path("no-such-model.safetensors")
        done = self.cli("--model", missing, "--out", self.path("t.safetensors"))
        self.assert_one_line_error(done, missing)
        self.assert_dir_holds()

    def test_export(self):
        model = self.model_file()
        out = self.path("t.safetensors")
        done = self.cli("--model", model, "--out", out, "--sample", "3", "--dtype", "bf16")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("2 layers x 2 heads, N = 65, d = 8", done.stdout)
        info = json.loads(attnsim("trace", "info", "--json", out).stdout)
        self.assertEqual(info["model"], "tiny-vit")
        self.assertEqual([(e["heads"], e["n"], e["d"], e["dtype"]) for e in info["layers"]], [(2, 65, 8, "BF16")] * 2)
        _, meta = safetensors_io.read(out)
        self.assertTrue(meta["data"].startswith("digits test image 3"), meta["data"])
        self.assertEqual(meta["model_file"], "m.safetensors")


if __name__ == "__main__":
    unittest.main()
