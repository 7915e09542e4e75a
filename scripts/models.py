"""The project's own small transformers (PyTorch), trained by scripts/train_models.py.

Two models, both pre-LayerNorm transformers built from the same blocks:

- `vit`: a small vision transformer for the 8x8 digits. A 3x3 convolution (1 -> D
  channels, padding 1) embeds every pixel as one token (64 tokens, each seeing its 3x3
  neighbourhood: a convolutional patch embedding, as in hybrid ViTs, which trains far
  better than linear 1x1 or 2x2 patches on 1437 images), a [CLS] token is prepended
  (token 0, N = 65), learned position embeddings, L blocks, a final LayerNorm and a
  linear classifier on [CLS]. Bidirectional attention.
- `charlm`: a causal character-level language model on the fortunes text: token and
  learned position embeddings (N = context), L blocks with causal attention, a final
  LayerNorm and a linear head predicting the next character at every position.

Each block: h = h + Attention(LN1(h)); h = h + MLP(LN2(h)) with MLP = Linear(D, F), GELU,
Linear(F, D). Attention has separate `query`, `key`, `value` and `output` Linear layers,
laid out like Hugging Face's BertSelfAttention, so that the trace exporter's hooks see
q, k, v right after their projections.

**Mechanisms plug in through a Policy** (scripts/mechanisms.py implements the
simulator's): `Policy.attend(q, k, v, layer, causal, active)` computes a layer's
attention from q, k, v [B, H, N, d]; `Policy.before_layer(h, layer, active)` may return
a new token mask (Transkimmer's skim predictor); `Policy.after_attention(h, layer,
active)` may shrink the sequence (FCA). The default `Policy` is exact float attention.
`active` is a bool [B, N] mask of the tokens a layer still processes (None = all): an
inactive token is neither query nor key, and its hidden state passes through the layer
unchanged (Transkimmer forwards it to the output).

Weights are saved as safetensors (scripts/safetensors_io.py) with the architecture in
the metadata, so a cached model is plain data, not a pickle.
"""
import dataclasses
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import safetensors_io


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    kind: str            # "vit" or "charlm"
    d_model: int = 64
    heads: int = 4
    layers: int = 4
    mlp: int = 128
    tokens: int = 65     # N: 65 for the ViT (64 pixels + [CLS]); the context for charlm
    classes: int = 10    # vit: classes; charlm: vocabulary size
    skim_predictors: bool = False  # Transkimmer: one skim predictor per layer (scripts/train_skim.py)

    @property
    def causal(self):
        return self.kind == "charlm"

    @property
    def head_dim(self):
        return self.d_model // self.heads

    def validate(self):
        if self.kind not in ("vit", "charlm"):
            raise ValueError(f"model kind must be vit or charlm, got {self.kind!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        if self.kind == "vit" and self.tokens != 65:
            raise ValueError("the digits ViT has 65 tokens (64 pixels + [CLS])")


class Policy:
    """Exact float attention and no skimming; scripts/mechanisms.py derives the simulator's."""

    def before_layer(self, h, layer, active):
        return active

    def attend(self, q, k, v, layer, causal, active):
        return float_attention(q, k, v, causal, active)

    def after_attention(self, h, layer, active):
        return h, active


def attention_mask(n, causal, active, device=None):
    """Bool [B or 1, 1, N, N]: may query i see key j (causal: j <= i; inactive keys: no)."""
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    if causal:
        mask = torch.tril(mask)
    mask = mask[None, None]
    if active is not None:
        mask = mask & active[:, None, None, :]
    return mask


def float_attention(q, k, v, causal, active):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = attention_mask(q.shape[2], causal, active, q.device)
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    probs = torch.nan_to_num(probs, nan=0.0)  # a row with no visible key (inactive query)
    return probs @ v


class Attention(nn.Module):
    def __init__(self, cfg, index):
        super().__init__()
        self.index = index
        self.num_attention_heads = cfg.heads
        self.attention_head_size = cfg.head_dim
        self.causal = cfg.causal
        self.query = nn.Linear(cfg.d_model, cfg.d_model)
        self.key = nn.Linear(cfg.d_model, cfg.d_model)
        self.value = nn.Linear(cfg.d_model, cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.d_model)

    def split_heads(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(self, x, policy, active):
        q = self.split_heads(self.query(x))
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        o = policy.attend(q, k, v, self.index, self.causal, active)
        b, _, n, _ = o.shape
        return self.output(o.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    def __init__(self, cfg, index):
        super().__init__()
        self.index = index
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attention = Attention(cfg, index)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp), nn.GELU(), nn.Linear(cfg.mlp, cfg.d_model))

    def forward(self, h, policy, active):
        active = policy.before_layer(h, self.index, active)
        update = self.attention(self.ln1(h), policy, active)
        h = h + update if active is None else torch.where(active[..., None], h + update, h)
        h, active = policy.after_attention(h, self.index, active)
        update = self.mlp(self.ln2(h))
        h = h + update if active is None else torch.where(active[..., None], h + update, h)
        return h, active


def skim_predictor(d_model):
    """Transkimmer's SkimPredictor: LayerNorm, Linear(D, D), LayerNorm, GELU, Linear(D, 2);
    output 1 is keep, 0 is skim (docs/skimming.md)."""
    return nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.LayerNorm(d_model), nn.GELU(),
                         nn.Linear(d_model, 2))


