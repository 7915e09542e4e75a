"""scripts/mechanisms.py against the simulator, key for key.

For every mechanism, a small seeded model runs its forward pass under SimPolicy (the
simulator's rules in PyTorch), the same forward pass is exported as an F32 trace
(export_trace with the policy's mechanism tensors), `attnsim run --masks` simulates that
trace with the same config, and the test requires the masks to be identical: the same
tokens in every layer (skimming), the same candidates and the same survivors for every
(layer, head, query, key). Mask codes: 0 not a candidate, 1 filtered, 2 kept.

Also unit checks of the PyTorch pieces against scripts/reference.py (the independent
numpy reference of SEMANTICS section 3).

usage: ATTNSIM=build/attnsim /usr/bin/python3 -m unittest tests/scripts/mechanisms_test.py
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import export_trace  # noqa: E402
import mechanisms  # noqa: E402
import models  # noqa: E402
import reference  # noqa: E402
import safetensors_io  # noqa: E402

ATTNSIM = os.environ.get("ATTNSIM", os.path.join(ROOT, "build", "attnsim"))
torch.set_num_threads(1)


def tiny_model(kind, seed=0, **overrides):
    torch.manual_seed(seed)
    base = dict(kind=kind, d_model=32, heads=2, layers=3, mlp=64, tokens=65 if kind == "vit" else 40,
                classes=10 if kind == "vit" else 96)
    base.update(overrides)
    model = models.TinyTransformer(models.ModelConfig(**base))
    # Sharper attention than at initialization, so that filters have something to drop.
    with torch.no_grad():
        for block in model.blocks:
            block.attention.query.weight.mul_(4.0)
            block.attention.key.weight.mul_(4.0)
    return model.eval()


def tiny_input(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    if model.cfg.kind == "vit":
        return torch.rand(1, 8, 8, generator=g)
    return torch.randint(0, 96, (1, model.cfg.tokens), generator=g)


class SimulatorMasks:
    """Runs one config both ways and compares (a mixin of the TestCase classes below)."""

    def run_both(self, model, config, tensors=None, compare_layers=None, export_plain=False, **policy_args):
        """export_plain: the trace is the unreduced forward pass (what the simulator's FCA
        pools from), while PyTorch's masks come from the forward pass under the policy."""
        tensors = tensors or {}
        policy = mechanisms.SimPolicy(config, model.cfg, tensors, record=True, **policy_args)
        x = tiny_input(model)
        with tempfile.TemporaryDirectory() as tmp:
            trace = os.path.join(tmp, "t.safetensors")
            with torch.no_grad():
                if export_plain:
                    model(x, policy)
                    export_trace.export_trace(model, x, trace, model_name="tiny", causal=model.cfg.causal,
                                              dtype="f32", extra_tensors=lambda: policy.trace_tensors(0))
                else:
                    export_trace.export_trace(model, x, trace, model_name="tiny", causal=model.cfg.causal,
                                              dtype="f32", run=lambda inputs: model(inputs, policy),
                                              extra_tensors=lambda: policy.trace_tensors(0))
            cfg_path = os.path.join(tmp, "c.json")
            sim_config = {"schema": "attnsim.config/1"}
            sim_config.update({k: v for k, v in config.items()})
            with open(cfg_path, "w") as f:
                json.dump(sim_config, f)
            masks_path = os.path.join(tmp, "m.safetensors")
            stats_path = os.path.join(tmp, "s.json")
            done = subprocess.run([ATTNSIM, "run", "--config", cfg_path, "--trace", trace, "--out", stats_path,
                                   "--masks", masks_path, "-q"], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            sim, _ = safetensors_io.read(masks_path)
            with open(stats_path) as f:
                stats = json.load(f)
        self.compare(policy, sim, model.cfg.layers if compare_layers is None else compare_layers)
        return policy, sim, stats

    def compare(self, policy, sim, layers):
        for l in range(layers):
            torch_masks = policy.masks[l][0].numpy()        # [H, n, n]
            torch_ids = policy.tokens[l][0].numpy()         # [n]
            active = policy.active.get(l)
            rows = np.arange(len(torch_ids)) if active is None else np.nonzero(active[0].numpy())[0]
            if active is not None:  # a skimmed token is neither query nor key: all zeros
                dropped = np.setdiff1d(np.arange(len(torch_ids)), rows)
                self.assertFalse(torch_masks[:, dropped, :].any() or torch_masks[:, :, dropped].any())
            np.testing.assert_array_equal(sim[f"layers.{l}.tokens"], torch_ids[rows], err_msg=f"layer {l} tokens")
            expected = torch_masks[:, rows][:, :, rows]
            got = sim[f"layers.{l}.keep"]
            if not np.array_equal(got, expected):
                where = np.argwhere(got != expected)[0]
                self.fail(f"layer {l}: masks differ first at (head, row, key) {tuple(where)}: "
                          f"simulator {got[tuple(where)]}, PyTorch {expected[tuple(where)]}; "
                          f"{int((got != expected).sum())} of {got.size} differ")

    def assert_some_filtered(self, policy):
        self.assertGreater(int(policy.counts["filtered"].sum()), 0, "the case filters nothing: too weak a test")
        self.assertGreater(int(policy.counts["candidates"].sum() - policy.counts["filtered"].sum()), 0)


class LatteMasks(SimulatorMasks, unittest.TestCase):
    def test_dense_int8(self):
        self.run_both(tiny_model("vit"), {"qk_unit": {"mode": "dense"}})

    def test_latte_uniform_gamma(self):
        policy, _, stats = self.run_both(tiny_model("vit"), {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": 0.05}})
        self.assert_some_filtered(policy)
        self.assertEqual(stats["filter"]["filtered_keys"], int(policy.counts["filtered"].sum()))

    def test_latte_per_head_gamma_and_segments(self):
        policy, _, _ = self.run_both(tiny_model("vit"), {"qk_unit": {"mode": "latte", "estimate_bits": 3},
                                                         "comparator": {"gamma": [[0.02, 0.3], [0.1, 0.01], [0.5, 0.05]]},
                                                         "reuse_buffer": {"entries": 7}})
        self.assert_some_filtered(policy)

    def test_latte_margin(self):
        self.assert_some_filtered(self.run_both(tiny_model("vit"), {"qk_unit": {"mode": "latte"},
                                                                    "comparator": {"margin": [40, 400]}})[0])

    def test_latte_causal(self):
        policy, _, _ = self.run_both(tiny_model("charlm"), {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": 0.05},
                                                            "reuse_buffer": {"entries": 16}})
        self.assert_some_filtered(policy)

    def test_early_term_integer_theta(self):
        policy, _, _ = self.run_both(tiny_model("vit"), {"qk_unit": {"mode": "early_term"}, "comparator": {"theta": [0, 150]}})
        self.assert_some_filtered(policy)

    def test_other_bits(self):
        self.assert_some_filtered(self.run_both(tiny_model("charlm"), {"qk_unit": {"mode": "latte", "bits": 6, "estimate_bits": 2},
                                                                       "comparator": {"gamma": 0.1}})[0])


class GeneratorMasks(SimulatorMasks, unittest.TestCase):
    def tensors(self, model, depth=None, rounds=None, features=None):
        keys = None
        if depth:
            rec = {}

            class Keys(models.Policy):
                def attend(self, q, k, v, layer, causal, active):
                    rec.setdefault(layer, k[0].detach().numpy())
                    return models.float_attention(q, k, v, causal, active)
            with torch.no_grad():
                model(tiny_input(model, seed=5), Keys())
            keys = rec
        return mechanisms.mechanism_tensors(model, keys, depth=depth, rounds=rounds, features=features, seed=3)

    def test_tree_bidirectional(self):
        model = tiny_model("vit")
        policy, _, stats = self.run_both(model, {"qk_unit": {"mode": "dense"}, "candidates": {"source": "tree"}},
                                         self.tensors(model, depth=2))
        self.assertEqual(stats["filter"]["candidate_keys"], int(policy.counts["candidates"].sum()))
        self.assertLess(int(policy.counts["candidates"].sum()), 3 * 2 * 65 * 65)

    def test_tree_causal_with_latte(self):
        model = tiny_model("charlm")
        self.run_both(model, {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": 0.1},
                              "candidates": {"source": "tree"}}, self.tensors(model, depth=3))

    def test_lsh(self):
        model = tiny_model("vit")
        policy, _, _ = self.run_both(model, {"qk_unit": {"mode": "dense"}, "candidates": {"source": "lsh"},
                                             "lsh_unit": {"cluster_size": 12}}, self.tensors(model, rounds=3))
        self.assertLess(int(policy.counts["candidates"].sum()), 3 * 2 * 65 * 65)

    def test_lsh_causal_latte_lowrank(self):
        model = tiny_model("charlm")
        self.run_both(model, {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": 0.2},
                              "candidates": {"source": "lsh"}, "lsh_unit": {"cluster_size": 8},
                              "lowrank_unit": {"enabled": True}}, self.tensors(model, rounds=2, features=16))

    def test_performer_only(self):
        model = tiny_model("vit")
        policy, sim, _ = self.run_both(model, {"qk_unit": {"mode": "dense"}, "candidates": {"source": "none"},
                                               "lowrank_unit": {"enabled": True}}, self.tensors(model, features=8))
        self.assertFalse(sim["layers.0.keep"].any())


class SkimMasks(SimulatorMasks, unittest.TestCase):
    def test_transkimmer_predictor(self):
        model = tiny_model("vit", skim_predictors=True)
        with torch.no_grad():  # skim about half of the tokens: logit difference ~ a random feature
            for p in model.skim_predictors:
                p[4].bias.copy_(torch.tensor([0.0, 0.0]))
        tensors = model.predictor_tensors()
        policy, sim, stats = self.run_both(model, {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": 0.1},
                                                   "skim_controller": {"mode": "transkimmer", "source": "predictor"}},
                                           tensors)
        active = [len(sim[f"layers.{l}.tokens"]) for l in range(3)]
        self.assertEqual(stats["skim"]["active_tokens"], active)
        self.assertLess(active[-1], active[0])
        self.assertLess(active[0], 65)

    def test_fca(self):
        # FCA pools hidden states after a layer's attention, so from layer 1 on the reduced
        # model's q, k, v are not rows of any unreduced trace; the simulator pools the
        # unreduced trace's rows instead (docs/skimming.md). Both agree on layer 0's masks
        # and on which tokens layer 1 keeps (its fine tokens, then the coarse ones as -1).
        model = tiny_model("vit")
        policy, sim, _ = self.run_both(model, {"qk_unit": {"mode": "latte"}, "comparator": {"gamma": 0.1},
                                               "skim_controller": {"mode": "fca", "keep": 0.5, "groups": 3}},
                                       compare_layers=1, export_plain=True)
        self.assert_some_filtered(policy)
        np.testing.assert_array_equal(sim["layers.1.tokens"], policy.tokens[1][0].numpy())
        self.assertEqual(len(sim["layers.1.tokens"]), 33 + 3)
        self.assertEqual(list(sim["layers.1.tokens"][-3:]), [-1, -1, -1])


class PiecesAgainstReference(unittest.TestCase):
    """The PyTorch functions against scripts/reference.py on random integer data."""

    def test_quantize(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 1, 20, 8)).astype(np.float32) * 3
        q, s = mechanisms.quantize(torch.from_numpy(x), 8)
        rq, rs = reference.quantize_head(x[0, 0].astype(np.float64), 8)
        np.testing.assert_array_equal(q[0, 0].numpy().astype(np.int64), rq)
        self.assertEqual(float(s[0, 0]), rs)

    def test_latte_keep_with_segments(self):
        rng = np.random.default_rng(1)
        q = rng.integers(-127, 128, (12, 16))
        k = rng.integers(-127, 128, (30, 16))
        est = q @ reference.msb_planes(k, 8, 4).T
        valid = np.ones((12, 30), dtype=bool)
        for entries, margin in ((30, 5000), (7, 5000), (4, 20000)):
            ref = reference.latte_keep(est, valid, entries, margin)
            e = torch.from_numpy(est.astype(np.float64))
            running = mechanisms.segment_running_max(e, torch.from_numpy(valid), entries)
            got = (running - e <= margin).numpy()
            np.testing.assert_array_equal(got, ref, err_msg=f"entries {entries}")

    def test_msb_planes_negative(self):
        k = torch.tensor([-128.0, -127.0, -1.0, 0.0, 1.0, 15.0, 16.0, 127.0], dtype=torch.float64)
        expected = reference.msb_planes(k.numpy().astype(np.int64), 8, 4)
        np.testing.assert_array_equal(mechanisms.msb_planes(k, 8, 4).numpy().astype(np.int64), expected)

    def test_tree_leaves(self):
        rng = np.random.default_rng(2)
        x = rng.standard_normal((25, 6))
        w = rng.standard_normal((7, 6))
        b = rng.standard_normal(7)
        ref = reference.tree_paths(x, w, b, 3)[:, -1]
        got = mechanisms.tree_leaves(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), 3)
        np.testing.assert_array_equal(got.numpy(), ref)

    def test_fca_groups(self):
        self.assertEqual([len(g) for g in mechanisms.split_groups(list(range(7)), 3)], [3, 2, 2])
        self.assertEqual(mechanisms.split_groups([4, 9], 5), [[4], [9]])
        self.assertEqual(mechanisms.fca_keep_count(0.3, 0, 10), 3)
        fine, tail = mechanisms.fca_select(torch.tensor([0.0, 1.0, 3.0, 3.0, 2.0]), 3)
        self.assertEqual((fine, tail), ([0, 2, 3], [1, 4]))


if __name__ == "__main__":
    unittest.main()
