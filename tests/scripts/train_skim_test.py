"""scripts/train_skim.py: Transkimmer's training pieces, FCA's batched selection, the cost
formula, and saved skim models running under the simulator's rules (SimPolicy).

Small seeded models built here (no trained weights needed); about 15 s on one thread.

usage: /usr/bin/python3 tests/scripts/train_skim_test.py   (ctest: train_skim)
"""
import os
import sys
import tempfile
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import torch  # noqa: E402

import mechanisms  # noqa: E402
import models  # noqa: E402
import tasks  # noqa: E402
import train_skim  # noqa: E402

tasks.setup_torch()
DATA = None


def digits():
    global DATA
    if DATA is None:
        DATA = tasks.Digits()
    return DATA


def tiny_vit(seed=0, layers=2):
    torch.manual_seed(seed)
    return models.TinyTransformer(models.ModelConfig(kind="vit", d_model=16, heads=2, layers=layers, mlp=32)).eval()


def half_skimming(model, x):
    """Sets each predictor's keep bias so that about half of the tokens entering layer 0 are
    skimmed (the median logit gap), so that masks have both values."""
    with torch.no_grad():
        h = model.embed_inputs(x)
        g = torch.Generator().manual_seed(3)
        for p in model.skim_predictors:
            p[-1].weight.copy_(torch.randn(p[-1].weight.shape, generator=g))
            p[-1].bias.zero_()
            z = p(h)
            p[-1].bias[1] = (z[..., 0] - z[..., 1]).median()
    return model


class TranskimmerMasks(unittest.TestCase):
    def test_straight_through_mask_is_cumulative_and_keeps_cls(self):
        g = torch.Generator().manual_seed(0)
        logits = [torch.randn(6, 10, 2, generator=g, requires_grad=True) for _ in range(4)]
        noise = torch.Generator().manual_seed(1)
        mask, masks = None, []
        for z in logits:
            mask = train_skim.cumulative_mask(train_skim.gumbel_keep(z, 1.0, noise), mask)
            masks.append(mask)
        for l, m in enumerate(masks):
            self.assertTrue(torch.all((m == 0) | (m == 1)), "hard 0/1 values forward")
            self.assertTrue(torch.all(m[:, 0] == 1), "token 0 kept")
            if l:
                self.assertTrue(torch.all(m <= masks[l - 1]), "a skimmed token never returns")
        self.assertTrue(bool((masks[-1][:, 1:] == 0).any()) and bool((masks[-1][:, 1:] == 1).any()))
        # Straight-through: gradients reach every layer's logits, none through token 0's sample.
        train_skim.skim_loss(masks).backward()
        for z in logits:
            self.assertGreater(float(z.grad[:, 1:].abs().sum()), 0)
            self.assertEqual(float(z.grad[:, 0].abs().sum()), 0)

    def test_noise_zero_is_the_argmax(self):
        z = torch.randn(3, 7, 2)
        keep = train_skim.gumbel_keep(z, 1.0, torch.Generator().manual_seed(0), noise=0.0)
        self.assertTrue(torch.equal(keep, train_skim.argmax_keep(z)))
        self.assertEqual(train_skim.noise_scale(0, 100, 0.5), 1.0)
        self.assertEqual(train_skim.noise_scale(49, 100, 0.5), 1.0)
        self.assertEqual(train_skim.noise_scale(99, 100, 0.5), 0.0)

    def test_training_forward_is_models_block_with_a_bool_mask(self):
        """transkimmer_forward (float masks) with the argmax = the model's own forward pass with
        the same decisions as a bool `active` (models.Block), and SimPolicy's decisions."""
        x = digits().test_x[:8]
        model = half_skimming(train_skim.with_predictors(tiny_vit()), x)

        class Bool(models.Policy):
            def before_layer(self, h, layer, active):
                keep = train_skim.argmax_keep(model.skim_predictors[layer](h)).bool()
                keep[:, 0] = True
                return keep if active is None else active & keep

        with torch.no_grad():
            ours, masks = train_skim.transkimmer_forward(model, x, train_skim.argmax_keep)
            theirs = model(x, Bool())
        self.assertLess(float((ours - theirs).abs().max()), 1e-5)
        kept = [float(m.mean()) for m in masks]
        self.assertTrue(0.2 < kept[0] < 0.8, kept)
        self.assertLessEqual(kept[1], kept[0])