PREDICTOR_PARTS = (("ln1", 0), ("fc1", 1), ("ln2", 2), ("fc2", 4))


class TinyTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        if cfg.kind == "vit":
            self.embed = nn.Conv2d(1, cfg.d_model, 3, padding=1)
            self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        else:
            self.embed = nn.Embedding(cfg.classes, cfg.d_model)
        self.position = nn.Parameter(torch.randn(1, cfg.tokens, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.classes)
        if cfg.skim_predictors:
            self.skim_predictors = nn.ModuleList(skim_predictor(cfg.d_model) for _ in range(cfg.layers))

    def predictor_tensors(self):
        """The skim predictors' weights named as trace tensors
        (`layers.{l}.skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias}`), float32 numpy."""
        out = {}
        for l, predictor in enumerate(getattr(self, "skim_predictors", [])):
            for part, index in PREDICTOR_PARTS:
                for t in ("weight", "bias"):
                    out[f"layers.{l}.skim_predictor.{part}.{t}"] = getattr(predictor[index], t).detach().float().numpy()
        return out

    def embed_inputs(self, x):
        if self.cfg.kind == "vit":  # x: [B, 8, 8] images in [0, 1]
            pixels = self.embed(x[:, None]).flatten(2).transpose(1, 2)
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), pixels], dim=1)
        else:  # x: [B, N] character ids
            h = self.embed(x)
        return h + self.position[:, :h.shape[1]]

    def forward(self, x, policy=None):
        policy = policy or Policy()
        h = self.embed_inputs(x)
        active = None
        for block in self.blocks:
            h, active = block(h, policy, active)
        h = self.norm(h)
        return self.head(h[:, 0]) if self.cfg.kind == "vit" else self.head(h)


# ---------------------------------------------------------------------- save / load


def save(model, path, info=None, force=True):
    """Weights (F32) and the architecture (metadata `model_config`) as one safetensors file."""
    tensors = {name: t.detach().cpu().float().numpy() for name, t in model.state_dict().items()}
    metadata = {"model_config": json.dumps(dataclasses.asdict(model.cfg)), "format": "attnsim model/1"}
    for key, value in (info or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    safetensors_io.write(path, {k: (v, "F32") for k, v in tensors.items()}, metadata, force=force)


def load(path):
    """(model in eval mode, metadata) from a file written by `save`."""
    tensors, metadata = safetensors_io.read(path)
    if "model_config" not in metadata:
        raise safetensors_io.SafetensorsError(f"{path}: __metadata__.model_config: missing (not a model file)")
    cfg = ModelConfig(**json.loads(metadata["model_config"]))
    model = TinyTransformer(cfg)
    state = {name: torch.from_numpy(array.astype("float32")) for name, array in tensors.items()}
    expected = model.state_dict()
    for name in sorted(set(expected) | set(state)):
        if name not in state:
            raise safetensors_io.SafetensorsError(f"{path}: tensor {name}: missing")
        if name not in expected:
            raise safetensors_io.SafetensorsError(f"{path}: tensor {name}: not a parameter of this model")
        if tuple(state[name].shape) != tuple(expected[name].shape):
            raise safetensors_io.SafetensorsError(
                f"{path}: tensor {name}: shape {list(state[name].shape)}, expected {list(expected[name].shape)}")
    model.load_state_dict(state)
    model.eval()
    return model, metadata
