"""The models' tasks: data as tensors, and the quality metric each model is judged by.

- vit on digits: test accuracy over the 360 test images.
- charlm on fortunes: test perplexity, exp(mean negative log-likelihood per character),
  over non-overlapping windows of N characters of the test text (each window predicts its
  characters 1..N from the ones before, inside the window), the last partial window
  dropped. `windows` limits the count (evenly spaced) for quick evaluations.

Every metric takes an optional Policy (scripts/models.py), so that scripts/eval_mechanisms.py
measures a mechanism by running the model's own forward pass with it.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

import datasets


def setup_torch(threads=1):
    """One thread: far faster than torch's default on this 2-core machine (README)."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process


class Digits:
    def __init__(self, seed=0):
        tx, ty, vx, vy = datasets.digits(seed)
        self.train_x, self.train_y = torch.from_numpy(tx), torch.from_numpy(ty)
        self.test_x, self.test_y = torch.from_numpy(vx), torch.from_numpy(vy)


class Fortunes:
    def __init__(self, seed=0):
        text = datasets.fortunes(seed)
        self.train = torch.from_numpy(datasets.encode(text["train"]))
        self.validation = torch.from_numpy(datasets.encode(text["validation"]))
        self.test = torch.from_numpy(datasets.encode(text["test"]))


def test_windows(ids, n, windows=None):
    """[W, n + 1] windows of the text (inputs are [:, :n], targets [:, 1:])."""
    count = (len(ids) - 1) // n
    starts = np.arange(count) * n
    if windows is not None and windows < count:
        starts = starts[np.linspace(0, count - 1, windows).round().astype(int)]
    return torch.stack([ids[s:s + n + 1] for s in starts])


@torch.no_grad()
def accuracy(model, digits, policy=None, batch=120, limit=None):
    """Fraction of test images classified correctly."""
    model.eval()
    x, y = digits.test_x, digits.test_y
    if limit is not None:
        x, y = x[:limit], y[:limit]
    correct = 0
    for b in range(0, len(x), batch):
        correct += int((model(x[b:b + batch], policy).argmax(-1) == y[b:b + batch]).sum())
    return correct / len(x)


@torch.no_grad()
def perplexity(model, ids, policy=None, batch=16, windows=None):
    """exp(mean NLL per character) over test windows of model.cfg.tokens characters."""
    model.eval()
    data = test_windows(ids, model.cfg.tokens, windows)
    total, count = 0.0, 0
    for b in range(0, len(data), batch):
        chunk = data[b:b + batch]
        logits = model(chunk[:, :-1], policy)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1),
                                       reduction="sum"))
        count += chunk[:, 1:].numel()
    return math.exp(total / count)