class TranskimmerLoss(unittest.TestCase):
    def test_skim_loss_pushes_keep_logits_down(self):
        z = torch.zeros(4, 9, 2, requires_grad=True)
        masks = [train_skim.cumulative_mask(train_skim.gumbel_keep(z, 1.0, torch.Generator().manual_seed(0)), None)]
        train_skim.skim_loss(masks).backward()
        self.assertTrue(torch.all(z.grad[:, 1:, 1] > 0), "descent lowers logit_keep")
        self.assertTrue(torch.all(z.grad[:, 1:, 0] < 0), "and raises logit_skim")

    def test_large_lambda_skims_more_than_lambda_zero(self):
        data = digits()
        small = types.SimpleNamespace(train_x=data.train_x[:320], train_y=data.train_y[:320])
        # predictors started closer to the boundary than the official +-5 (init_bias 1: still
        # every token kept), so that a few steps suffice
        recipe = {"epochs": 2, "batch": 32, "lr": 1e-3, "predictor_lr": 2e-2, "weight_decay": 0.0,
                  "tau": 1.0, "anneal": 0.5, "init_bias": 1.0, "seed": 0}
        base = tiny_vit()
        kept = {}
        for lam in (0.0, 50.0):
            model = train_skim.train_transkimmer(base, lam, recipe, small, log=lambda *a: None)
            with torch.no_grad():
                _, masks = train_skim.transkimmer_forward(model, data.test_x[:64], train_skim.argmax_keep)
            kept[lam] = float(train_skim.skim_loss(masks))
        self.assertGreater(kept[0.0], 0.95, kept)
        self.assertLess(kept[50.0], kept[0.0] - 0.3, kept)


