#!/usr/bin/python3
"""Trains the repository's two small transformers, or reuses the cached weights.

usage: /usr/bin/python3 scripts/train_models.py [--quick] [--out-dir DIR] [--force] [--only vit|charlm]

- vit: scripts/models.py `vit` (D 64, 4 heads of 16, 4 layers, MLP 128, N 65) on the 1437
  training digits: AdamW (lr 3e-3 one-cycle, weight decay 0.05), batch 64, 40 epochs,
  each batch shifted by a random -1..1 pixels in x and y (zeros shifted in).
- charlm: `charlm` (D 128, 4 heads of 32, 4 layers, MLP 512, context 128) on the fortunes
  training text: AdamW (lr 2e-3 one-cycle, weight decay 0.01), batch 16 random windows,
  1500 steps.
- --quick: the cut-down models CI trains in seconds (2 layers, fewer steps; 8 epochs for
  vit, 250 steps for charlm), written to results/quick/models by default. Their quality is
  lower; they keep the chain (train, export, simulate, evaluate) working.

Everything is seeded (torch, numpy, the data splits) and runs on one thread, so the same
machine gives the same weights. Each model is written as workloads/models/<name>.safetensors
(weights + metadata: architecture, recipe, test accuracy or perplexity, training seconds)
and skipped when that file exists (--force retrains).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import models  # noqa: E402
import tasks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {"vit": "vit-digits", "charlm": "charlm-fortunes"}

RECIPES = {
    "vit": {"config": dict(kind="vit", d_model=64, heads=4, layers=4, mlp=128, tokens=65, classes=10),
            "epochs": 40, "batch": 64, "lr": 3e-3, "weight_decay": 0.05},
    "charlm": {"config": dict(kind="charlm", d_model=128, heads=4, layers=4, mlp=512, tokens=128, classes=96),
               "steps": 1500, "batch": 16, "lr": 2e-3, "weight_decay": 0.01},
}
QUICK = {
    "vit": {"config": dict(kind="vit", d_model=32, heads=2, layers=2, mlp=64, tokens=65, classes=10),
            "epochs": 8, "batch": 64, "lr": 3e-3, "weight_decay": 0.05},
    "charlm": {"config": dict(kind="charlm", d_model=64, heads=2, layers=2, mlp=128, tokens=64, classes=96),
               "steps": 250, "batch": 32, "lr": 3e-3, "weight_decay": 0.01},
}


def shift_images(x, generator):
    """Shifts the whole batch by dy, dx in -1..1 pixels, filling with zeros."""
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=generator))
    out = torch.zeros_like(x)
    ys, yd = (slice(0, 8 - dy), slice(dy, 8)) if dy >= 0 else (slice(-dy, 8), slice(0, 8 + dy))
    xs, xd = (slice(0, 8 - dx), slice(dx, 8)) if dx >= 0 else (slice(-dx, 8), slice(0, 8 + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def train_vit(recipe, seed=0, log=print):
    torch.manual_seed(seed)
    data = tasks.Digits(seed)
    model = models.TinyTransformer(models.ModelConfig(**recipe["config"]))
    generator = torch.Generator().manual_seed(seed)
    n, batch = len(data.train_x), recipe["batch"]
    steps_per_epoch = n // batch
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe["lr"], total_steps=recipe["epochs"] * steps_per_epoch)
    for epoch in range(recipe["epochs"]):
        model.train()
        order = torch.randperm(n, generator=generator)
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            loss = F.cross_entropy(model(shift_images(data.train_x[idx], generator)), data.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == recipe["epochs"]:
            log(f"  vit epoch {epoch + 1}/{recipe['epochs']}: loss {loss.item():.3f}")
    model.eval()
    return model, {"test_accuracy": tasks.accuracy(model, data)}


def train_charlm(recipe, seed=0, log=print):
    torch.manual_seed(seed)
    data = tasks.Fortunes(seed)
    cfg = models.ModelConfig(**recipe["config"])
    model = models.TinyTransformer(cfg)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe["lr"], total_steps=recipe["steps"])
    n = cfg.tokens
    for step in range(recipe["steps"]):
        model.train()
        starts = torch.randint(0, len(data.train) - n - 1, (recipe["batch"],), generator=generator)
        chunk = torch.stack([data.train[s:s + n + 1] for s in starts.tolist()])
        logits = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.classes), chunk[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0 or step + 1 == recipe["steps"]:
            log(f"  charlm step {step + 1}/{recipe['steps']}: loss {loss.item():.3f}")
    model.eval()
    return model, {"test_perplexity": tasks.perplexity(model, data.test),
                   "validation_perplexity": tasks.perplexity(model, data.validation)}


TRAINERS = {"vit": train_vit, "charlm": train_charlm}


def model_path(kind, out_dir):
    return os.path.join(out_dir, NAMES[kind] + ".safetensors")


def ensure_model(kind, out_dir, quick=False, force=False, log=print):
    """The cached model if its file exists (and not `force`), else trains and saves it."""
    path = model_path(kind, out_dir)
    if os.path.exists(path) and not force:
        model, meta = models.load(path)
        return model, meta, path, False
    recipe = (QUICK if quick else RECIPES)[kind]
    start = time.time()
    model, quality = TRAINERS[kind](recipe, log=log)
    seconds = time.time() - start
    info = {"model": NAMES[kind] + ("-quick" if quick else ""), "recipe": json.dumps(recipe),
            "seed": "0", "train_seconds": "%.1f" % seconds, "torch": torch.__version__}
    info.update({k: "%.6g" % v for k, v in quality.items()})
    os.makedirs(out_dir, exist_ok=True)
    models.save(model, path, info, force=True)
    model, meta = models.load(path)
    return model, meta, path, True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="cut-down models for CI")
    parser.add_argument("--out-dir", help="default workloads/models, or results/quick/models with --quick")
    parser.add_argument("--force", action="store_true", help="retrain even when the cached file exists")
    parser.add_argument("--only", choices=sorted(NAMES), action="append", help="train only this model")
    args = parser.parse_args(argv)
    tasks.setup_torch()
    out_dir = args.out_dir or os.path.join(ROOT, "results/quick/models" if args.quick else "workloads/models")
    for kind in args.only or ["vit", "charlm"]:
        model, meta, path, trained = ensure_model(kind, out_dir, args.quick, args.force)
        quality = {k: meta[k] for k in ("test_accuracy", "test_perplexity") if k in meta}
        print(f"{kind}: {'trained' if trained else 'cached'} {os.path.relpath(path)} "
              f"({meta.get('train_seconds', '?')} s to train) {quality}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