class FcaPieces(unittest.TestCase):
    def test_batched_split_is_fca_select(self):
        g = torch.Generator().manual_seed(0)
        score = torch.randint(0, 4, (40, 17), generator=g).double()  # many ties
        for r in (1, 2, 6, 16):
            fine, tail = train_skim.fca_split(score, r)
            for i in range(score.shape[0]):
                f, t = mechanisms.fca_select(score[i], r)
                self.assertEqual((fine[i].tolist(), tail[i].tolist()), (f, t))

    def test_training_policy_is_simpolicy_in_float(self):
        """FcaTrainPolicy (float attention) against SimPolicy at 16 bits: same tokens, same output."""
        model = tiny_vit(layers=3)
        x = digits().test_x[:6]
        for keep in (0.5, 0.25):
            ours = train_skim.FcaTrainPolicy(keep, model.cfg.layers)
            sim = mechanisms.SimPolicy({"qk_unit": {"mode": "dense", "bits": 16},
                                        "skim_controller": {"mode": "fca", "keep": keep}}, model.cfg)
            with torch.no_grad():
                a, b = model(x, ours), model(x, sim)
            self.assertLess(float((a - b).abs().max()), 1e-3)
            self.assertEqual(ours.tokens, [int(q) // 6 for q in sim.counts["queries"][:, 0]])
            self.assertEqual(ours.tokens, train_skim.fca_tokens(model.cfg, keep)[0])


class Cost(unittest.TestCase):
    CFG = types.SimpleNamespace(d_model=4, mlp=8, heads=2, layers=2, tokens=3)

    def test_dense(self):
        # per layer: 4 D^2 N + 2 D N^2 + 2 D F N = 4*16*3 + 2*4*9 + 2*4*8*3 = 192 + 72 + 192
        self.assertEqual(train_skim.dense_macs(self.CFG), 2 * 456)

    def test_transkimmer(self):
        # one image, 3 tokens then 2; the predictor sees 3 tokens before each layer:
        # layer 0: 192 + 72 + 192 + (16 + 8) * 3 = 528; layer 1: 128 + 32 + 128 + 72 = 360
        self.assertEqual(train_skim.transkimmer_macs(self.CFG, [3, 2], [9, 4], images=1), 888)
        # totals over two images are averaged
        self.assertEqual(train_skim.transkimmer_macs(self.CFG, [6, 4], [18, 8], images=2), 888)

    def test_fca(self):
        cfg = types.SimpleNamespace(d_model=4, mlp=8, heads=2, layers=2, tokens=10)
        # layer 0: R = 5 of 10, tail 5 in 2 groups -> 7 tokens after the attention.
        self.assertEqual(train_skim.fca_tokens(cfg, 0.5, groups=2), ([10, 7], [5]))
        # layer 0: 4*16*10 + 2*4*100 + 2*4*8*7 (FFN on 7) + 2*100 (head mean) + 4*5 (pooling)
        #        = 640 + 800 + 448 + 200 + 20 = 2108; layer 1: 448 + 392 + 448 = 1288
        self.assertEqual(train_skim.fca_macs(cfg, 0.5, groups=2), 3396)


class SavedModels(unittest.TestCase):
    def test_saved_models_load_and_run_under_simpolicy(self):
        data = digits()
        base = tiny_vit()
        recipes = {"transkimmer": {"lambdas": [1.0], "epochs": 1, "batch": 64, "lr": 1e-3, "predictor_lr": 1e-2,
                                   "weight_decay": 0.0, "tau": 1.0, "anneal": 0.5, "seed": 0},
                   "fca": {"keeps": [0.5], "epochs": 1, "batch": 64, "lr": 1e-3, "weight_decay": 0.0, "seed": 0}}
        with tempfile.TemporaryDirectory() as tmp:
            for kind, recipe in recipes.items():
                model, meta, path, trained = train_skim.ensure_skim_model(
                    kind, base, {"model": "tiny"}, tmp, recipe=recipe, log=lambda *a: None)
                self.assertTrue(trained)
                self.assertTrue(path.endswith(train_skim.NAMES[kind] + ".safetensors"))
                loaded, meta = models.load(path)
                for key in ("recipe", "test_accuracy", "skim_ratio", "flops_reduction", "train_seconds", "sweep"):
                    self.assertIn(key, meta)
                if kind == "transkimmer":
                    self.assertTrue(loaded.cfg.skim_predictors)
                    self.assertEqual(len(loaded.predictor_tensors()), 8 * loaded.cfg.layers)
                    self.assertEqual(meta["skim_lambda"], "1")
                    policy = mechanisms.SimPolicy(train_skim.TRANSKIMMER_CONFIG, loaded.cfg,
                                                  tensors=loaded.predictor_tensors())
                    result = train_skim.evaluate_transkimmer(loaded, data)
                else:
                    self.assertEqual(meta["fca_keep"], "0.5")
                    policy = mechanisms.SimPolicy(train_skim.fca_config(0.5), loaded.cfg)
                    result = train_skim.evaluate_fca(loaded, data, 0.5)
                accuracy = tasks.accuracy(loaded, data, policy, limit=60)
                self.assertGreaterEqual(accuracy, 0.0)
                self.assertGreater(int(policy.counts["queries"].sum()), 0)
                self.assertAlmostEqual(result["accuracy"], float(meta["test_accuracy"]), places=5)
                self.assertAlmostEqual(result["flops_reduction"], float(meta["flops_reduction"]), places=4)
                # cached: the second call loads the file instead of training
                _, _, _, again = train_skim.ensure_skim_model(kind, base, {}, tmp, recipe=recipe)
                self.assertFalse(again)


if __name__ == "__main__":
    unittest.main()
